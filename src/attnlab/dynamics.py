"""Experiments of Part II (claims C1-C9 of gd-dynamics.md), shared by chapters and tests.

Each function sets up data and models with the engine (:func:`attnlab.init_params`,
:func:`attnlab.random_tokens`, :func:`attnlab.teacher_targets`), trains them with
:func:`attnlab.train` (many models in one batched run wherever possible) and returns plain
results: dataclasses of NumPy arrays. No model or training code lives here.

Conventions: loss ``f = 1/2 sum_{i,k} (out_ik - y_ik)^2``; tokens ``x ~ N(0, I/D)``;
``W_Q, W_K ~ N(0, s^2)`` (init scale ``s``), ``W_V ~ N(0, v^2)``; float64 on the CPU.
Seeds: model ``m`` of a sweep uses the seed listed for it; the same seed gives the same
tokens, targets and initial directions whatever the other swept values are.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._validate import check_choice, check_int, check_real
from .data import random_targets, random_tokens, teacher_targets
from .kernels import KERNELS, attention_matrix, feature_matrix, pl_lower_bound, wq_gradient
from .model import PARAM_NAMES, Params, forward, init_params, stack_params
from .train import History, train

# NumPy array or torch tensor (functions convert as needed).
ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "lstsq_floor",
    "per_step_factor",
    "ThresholdSweep",
    "threshold_sweep",
    "RateCheck",
    "rate_check",
    "ConditioningSweep",
    "conditioning_sweep",
    "ScaleSweep",
    "sigma_min_vs_scale",
    "gradient_check",
    "reachable_interval",
    "reachable_floor",
    "WQRun",
    "wq_run",
    "hull_barrier_example",
    "gaussian_trap_example",
    "TeacherRuns",
    "teacher_runs",
    "teacher_comparison",
    "teacher_vs_dim",
    "wq_jacobian",
    "curvature_lr",
    "PLTrajectory",
    "pl_bound_along_trajectory",
    "block_grad_norms",
    "FreezeComparison",
    "freeze_comparison",
    "JointRun",
    "joint_run",
    "TwoStage",
    "two_stage",
]

_WV = ("W_V",)


def _seeds(seeds: int | Sequence[int], name: str = "seeds") -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        seeds = [int(seeds)]
    seeds = [check_int(name, s, min=0) for s in seeds]
    if not seeds:
        raise ValueError(f"{name} must hold at least one seed")
    return seeds


def _kernel(kernel: str) -> str:
    return check_choice("kernel", kernel, KERNELS)


def _svals(C: torch.Tensor) -> np.ndarray:
    """Singular values, descending, (..., min(rows, cols))."""
    return torch.linalg.svdvals(C).cpu().numpy()


# ----------------------------------------------------------------------------- helpers
def lstsq_floor(C: ArrayLike, y: ArrayLike) -> np.ndarray:
    """``1/2 min_w ||C w - y||^2`` by ``numpy.linalg.lstsq``: the loss W_V-only GD plateaus at.

    Args:
        C: ``(Nn, HD)`` or ``(M, Nn, HD)``. y: ``(N, n)``/``(Nn,)`` or per model ``(M, ...)``.

    Returns:
        ``(M,)`` (``(1,)`` for a single ``C``).
    """
    C = np.asarray(C.detach().cpu() if isinstance(C, torch.Tensor) else C, dtype=float)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=float)
    C = C[None] if C.ndim == 2 else C
    y = np.broadcast_to(
        y.reshape(-1, C.shape[1]) if y.size != C.shape[1] else y.reshape(1, -1),
        (C.shape[0], C.shape[1]),
    )
    out = []
    for Cm, ym in zip(C, y, strict=True):
        w = np.linalg.lstsq(Cm, ym, rcond=None)[0]
        out.append(0.5 * float(np.sum((Cm @ w - ym) ** 2)))
    return np.asarray(out)


def per_step_factor(
    loss: np.ndarray, steps: np.ndarray, *, window: int = 10, tiny: float = 1e-22
) -> float:
    """Measured per-step factor ``(f_t1 / f_t0)^(1/(t1 - t0))`` over the last ``window``
    logged intervals whose losses are above ``tiny * f_0`` (below, rounding dominates).

    Args:
        loss: ``(T,)`` logged losses. steps: ``(T,)`` their step numbers.
    """
    loss = np.asarray(loss, dtype=float)
    steps = np.asarray(steps)
    ok = np.nonzero(np.isfinite(loss) & (loss > tiny * loss[0]))[0]
    if len(ok) < 2:
        return float("nan")
    last = ok[-1]
    first = ok[max(0, len(ok) - 1 - window)]
    return float((loss[last] / loss[first]) ** (1.0 / (steps[last] - steps[first])))


# ----------------------------------------------------------------------------- C1, C2
@dataclass
class ThresholdSweep:
    """W_V-only GD for several embedding dimensions (C1).

    Attributes:
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


def _feature_svals(X: torch.Tensor, p: Params, kernel, Nn: int) -> tuple[np.ndarray, ...]:
    """Per model: sigma_max and the min(Nn, H D_m)-th singular value of C."""
    C = feature_matrix(X, p.W_Q, p.W_K, kernel)
    s = _svals(C)
    k = np.minimum(Nn, p.H * np.asarray(p.D_model))
    return s[:, 0], s[np.arange(len(k)), k - 1], C


def threshold_sweep(
    *,
    kernel: str = "softmax",
    Ds: Sequence[int] = (8, 16, 32, 64, 128),
    N: int = 8,
    n: int = 4,
    H: int = 2,
    d: int = 8,
    init_scale: float = 1.0,
    steps: int = 20_000,
    seed: int = 0,
    log_every: int = 10,
) -> ThresholdSweep:
    """C1: train ``W_V`` alone (``lr = 1/sigma_max(C)^2``) for each ``D``, in one batch.

    Models differ only in ``D`` (zero-padded batch); data, targets and initial weights come
    from ``seed``. Below ``H D = N n`` the loss should plateau at :attr:`floor`.
    """
    kernel = _kernel(kernel)
    Ds = [check_int("Ds", D, min=1) for D in Ds]
    seed = check_int("seed", seed, min=0)
    K = len(Ds)
    X = random_tokens(N, n, Ds, seed=seed)
    y = random_targets(N, n, seed=seed)
    p = init_params(M=K, H=H, D=Ds, d=d, init_scale=init_scale, seed=[seed] * K)
    smax, smin, C = _feature_svals(X, p, kernel, N * n)
    h = train(p, X, y, kernel=kernel, train=_WV, steps=steps, log_every=log_every)
    return ThresholdSweep(
        kernel,
        np.asarray(Ds),
        N * n,
        H,
        h.steps,
        h.loss,
        lstsq_floor(C, y),
        smin,
        smax,
        h.lr,
        X,
        y,
        p,
    )


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
    above = sweep.H * sweep.D >= sweep.Nn
    pred = np.where(above, (1.0 - sweep.lr * sweep.sigma_min**2) ** 2, np.nan)
    meas = np.array(
        [
            per_step_factor(sweep.loss[k], sweep.steps, window=window) if above[k] else np.nan
            for k in range(len(sweep.D))
        ]
    )
    return RateCheck(sweep.kernel, sweep.D, meas, pred)


# ----------------------------------------------------------------------------- C3
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


def conditioning_sweep(
    *,
    kernel: str = "softmax",
    Ds: Sequence[int] = (16, 24, 32, 48, 64),
    seeds: Sequence[int] = range(8),
    N: int = 8,
    n: int = 4,
    H: int = 2,
    d: int = 8,
    init_scale: float = 1.0,
) -> ConditioningSweep:
    """C3: singular values of the feature matrix at initialization, for each ``D`` and seed.

    One batched evaluation over all ``(D, seed)`` pairs (zero-padded ``D``).
    """
    kernel = _kernel(kernel)
    Ds = [check_int("Ds", D, min=1) for D in Ds]
    seeds = _seeds(seeds)
    pairs = list(itertools.product(Ds, seeds))
    Dm = [D for D, _ in pairs]
    sm = [s for _, s in pairs]
    X = random_tokens(N, n, Dm, seed=sm)
    p = init_params(M=len(pairs), H=H, D=Dm, d=d, init_scale=init_scale, seed=sm)
    smax, smin, _ = _feature_svals(X, p, kernel, N * n)
    shape = (len(Ds), len(seeds))
    D = np.asarray(Ds)
    return ConditioningSweep(kernel, D, H * D / (N * n), smin.reshape(shape), smax.reshape(shape))


# ----------------------------------------------------------------------------- C4
@dataclass
class ScaleSweep:
    """C4: feature-matrix spectrum and attention statistics against the init scale.

    Attributes (``(K, S)`` for ``K`` scales and ``S`` seeds): ``sigma_min`` (the
    ``min(Nn, HD)``-th singular value), ``sigma_max``, ``entropy`` (mean row entropy of the
    row-normalized attention, ``log n`` = uniform), ``row_sum`` (mean row sum of ``S``: 1 for
    softmax, vanishing for a far-away Gaussian), ``max_weight`` (mean largest entry of the
    row-normalized rows: 1 = one-hot).
    """

    kernel: str
    scales: np.ndarray
    sigma_min: np.ndarray
    sigma_max: np.ndarray
    entropy: np.ndarray
    row_sum: np.ndarray
    max_weight: np.ndarray


def sigma_min_vs_scale(
    *,
    kernel: str = "softmax",
    scales: Sequence[float] | None = None,
    seeds: Sequence[int] = range(5),
    N: int = 8,
    n: int = 4,
    D: int = 64,
    d: int = 8,
    H: int = 1,
) -> ScaleSweep:
    """C4: ``W_Q, W_K = s Z`` with the same ``Z`` (per seed) for every scale ``s``.

    All ``K x S`` models are one batched evaluation; the seed fixes the tokens and ``Z``, so
    each curve shows the effect of the scale alone.
    """
    kernel = _kernel(kernel)
    scales = np.geomspace(0.01, 10, 25) if scales is None else np.asarray(scales, dtype=float)
    seeds = _seeds(seeds)
    pairs = list(itertools.product(scales.tolist(), seeds))
    sc = [s for s, _ in pairs]
    sd = [s for _, s in pairs]
    X = random_tokens(N, n, [D] * len(pairs), seed=sd)
    p = init_params(M=len(pairs), H=H, D=D, d=d, init_scale=sc, seed=sd)
    smax, smin, _ = _feature_svals(X, p, kernel, N * n)
    S = attention_matrix(X, p.W_Q, p.W_K, kernel)  # (M, H, N, n, n)
    rs = S.sum(-1)
    P = S / rs.clamp_min(torch.finfo(S.dtype).tiny).unsqueeze(-1)
    ent = torch.special.entr(P).sum(-1).flatten(1).mean(1)
    shape = (len(scales), len(seeds))
    return ScaleSweep(
        kernel,
        scales,
        smin.reshape(shape),
        smax.reshape(shape),
        ent.numpy().reshape(shape),
        rs.flatten(1).mean(1).numpy().reshape(shape),
        P.amax(-1).flatten(1).mean(1).numpy().reshape(shape),
    )


# ----------------------------------------------------------------------------- gradients
def gradient_check(
    *,
    kernel: str = "softmax",
    N: int = 4,
    n: int = 4,
    D: int = 16,
    d: int = 8,
    H: int = 2,
    init_scale: float = 0.5,
    value_scale: float = 2.0,
    seed: int = 0,
) -> float:
    """Relative error between :func:`attnlab.wq_gradient` (closed form) and autograd
    through :func:`attnlab.layer_output`, at a random point with random targets (float64)."""
    kernel = _kernel(kernel)
    p = init_params(H=H, D=D, d=d, init_scale=init_scale, value_scale=value_scale, seed=seed)
    X = random_tokens(N, n, D, seed=seed)
    y = random_targets(N, n, seed=seed)
    WQ = p.W_Q[0].clone().requires_grad_(True)
    from .kernels import layer_output  # local: keeps the module's import list short

    out = layer_output(X, WQ, p.W_K[0], p.W_V[0], kernel)
    g_auto = torch.autograd.grad(0.5 * (out - y).square().sum(), WQ)[0]
    g_cf = wq_gradient(X, p.W_Q[0], p.W_K[0], p.W_V[0], y, kernel)
    return float((g_cf - g_auto).norm() / g_auto.norm())


# ----------------------------------------------------------------------------- C5, C6
def reachable_interval(X: ArrayLike, params: Params, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """Interval that contains every output ``out_ik`` reachable by moving ``W_Q`` alone.

    With values ``u_hij = <x_ij, W_V[h]>`` fixed: a softmax row is a probability vector, so
    head ``h`` contributes a point of ``[min_j u_hij, max_j u_hij]``; a Gaussian row has
    entries in ``(0, 1]``, so head ``h`` contributes a point of
    ``[sum_j min(u_hij, 0), sum_j max(u_hij, 0)]``. Summing over heads gives the interval.

    Args:
        X: ``(N, n, D)`` or ``(M, N, n, D)``. params: :class:`attnlab.Params` (``d_v = 1``,
        no ``W_O``).

    Returns:
        ``(lo, hi)``, each ``(M, N, n)`` NumPy.
    """
    kernel = _kernel(kernel)
    if params.W_O is not None or params.d_v != 1:
        raise ValueError("params must have d_v = 1 and no W_O (the theory setting)")
    Xt = torch.as_tensor(X).to(params.dtype)
    eq = "ind,mhd->mhin" if Xt.ndim == 3 else "mind,mhd->mhin"
    u = torch.einsum(eq, Xt, params.W_V[..., 0])  # (M, H, N, n)
    if kernel == "softmax":
        lo, hi = u.amin(-1), u.amax(-1)
    else:
        lo, hi = u.clamp(max=0).sum(-1), u.clamp(min=0).sum(-1)
    shape = (u.shape[0], u.shape[2], u.shape[3])  # (M, N, n): same interval for every k
    lo = lo.sum(1).unsqueeze(-1).expand(shape)
    hi = hi.sum(1).unsqueeze(-1).expand(shape)
    return lo.numpy().copy(), hi.numpy().copy()


def reachable_floor(X: ArrayLike, params: Params, y: ArrayLike, kernel: str) -> np.ndarray:
    """Lower bound on ``inf_{W_Q} f``: ``1/2 sum_ik dist(y_ik, [lo_ik, hi_ik])^2`` with the
    interval of :func:`reachable_interval`. ``(M,)`` NumPy."""
    lo, hi = reachable_interval(X, params, kernel)
    yv = np.asarray(torch.as_tensor(y).cpu(), dtype=float)
    gap = np.maximum(lo - yv, 0.0) + np.maximum(yv - hi, 0.0)
    return 0.5 * (gap**2).sum((-2, -1))


@dataclass
class WQRun:
    """W_Q-only GD on random targets (C5, C6, and the negative result), ``S`` seeds.

    Attributes:
        steps ``(T,)``; loss, pl_ratio ``(S, T)``; snap_steps ``(T',)``; Z ``(S, T', N, n)``
        outputs at the snapshot steps; y ``(S, N, n)``; lo, hi ``(S, N, n)`` reachable
        interval; floor ``(S,)`` = ``reachable_floor``; row_sum ``(S, N, n)`` final row sums
        of the attention (head-summed); q_norm0, q_norm ``(S, N, n)`` initial and final
        ``||q_ik||`` (head 0).
    """

    kernel: str
    seeds: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    pl_ratio: np.ndarray
    snap_steps: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    floor: np.ndarray
    row_sum: np.ndarray
    q_norm0: np.ndarray
    q_norm: np.ndarray
    history: History = field(repr=False)

    @property
    def ratio(self) -> np.ndarray:
        """``f_T / f_0`` per seed."""
        return self.loss[:, -1] / self.loss[:, 0]


def wq_run(
    *,
    kernel: str = "softmax",
    seeds: Sequence[int] = range(8),
    N: int = 4,
    n: int = 4,
    D: int = 32,
    d: int = 8,
    H: int = 1,
    init_scale: float = 0.5,
    value_scale: float = 2.0,
    target_scale: float = 0.3,
    lr: float = 0.5,
    steps: int = 3000,
    log_every: int = 10,
    snap_every: int = 100,
) -> WQRun:
    """Train ``W_Q`` alone on random targets ``y ~ N(0, target_scale^2)``, one model per seed.

    Seed ``s`` fixes the tokens, the targets and the initial weights (same for both
    kernels), so a softmax and a Gaussian call with the same seeds see the same problem.
    """
    kernel = _kernel(kernel)
    seeds = _seeds(seeds)
    S = len(seeds)
    X = random_tokens(N, n, [D] * S, seed=seeds)
    y = torch.stack([random_targets(N, n, seed=s, scale=target_scale) for s in seeds])
    p = init_params(M=S, H=H, D=D, d=d, init_scale=init_scale, value_scale=value_scale, seed=seeds)
    snaps: dict[int, Params] = {}
    snap_every = check_int("snap_every", snap_every, min=1)

    def keep(step: int, hist: History) -> None:
        if step % snap_every == 0 or step == steps:
            snaps[step] = hist.params

    h = train(
        p,
        X,
        y,
        kernel=kernel,
        train=("W_Q",),
        lr=lr,
        steps=steps,
        log_every=check_int("log_every", log_every, min=1),
        on_step=keep,
    )
    snap_steps = np.asarray(sorted(snaps))
    with torch.no_grad():
        Z = torch.stack([forward(snaps[t], X, kernel) for t in snap_steps], 1)
        fin = h.params
        S_att = attention_matrix(X, fin.W_Q, fin.W_K, kernel)  # (S, H, N, n, n)
        q = torch.einsum("mind,mde->mine", X, fin.W_Q[:, 0])
        q0 = torch.einsum("mind,mde->mine", X, p.W_Q[:, 0])
    lo, hi = reachable_interval(X, p, kernel)
    return WQRun(
        kernel,
        np.asarray(seeds),
        h.steps,
        h.loss,
        h.pl_ratio,
        snap_steps,
        Z.numpy(),
        y.numpy(),
        lo,
        hi,
        reachable_floor(X, p, y, kernel),
        S_att.sum(-1).sum(1).numpy(),
        q0.norm(dim=-1).numpy(),
        q.norm(dim=-1).numpy(),
        h,
    )


def hull_barrier_example(**kw: Any) -> WQRun:
    """C5: :func:`wq_run` with the softmax kernel (the convex-hull floor)."""
    return wq_run(kernel="softmax", **kw)


def gaussian_trap_example(**kw: Any) -> WQRun:
    """C6: :func:`wq_run` with the Gaussian kernel on the same problems (its own trap)."""
    return wq_run(kernel="gaussian", **kw)


# ----------------------------------------------------------------------------- C7, C8
@dataclass
class TeacherRuns:
    """W_Q-only GD on realizable teacher targets over a grid of settings (C7, C8).

    Arrays are indexed ``[kernel, delta, scale, D, seed]`` (+ ``T`` for trajectories).

    Attributes:
        kernels, deltas, scales, Ds, seeds: the grid axes. steps ``(T,)``.
        loss, pl_ratio: ``(..., T)``. lr: the step size of every model (grid-shaped).
        lr_mode: ``"fixed"`` (one step size for all) or ``"curvature"``
        (``lr / lambda_max(J_0 J_0^T)`` per model, see :func:`curvature_lr`).
    """

    kernels: tuple[str, ...]
    deltas: np.ndarray
    scales: np.ndarray
    Ds: np.ndarray
    seeds: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    pl_ratio: np.ndarray
    lr: np.ndarray
    lr_mode: str

    @property
    def ratio(self) -> np.ndarray:
        """``f_T / f_0``, indexed ``[kernel, delta, scale, D, seed]``."""
        return self.loss[..., -1] / self.loss[..., 0]

    def converged(self, tol: float = 1e-8) -> np.ndarray:
        """Number of seeds with ``f_T / f_0 < tol``, indexed ``[kernel, delta, scale, D]``."""
        return (self.ratio < tol).sum(-1)


def teacher_runs(
    *,
    kernels: Sequence[str] = KERNELS,
    deltas: Sequence[float] = (1.0,),
    scales: Sequence[float] = (0.5,),
    Ds: Sequence[int] = (32,),
    seeds: Sequence[int] = range(6),
    N: int = 4,
    n: int = 4,
    d: int = 8,
    H: int = 1,
    value_scale: float = 2.0,
    lr: float = 0.5,
    lr_mode: str = "fixed",
    steps: int = 1500,
    log_every: int = 10,
) -> TeacherRuns:
    """Train ``W_Q`` alone toward a same-kernel teacher, for every grid point, in one batch.

    The teacher equals the student's initialization except
    ``W_Q* = W_Q0 + delta * s * N(0, 1)`` (:func:`attnlab.teacher_targets`), so ``f* = 0``.
    Seed ``s`` fixes tokens, initial weights and the teacher's offset direction, shared by
    both kernels. ``lr_mode="fixed"``: step ``lr`` for every model; ``"curvature"``: step
    ``lr / lambda_max(J_0 J_0^T)`` per model (:func:`curvature_lr`).
    """
    kernels = tuple(_kernel(k) for k in kernels)
    deltas = [check_real("deltas", x, min=0.0) for x in deltas]
    scales = [check_real("scales", x, min=0.0, strict_min=True) for x in scales]
    Ds = [check_int("Ds", x, min=1) for x in Ds]
    seeds = _seeds(seeds)
    lr = check_real("lr", lr, min=0.0, strict_min=True)
    lr_mode = check_choice("lr_mode", lr_mode, ("fixed", "curvature"))
    grid = list(itertools.product(kernels, deltas, scales, Ds, seeds))
    ker = [g[0] for g in grid]
    Dm = [g[3] for g in grid]
    sd = [g[4] for g in grid]
    X = random_tokens(N, n, Dm, seed=sd)
    p = init_params(
        M=len(grid),
        H=H,
        D=Dm,
        d=d,
        init_scale=[g[2] for g in grid],
        value_scale=value_scale,
        seed=sd,
    )
    y = torch.empty(len(grid), N, n, dtype=p.dtype)
    for delta in deltas:  # teacher_targets takes one delta per call
        idx = [m for m, g in enumerate(grid) if g[1] == delta]
        y[idx] = teacher_targets(
            X[idx],
            p.select(idx),
            delta=delta,
            kernel=[ker[m] for m in idx],
            seed=[sd[m] for m in idx],
        )[0]
    lrs = curvature_lr(X, p, ker, lr) if lr_mode == "curvature" else np.full(len(grid), lr)
    h = train(
        p, X, y, kernel=ker, train=("W_Q",), lr=lrs.tolist(), steps=steps, log_every=log_every
    )
    shape = (len(kernels), len(deltas), len(scales), len(Ds), len(seeds))
    return TeacherRuns(
        kernels,
        np.asarray(deltas),
        np.asarray(scales),
        np.asarray(Ds),
        np.asarray(seeds),
        h.steps,
        h.loss.reshape(*shape, -1),
        h.pl_ratio.reshape(*shape, -1),
        lrs.reshape(shape),
        lr_mode,
    )


def teacher_comparison(
    *,
    deltas: Sequence[float] = (0.5, 1.0, 2.0),
    seeds: Sequence[int] = range(8),
    D: int = 32,
    init_scale: float = 0.5,
    steps: int = 1500,
    **kw: Any,
) -> TeacherRuns:
    """C7: both kernels, several teacher distances ``delta``, ``D >= N n``."""
    return teacher_runs(
        deltas=deltas, scales=(init_scale,), Ds=(D,), seeds=seeds, steps=steps, **kw
    )


def teacher_vs_dim(
    *,
    Ds: Sequence[int] = (8, 16, 32, 64),
    seeds: Sequence[int] = range(8),
    delta: float = 1.0,
    init_scale: float = 0.5,
    steps: int = 300,
    **kw: Any,
) -> TeacherRuns:
    """C8: both kernels against the embedding dimension (``N n = 16`` by default)."""
    return teacher_runs(
        deltas=(delta,), scales=(init_scale,), Ds=Ds, seeds=seeds, steps=steps, **kw
    )


# ----------------------------------------------------------------------------- C9
@dataclass
class PLTrajectory:
    """Both sides of the Schur bound along a W_Q-only GD run (C9).

    Attributes (``(S, T)`` for ``S`` seeds, at the logged steps ``steps``): ``loss``,
    ``pl_ratio`` (``||grad f||^2 / f``), ``lam_J`` (``lambda_min(J J^T)``), ``bound``
    (``lambda_min(X X^T) min_ik ||g_ik||^2``).
    """

    kernel: str
    steps: np.ndarray
    loss: np.ndarray
    pl_ratio: np.ndarray
    lam_J: np.ndarray
    bound: np.ndarray


def pl_bound_along_trajectory(
    *,
    kernel: str = "gaussian",
    seeds: Sequence[int] = range(3),
    N: int = 4,
    n: int = 4,
    D: int = 32,
    d: int = 8,
    H: int = 1,
    init_scale: float = 0.5,
    value_scale: float = 2.0,
    delta: float = 1.0,
    lr: float = 1.0,
    lr_mode: str = "curvature",
    steps: int = 300,
    log_every: int = 10,
) -> PLTrajectory:
    """C9: W_Q-only GD toward a same-kernel teacher; at every logged step evaluate
    :func:`attnlab.pl_lower_bound` (both sides of ``lambda_min(JJ^T) >= bound``).

    ``lr_mode="curvature"``: step ``lr / lambda_max(J_0 J_0^T)`` per seed
    (:func:`curvature_lr`); ``"fixed"``: step ``lr``."""
    kernel = _kernel(kernel)
    seeds = _seeds(seeds)
    S = len(seeds)
    X = random_tokens(N, n, [D] * S, seed=seeds)
    p = init_params(M=S, H=H, D=D, d=d, init_scale=init_scale, value_scale=value_scale, seed=seeds)
    y, _ = teacher_targets(X, p, delta=delta, kernel=kernel, seed=seeds)
    lr_mode = check_choice("lr_mode", lr_mode, ("fixed", "curvature"))
    lrs = curvature_lr(X, p, kernel, lr) if lr_mode == "curvature" else np.full(S, lr)
    lam, bnd = [], []

    def evaluate(step: int, hist: History) -> None:
        q = hist.params
        a, b = pl_lower_bound(X, q.W_Q, q.W_K, q.W_V[..., 0], y, kernel)
        lam.append(a.numpy())
        bnd.append(b.numpy())

    h = train(
        p,
        X,
        y,
        kernel=kernel,
        train=("W_Q",),
        lr=lrs.tolist(),
        steps=steps,
        log_every=log_every,
        on_step=evaluate,
    )
    return PLTrajectory(kernel, h.steps, h.loss, h.pl_ratio, np.stack(lam, 1), np.stack(bnd, 1))


# ----------------------------------------------------------------------------- joint
def block_grad_norms(
    params: Params,
    X: ArrayLike,
    y: ArrayLike,
    kernel: str | Sequence[str] = "softmax",
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """``||grad_B f||^2`` for each parameter block ``B`` (autograd through
    :func:`attnlab.forward`), ``(M,)`` per block."""
    names = tuple(params.tensors()) if names is None else tuple(names)
    for nm in names:
        check_choice("names", nm, tuple(params.tensors()))
    W = {k: v.detach().clone().requires_grad_(k in names) for k, v in params.tensors().items()}
    q = params.replace(**W)
    out = forward(q, X, kernel)
    f = 0.5 * (out - torch.as_tensor(y).to(out.dtype)).square().flatten(1).sum(1)
    grads = torch.autograd.grad(f.sum(), [W[k] for k in names])
    return {k: g.square().flatten(1).sum(1).numpy() for k, g in zip(names, grads, strict=True)}


@dataclass
class FreezeComparison:
    """Runs that train different subsets of the weights on the same problems.

    Attributes: ``groups`` (the trained subsets), ``steps`` ``(T,)``, ``loss``
    ``(G, S, T)`` for ``G`` groups and ``S`` seeds, ``lr``.
    """

    kernel: str
    groups: tuple[tuple[str, ...], ...]
    seeds: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    lr: float

    @property
    def ratio(self) -> np.ndarray:
        """``f_T / f_0``, ``(G, S)``."""
        return self.loss[..., -1] / self.loss[..., 0]


_GROUPS = (("W_Q", "W_K", "W_V"), ("W_K", "W_V"), ("W_Q", "W_V"), ("W_Q", "W_K"), ("W_V",))


def _joint_problem(kernel, seeds, N, n, H, D, d, init_scale, value_scale, out_proj, d_v=1):
    S = len(seeds)
    X = random_tokens(N, n, [D] * S, seed=seeds)
    y = torch.stack([random_targets(N, n, seed=s) for s in seeds])
    p = init_params(
        M=S,
        H=H,
        D=D,
        d=d,
        init_scale=init_scale,
        value_scale=value_scale,
        seed=seeds,
        out_proj=out_proj,
        d_v=d_v,
    )
    return X, y, p


def freeze_comparison(
    *,
    kernel: str = "softmax",
    groups: Sequence[Sequence[str]] = _GROUPS,
    seeds: Sequence[int] = range(4),
    N: int = 8,
    n: int = 4,
    H: int = 2,
    D: int = 32,
    d: int = 8,
    init_scale: float = 1.0,
    value_scale: float = 1.0,
    out_proj: bool = False,
    lr: float = 0.3,
    steps: int = 2000,
    log_every: int = 10,
) -> FreezeComparison:
    """Train each subset in ``groups`` (the rest frozen) from the same initializations.

    Random targets ``y ~ N(0, 1)``; one batched run per group (models = seeds).
    """
    kernel = _kernel(kernel)
    seeds = _seeds(seeds)
    groups = tuple(tuple(check_choice("groups", nm, PARAM_NAMES) for nm in g) for g in groups)
    X, y, p = _joint_problem(kernel, seeds, N, n, H, D, d, init_scale, value_scale, out_proj)
    losses, steps_out = [], None
    for g in groups:
        h = train(p, X, y, kernel=kernel, train=g, lr=lr, steps=steps, log_every=log_every)
        losses.append(h.loss)
        steps_out = h.steps
    return FreezeComparison(
        kernel, groups, np.asarray(seeds), steps_out, np.stack(losses), float(lr)
    )


@dataclass
class JointRun:
    """Joint GD on ``trained`` with per-block gradient shares along the run.

    Attributes (``S`` seeds): ``steps`` ``(T,)``; ``loss``, ``pl_ratio``, ``sigma_min``
    ``(S, T)`` (``sigma_min`` of the feature matrix at each logged step);
    ``block`` dict name -> ``(S, T)`` with ``||grad_B f||^2 / f`` (the PL ratio split by
    block; the blocks sum to ``pl_ratio``); ``wo_min2`` ``(S, T)``: ``min_h ||W_O,h||^2``
    (the head blocks of ``W_O``), NaN without ``W_O``.
    """

    kernel: str
    trained: tuple[str, ...]
    steps: np.ndarray
    loss: np.ndarray
    pl_ratio: np.ndarray
    sigma_min: np.ndarray
    block: dict[str, np.ndarray]
    wo_min2: np.ndarray
    lr: float


def joint_run(
    *,
    kernel: str = "softmax",
    trained: Sequence[str] = ("W_Q", "W_K", "W_V"),
    seeds: Sequence[int] = range(4),
    N: int = 8,
    n: int = 4,
    H: int = 2,
    D: int = 32,
    d: int = 8,
    init_scale: float = 1.0,
    value_scale: float = 1.0,
    out_proj: bool = False,
    d_v: int = 1,
    lr: float = 0.3,
    steps: int = 300,
    log_every: int = 5,
) -> JointRun:
    """Joint GD on random targets, tracking ``sigma_min(C)`` and the per-block PL ratio.

    ``out_proj=True`` adds ``W_O`` (value dimension ``d_v``); include ``"W_O"`` in
    ``trained`` to train it."""
    kernel = _kernel(kernel)
    seeds = _seeds(seeds)
    trained = tuple(check_choice("trained", nm, PARAM_NAMES) for nm in trained)
    X, y, p = _joint_problem(kernel, seeds, N, n, H, D, d, init_scale, value_scale, out_proj, d_v)
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

    h = train(
        p,
        X,
        y,
        kernel=kernel,
        train=trained,
        lr=lr,
        steps=steps,
        log_every=log_every,
        track_sigma_min=True,
        on_step=split,
    )
    block = {k: np.stack([b[k] for b in parts], 1) / h.loss for k in h.trained}
    return JointRun(
        kernel,
        h.trained,
        h.steps,
        h.loss,
        h.pl_ratio,
        h.sigma_min,
        block,
        np.stack(wo, 1),
        float(lr),
    )


# ----------------------------------------------------------------------------- landscapes
@dataclass
class TwoStage:
    """Two-stage training: stage 1 with softmax, stage 2 from the same checkpoint with
    each kernel in ``kernels``.

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


def two_stage(
    *,
    N: int = 8,
    n: int = 4,
    H: int = 2,
    D: int = 16,
    d: int = 8,
    init_scale: float = 1.0,
    value_scale: float = 1.0,
    seed: int = 0,
    stage1_train: Sequence[str] = ("W_Q", "W_K", "W_V"),
    stage2_train: Sequence[str] = ("W_Q",),
    lr1: float = 0.3,
    lr2: float = 0.3,
    steps1: int = 500,
    steps2: int = 2000,
    kernels: Sequence[str] = KERNELS,
    log_every: int = 10,
) -> TwoStage:
    """Stage 1: GD with softmax on ``stage1_train``; stage 2: continue from the checkpoint
    on ``stage2_train`` with every kernel in ``kernels`` (one batched run). Random targets."""
    seed = check_int("seed", seed, min=0)
    kernels = tuple(_kernel(k) for k in kernels)
    X = random_tokens(N, n, D, seed=seed)
    y = random_targets(N, n, seed=seed)
    p = init_params(H=H, D=D, d=d, init_scale=init_scale, value_scale=value_scale, seed=seed)
    h1 = train(
        p,
        X,
        y,
        kernel="softmax",
        train=tuple(stage1_train),
        lr=lr1,
        steps=steps1,
        log_every=log_every,
    )
    ckpt = h1.params
    both = stack_params([ckpt] * len(kernels))
    h2 = train(
        both,
        X,
        y,
        kernel=list(kernels),
        train=tuple(stage2_train),
        lr=lr2,
        steps=steps2,
        log_every=log_every,
    )
    final = {k: h2.params.select(m) for m, k in enumerate(kernels)}
    return TwoStage(X, y, kernels, ckpt, h1, h2, final)


def wq_jacobian(
    X: ArrayLike, params: Params, kernel: str | Sequence[str] = "softmax"
) -> torch.Tensor:
    """Jacobian of the outputs w.r.t. ``W_Q``, per model: ``(M, N n, H D d)``.

    Autograd through :func:`attnlab.forward`, one backward pass per output coordinate for
    all ``M`` models at once (the models are independent, so summing them separates).
    """
    W = params.W_Q.detach().clone().requires_grad_(True)
    out = forward(params.replace(W_Q=W), X, kernel).reshape(params.M, -1)
    rows = [
        torch.autograd.grad(out[:, r].sum(), W, retain_graph=True)[0].reshape(params.M, -1)
        for r in range(out.shape[1])
    ]
    return torch.stack(rows, 1).detach()


def curvature_lr(
    X: ArrayLike, params: Params, kernel: str | Sequence[str] = "softmax", c: float = 1.0
) -> np.ndarray:
    """Step sizes ``c / lambda_max(J J^T)`` per model, ``J`` = :func:`wq_jacobian` at
    ``params``. ``J^T J`` is the Gauss-Newton curvature of ``f`` in ``W_Q`` (the Hessian at a
    zero-loss point), so ``c < 2`` is the classical stable range there. ``(M,)``."""
    c = check_real("c", c, min=0.0, strict_min=True)
    J = wq_jacobian(X, params, kernel)
    lam = torch.linalg.eigvalsh(J @ J.transpose(1, 2))[:, -1]
    return (c / lam).numpy()
