"""The nonconvex multi-head model (eq. 8) and the map between heads and the convex Z.

Head j has attention ``w_j`` on the simplex (``(n,)``, ``w >= 0``, ``sum w = 1``), a value
vector ``v_j (d,)`` and an output weight ``b_j`` (scalar, or ``(c,)`` for c outputs)::

    f(X_i)_l = sum_j (w_j^T X_i v_j) b_jl
    head objective = sum_{i,l} 1/2 (f(X_i)_l - y_il)^2 + beta/2 sum_j (||v_j||^2 + ||b_j||_1^2)

(for scalar outputs ``||b_j||_1^2 = b_j^2``; the squared l1 norm is the paper's choice for
vector outputs, eq. 11).  Forward map: ``Z = sum_j w_j (v_j b_j)^T``; recovery (corrected
Proposition 1): one head per nonzero row k of Z with ``w = e_k``,
``v = z_k / sqrt(||z_k||)``, ``b = sqrt(||z_k||)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._optim import Adam
from .._threads import limit_threads, small
from .._validate import check_array, check_choice, check_int, check_real, check_shape
from ..seed import make_generator
from .problem import Array, as_tensor, check_beta, check_data, like

__all__ = ["recover_heads", "heads_to_Z", "head_objective", "train_heads", "HeadsResult"]


def recover_heads(Z: Array, tol: float = 1e-6, *,
                  variant: str = "corrected") -> tuple[Array, Array, Array]:
    """Heads that reproduce Z and its penalty exactly (Proposition 1, corrected).

    Args:
        Z: ``(n, d)``, or ``(c, n, d)`` for c outputs (one head per nonzero (output, token)
            row, with ``b_j = sqrt(||z||) e_l``).
        tol: rows with norm ``<= tol * max row norm`` count as zero.
        variant: ``"corrected"`` (``w_j = e_{k_j}``) or ``"printed"`` (``w_j = e_j``, the
            paper's printed map, wrong unless the support is the first rows; 2-D Z only).

    Returns:
        ``w (h, n)``, ``v (h, d)``, ``b (h,)`` (or ``(h, c)``), kind of Z; h = number of
        nonzero rows (0 heads if Z = 0).
    """
    check_array("Z", Z)
    if Z.ndim not in (2, 3):
        raise ValueError(f"Z must have shape (n, d) or (c, n, d), got {tuple(Z.shape)}")
    tol = check_real("tol", tol, min=0.0, max=1.0)
    variant = check_choice("variant", variant, ("corrected", "printed"))
    if variant == "printed" and Z.ndim == 3:
        raise ValueError("variant='printed' is defined for scalar outputs only (Z of shape (n, d))")
    Zt = as_tensor("Z", Z)
    Z3 = Zt.unsqueeze(0) if Zt.ndim == 2 else Zt
    c, n, d = Z3.shape
    norms = Z3.norm(dim=2)  # (c, n)
    top = float(norms.max()) if norms.numel() else 0.0
    idx = (norms > tol * top).nonzero().tolist() if top > 0 else []
    h = len(idx)
    w = torch.zeros(h, n, dtype=Zt.dtype)
    v = torch.zeros(h, d, dtype=Zt.dtype)
    b = torch.zeros(h, c, dtype=Zt.dtype)
    for j, (l, k) in enumerate(idx):
        s = float(norms[l, k]) ** 0.5
        w[j, j if variant == "printed" else k] = 1.0
        v[j] = Z3[l, k] / s
        b[j, l] = s
    return like(w, Z), like(v, Z), like(b[:, 0] if Zt.ndim == 2 else b, Z)


def _check_heads(w: Any, v: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_shape("w", w, ("h", "n"))
    check_shape("v", v, ("h", "d"))
    check_array("b", b)
    h = w.shape[0]
    if v.shape[0] != h or b.ndim not in (1, 2) or b.shape[0] != h:
        raise ValueError(f"w (h, n), v (h, d), b (h,) or (h, c) must share h; got "
                         f"{tuple(w.shape)}, {tuple(v.shape)}, {tuple(b.shape)}")
    return as_tensor("w", w), as_tensor("v", v), as_tensor("b", b)


def heads_to_Z(w: Array, v: Array, b: Array) -> Array:
    """Forward map ``Z = sum_j w_j (v_j b_j)^T``: ``(n, d)``, or ``(c, n, d)`` if b is 2-D.

    Predictions are preserved: ``<X_i, Z> = f(X_i)``; and ``sum ||z_k|| <= sum |b_j| ||v_j||``.
    """
    wt, vt, bt = _check_heads(w, v, b)
    if bt.ndim == 1:
        return like(torch.einsum("jk,jd,j->kd", wt, vt, bt), w)
    return like(torch.einsum("jk,jd,jl->lkd", wt, vt, bt), w)


def _head_obj(w: torch.Tensor, v: torch.Tensor, b2: torch.Tensor, X: torch.Tensor,
              Y: torch.Tensor, beta: float) -> torch.Tensor:
    """Objective for ``b2 (h, c)``, ``Y (N, c)``; differentiable."""
    a = torch.einsum("ikd,jd,jk->ij", X, v, w)  # (N, h): w_j^T X_i v_j
    r = a @ b2 - Y
    reg = (v * v).sum() + (b2.abs().sum(dim=1) ** 2).sum()
    return 0.5 * (r * r).sum() + 0.5 * beta * reg


def head_objective(w: Array, v: Array, b: Array, X: Array, y: Array, beta: float, *,
                   simplex_tol: float = 1e-8) -> float:
    """``sum 1/2 (f(X_i) - y_i)^2 + beta/2 sum_j (||v_j||^2 + ||b_j||_1^2)``.

    Args:
        w: ``(h, n)``, each row on the simplex (checked to ``simplex_tol``).
        v: ``(h, d)``.
        b: ``(h,)`` with ``y (N,)``; ``(h, c)`` with ``y (N, c)``.
        X: ``(N, n, d)``.
    """
    Xt, yt = check_data(X, y)
    beta = check_beta(beta)
    wt, vt, bt = _check_heads(w, v, b)
    N, n, d = Xt.shape
    if wt.shape[1] != n or vt.shape[1] != d:
        raise ValueError(f"w must be (h, n={n}) and v (h, d={d}) for X of shape {tuple(Xt.shape)}")
    if bt.ndim != yt.ndim or (bt.ndim == 2 and bt.shape[1] != yt.shape[1]):
        raise ValueError(f"b must be (h,) for y (N,) and (h, c) for y (N, c); got b "
                         f"{tuple(bt.shape)}, y {tuple(yt.shape)}")
    if wt.numel() and (float(wt.min()) < -simplex_tol
                       or float((wt.sum(1) - 1).abs().max()) > simplex_tol):
        raise ValueError("w must have rows on the simplex (w >= 0, each row sums to 1)")
    b2 = bt.reshape(bt.shape[0], -1)
    return float(_head_obj(wt, vt, b2, Xt, yt.reshape(N, -1), beta))


@dataclass
class HeadsResult:
    """Result of :func:`train_heads`.

    Attributes:
        objective: ``(T,)`` head objective before each step and after the last
            (``T = steps + 1`` unless stopped early).
        w: ``(h, n)`` final attention (softmax of the logits), v ``(h, d)``, b ``(h,)`` or
            ``(h, c)``; NumPy arrays.
        best: smallest recorded objective; final: last one.
        stop_reason: ``"completed"`` or ``"diverged at step k: ..."``.
    """

    objective: np.ndarray
    w: np.ndarray
    v: np.ndarray
    b: np.ndarray
    seconds: float
    stop_reason: str

    @property
    def final(self) -> float:
        return float(self.objective[-1])

    @property
    def best(self) -> float:
        return float(np.min(self.objective))


def _loop(theta: torch.Tensor, v: torch.Tensor, b: torch.Tensor, X: torch.Tensor,
          Y: torch.Tensor, beta: float, opt: Adam, steps: int, lr: float,
          schedule: str) -> tuple[list[float], str]:
    hist: list[float] = []
    stop = "completed"
    for step in range(steps + 1):
        opt.zero_grad()
        obj = _head_obj(torch.softmax(theta, dim=1), v, b, X, Y, beta)
        val = float(obj.detach())
        if not np.isfinite(val):
            stop = f"diverged at step {step}: objective is {val}; try a smaller lr"
            break
        hist.append(val)
        if step == steps:
            break
        obj.backward()
        # cosine: lr_t = lr (1 + cos(pi t / steps)) / 2
        opt.step(lr * 0.5 * (1 + math.cos(math.pi * step / steps)) if schedule == "cosine" else lr)
    return hist, stop


def train_heads(X: Array, y: Array, beta: float, h: int, *, steps: int = 2000,
                lr: float = 0.1, seed: int = 0, optimizer: str = "adam",
                init_scale: float = 0.5, schedule: str = "constant") -> HeadsResult:
    """Train the nonconvex heads (eq. 8) by full-batch gradient steps, float64, CPU.

    Attention stays on the simplex through ``w_j = softmax(theta_j)``. Initialization
    (seeded): ``theta ~ N(0, 1)``, ``v ~ N(0, init_scale^2 / d)``, ``b ~ N(0, init_scale^2)``.

    Args:
        X: ``(N, n, d)``; y: ``(N,)`` or ``(N, c)``.
        h: number of heads (>= 1).
        steps: optimizer steps; lr: step size; optimizer: ``"adam"`` or ``"gd"``.
        schedule: ``"constant"`` (default; faster here) or ``"cosine"`` (lr decays to 0).

    Returns:
        :class:`HeadsResult`. A NaN/inf objective stops training with a reason (no raise).
    """
    Xt, yt = check_data(X, y)
    beta = check_beta(beta)
    h = check_int("h", h, min=1)
    steps = check_int("steps", steps, min=0)
    lr = check_real("lr", lr, min=0.0, strict_min=True)
    init_scale = check_real("init_scale", init_scale, min=0.0)
    optimizer = check_choice("optimizer", optimizer, ("adam", "gd"))
    schedule = check_choice("schedule", schedule, ("cosine", "constant"))
    N, n, d = Xt.shape
    Y = yt.reshape(N, -1)
    c = Y.shape[1]
    g = make_generator(check_int("seed", seed, min=0))
    theta = torch.randn(h, n, generator=g, dtype=torch.float64).requires_grad_()
    v = (torch.randn(h, d, generator=g, dtype=torch.float64) * init_scale / d**0.5)
    b = torch.randn(h, c, generator=g, dtype=torch.float64) * init_scale
    v.requires_grad_()
    b.requires_grad_()
    params = [theta, v, b]
    opt = Adam(params, lr, gd=optimizer == "gd")
    t0 = time.perf_counter()
    with limit_threads(small(N * n * d * h * c)):
        hist, stop = _loop(theta, v, b, Xt, Y, beta, opt, steps, lr, schedule)
    with torch.no_grad():
        w_out = torch.softmax(theta, dim=1).numpy().copy()
        b_out = b.detach().numpy().copy()
    return HeadsResult(
        objective=np.asarray(hist), w=w_out, v=v.detach().numpy().copy(),
        b=b_out[:, 0] if yt.ndim == 1 else b_out, seconds=time.perf_counter() - t0,
        stop_reason=stop,
    )
