"""Softmax attention (the paper's eq. 3) versus one shared row-stochastic matrix (its eq. 4).

Sequence outputs: sample ``X_i (n, d)`` maps to ``(n, c)``.

- eq. 3: ``f(X_i) = softmax(X_i W_Q W_K^T X_i^T) X_i W_V W_O`` (row-wise softmax, no
  ``1/sqrt(d)`` scale, as quoted from the paper), regularizer
  ``beta/2 (||W_Q||^2 + ||W_K||^2 + ||W_V||^2 + ||W_O||^2)``;
- eq. 4: ``f(X_i) = W X_i W_V W_O`` with one trainable row-stochastic ``W (n, n)`` shared by
  all samples, regularizer ``beta/2 (||W_V||^2 + ||W_O||^2)``.

The loss is ``loss_factor * sum ||f(X_i) - Y_i||^2``: ``loss_factor=1`` is the paper's
``L(a, b) = (a - b)^2`` (used by the two-token counterexample), ``1/2`` the book's convention.
Since ``softmax(U) X = W X`` with ``W = softmax(U)`` row-stochastic, every value of (3) is
reached by (4) with a *per-sample* W. With one sample, dropping the penalty on ``W_Q, W_K``
makes (4) a relaxation (its optimum is lower or equal). With several samples, one W shared
across samples can miss what per-sample softmax attention reaches, so (4) and (3) are not
nested either way: (4) is an alternative model, not an exact reformulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from .._arrays import back, to_torch
from .._optim import Adam
from .._threads import limit_threads
from .._validate import (
    MAX_STEPS,
    check_finite,
    check_int,
    check_real,
    check_shape,
    check_size,
)
from ..seed import make_generator
from .problem import as_tensor

__all__ = [
    "softmax_attention_output",
    "shared_attention_output",
    "objective_eq3",
    "objective_eq4",
    "minimize_eq3",
    "minimize_eq4",
    "opt_eq4_scalar",
    "TwoTokenExample",
    "two_token_example",
]


def _tensors(**arrays: np.ndarray | torch.Tensor) -> tuple[list[torch.Tensor], bool]:
    """The named arrays as tensors of one float dtype (checked: real, finite; autograd kept),
    with each shape checked against the names' roles: ``X (N, n, d)``, ``Y (N, n, c)``,
    ``W_Q, W_K (d, m)``, ``W_V (d, r)``, ``W_O (r, c)``, ``W (n, n)`` or ``(B, n, n)``."""
    ts, np_out = to_torch(arrays)
    t = dict(zip(arrays, ts, strict=True))
    X = t["X"]
    if X.ndim != 3 or 0 in X.shape:
        raise ValueError(f"X must have shape (N, n, d) with N, n, d >= 1, got {tuple(X.shape)}")
    N, n, d = X.shape
    if "W_Q" in t:
        check_shape("W_Q", t["W_Q"], (d, "m"))
        check_shape("W_K", t["W_K"], tuple(t["W_Q"].shape))
    if "W" in t:  # one shared matrix, or a batch of B of them (B = N, or N = 1)
        W = t["W"]
        if W.ndim not in (2, 3) or tuple(W.shape[-2:]) != (n, n) or (
                W.ndim == 3 and N not in (1, W.shape[0])):
            raise ValueError(f"W must have shape (n, n) = {(n, n)} or (B, n, n) with B = N or "
                             f"N = 1, got {tuple(W.shape)}")
    check_shape("W_V", t["W_V"], (d, "r"))
    check_shape("W_O", t["W_O"], (t["W_V"].shape[1], "c"))
    if "Y" in t:
        check_shape("Y", t["Y"], (N, n, t["W_O"].shape[1]))
    return ts, np_out


def softmax_attention_output(X: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor,
                             W_V: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    """eq. 3: ``X (N, n, d)``, ``W_Q, W_K (d, m)``, ``W_V (d, r)``, ``W_O (r, c)``.

    Returns ``(N, n, c)`` (NumPy when every input is NumPy).
    """
    (X, W_Q, W_K, W_V, W_O), np_out = _tensors(X=X, W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O)
    return back(_eq3_out(X, W_Q, W_K, W_V, W_O), np_out)


def _eq3_out(X, W_Q, W_K, W_V, W_O):
    U = X @ W_Q @ W_K.T @ X.transpose(1, 2)
    return torch.softmax(U, dim=-1) @ X @ W_V @ W_O


def shared_attention_output(W: torch.Tensor, X: torch.Tensor, W_V: torch.Tensor,
                            W_O: torch.Tensor) -> torch.Tensor:
    """eq. 4. ``W (n, n)`` row-stochastic, ``X (N, n, d)`` -> ``(N, n, c)``; a batch of
    ``B`` matrices ``W (B, n, n)`` with ``N = 1`` (or ``B = N``) gives ``(B, n, c)``."""
    (W, X, W_V, W_O), np_out = _tensors(W=W, X=X, W_V=W_V, W_O=W_O)
    return back(W @ X @ W_V @ W_O, np_out)


def objective_eq3(X: torch.Tensor, Y: torch.Tensor, beta: float, W_Q: torch.Tensor,
                  W_K: torch.Tensor, W_V: torch.Tensor, W_O: torch.Tensor,
                  loss_factor: float = 1.0) -> torch.Tensor:
    """Objective (3); ``Y (N, n, c)``."""
    beta = check_real("beta", beta, min=0.0)
    loss_factor = check_real("loss_factor", loss_factor, min=0.0, strict_min=True)
    (X, Y, W_Q, W_K, W_V, W_O), np_out = _tensors(X=X, Y=Y, W_Q=W_Q, W_K=W_K, W_V=W_V,
                                                  W_O=W_O)
    r = _eq3_out(X, W_Q, W_K, W_V, W_O) - Y
    reg = sum((M * M).sum() for M in (W_Q, W_K, W_V, W_O))
    return back(loss_factor * (r * r).sum() + 0.5 * beta * reg, np_out)


def objective_eq4(X: torch.Tensor, Y: torch.Tensor, beta: float, W: torch.Tensor,
                  W_V: torch.Tensor, W_O: torch.Tensor, loss_factor: float = 1.0) -> torch.Tensor:
    """Objective (4); ``W (n, n)`` must be row-stochastic (checked)."""
    beta = check_real("beta", beta, min=0.0)
    loss_factor = check_real("loss_factor", loss_factor, min=0.0, strict_min=True)
    (X, Y, W, W_V, W_O), np_out = _tensors(X=X, Y=Y, W=W, W_V=W_V, W_O=W_O)
    Wd = W.detach()
    if float(Wd.min()) < -1e-12 or float((Wd.sum(1) - 1).abs().max()) > 1e-9:
        raise ValueError("W must be row-stochastic (W >= 0, rows sum to 1)")
    r = W @ X @ W_V @ W_O - Y
    return back(loss_factor * (r * r).sum() + 0.5 * beta * ((W_V * W_V).sum()
                                                             + (W_O * W_O).sum()), np_out)


def _check(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, beta: float,
           loss_factor: float) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    Xt, Yt = as_tensor("X", X), as_tensor("Y", Y)
    check_shape("X", Xt, ("N", "n", "d"))
    if 0 in Xt.shape:
        raise ValueError(f"X must have N, n, d >= 1, got shape {tuple(Xt.shape)}")
    check_shape("Y", Yt, (Xt.shape[0], Xt.shape[1], "c"))
    for name, t in (("X", Xt), ("Y", Yt)):
        check_finite(name, t)
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    loss_factor = check_real("loss_factor", loss_factor, min=0.0, strict_min=True)
    return Xt, Yt, beta, loss_factor


def _check_run(m: int, restarts: int, steps: int, lr: float, init_scale: float,
               seed: int) -> tuple[int, int, int, float, float, int]:
    """The optimizer settings of :func:`minimize_eq3` and :func:`minimize_eq4`."""
    m = check_int("m", m, min=1)
    restarts = check_int("restarts", restarts, min=1)
    check_size("restarts * m", restarts, m, limit=10**6)
    steps = check_int("steps", steps, min=1, max=MAX_STEPS)
    # beyond these the objective overflows float64 (exp of the attention logits)
    lr = check_real("lr", lr, min=0.0, strict_min=True, max=1e3)
    init_scale = check_real("init_scale", init_scale, min=0.0, strict_min=True, max=1e3)
    seed = check_int("seed", seed, min=0)
    return m, restarts, steps, lr, init_scale, seed


def _adam_batched(params: list[torch.Tensor], obj, steps: int, lr: float) -> float:
    """Adam on R independent restarts at once (Adam is elementwise, so batching the runs
    is the same as running them one by one); ``obj()`` returns ``(R,)`` values."""
    opt = Adam(params, lr)
    best = float("inf")
    with limit_threads(1):  # tiny tensors: one thread avoids thread-pool stalls
        for _ in range(steps):
            opt.zero_grad()
            vals = obj()
            best = min(best, float(vals.detach().min()))
            vals.sum().backward()
            opt.step()
    with torch.no_grad():
        return min(best, float(obj().min()))


def _eq3_batched(X: torch.Tensor, Y: torch.Tensor, beta: float, ps: list[torch.Tensor],
                 loss_factor: float) -> torch.Tensor:
    """(R,) values of (3); params with a leading restart axis R."""
    W_Q, W_K, W_V, W_O = (p.unsqueeze(1) for p in ps)  # (R, 1, ., .)
    Xb = X.unsqueeze(0)
    U = Xb @ W_Q @ W_K.transpose(-1, -2) @ Xb.transpose(-1, -2)
    r = torch.softmax(U, dim=-1) @ Xb @ W_V @ W_O - Y
    reg = sum((p * p).sum(dim=(1, 2)) for p in ps)
    return loss_factor * (r * r).sum(dim=(1, 2, 3)) + 0.5 * beta * reg


def _eq4_batched(X: torch.Tensor, Y: torch.Tensor, beta: float, ps: list[torch.Tensor],
                 loss_factor: float) -> torch.Tensor:
    """(R,) values of (4) with ``W = softmax(logits)``; params with a leading axis R."""
    W = torch.softmax(ps[0], dim=-1).unsqueeze(1)
    W_V, W_O = ps[1].unsqueeze(1), ps[2].unsqueeze(1)
    r = W @ X.unsqueeze(0) @ W_V @ W_O - Y
    reg = (ps[1] ** 2).sum(dim=(1, 2)) + (ps[2] ** 2).sum(dim=(1, 2))
    return loss_factor * (r * r).sum(dim=(1, 2, 3)) + 0.5 * beta * reg


def _init(shapes: tuple[tuple[int, ...], ...], restarts: int, seed: int,
          init_scale: float) -> list[torch.Tensor]:
    g = make_generator(check_int("seed", seed, min=0))
    return [(torch.randn(restarts, *s, generator=g, dtype=torch.float64) * init_scale)
            .requires_grad_() for s in shapes]


def minimize_eq3(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, beta: float, *,
                 m: int = 1, restarts: int = 8, steps: int = 400, lr: float = 0.05,
                 seed: int = 0, loss_factor: float = 1.0, init_scale: float = 2.0) -> float:
    """Best value of the softmax problem over ``restarts`` seeded Adam runs (an upper bound).

    ``W_Q, W_K (d, m)``, ``W_V (d, m)``, ``W_O (m, c)``; init ``N(0, init_scale^2)``.
    """
    Xt, Yt, beta, loss_factor = _check(X, Y, beta, loss_factor)
    m, restarts, steps, lr, init_scale, seed = _check_run(m, restarts, steps, lr, init_scale,
                                                          seed)
    d, c = Xt.shape[2], Yt.shape[2]
    ps = _init(((d, m), (d, m), (d, m), (m, c)), restarts, seed, init_scale)
    return _adam_batched(ps, lambda: _eq3_batched(Xt, Yt, beta, ps, loss_factor), steps, lr)


def minimize_eq4(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, beta: float, *,
                 m: int = 1, restarts: int = 8, steps: int = 1000, lr: float = 0.05,
                 seed: int = 0, loss_factor: float = 1.0, init_scale: float = 1.0) -> float:
    """Best value of (4) over seeded Adam runs, ``W = softmax(logits)`` row-wise.

    Softmax reaches the boundary of the simplex only in the limit, so this approaches
    opt(4) from above.
    """
    Xt, Yt, beta, loss_factor = _check(X, Y, beta, loss_factor)
    m, restarts, steps, lr, init_scale, seed = _check_run(m, restarts, steps, lr, init_scale,
                                                          seed)
    n, d, c = Xt.shape[1], Xt.shape[2], Yt.shape[2]
    ps = _init(((n, n), (d, m), (m, c)), restarts, seed, init_scale)
    return _adam_batched(ps, lambda: _eq4_batched(Xt, Yt, beta, ps, loss_factor), steps, lr)


def opt_eq4_scalar(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, beta: float, *,
                   loss_factor: float = 1.0, cvx_solver: str = "CLARABEL") -> float:
    """Exact optimal value of (4) for scalar tokens and outputs (``d = c = 1``), any ``N``.

    With ``d = c = 1``, ``W_V W_O = s`` is a scalar whose cheapest factorization costs
    ``beta |s|`` (AM-GM, for every inner width). For ``s >= 0`` put ``U = s W``: then
    ``U >= 0`` with every row summing to ``s``, and ``(U, s)`` ranges over a convex cone, so

        min_{U >= 0, U 1 = s 1, s >= 0}  loss_factor * sum_i ||U x_i - y_i||^2 + beta s

    is a convex quadratic program (and likewise for ``s <= 0`` with ``U <= 0``). opt(4) is
    the smaller of the two values, solved by cvxpy to the solver's accuracy. Unlike
    :func:`minimize_eq4` (Adam, an upper bound), this is the optimum itself.

    Args:
        X: ``(N, n, 1)``; Y: ``(N, n, 1)``; beta > 0; loss_factor > 0.
    """
    import cvxpy as cp

    from .cvx import SolverFailedError, _check_solver

    Xt, Yt, beta, loss_factor = _check(X, Y, beta, loss_factor)
    if Xt.shape[2] != 1 or Yt.shape[2] != 1:
        raise ValueError(f"opt_eq4_scalar needs d = c = 1, got X {tuple(Xt.shape)}, "
                         f"Y {tuple(Yt.shape)}")
    name = _check_solver(cvx_solver)
    x, y = Xt[:, :, 0].cpu().numpy(), Yt[:, :, 0].cpu().numpy()  # (N, n)
    n = x.shape[1]
    values = []
    for sign in (1.0, -1.0):
        U = cp.Variable((n, n))
        s = cp.Variable()
        cons = [sign * U >= 0, sign * s >= 0, U @ np.ones(n) == s * np.ones(n)]
        pred = x @ U.T  # (N, n): row r of sample i is U[r] . x_i
        prob = cp.Problem(cp.Minimize(loss_factor * cp.sum_squares(pred - y) + beta * sign * s),
                          cons)
        try:
            prob.solve(solver=name)
            status = prob.status
        except cp.error.SolverError:
            status = "solver_error"
        if status != cp.OPTIMAL and max(beta, loss_factor) > 1e6:
            raise ValueError(f"beta = {beta:g} or loss_factor = {loss_factor:g} is outside "
                             f"the solver's numerical range (at most 1e6)")
        if status != cp.OPTIMAL:
            raise SolverFailedError(f"cvxpy solver {name} returned status {status!r}")
        values.append(float(prob.value))
    return min(values)


def _opt4_scalar(x: np.ndarray, y: np.ndarray, beta: float, loss_factor: float) -> float:
    """Shared-attention optimum for one sample, d = c = 1 (independent, near closed form).

    Rows of ``W x`` range independently over ``[min x, max x]``; ``W_V W_O = p`` costs at
    least ``beta |p|`` (AM-GM, attained). So the optimum of the paper's eq. 4 is
    min_p beta|p| + loss_factor * sum_k (p u_k - y_k)^2 with
    ``u_k = clip(y_k / p, min x, max x)``: a 1-D minimization.
    """
    lo, hi = float(x.min()), float(x.max())

    def value(p: float) -> float:
        u = np.clip(y / p, lo, hi) if p != 0 else np.zeros_like(y)
        return beta * abs(p) + loss_factor * float(((p * u - y) ** 2).sum())

    bound = 10.0 * (1.0 + float(np.abs(y).sum()) / max(1e-12, max(abs(lo), abs(hi))))
    vals = [value(0.0)]
    for a, b in ((0.0, bound), (-bound, 0.0)):
        grid = np.linspace(a, b, 2001)
        k = int(np.argmin([value(p) for p in grid]))
        lo_b, hi_b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        vals.append(float(minimize_scalar(value, bounds=(lo_b, hi_b), method="bounded",
                                          options={"xatol": 1e-12}).fun))
    return min(vals)


@dataclass
class TwoTokenExample:
    """Values of the two-token counterexample (``X = [1, -1]^T``, target ``[1, 1]^T``); (3) and
    (4) are the paper's eqs. 3 and 4 (softmax attention and one shared row-stochastic matrix).

    Attributes:
        opt3: best value of (3) found numerically (multi-restart Adam, plus the zero point).
        opt3_bound: analytic lower bound of (3): outputs are ``(t, -t)``, so the loss is
            ``loss_factor * ((t-1)^2 + (t+1)^2) >= 2 loss_factor``.
        value4_onehot: (4) at ``W = [[1,0],[1,0]]``, ``v = o = 1`` (the paper's witness).
        opt4: opt(4) by the 1-D reduction; opt4_numeric: multi-restart Adam (from above).
        value4_34: (4) at rows ``[3/4, 1/4]``, ``v = o = 1``; value4_34_best: that W with the
            best ``v o`` (1-D minimization).
    """

    beta: float
    loss_factor: float
    opt3: float
    opt3_bound: float
    value4_onehot: float
    opt4: float
    opt4_numeric: float
    value4_34: float
    value4_34_best: float


def two_token_example(beta: float = 1.0, loss_factor: float = 1.0, *, restarts: int = 8,
                      seed: int = 0) -> TwoTokenExample:
    """Compute the two-token counterexample (Lean ``attention_only_reformulation_false``).

    With ``beta = 1`` and ``loss_factor = 1`` the claims are: the optimum of the paper's eq. 3
    is 2, and its eq. 4 reaches 1.
    """
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    loss_factor = check_real("loss_factor", loss_factor, min=0.0, strict_min=True)
    _check_run(1, restarts, 1, 1.0, 1.0, seed)
    X = torch.tensor([[[1.0], [-1.0]]], dtype=torch.float64)  # (N=1, n=2, d=1)
    Y = torch.ones(1, 2, 1, dtype=torch.float64)
    zeros = [torch.zeros(1, 1, dtype=torch.float64) for _ in range(4)]
    opt3 = min(float(objective_eq3(X, Y, beta, *zeros, loss_factor)),
               minimize_eq3(X, Y, beta, restarts=restarts, seed=seed, loss_factor=loss_factor))
    one = torch.ones(1, 1, dtype=torch.float64)
    W1 = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    W34 = torch.tensor([[0.75, 0.25], [0.75, 0.25]], dtype=torch.float64)
    v34 = float(objective_eq4(X, Y, beta, W34, one, one, loss_factor))
    u34 = (W34 @ X[0])[:, 0].numpy()  # (1/2, 1/2): minimize over p = v o
    best34 = minimize_scalar(
        lambda p: beta * abs(p) + loss_factor * float(((p * u34 - 1.0) ** 2).sum()),
        bounds=(-100, 100), method="bounded", options={"xatol": 1e-12}).fun
    return TwoTokenExample(
        beta=beta, loss_factor=loss_factor, opt3=opt3, opt3_bound=2.0 * loss_factor,
        value4_onehot=float(objective_eq4(X, Y, beta, W1, one, one, loss_factor)),
        opt4=_opt4_scalar(np.array([1.0, -1.0]), np.array([1.0, 1.0]), beta, loss_factor),
        opt4_numeric=minimize_eq4(X, Y, beta, restarts=restarts, seed=seed,
                                  loss_factor=loss_factor),
        value4_34=v34, value4_34_best=float(best34),
    )
