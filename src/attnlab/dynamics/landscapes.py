"""Chapter "Landscapes": two-stage training. Stage 1 trains with the first kernel
(softmax); stage 2 continues from the same checkpoint with every kernel, whose loss
landscapes the chapter compares (:mod:`attnlab.landscape` draws them).

Presets: :data:`TWO_STAGE` (stage 1) and :data:`TWO_STAGE_2` (stage 2: its ``train``,
``lr``, ``steps`` and ``log_every`` are used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..kernels import KERNELS, expand_kernels
from ..model import Params, stack_params
from ..train import History, train
from .run import RunConfig, check_config, make_problem, train_problem

__all__ = ["TWO_STAGE", "TWO_STAGE_2", "TwoStage", "two_stage"]

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
