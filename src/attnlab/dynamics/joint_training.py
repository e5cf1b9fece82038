"""Chapter "Joint training": the role of each matrix. Runs that train different subsets of
the weights from the same initializations, and joint GD with the PL ratio split by block.

Presets: :data:`JOINT` (freeze comparison), :data:`JOINT_RUN` (tracked joint run),
:data:`GROUPS` (the trained subsets compared).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import check_choice
from ..model import PARAM_NAMES
from ..train import History
from .measures import block_grad_norms
from .run import RunConfig, make_problem, train_problem
from .sweep import grid, sweep

__all__ = ["GROUPS", "JOINT", "JOINT_RUN", "FreezeComparison", "JointRun",
           "freeze_comparison", "joint_run"]

JOINT = RunConfig(N=8, n=4, D=32, d=8, H=2, init_scale=1.0, value_scale=1.0,
                  train=("W_Q", "W_K", "W_V"), lr=0.3, steps=2000, log_every=10,
                  track_sigma_min=False)
JOINT_RUN = JOINT.replace(steps=300, log_every=5, track_sigma_min=True)
GROUPS = (("W_Q", "W_K", "W_V"), ("W_K", "W_V"), ("W_Q", "W_V"), ("W_Q", "W_K"), ("W_V",))


@dataclass
class FreezeComparison:
    """Runs that train different subsets of the weights on the same problems.

    Attributes: ``groups`` (the trained subsets), ``steps`` ``(T,)``, ``loss``
    ``(G, S, T)`` for ``G`` groups and ``S`` seeds (NaN after a run diverged), ``lr``,
    ``diverged_at`` ``(G, S)`` (-1: never).
    """

    kernel: str
    groups: tuple[tuple[str, ...], ...]
    seeds: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    lr: float
    diverged_at: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        """``f_T / f_0``, ``(G, S)`` (NaN where the run diverged)."""
        return np.where(self.diverged_at >= 0, np.nan, self.loss[..., -1]) / self.loss[..., 0]


def freeze_comparison(config: RunConfig = JOINT, seeds: int | Iterable[int] = range(4), *,
                      groups: Sequence[Sequence[str]] = GROUPS) -> FreezeComparison:
    """Train each subset in ``groups`` (the rest frozen) from the same initializations:
    one batched run per group (models = seeds)."""
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable):
        raise TypeError(f"groups must be a sequence of tuples of matrix names, got {groups!r}")
    groups = tuple(tuple(check_choice("groups", nm, PARAM_NAMES) for nm in _names(g))
                   for g in groups)
    if not groups:
        raise ValueError("groups must hold at least one group of matrices")
    res = sweep(config, seeds, train=groups)
    return FreezeComparison(config.kernel, groups, np.asarray(res.axes["seed"]), res.steps,
                            res.loss, float(config.lr), res.diverged_at)


def _names(group: object) -> tuple:
    if isinstance(group, (str, bytes)) or not isinstance(group, Iterable):
        raise TypeError(f"groups must hold tuples of matrix names, got {group!r}")
    return tuple(group)


@dataclass
class JointRun:
    """Joint GD on ``trained`` with per-block gradient shares along the run.

    Attributes (``S`` seeds): ``steps`` ``(T,)``; ``loss``, ``pl_ratio``, ``sigma_min``
    ``(S, T)`` (``sigma_min`` of the feature matrix at each logged step);
    ``block`` dict name -> ``(S, T)`` with ``||grad_B f||^2 / f`` (the PL ratio split by
    block; the blocks sum to ``pl_ratio``); ``wo_min2`` ``(S, T)``: ``min_h ||W_O,h||^2``
    (the head blocks of ``W_O``), NaN without ``W_O``; ``stop_reason`` the engine's
    (``"diverged at step k: ..."`` when every seed diverged and the curves end early).
    """

    kernel: str
    trained: tuple[str, ...]
    steps: np.ndarray
    loss: np.ndarray
    pl_ratio: np.ndarray
    sigma_min: np.ndarray
    block: dict[str, np.ndarray]
    wo_min2: np.ndarray
    lr: float | np.ndarray  # per seed with the automatic W_V-only step (lr=None)
    stop_reason: str = "completed"


def joint_run(config: RunConfig = JOINT_RUN, seeds: int | Iterable[int] = range(4)
              ) -> JointRun:
    """Joint GD on the config's targets, tracking ``sigma_min(C)`` and the per-block PL
    ratio. ``config.out_proj=True`` adds ``W_O`` (value dimension ``config.d_v``); include
    ``"W_O"`` in ``config.train`` to train it."""
    runs, _ = grid(config, seeds)
    prob = make_problem(runs)
    X, y, kernel, trained = prob.X, prob.y, config.kernel, config.train
    parts: list[dict[str, np.ndarray]] = []
    wo: list[np.ndarray] = []

    def split(step: int, hist: History) -> None:
        q = hist.params
        parts.append(block_grad_norms(q, X, y, kernel, trained))
        if q.W_O is None:
            wo.append(np.full(q.M, np.nan))
        else:  # W_O (M, H d_v, 1): head h owns rows h d_v ... (h+1) d_v - 1
            heads = q.W_O.detach().reshape(q.M, q.H, q.d_v)
            wo.append(heads.square().sum(-1).amin(-1).numpy())

    h = train_problem(prob, on_step=split)
    T = len(h.steps)
    block = {k: np.stack([b[k] for b in parts[:T]], 1) / h.loss for k in h.trained}
    return JointRun(kernel, h.trained, h.steps, h.loss, h.pl_ratio, h.sigma_min, block,
                    np.stack(wo[:T], 1),
                    float(config.lr) if config.lr is not None else np.asarray(h.lr, dtype=float),
                    h.stop_reason)
