"""Chapter "Training W_V": claims C1-C3. ``W_V``-only gradient descent is a least-squares
problem in the feature matrix ``C`` (``(N n, H D)``): it reaches zero loss exactly when
``H D >= N n`` and ``sigma_min(C) > 0``, at the rate ``(1 - lr sigma_min^2)^2``.

Presets: :data:`C1` (the run of every experiment here) and :data:`C1_DIMS`,
:data:`C3_DIMS` (the embedding dimensions swept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validate import check_int, check_int_sequence
from ..model import Params
from .measures import feature_svals, lstsq_floor, per_step_factor
from .run import D_MAX, RunConfig, check_config, make_problem
from .sweep import grid, sweep

__all__ = ["C1", "C1_DIMS", "C3_DIMS", "ConditioningSweep", "RateCheck", "ThresholdSweep",
           "conditioning_sweep", "rate_check", "threshold_sweep"]

# N n = 32 tokens, H = 2 heads: the threshold H D = N n sits at D = 16.
C1 = RunConfig(N=8, n=4, D=16, d=8, H=2, init_scale=1.0, train=("W_V",), lr=None,
               steps=20_000, log_every=10, track_sigma_min=False)
C1_DIMS = (8, 16, 32, 64, 128)
C3_DIMS = (16, 24, 32, 48, 64)


@dataclass
class ThresholdSweep:
    """W_V-only GD for several embedding dimensions (C1).

    Fields:
        D: ``(K,)``. Nn, H: sizes. steps: ``(T,)``. loss: ``(K, T)``.
        floor: ``(K,)`` the least-squares value ``1/2 min ||C w - y||^2``.
        sigma_min, sigma_max: ``(K,)`` of ``C`` at init (``sigma_min`` is the
        ``min(Nn, HD)``-th singular value). lr: ``(K,)`` = ``1/sigma_max^2``.
        X ``(K, N, n, D_max)`` (zero-padded), y ``(N, n)``, params0: the data and the
        initial weights of the run.
    """

    kernel: str
    D: np.ndarray
    Nn: int
    H: int
    steps: np.ndarray
    loss: np.ndarray
    floor: np.ndarray
    sigma_min: np.ndarray
    sigma_max: np.ndarray
    lr: np.ndarray
    X: torch.Tensor = field(repr=False, default=None)
    y: torch.Tensor = field(repr=False, default=None)
    params0: Params = field(repr=False, default=None)

    @property
    def HD_over_Nn(self) -> np.ndarray:
        return self.H * self.D / self.Nn


def threshold_sweep(config: RunConfig = C1, Ds: Sequence[int] = C1_DIMS) -> ThresholdSweep:
    """C1: train ``W_V`` alone (``lr = 1/sigma_max(C)^2``) for each ``D``, in one batch.

    Models differ only in ``D`` (zero-padded batch); data, targets and initial weights come
    from ``config.seed``. Below ``H D = N n`` the loss should plateau at :attr:`floor`.
    """
    check_config(config)
    Ds = check_int_sequence("Ds", Ds, min=1, max=D_MAX)
    res = sweep(config, [config.seed], keep=True, D=Ds)
    prob = res.problems[0]
    Nn = config.N * config.n
    smax, smin, C = feature_svals(prob.X, prob.params, config.kernel, Nn)
    return ThresholdSweep(config.kernel, np.asarray(Ds), Nn, config.H, res.steps,
                          res.loss[..., 0, :], lstsq_floor(C, prob.y), smin, smax,
                          res.lr[:, 0], prob.X, prob.y, prob.params)


@dataclass
class RateCheck:
    """C2: measured late per-step loss factor vs the prediction ``(1 - lr sigma_min^2)^2``.

    Attributes: ``D``, ``measured``, ``predicted`` (``(K,)``, NaN below the threshold).
    """

    kernel: str
    D: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray


def rate_check(sweep: ThresholdSweep, *, window: int = 10) -> RateCheck:
    """Compare the late-phase rate of each above-threshold run with ``(1 - lr s_min^2)^2``.

    Why squared: the residual obeys ``r_{t+1} = (I - lr C C^T) r_t``; late in the run it is
    aligned with the smallest eigenvector of ``C C^T`` and ``f = |r|^2 / 2``.
    """
    if not isinstance(sweep, ThresholdSweep):
        raise TypeError(f"sweep must be a ThresholdSweep, got {type(sweep).__name__}")
    window = check_int("window", window, min=1, max=len(sweep.steps))
    above = sweep.H * sweep.D >= sweep.Nn
    pred = np.where(above, (1.0 - sweep.lr * sweep.sigma_min**2) ** 2, np.nan)
    meas = np.array([
        per_step_factor(sweep.loss[k], sweep.steps, window=window) if above[k] else np.nan
        for k in range(len(sweep.D))
    ])
    return RateCheck(sweep.kernel, sweep.D, meas, pred)


@dataclass
class ConditioningSweep:
    """C3: ``sigma_min(C)`` and ``kappa(C)`` at init against ``H D / (N n)``, over seeds.

    Attributes: ``D`` ``(K,)``; ``sigma_min``, ``sigma_max`` ``(K, S)``; ``ratio`` = HD/Nn.
    """

    kernel: str
    D: np.ndarray
    ratio: np.ndarray
    sigma_min: np.ndarray
    sigma_max: np.ndarray

    @property
    def kappa(self) -> np.ndarray:
        return self.sigma_max / self.sigma_min


def conditioning_sweep(config: RunConfig = C1, Ds: Sequence[int] = C3_DIMS,
                       seeds: int | Iterable[int] = range(8)) -> ConditioningSweep:
    """C3: singular values of the feature matrix at initialization, for each ``D`` and seed.

    One batched evaluation over all ``(D, seed)`` pairs (zero-padded ``D``); no training.
    """
    Ds = check_int_sequence("Ds", Ds, min=1, max=D_MAX)
    runs, axes = grid(config, seeds, D=Ds)
    prob = make_problem(runs)
    smax, smin, _ = feature_svals(prob.X, prob.params, config.kernel, config.N * config.n)
    shape = (len(Ds), len(axes["seed"]))
    D = np.asarray(Ds)
    return ConditioningSweep(config.kernel, D, config.H * D / (config.N * config.n),
                             smin.reshape(shape), smax.reshape(shape))
