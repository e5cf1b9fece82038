"""Theorem 3, reconstructed: a sufficient initialization condition for linear convergence of
``W_Q``-only gradient descent, checked on each problem, and the kernel comparison in the
problems that satisfy it and in those that do not.

The condition (the book's derivation, in the style of Nguyen-Mondelli / Oymak-Soltanolkotabi
/ Liu-Zhu-Belkin): with ``J`` the Jacobian of the outputs w.r.t. ``vec(W_Q)``,
``lambda_0 = lambda_min(J_0 J_0^T)``, ``f_0`` the initial loss and
``R = 2 sqrt(2 f_0 / lambda_0)``, if ``||J(W) - J(W_0)|| <= L ||W - W_0||`` on the ball
``B(W_0, R)`` and ``lambda_0 >= 4 sqrt(2) L sqrt(f_0)``, gradient flow stays in the ball and
``f(t) <= exp(-lambda_0 t / 2) f_0``. ``L`` is not computed exactly: :func:`theorem3_check`
uses a *sampled* estimate (the largest ratio over sampled points of the ball), which is a
lower bound on the true constant, so "holds" means "holds with the sampled Lipschitz
estimate", while "fails" is certain (a larger ``L`` only lowers the margin).

Shapes: ``M`` models; tokens ``X`` ``(N, n, D)`` or ``(M, N, n, D)``; ``Nn = N n`` outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._validate import check_float_array, check_int, check_real_sequence
from ..data import teacher_targets
from ..kernels import KERNEL_TABLE, KERNELS
from ..model import Params, check_params, prepare_X
from ..stats import Count, count
from .run import Problem, RunConfig, check_config
from .sweep import SweepResult, sweep
from .training_wq import C7

__all__ = ["T3", "T3_DELTAS", "PROTOCOLS", "CONVERGED", "Theorem3Check", "Theorem3Study",
           "query_gradients", "theorem3_check", "problem_check", "theorem3_study"]

# The C7 teacher setting (N = n = 4, D = 32, d = 8, H = 1, s = 0.5, v = 2), 1500 GD steps.
T3 = C7.replace(steps=1500, log_every=10)
# Teacher distances from "condition holds for (almost) every problem" to "fails for every one".
T3_DELTAS = (0.02, 0.05, 0.1, 0.5, 1.0)
# The three step-size protocols: two common steps and each model's curvature-normalized step.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "common 0.5": {"lr": 0.5, "lr_rule": "fixed"},
    "common 0.1": {"lr": 0.1, "lr_rule": "fixed"},
    "curvature": {"lr": 1.0, "lr_rule": "curvature"},
}
CONVERGED = 1e-8  # a run converges when f_T / f_0 < CONVERGED
C_RADIUS = 2.0 * math.sqrt(2.0)  # R = C_RADIUS sqrt(f_0 / lambda_0)
C_COND = 4.0 * math.sqrt(2.0)  # condition: lambda_0 >= C_COND * L * sqrt(f_0)


def _per_model_X(X: Any, params: Params) -> torch.Tensor:
    Xt = prepare_X(X, params).detach()
    if Xt.ndim == 3:
        Xt = Xt.expand(params.M, *Xt.shape)
    if Xt.ndim != 4 or Xt.shape[0] != params.M or Xt.shape[-1] != params.D:
        raise ValueError(f"X must have shape (N, n, D) or (M, N, n, D) with M = {params.M}, "
                         f"D = {params.D}; got {tuple(Xt.shape)}")
    return Xt


def _kernel_list(kernel: str | Sequence[str], M: int) -> list[str]:
    if not isinstance(kernel, (str, list, tuple)):
        raise TypeError(f"kernel must be a kernel name or one per model, got "
                        f"{type(kernel).__name__}")
    kern = [kernel] * M if isinstance(kernel, str) else list(kernel)
    if len(kern) != M:
        raise ValueError(f"kernel must be one name or one per model ({M}), got {len(kern)}")
    for k in kern:
        if k not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {k!r}")
    return kern


def query_gradients(X: Any, params: Params, kernel: str | Sequence[str] = KERNELS[0],
                    W_Q: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token query gradients ``g_hik = dZ_ik / dq_hik`` and outputs, per model.

    ``Z_ik`` depends on ``W_Q`` only through its own queries ``q_hik = x_ik W_Q[h]``, so one
    backward pass of ``sum Z`` w.r.t. the queries gives every ``g_hik``; the Jacobian in
    ``vec(W_Q)`` has rows ``x_ik (x) g_ik`` (eq. ``eq-wq-schur``). ``W_Q`` (``(M, H, D, d)``)
    replaces ``params.W_Q`` when given. Returns ``G`` ``(M, H, N, n, d)`` and ``Z``
    ``(M, N, n)``.
    """
    check_params("params", params)
    if params.W_O is not None or params.d_v != 1:
        raise ValueError("params must have d_v = 1 and no W_O (the theory setting)")
    Xt = _per_model_X(X, params)
    kern = _kernel_list(kernel, params.M)
    if W_Q is not None:
        if not isinstance(W_Q, torch.Tensor):
            raise TypeError(f"W_Q must be a torch.Tensor or None, got {type(W_Q).__name__}")
        check_float_array("W_Q", W_Q, shape=tuple(params.W_Q.shape))
    WQ = params.W_Q if W_Q is None else W_Q.to(dtype=params.dtype, device=params.device)
    scale = 1.0 / math.sqrt(params.d)
    G = torch.empty(*WQ.shape[:2], *Xt.shape[1:3], params.d, dtype=params.dtype)
    Z = torch.empty(Xt.shape[:3], dtype=params.dtype)
    for k in dict.fromkeys(kern):
        idx = [m for m, v in enumerate(kern) if v == k]
        Xi = Xt[idx]
        Q = torch.einsum("mind,mhde->mhine", Xi, WQ[idx].detach()).requires_grad_(True)
        K = torch.einsum("mind,mhde->mhine", Xi, params.W_K[idx])
        u = torch.einsum("mind,mhd->mhin", Xi, params.W_V[idx, ..., 0])
        S = KERNEL_TABLE[k].forward(Q, K, scale, False)  # (m, H, N, n, n)
        out = (S @ u.unsqueeze(-1)).squeeze(-1).sum(1)  # (m, N, n)
        G[idx] = torch.autograd.grad(out.sum(), Q)[0]
        Z[idx] = out.detach()
    return G.detach(), Z


def _gram(XX: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """``J J^T = (X X^T) o (sum_h G_h G_h^T)`` for rows ``x_ik (x) g_hik``: ``(M, Nn, Nn)``."""
    Gf = G.flatten(2, 3)  # (M, H, Nn, d)
    return XX * (Gf @ Gf.transpose(-1, -2)).sum(1)


@dataclass
class Theorem3Check:
    """The initialization condition on ``M`` problems (all arrays ``(M,)``).

    ``lam0`` = ``lambda_min(J_0 J_0^T)``; ``lam_max0`` = ``lambda_max``; ``f0``;
    ``R`` = ``2 sqrt(2 f_0 / lambda_0)``; ``lip_sampled`` the sampled Lipschitz estimate of
    ``J`` over ``B(W_0, R)`` (max of ``||J(W) - J_0|| / ||W - W_0||`` over the sampled
    points: a lower bound on the true constant); ``lam_ball`` the smallest
    ``lambda_min(J J^T)`` at the sampled points; ``margin`` =
    ``lambda_0 / (4 sqrt(2) L sqrt(f_0))`` with the sampled ``L``; ``holds`` = ``margin >= 1``;
    ``dist_teacher`` = ``||W_Q* - W_Q0||`` (NaN without a teacher).
    """

    lam0: np.ndarray
    lam_max0: np.ndarray
    f0: np.ndarray
    R: np.ndarray
    lip_sampled: np.ndarray
    lam_ball: np.ndarray
    margin: np.ndarray
    holds: np.ndarray
    dist_teacher: np.ndarray

    def take(self, idx: Any) -> Theorem3Check:
        """The checks of models ``idx`` (any NumPy index)."""
        return Theorem3Check(**{k: np.asarray(v)[idx] for k, v in vars(self).items()})


def theorem3_check(X: Any, params: Params, y: Any, kernel: str | Sequence[str] = KERNELS[0],
                   *, teacher_W_Q: torch.Tensor | None = None, n_dirs: int = 8,
                   fracs: Sequence[float] = (0.25, 0.5, 1.0), seed: int = 0) -> Theorem3Check:
    """Check the reconstructed Theorem 3 condition on every model of a batch.

    Computes ``lambda_0``, ``f_0``, ``R`` and the *sampled* Lipschitz estimate of ``J`` over
    ``B(W_0, R)``: the largest ``||J(W) - J(W_0)||_op / ||W - W_0||`` over points at the
    fractions ``fracs`` of ``R`` along ``n_dirs`` random directions (seeded by ``seed``),
    along the initial negative gradient, and along the segment to the teacher's ``W_Q*``
    (``teacher_W_Q``, ``(M, H, D, d)``; points beyond ``R`` are not used). ``J`` is never
    formed: ``J J^T`` and ``(J - J_0)(J - J_0)^T`` are Schur products of ``Nn x Nn`` Gram
    matrices, so the check costs a few forward-backward passes of the batch.

    Args:
        X: ``(N, n, D)`` or ``(M, N, n, D)``. params: the initial weights (``d_v = 1``).
        y: ``(N, n)`` or ``(M, N, n)``. kernel: one name or one per model.
    """
    check_params("params", params)
    n_dirs = check_int("n_dirs", n_dirs, min=0, max=10_000)
    fr = check_real_sequence("fracs", fracs, min=0.0, max=1.0, strict_min=True)
    seed = check_int("seed", seed, min=0)
    kern = _kernel_list(kernel, params.M)
    Xt = _per_model_X(X, params)
    yt = torch.as_tensor(check_float_array("y", y)).to(params.dtype)
    if tuple(yt.shape) not in (tuple(Xt.shape[1:3]), tuple(Xt.shape[:3])):
        raise ValueError(f"y must have shape (N, n) = {tuple(Xt.shape[1:3])} or (M, N, n), "
                         f"got {tuple(yt.shape)}")
    if teacher_W_Q is not None:
        if not isinstance(teacher_W_Q, torch.Tensor):
            raise TypeError(f"teacher_W_Q must be a torch.Tensor or None, got "
                            f"{type(teacher_W_Q).__name__}")
        check_float_array("teacher_W_Q", teacher_W_Q, shape=tuple(params.W_Q.shape))
    Xf = Xt.flatten(1, 2)
    XX = Xf @ Xf.transpose(-1, -2)
    G0, Z0 = query_gradients(Xt, params, kern)
    yt = yt.expand(Z0.shape)
    r0 = Z0 - yt
    f0 = 0.5 * r0.square().flatten(1).sum(1)
    ev = torch.linalg.eigvalsh(_gram(XX, G0))
    lam0, lam_max = ev[:, 0].clamp_min(0.0), ev[:, -1]
    R = C_RADIUS * torch.sqrt(f0 / lam0)
    # directions (unit, zero on padded rows of W_Q): random, -grad f, toward the teacher
    live = (torch.arange(params.D)[None, :] < torch.as_tensor(params.D_model)[:, None])
    live = live.to(params.dtype)[:, None, :, None]  # (M, 1, D, 1)
    gen = torch.Generator().manual_seed(int(seed))
    dirs = [torch.randn(params.W_Q.shape, generator=gen, dtype=params.dtype) * live
            for _ in range(n_dirs)]
    grad = torch.einsum("mhine,mind->mhde", G0 * r0[:, None, :, :, None], Xt)
    dirs.append(-grad)
    lengths = [R] * len(dirs)
    dist_t = torch.full_like(f0, float("nan"))
    if teacher_W_Q is not None:
        step = torch.as_tensor(teacher_W_Q).to(params.dtype) - params.W_Q
        dist_t = step.flatten(1).norm(dim=1)
        dirs.append(step)
        lengths.append(torch.minimum(R, dist_t))
    lip = torch.zeros_like(f0)
    lam_ball = lam0.clone()
    for v, length in zip(dirs, lengths, strict=True):
        unit = v / v.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, 1, 1, 1)
        for a in fr:
            rad = a * length
            G, _ = query_gradients(Xt, params, kern, params.W_Q + rad.view(-1, 1, 1, 1) * unit)
            dev = torch.linalg.eigvalsh(_gram(XX, G - G0))[:, -1].clamp_min(0.0).sqrt()
            ok = rad > 0
            lip = torch.where(ok, torch.maximum(lip, dev / rad.clamp_min(1e-300)), lip)
            lam_ball = torch.minimum(lam_ball, torch.linalg.eigvalsh(_gram(XX, G))[:, 0])
    margin = lam0 / (C_COND * lip * f0.sqrt())
    np_ = lambda t: t.detach().cpu().numpy().astype(float)  # noqa: E731
    return Theorem3Check(np_(lam0), np_(lam_max), np_(f0), np_(R), np_(lip), np_(lam_ball),
                         np_(margin), np_(margin) >= 1.0, np_(dist_t))


def _teacher_WQ(prob: Problem) -> torch.Tensor | None:
    """The teacher's ``W_Q*`` of every model of a teacher problem (regenerated exactly as
    :func:`attnlab.dynamics.make_problem` drew it); ``None`` for random targets."""
    cfgs = prob.configs
    if cfgs[0].data != "teacher":
        return None
    out = torch.empty_like(prob.params.W_Q)
    kern = _kernel_list(prob.kernel, prob.params.M)
    for delta in dict.fromkeys(float(c.delta) for c in cfgs):
        idx = [m for m, c in enumerate(cfgs) if float(c.delta) == delta]
        Xi = prob.X if prob.X.ndim == 3 else prob.X[idx]
        _, teacher = teacher_targets(Xi, prob.params.select(idx), delta=delta,
                                     kernel=[kern[m] for m in idx],
                                     seed=[int(cfgs[m].seed) for m in idx])
        out[idx] = teacher.W_Q
    return out


def problem_check(prob: Problem, **kw: Any) -> Theorem3Check:
    """:func:`theorem3_check` on the models of one :class:`Problem` (teacher included)."""
    if not isinstance(prob, Problem):
        raise TypeError(f"prob must be a Problem, got {type(prob).__name__}")
    return theorem3_check(prob.X, prob.params, prob.y, prob.kernel,
                          teacher_W_Q=_teacher_WQ(prob), **kw)


def _sweep_check(res: SweepResult, **kw: Any) -> Theorem3Check:
    """:func:`problem_check` over the problems a ``keep=True`` sweep kept, in sweep shape."""
    parts = [problem_check(p, **kw) for p in res.problems]
    out = {}
    for name in vars(parts[0]):
        flat = np.empty(len(res.runs), dtype=getattr(parts[0], name).dtype)
        for part, idx in zip(parts, res.index, strict=True):
            flat[idx] = getattr(part, name)
        out[name] = flat.reshape(res.shape)
    return Theorem3Check(**out)


@dataclass
class Theorem3Study:
    """Theorem 3's condition and the GD runs of every problem under several step protocols.

    Problems are indexed ``[kernel, delta, seed]``; runs ``[protocol, kernel, delta, seed]``.
    ``check``: the condition per problem (:class:`Theorem3Check`, arrays
    ``[kernel, delta, seed]``). ``ratio``: ``f_T / f_0`` (NaN: diverged); ``lr`` the step of
    each run; ``dist_T``: ``||W_T - W_0||`` at the end; ``factor``: per-step factor of ``f``
    over the last 100 logged steps with the loss above ``1e-20 f_0``.
    """

    config: RunConfig
    protocols: tuple[str, ...]
    kernels: tuple[str, ...]
    deltas: tuple[float, ...]
    seeds: tuple[int, ...]
    check: Theorem3Check
    ratio: np.ndarray
    lr: np.ndarray
    dist_T: np.ndarray
    factor: np.ndarray
    seconds: float
    sweeps: dict[str, SweepResult] = field(default_factory=dict, repr=False)

    def converged(self, tol: float = CONVERGED) -> np.ndarray:
        """``f_T / f_0 < tol`` per run (a diverged run does not converge)."""
        return np.nan_to_num(self.ratio, nan=np.inf) < tol

    def counts(self, protocol: str, kernel: str, where: str = "all",
               tol: float = CONVERGED) -> Count:
        """Runs that converge among the problems of ``kernel`` where the condition ``where``
        (``"holds"``, ``"fails"`` or ``"all"``), pooled over ``delta``, as k/n with a Wilson
        interval."""
        p, k = self._index(protocol, kernel)
        conv = self.converged(tol)[p, k]
        mask = {"holds": self.check.holds[k], "fails": ~self.check.holds[k],
                "all": np.ones_like(self.check.holds[k])}.get(where)
        if mask is None:
            raise ValueError(f"where must be 'holds', 'fails' or 'all', got {where!r}")
        if not mask.any():
            raise ValueError(f"no problem of {kernel} where the condition {where}")
        return count(conv[mask])

    def only(self, protocol: str, winner: str, tol: float = CONVERGED) -> Count:
        """Problems (kernel pairs on the same data, pooled over ``delta``) where ``winner``
        converges and every other kernel does not."""
        p, w = self._index(protocol, winner)
        conv = self.converged(tol)[p]
        others = np.delete(conv, w, axis=0).any(0)
        return count((conv[w] & ~others).ravel())

    def _index(self, protocol: str, kernel: str) -> tuple[int, int]:
        if protocol not in self.protocols:
            raise ValueError(f"protocol must be one of {self.protocols}, got {protocol!r}")
        if kernel not in self.kernels:
            raise ValueError(f"kernel must be one of {self.kernels}, got {kernel!r}")
        return self.protocols.index(protocol), self.kernels.index(kernel)


def _factor(loss: np.ndarray, steps: np.ndarray, window: int = 100) -> np.ndarray:
    """Per-step factor of ``f`` over the last ``window`` steps above ``1e-20 f_0``."""
    out = np.full(loss.shape[:-1], np.nan)
    for i in np.ndindex(*loss.shape[:-1]):
        f = loss[i]
        ok = np.nonzero(np.isfinite(f) & (f > 1e-20 * f[0]))[0]
        if len(ok) < 2:
            continue
        last = ok[-1]
        first = ok[np.searchsorted(steps[ok], steps[last] - window)]
        if last > first:
            out[i] = (f[last] / f[first]) ** (1.0 / (steps[last] - steps[first]))
    return out


def theorem3_study(config: RunConfig = T3, seeds: int | Iterable[int] = range(64), *,
                   deltas: Sequence[float] = T3_DELTAS,
                   protocols: Mapping[str, Mapping[str, Any]] | None = None,
                   n_dirs: int = 8) -> Theorem3Study:
    """Train ``W_Q`` alone toward a same-kernel teacher for every kernel, ``delta`` and seed,
    under each step protocol (one batched sweep per protocol), and check the Theorem 3
    condition on every problem (the problems do not depend on the protocol).

    ``protocols``: name -> RunConfig fields (default :data:`PROTOCOLS`).
    """
    check_config(config)
    if config.data != "teacher":
        raise ValueError(f"config.data must be 'teacher' (Theorem 3 needs a zero-loss "
                         f"optimum), got {config.data!r}")
    if protocols is not None and not isinstance(protocols, Mapping):
        raise TypeError(f"protocols must be a mapping name -> RunConfig fields or None, got "
                        f"{type(protocols).__name__}")
    deltas = check_real_sequence("deltas", deltas, min=0.0)
    protocols = dict(PROTOCOLS if protocols is None else protocols)
    if not protocols:
        raise ValueError("protocols must name at least one step protocol")
    fields_ = set(RunConfig.__dataclass_fields__)
    for name, kw in protocols.items():
        if not isinstance(kw, Mapping) or not set(kw) <= fields_:
            raise TypeError(f"protocols[{name!r}] must map RunConfig fields to values, got "
                            f"{kw!r}")
        check_config(config.replace(**kw), f"protocols[{name!r}]")
    sweeps: dict[str, SweepResult] = {}
    check = None
    seconds = 0.0
    for name, kw in protocols.items():
        res = sweep(config.replace(**kw), seeds, kernel=KERNELS, delta=tuple(deltas),
                    keep=True)
        seconds += res.seconds
        if check is None:
            import time

            t0 = time.perf_counter()
            check = _sweep_check(res, n_dirs=n_dirs)
            seconds += time.perf_counter() - t0
        sweeps[name] = res
    first = next(iter(sweeps.values()))

    def dist(res: SweepResult) -> np.ndarray:
        flat = np.empty(len(res.runs))
        for prob, h, idx in zip(res.problems, res.histories, res.index, strict=True):
            flat[idx] = (h.params.W_Q - prob.params.W_Q).flatten(1).norm(dim=1).numpy()
        return flat.reshape(res.shape)

    return Theorem3Study(
        config=config, protocols=tuple(protocols), kernels=KERNELS,
        deltas=tuple(float(v) for v in deltas), seeds=first.axes["seed"], check=check,
        ratio=np.stack([s.ratio for s in sweeps.values()]),
        lr=np.stack([s.lr for s in sweeps.values()]),
        dist_T=np.stack([dist(s) for s in sweeps.values()]),
        factor=np.stack([_factor(s.loss, s.steps) for s in sweeps.values()]),
        seconds=seconds, sweeps=sweeps,
    )
