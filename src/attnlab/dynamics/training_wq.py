"""Chapter "Training W_Q": claims C5-C9. ``W_Q``-only gradient descent on random targets
(the reachable-interval floors, C5/C6), toward a same-kernel teacher (C7/C8), and the PL
bound along the run (C9).

Presets: :data:`C5` (random targets), :data:`C7` (teacher, fixed step), :data:`C9`
(teacher, curvature-normalized step), :data:`GRAD_CHECK`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validate import check_int, check_int_sequence, check_real, check_real_sequence
from ..kernels import BOTH, KERNELS, attention_matrix, layer_output, pl_lower_bound, wq_gradient
from ..model import Params, _forward, forward
from ..train import History
from .measures import reachable_floor, reachable_interval, wq_jacobian
from .run import RunConfig, check_config, make_problem, train_problem
from .sweep import SweepResult, grid, sweep

__all__ = ["C5", "C7", "C8", "C9", "GRAD_CHECK", "PLTrajectory", "TeacherRuns", "WQRun",
           "JacobianCheck", "gaussian_trap_example", "gradient_check", "jacobian_check",
           "hull_barrier_example",
           "pl_bound_along_trajectory", "teacher_comparison", "teacher_runs",
           "teacher_vs_dim", "wq_run"]

# N n = 16 tokens, one head, D = 32 >= N n.
C5 = RunConfig(N=4, n=4, D=32, d=8, H=1, init_scale=0.5, value_scale=2.0, target_scale=0.3,
               train=("W_Q",), lr=0.5, steps=3000, log_every=10, track_sigma_min=False)
C7 = C5.replace(data="teacher", delta=1.0, target_scale=1.0, kernel=BOTH, steps=1500)
C8 = C7.replace(steps=300)
C9 = C7.replace(kernel=KERNELS[-1], lr=1.0, lr_rule="curvature", steps=300)
GRAD_CHECK = RunConfig(N=4, n=4, D=16, d=8, H=2, init_scale=0.5, value_scale=2.0)


def gradient_check(config: RunConfig = GRAD_CHECK) -> float:
    """Relative error between :func:`attnlab.wq_gradient` (closed form) and autograd
    through :func:`attnlab.layer_output`, at the run's initial point with random targets
    (float64)."""
    check_config(config)
    prob = make_problem(config.replace(data="random"))
    p, X, y = prob.params, prob.X, prob.y
    WQ = p.W_Q[0].clone().requires_grad_(True)
    out = layer_output(X, WQ, p.W_K[0], p.W_V[0], config.kernel)
    g_auto = torch.autograd.grad(0.5 * (out - y).square().sum(), WQ)[0]
    g_cf = wq_gradient(X, p.W_Q[0], p.W_K[0], p.W_V[0], y, config.kernel)
    return float((g_cf - g_auto).norm() / g_auto.norm())


@dataclass
class WQRun:
    """W_Q-only GD on random targets (C5, C6, and the negative result), ``S`` seeds.

    Fields:
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


def wq_run(config: RunConfig = C5, seeds: int | Iterable[int] = range(8), *,
           snap_every: int = 100) -> WQRun:
    """Train ``W_Q`` alone on the config's targets, one model per seed, keeping the outputs
    every ``snap_every`` steps.

    Seed ``s`` fixes the tokens, the targets and the initial weights (same for every
    kernel), so calls that differ only in the kernel see the same problems.
    """
    snap_every = check_int("snap_every", snap_every, min=1)
    runs, axes = grid(config, seeds)
    prob = make_problem(runs)
    X, p, y, kernel = prob.X, prob.params, prob.y, config.kernel
    snaps: dict[int, Params] = {}

    def keep(step: int, hist: History) -> None:
        if step % snap_every == 0 or step == config.steps:
            snaps[step] = hist.params

    h = train_problem(prob, on_step=keep)
    snap_steps = np.asarray(sorted(snaps))
    with torch.no_grad():
        # a diverged model's snapshots hold NaN weights: its outputs are NaN (see h)
        Z = torch.stack([_forward(snaps[t], X, kernel, finite=False) for t in snap_steps], 1)
        fin = h.params
        S_att = attention_matrix(X, fin.W_Q, fin.W_K, kernel)  # (S, H, N, n, n)
        X4 = X if X.ndim == 4 else X.expand(p.M, *X.shape)  # one seed: X is shared
        q = torch.einsum("mind,mde->mine", X4, fin.W_Q[:, 0])
        q0 = torch.einsum("mind,mde->mine", X4, p.W_Q[:, 0])
    lo, hi = reachable_interval(X, p, kernel)
    return WQRun(kernel, np.asarray(axes["seed"]), h.steps, h.loss, h.pl_ratio, snap_steps,
                 Z.numpy(), y.numpy(), lo, hi, reachable_floor(X, p, y, kernel),
                 S_att.sum(-1).sum(1).numpy(), q0.norm(dim=-1).numpy(),
                 q.norm(dim=-1).numpy(), h)


def hull_barrier_example(config: RunConfig = C5, seeds: int | Iterable[int] = range(8),
                         **kw: int) -> WQRun:
    """C5: :func:`wq_run` with the first (row-normalized, softmax) kernel."""
    check_config(config)
    return wq_run(config.replace(kernel=KERNELS[0]), seeds, **kw)


def gaussian_trap_example(config: RunConfig = C5, seeds: int | Iterable[int] = range(8),
                          **kw: int) -> WQRun:
    """C6: :func:`wq_run` with the Gaussian kernel on the same problems (its own trap)."""
    check_config(config)
    return wq_run(config.replace(kernel=KERNELS[-1]), seeds, **kw)


@dataclass
class TeacherRuns:
    """W_Q-only GD on realizable teacher targets over a grid of settings (C7, C8).

    Arrays are indexed ``[kernel, delta, scale, D, seed]`` (+ ``T`` for trajectories).

    Attributes:
        kernels, deltas, scales, Ds, seeds: the grid axes. steps ``(T,)``.
        loss, pl_ratio: ``(..., T)``. lr: the step size of every model (grid-shaped).
        lr_mode: the config's ``lr_rule``: ``"fixed"`` (one step size for all) or
        ``"curvature"`` (``lr / lambda_max(J_0 J_0^T)`` per model). sweep: the
        :class:`SweepResult` behind it.
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
    sweep: SweepResult = field(repr=False, default=None)

    @property
    def ratio(self) -> np.ndarray:
        """``f_T / f_0``, indexed ``[kernel, delta, scale, D, seed]``."""
        return self.loss[..., -1] / self.loss[..., 0]

    def converged(self, tol: float = 1e-8) -> np.ndarray:
        """Number of seeds with ``f_T / f_0 < tol``, indexed ``[kernel, delta, scale, D]``."""
        return (self.ratio < tol).sum(-1)


def teacher_runs(
    config: RunConfig = C7,
    seeds: int | Iterable[int] = range(6),
    *,
    kernels: str | Sequence[str] | None = None,
    deltas: Sequence[float] | None = None,
    scales: Sequence[float] | None = None,
    Ds: Sequence[int] | None = None,
) -> TeacherRuns:
    """Train ``W_Q`` alone toward a same-kernel teacher for every grid point, in one batch.

    Axes default to the config's own value (``kernels``: the config's kernel, "both" by
    default). The teacher equals the student's initialization except
    ``W_Q* = W_Q0 + delta * s * N(0, 1)`` (:func:`attnlab.teacher_targets`), so ``f* = 0``.
    Seed ``s`` fixes tokens, initial weights and the teacher's offset direction, shared by
    every kernel.
    """
    check_config(config)
    if config.data != "teacher":
        raise ValueError(f"config.data must be 'teacher' for teacher runs, got {config.data!r}")
    from ..kernels import expand_kernels

    axes = {
        "kernel": expand_kernels(config.kernel if kernels is None else kernels, "kernels"),
        "delta": (config.delta,) if deltas is None else
        tuple(check_real_sequence("deltas", deltas, min=0.0)),
        "init_scale": (config.init_scale,) if scales is None else
        tuple(check_real_sequence("scales", scales, min=0.0, strict_min=True)),
        "D": (config.D,) if Ds is None else tuple(check_int_sequence("Ds", Ds, min=1)),
    }
    res = sweep(config, seeds, **axes)
    return TeacherRuns(
        axes["kernel"], np.asarray(axes["delta"], dtype=float),
        np.asarray(axes["init_scale"], dtype=float), np.asarray(axes["D"]),
        np.asarray(res.axes["seed"]), res.steps, res.loss, res.pl_ratio, res.lr,
        config.lr_rule, res,
    )


def teacher_comparison(config: RunConfig = C7, seeds: int | Iterable[int] = range(8), *,
                       deltas: Sequence[float] = (0.5, 1.0, 2.0)) -> TeacherRuns:
    """C7: every kernel, several teacher distances ``delta``, ``D >= N n``."""
    if deltas is None:
        raise TypeError("deltas must be a sequence of numbers >= 0, got None")
    return teacher_runs(config, seeds, deltas=deltas)


def teacher_vs_dim(config: RunConfig = C8,
                   seeds: int | Iterable[int] = range(8), *,
                   Ds: Sequence[int] = (8, 16, 32, 64)) -> TeacherRuns:
    """C8: every kernel against the embedding dimension (``N n = 16`` in :data:`C8`)."""
    if Ds is None:
        raise TypeError("Ds must be a sequence of ints >= 1, got None")
    return teacher_runs(config, seeds, Ds=Ds)


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


def pl_bound_along_trajectory(config: RunConfig = C9, seeds: int | Iterable[int] = range(3)
                              ) -> PLTrajectory:
    """C9: W_Q-only GD toward a same-kernel teacher; at every logged step evaluate
    :func:`attnlab.pl_lower_bound` (both sides of ``lambda_min(JJ^T) >= bound``)."""
    runs, _ = grid(config, seeds)
    prob = make_problem(runs)
    X, y, kernel = prob.X, prob.y, config.kernel
    lam, bnd = [], []

    def evaluate(step: int, hist: History) -> None:
        q = hist.params
        a, b = pl_lower_bound(X, q.W_Q, q.W_K, q.W_V[..., 0], y, kernel)
        lam.append(a.numpy())
        bnd.append(b.numpy())

    h = train_problem(prob, on_step=evaluate)
    return PLTrajectory(kernel, h.steps, h.loss, h.pl_ratio, np.stack(lam, 1), np.stack(bnd, 1))


@dataclass
class JacobianCheck:
    """The Jacobian in ``W_Q`` against central finite differences along a GD run (C9).

    ``steps`` ``(K,)`` the checked steps; ``err_J`` ``(S, K)`` relative Frobenius error of
    the autograd Jacobian (:func:`wq_jacobian`) against finite differences; ``err_lam``
    ``(S, K)`` relative error of ``lambda_min(J J^T)`` from the Schur form
    (:func:`attnlab.pl_lower_bound`, closed-form ``g_ik``) against the finite-difference ``J``;
    ``lam_fd`` ``(S, K)`` that ``lambda_min``.
    """

    kernel: str
    steps: np.ndarray
    err_J: np.ndarray
    err_lam: np.ndarray
    lam_fd: np.ndarray


def jacobian_check(config: RunConfig = C9, seeds: int | Iterable[int] = range(2), *,
                   at: Sequence[int] = (0, 100, 300), eps: float = 1e-6) -> JacobianCheck:
    """Train ``W_Q`` alone (one model per seed) and, at the steps ``at``, compare the
    Jacobian of the outputs in ``W_Q`` with central differences of step ``eps`` (one
    batched forward pass over all ``2 H D d`` perturbations of every model)."""
    check_config(config, "config")
    at = sorted(set(check_int_sequence("at", at, min=0, max=config.steps)))
    eps = check_real("eps", eps, min=0.0, strict_min=True, max=1.0)
    runs, _ = grid(config.replace(log_every=1), seeds)
    prob = make_problem(runs)
    X, y, kernel, M = prob.X, prob.y, config.kernel, len(runs)
    snaps: dict[int, Params] = {}

    def keep(step: int, hist: History) -> None:
        if step in at:
            snaps[step] = hist.params

    train_problem(prob, on_step=keep)
    if 0 in at:
        snaps[0] = prob.params
    errJ, errL, lamF = (np.empty((M, len(at))) for _ in range(3))
    for t_i, t in enumerate(at):
        p = snaps[t]
        P = p.W_Q[0].numel()
        E = torch.eye(P, dtype=p.dtype).reshape(P, *p.W_Q.shape[1:]) * eps
        rep = p.select(np.repeat(np.arange(M), P))
        Xr = X if X.ndim == 3 else X.repeat_interleave(P, 0)
        with torch.no_grad():
            plus = forward(rep.replace(W_Q=rep.W_Q + E.repeat(M, 1, 1, 1)), Xr, kernel)
            minus = forward(rep.replace(W_Q=rep.W_Q - E.repeat(M, 1, 1, 1)), Xr, kernel)
        J_fd = ((plus - minus) / (2 * eps)).reshape(M, P, -1).transpose(1, 2)
        J_ad = wq_jacobian(X, p, kernel)
        errJ[:, t_i] = ((J_ad - J_fd).flatten(1).norm(dim=1)
                        / J_fd.flatten(1).norm(dim=1)).numpy()
        lam_fd = torch.linalg.eigvalsh(J_fd @ J_fd.transpose(1, 2))[:, 0]
        lam_cf, _ = pl_lower_bound(X, p.W_Q, p.W_K, p.W_V[..., 0], y, kernel)
        errL[:, t_i] = ((lam_cf - lam_fd).abs() / lam_fd.abs()).numpy()
        lamF[:, t_i] = lam_fd.numpy()
    return JacobianCheck(kernel, np.asarray(at), errJ, errL, lamF)
