"""Chapter "Landscapes": two-stage training. Stage 1 trains with the first kernel
(softmax); stage 2 continues from the same checkpoint with every kernel, whose loss
landscapes the chapter compares (:mod:`attnlab.landscape` draws them).

Presets: :data:`TWO_STAGE` (stage 1) and :data:`TWO_STAGE_2` (stage 2: its ``train``,
``lr``, ``steps`` and ``log_every`` are used).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..kernels import KERNELS, expand_kernels
from ..model import Params, stack_params
from ..train import History, train
from .run import RunConfig, check_config, make_problem, train_problem
from .sweep import sweep

__all__ = ["TWO_STAGE", "TWO_STAGE_2", "TwoStage", "TwoStageSweep", "two_stage",
           "two_stage_sweep"]

TWO_STAGE = RunConfig(N=8, n=4, D=16, d=8, H=2, init_scale=1.0, value_scale=1.0,
                      kernel=KERNELS[0], train=("W_Q", "W_K", "W_V"), lr=0.3, steps=500,
                      log_every=10, track_sigma_min=False)
TWO_STAGE_2 = TWO_STAGE.replace(train=("W_Q",), steps=2000)


@dataclass
class TwoStage:
    """Two-stage training: stage 1 with the first kernel, stage 2 from the same checkpoint
    with each kernel in ``kernels``.

    Attributes: ``X`` ``(N, n, D)``, ``y`` ``(N, n)``; ``checkpoint`` (``M = 1``);
    ``stage1`` :class:`attnlab.History`; ``stage2`` its history (``M = len(kernels)``,
    model ``m`` uses ``kernels[m]``); ``final`` dict kernel -> :class:`attnlab.Params`
    (``M = 1``).
    """

    X: torch.Tensor
    y: torch.Tensor
    kernels: tuple[str, ...]
    checkpoint: Params
    stage1: History
    stage2: History
    final: dict[str, Params]


def two_stage(stage1: RunConfig = TWO_STAGE, stage2: RunConfig = TWO_STAGE_2,
              kernels: str | Sequence[str] = KERNELS) -> TwoStage:
    """Stage 1: GD with ``stage1`` (its kernel, trained matrices, lr and steps); stage 2:
    continue from the checkpoint with ``stage2``'s trained matrices, lr and steps for every
    kernel in ``kernels`` (one batched run). Data and initialization come from ``stage1``."""
    check_config(stage1, "stage1")
    check_config(stage2, "stage2")
    kernels = expand_kernels(kernels, "kernels")
    prob = make_problem(stage1)
    X, y = prob.X, prob.y
    h1 = train_problem(prob)
    ckpt = h1.params
    both = stack_params([ckpt] * len(kernels))
    h2 = train(both, X, y, kernel=list(kernels), train=stage2.train, lr=stage2.lr,
               steps=stage2.steps, log_every=stage2.log_every)
    final = {k: h2.params.select(m) for m, k in enumerate(kernels)}
    return TwoStage(X, y, kernels, ckpt, h1, h2, final)


@dataclass
class TwoStageSweep:
    """:func:`two_stage` for many seeds, each stage one batched engine call.

    Attributes (``K`` kernels, ``S`` seeds): ``stage1_kernel``; ``seeds`` ``(S,)``;
    ``checkpoint_loss`` ``(S,)`` the stage-1 loss at the checkpoint (stage 1's kernel);
    ``steps`` ``(T,)``; ``loss`` ``(K, S, T)`` the stage-2 losses (``loss[k, :, 0]``: the
    loss right after switching to ``kernels[k]``); ``diverged_at`` ``(K, S)`` (-1: never);
    ``X`` ``(S, N, n, D)``, ``y`` ``(S, N, n)`` the data; ``final`` the stage-2 end points
    (``M = K S``, model ``k * S + j``; :meth:`end_point` picks one).
    """

    stage1_kernel: str
    kernels: tuple[str, ...]
    seeds: np.ndarray
    checkpoint_loss: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    diverged_at: np.ndarray
    X: torch.Tensor = field(repr=False, default=None)
    y: torch.Tensor = field(repr=False, default=None)
    final: Params = field(repr=False, default=None)

    def end_point(self, kernel: str, j: int) -> Params:
        """The stage-2 end point of ``kernel`` for the ``j``-th seed (``M = 1``)."""
        return self.final.select(self.kernels.index(kernel) * len(self.seeds) + j)

    @property
    def final_loss(self) -> np.ndarray:
        """The last stage-2 loss, NaN where the run diverged; ``(K, S)``."""
        return np.where(self.diverged_at >= 0, np.nan, self.loss[..., -1])


def two_stage_sweep(stage1: RunConfig = TWO_STAGE, stage2: RunConfig = TWO_STAGE_2,
                    seeds: int | Iterable[int] = range(32),
                    kernels: str | Sequence[str] = KERNELS) -> TwoStageSweep:
    """:func:`two_stage` for every seed: stage 1 (``stage1``'s kernel) for all seeds in one
    engine call, then stage 2 from every checkpoint with every kernel in one mixed batch
    (model ``k * S + j``: kernel ``k``, seed ``j``). Seed ``j`` gets exactly the data,
    initialization and checkpoint of ``two_stage(stage1.replace(seed=j), stage2)``."""
    check_config(stage1, "stage1")
    check_config(stage2, "stage2")
    kernels = expand_kernels(kernels, "kernels")
    res = sweep(stage1, seeds, keep=True)
    if res.calls != 1:  # the seeds of one config always share a call
        raise RuntimeError("stage 1 should be one engine call")
    prob, h1 = res.problems[0], res.histories[0]
    S, K = len(res.axes["seed"]), len(kernels)
    X = prob.X if prob.X.ndim == 4 else prob.X.expand(S, *prob.X.shape)
    y = prob.y if prob.y.ndim == 3 else prob.y.expand(S, *prob.y.shape)
    h2 = train(stack_params([h1.params] * K), torch.cat([X] * K), torch.cat([y] * K),
               kernel=[k for k in kernels for _ in range(S)], train=stage2.train,
               lr=stage2.lr, steps=stage2.steps, log_every=stage2.log_every)
    T = len(h2.steps)
    return TwoStageSweep(stage1.kernel, kernels, np.asarray(res.axes["seed"]),
                         np.asarray(h1.loss)[:, -1], np.asarray(h2.steps),
                         np.asarray(h2.loss).reshape(K, S, T),
                         np.asarray(h2.diverged_at).reshape(K, S), X, y, h2.params)
