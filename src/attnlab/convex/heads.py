"""The nonconvex multi-head model (the paper's eq. 8) and the map between heads and the convex Z.

Head j has attention ``w_j`` on the simplex (``(n,)``, ``w >= 0``, ``sum w = 1``), a value
vector ``v_j (d,)`` and an output weight ``b_j`` (scalar, or ``(c,)`` for c outputs)::

    f(X_i)_l = sum_j (w_j^T X_i v_j) b_jl
    head objective = sum_{i,l} 1/2 (f(X_i)_l - y_il)^2 + beta/2 sum_j (||v_j||^2 + ||b_j||_1^2)

(for scalar outputs ``||b_j||_1^2 = b_j^2``; the squared l1 norm is the paper's choice for
vector outputs, its eq. 11).  Forward map: ``Z = sum_j w_j (v_j b_j)^T``; recovery (corrected
Proposition 1): one head per nonzero row k of Z with ``w = e_k``,
``v = z_k / sqrt(||z_k||)``, ``b = sqrt(||z_k||)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._optim import Adam
from .._threads import limit_threads
from .._validate import (
    check_array,
    check_choice,
    check_int,
    check_real,
    check_seeds,
    check_shape,
    check_size,
)
from ..seed import make_generator
from .problem import Array, as_tensor, check_beta, check_data, like

__all__ = ["recover_heads", "heads_to_Z", "head_objective", "train_heads", "train_heads_batch",
           "head_certificate", "min_norm_attention", "HeadsResult", "HeadsBatch"]


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
        nonzero rows. ``Z = 0`` (``beta >= beta_max``) gives the empty model, ``h = 0``
        heads (``w (0, n)``, ...), which :func:`heads_to_Z` maps back to ``Z = 0`` and
        :func:`head_objective` evaluates (to ``1/2 ||y||^2``).
    """
    check_array("Z", Z)
    if Z.ndim not in (2, 3) or 0 in tuple(Z.shape):
        raise ValueError(f"Z must have shape (n, d) or (c, n, d) (non-empty), got "
                         f"{tuple(Z.shape)}")
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
    simplex_tol = check_real("simplex_tol", simplex_tol, min=0.0)
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
    b2 = bt.unsqueeze(1) if bt.ndim == 1 else bt  # (h, c), also for h = 0 heads
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


def _run_many(Xt: torch.Tensor, Y: torch.Tensor, beta: float, pairs: list[tuple[int, int]],
               steps: int, lr: float, optimizer: str, init_scale: float,
               schedule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train one model per ``(h, seed)`` pair at once, heads padded to ``max h``.

    Every pair is initialized exactly as a lone run with that seed. Padded heads are
    multiplied by a zero mask, so they add nothing to the objective and get zero gradients;
    Adam then leaves them where they are. The runs share no parameter, so each one follows
    the same iterates as when trained alone (up to the rounding of batched products).

    Returns ``hist (R, steps + 1)`` (NaN after a divergence), ``w (R, H, n)``,
    ``v (R, H, d)``, ``b (R, H, c)`` and ``diverged_at (R,)`` (-1 if never).
    """
    N, n, d = Xt.shape
    c = Y.shape[1]
    R, H = len(pairs), max(h for h, _ in pairs)
    theta = torch.zeros(R, H, n, dtype=torch.float64)
    v = torch.zeros(R, H, d, dtype=torch.float64)
    b = torch.zeros(R, H, c, dtype=torch.float64)
    mask = torch.zeros(R, H, 1, dtype=torch.float64)
    for r, (h, seed) in enumerate(pairs):
        g = make_generator(seed)
        theta[r, :h] = torch.randn(h, n, generator=g, dtype=torch.float64)
        v[r, :h] = torch.randn(h, d, generator=g, dtype=torch.float64) * init_scale / d**0.5
        b[r, :h] = torch.randn(h, c, generator=g, dtype=torch.float64) * init_scale
        mask[r, :h] = 1.0
    padded = None if all(h == H for h, _ in pairs) else mask  # skip the mask when unused
    params = [p.requires_grad_() for p in (theta, v, b)]
    opt = Adam(params, lr, gd=optimizer == "gd")
    hist = np.full((R, steps + 1), np.nan)
    Xk = Xt.permute(1, 0, 2).reshape(n, N * d)  # (n, N d): token k of every sample
    diverged = np.full(R, -1)
    # one thread: every operation here is small (measured: 200 steps of 96 runs with 18 heads
    # took 15 s with 2 threads on a loaded 2-core machine, 1.7 s with 1)
    with limit_threads(1):
        for step in range(steps + 1):
            opt.zero_grad()
            w = torch.softmax(theta, dim=2)
            vm, bm = (v, b) if padded is None else (v * padded, b * padded)
            # a[r, i, j] = w_j^T X_i v_j: (R, N, H); one matmul over the tokens, then a dot
            XW = (w @ Xk).reshape(R, H, N, d)
            a = (XW * vm[:, :, None, :]).sum(dim=3).transpose(1, 2)
            res = a @ bm - Y
            reg = (vm * vm).sum(dim=(1, 2)) + (bm.abs().sum(dim=2) ** 2).sum(dim=1)
            obj = 0.5 * (res * res).sum(dim=(1, 2)) + 0.5 * beta * reg  # (R,)
            vals = obj.detach().numpy()
            bad = ~np.isfinite(vals) & (diverged < 0)
            diverged[bad] = step
            live = diverged < 0
            hist[live, step] = vals[live]
            if step == steps or not live.any():
                break
            # runs are independent: a diverged run's NaN never reaches another run's gradient
            torch.where(torch.from_numpy(live), obj, torch.zeros_like(obj)).sum().backward()
            # cosine: lr_t = lr (1 + cos(pi t / steps)) / 2
            opt.step(lr * 0.5 * (1 + math.cos(math.pi * step / steps))
                     if schedule == "cosine" else lr)
    with torch.no_grad():
        w_out = (torch.softmax(theta, dim=2) * mask).numpy().copy()
    return (hist, w_out, (v * mask).detach().numpy().copy(), (b * mask).detach().numpy().copy(),
            diverged)


_MAX_HEADS = 100_000  # widths beyond this are a typo (each head is a row of w, v and b)
# The objective is recorded at every step of every run: bound the buffer before training.
_MAX_HEAD_STEPS = 10**7


def _check_train(X: Array, y: Array, beta: float, steps: int, lr: float, optimizer: str,
                 init_scale: float, schedule: str):
    Xt, yt = check_data(X, y)
    return (Xt, yt, check_beta(beta), check_int("steps", steps, min=0, max=_MAX_HEAD_STEPS),
            check_real("lr", lr, min=0.0, strict_min=True),
            check_choice("optimizer", optimizer, ("adam", "gd")),
            check_real("init_scale", init_scale, min=0.0),
            check_choice("schedule", schedule, ("cosine", "constant")))


def train_heads(X: Array, y: Array, beta: float, h: int, *, steps: int = 2000,
                lr: float = 0.1, seed: int = 0, optimizer: str = "adam",
                init_scale: float = 0.5, schedule: str = "constant") -> HeadsResult:
    """Train the nonconvex heads (the paper's eq. 8) by full-batch gradient steps, float64, CPU.

    Attention stays on the simplex through ``w_j = softmax(theta_j)``. Initialization
    (seeded): ``theta ~ N(0, 1)``, ``v ~ N(0, init_scale^2 / d)``, ``b ~ N(0, init_scale^2)``.

    Args:
        X: ``(N, n, d)``; y: ``(N,)`` or ``(N, c)``.
        h: number of heads (>= 1).
        steps: optimizer steps; lr: step size; optimizer: ``"adam"`` or ``"gd"``.
        schedule: ``"constant"`` (default; faster here) or ``"cosine"`` (lr decays to 0).

    Returns:
        :class:`HeadsResult`. A NaN/inf objective stops training with a reason (no raise).
        :func:`train_heads_batch` runs many seeds and widths at once, with the same iterates.
    """
    h = check_int("h", h, min=1, max=_MAX_HEADS)
    seed = check_int("seed", seed, min=0)
    return train_heads_batch(X, y, beta, h, seed, steps=steps, lr=lr, optimizer=optimizer,
                             init_scale=init_scale, schedule=schedule).run(0)


@dataclass
class HeadsBatch:
    """Result of :func:`train_heads_batch`: ``R`` runs, one per (width, seed) pair.

    Attributes:
        h, seed: ``(R,)`` width and seed of each run (widths outer, seeds inner).
        objective: ``(R, steps + 1)`` head objective before each step and after the last;
            NaN from the step where a run diverged on.
        w: ``(R, H, n)``, v ``(R, H, d)``, b ``(R, H, c)`` final heads, ``H = max h``; the
            rows beyond a run's own ``h`` are zero.
        diverged_at: ``(R,)`` first step with a NaN/inf objective, -1 if none.
        scalar: whether y was ``(N,)`` (then :meth:`run` returns ``b`` of shape ``(h,)``).
    """

    h: np.ndarray
    seed: np.ndarray
    objective: np.ndarray
    w: np.ndarray
    v: np.ndarray
    b: np.ndarray
    diverged_at: np.ndarray
    scalar: bool
    seconds: float

    @property
    def final(self) -> np.ndarray:
        """``(R,)`` last objective of each run (NaN if it diverged)."""
        return self.objective[:, -1].copy()

    def run(self, r: int) -> HeadsResult:
        """Run ``r`` as a :class:`HeadsResult`, heads cut to its own width."""
        r = check_int("r", r, min=0, max=len(self.h) - 1)
        h, k = int(self.h[r]), int(self.diverged_at[r])
        hist = self.objective[r] if k < 0 else self.objective[r, :k]
        stop = ("completed" if k < 0 else
                f"diverged at step {k}: objective is not finite; try a smaller lr")
        b = self.b[r, :h]
        return HeadsResult(objective=hist.copy(), w=self.w[r, :h].copy(), v=self.v[r, :h].copy(),
                           b=b[:, 0].copy() if self.scalar else b.copy(),
                           seconds=self.seconds / len(self.h), stop_reason=stop)


def train_heads_batch(X: Array, y: Array, beta: float, h: int | Sequence[int],
                      seeds: int | Sequence[int], *, steps: int = 2000, lr: float = 0.1,
                      optimizer: str = "adam", init_scale: float = 0.5,
                      schedule: str = "constant") -> HeadsBatch:
    """:func:`train_heads` for every width in ``h`` and every seed in ``seeds``, at once.

    Run ``(h_j, s)`` starts from the initialization of ``train_heads(..., h=h_j, seed=s)``
    and takes the same steps (Adam acts entrywise and the runs share nothing); batching only
    removes the per-step overhead of many tiny runs. Runs are ordered widths outer, seeds
    inner: run ``j * len(seeds) + i`` is ``(h[j], seeds[i])``.

    Args:
        X: ``(N, n, d)``; y: ``(N,)`` or ``(N, c)``.
        h: one width or a sequence of widths (each >= 1).
        seeds: one seed or a sequence of seeds (ints >= 0), e.g. ``range(32)``.
        steps, lr, optimizer, init_scale, schedule: as in :func:`train_heads`.
    """
    Xt, yt, beta, steps, lr, optimizer, init_scale, schedule = _check_train(
        X, y, beta, steps, lr, optimizer, init_scale, schedule)
    widths = [h] if isinstance(h, (int, np.integer)) and not isinstance(h, bool) else h
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Iterable):
        raise TypeError(f"h must be an int or a sequence of ints >= 1, got {type(h).__name__}")
    widths = [check_int("h", hj, min=1, max=_MAX_HEADS) for hj in widths]
    if not widths:
        raise ValueError("h must hold at least one width")
    seed_list = check_seeds("seeds", seeds)
    check_size("steps * len(h) * len(seeds)", steps + 1, len(widths), len(seed_list),
               limit=10**8)
    pairs = [(hj, s) for hj in widths for s in seed_list]
    N = Xt.shape[0]
    t0 = time.perf_counter()
    hist, w, v, b, div = _run_many(Xt, yt.reshape(N, -1), beta, pairs, steps, lr, optimizer,
                                   init_scale, schedule)
    return HeadsBatch(h=np.array([p[0] for p in pairs]), seed=np.array([p[1] for p in pairs]),
                      objective=hist, w=w, v=v, b=b, diverged_at=div, scalar=yt.ndim == 1,
                      seconds=time.perf_counter() - t0)


def head_certificate(w: Array, lam: Array, X: Array) -> Array:
    """``||sum_k w_jk g_k||_2`` for each head j, with ``g_k = sum_i lam_i x_ik``.

    For a dead head (``v_j = 0``, ``b_j = 0``) at residuals ``lam = y - yhat`` this is the
    norm of the mixed gradient block: the head objective near the dead head is
    ``beta/2 (||v||^2 + b^2) - b v^T g(w_j) + (higher order)``, so the head cannot grow
    when the value is below ``beta``, even if some token has ``c_k = ||g_k|| > beta``. With
    ``w_j = e_k`` it is the token certificate ``c_k`` of :func:`dual_certificate`.

    Args:
        w: ``(h, n)`` attention vectors (rows on the simplex; not checked).
        lam: ``(N,)`` residuals.
        X: ``(N, n, d)``.

    Returns:
        ``(h,)``, kind of ``X``.
    """
    Xt, lt = check_data(X, lam, y_name="lam")
    if lt.ndim != 1:
        raise ValueError(f"lam must have shape (N,), got {tuple(lt.shape)}")
    check_shape("w", w, ("h", Xt.shape[1]))
    G = torch.einsum("i,ikd->kd", lt, Xt)  # (n, d): g_k
    return like((as_tensor("w", w) @ G).norm(dim=1), X)


def min_norm_attention(lam: Array, X: Array, *, iters: int = 5000) -> Array:
    """Attention ``w`` on the simplex that (approximately) minimizes ``||sum_k w_k g_k||``.

    Projected gradient with step ``1 / ||G||_2^2`` on ``1/2 ||G^T w||^2``
    (``G (n, d)``, rows ``g_k = sum_i lam_i x_ik``). Any ``w`` it returns is a valid
    witness: :func:`head_certificate` evaluates it exactly.

    Args:
        lam: ``(N,)``; X: ``(N, n, d)``; iters: projected-gradient steps (>= 1).

    Returns:
        ``(n,)``, kind of ``X``.
    """
    Xt, lt = check_data(X, lam, y_name="lam")
    if lt.ndim != 1:
        raise ValueError(f"lam must have shape (N,), got {tuple(lt.shape)}")
    iters = check_int("iters", iters, min=1, max=10**7)
    G = torch.einsum("i,ikd->kd", lt, Xt).cpu().numpy()
    n = G.shape[0]
    L = max(float(np.linalg.norm(G, 2)) ** 2, 1e-300)
    w = np.full(n, 1.0 / n)
    for _ in range(iters):
        w = _project_simplex(w - (G @ (G.T @ w)) / L)
    return like(torch.from_numpy(w), X)


def _project_simplex(x: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the unit simplex (sort-based, exact)."""
    u = np.sort(x)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.nonzero(u - css / np.arange(1, len(x) + 1) > 0)[0][-1]
    return np.maximum(x - css[k] / (k + 1), 0.0)
