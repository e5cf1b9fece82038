"""The documented counterexamples to the printed Theorem 1 and Proposition 1, computed.

Loss conventions: the paper's examples use ``L(a, b) = (a - b)^2`` (``loss_factor = 1``);
the book's package uses ``1/2 (a - b)^2``.  A program with loss factor ``a`` is solved with
:func:`attnlab.convex.fit` through the exact rescaling
``min_Z a ||A z - y||^2 + beta R(Z) = 2a * min_Z 1/2 ||A z - y||^2 + (beta / 2a) R(Z)``.
Each function returns a small dataclass of computed values (no value is typed in).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import check_int, check_real
from .heads import head_objective, recover_heads, train_heads
from .solvers import fit

__all__ = [
    "convex_value",
    "HalfFactorExample",
    "theorem1_half_factor_example",
    "WidthExample",
    "width_counterexample",
    "Prop1Example",
    "prop1_example",
]


def convex_value(X: np.ndarray, y: np.ndarray, beta: float, loss_factor: float,
                 tol: float = 1e-12) -> tuple[float, np.ndarray]:
    """``min_Z loss_factor sum_i (<X_i,Z> - y_i)^2 + beta sum_k ||z_k||`` and its Z."""
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    loss_factor = check_real("loss_factor", loss_factor, min=0.0, strict_min=True)
    res = fit(X, y, beta / (2.0 * loss_factor), tol=tol)
    return 2.0 * loss_factor * res.primal, np.asarray(res.Z)


@dataclass
class HalfFactorExample:
    """Zero data, target 1 (Theorem 1 as printed carries a spurious 1/2 on the loss).

    Attributes:
        printed_convex: optimum of the printed (9), ``1/2 sum L + beta ||Z||_{2,1}``.
        corrected_convex: optimum with loss factor 1.
        heads_lower_bound: (8) predicts 0 on zero data, so it costs at least ``L(0, 1)``.
        heads_trained: best objective of (8) found by training (h = 2).
    """

    printed_convex: float
    corrected_convex: float
    heads_lower_bound: float
    heads_trained: float


def theorem1_half_factor_example(beta: float = 1.0, n: int = 2, d: int = 1) -> HalfFactorExample:
    """One sample ``X = 0 (n, d)``, ``y = 1``, ``L(a, b) = (a - b)^2``."""
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    n, d = check_int("n", n, min=1, max=10_000), check_int("d", d, min=1, max=10_000)
    X = np.zeros((1, n, d))
    y = np.ones(1)
    printed, _ = convex_value(X, y, beta, loss_factor=0.5)
    corrected, _ = convex_value(X, y, beta, loss_factor=1.0)
    # (8) with L = (a-b)^2 is 2 * (book head objective at beta/2)
    res = train_heads(X, y, beta / 2.0, h=2, steps=300, seed=0)
    return HalfFactorExample(printed_convex=printed, corrected_convex=corrected,
                             heads_lower_bound=float((0.0 - y[0]) ** 2),
                             heads_trained=2.0 * res.best)


@dataclass
class WidthExample:
    """One head is not enough (Theorem 1 needs width).

    ``n = N = 2``, ``d = 1``, ``X_1 = [1, 0]^T``, ``X_2 = [0, 1]^T``, ``y = (1, -1)``.

    Attributes:
        convex_at_witness: convex objective at ``Z = (1, -1)`` (the claim: 1/4).
        convex_opt: the convex optimum and ``Z_opt``.
        one_head_opt: best one-head objective over a fine grid of the attention weight
            (value and output weight in closed form for each grid point).
        one_head_lower_bound: both predictions share the sign of ``v b``, so one of the two
            squared errors is at least 1 (times ``loss_factor``).
        one_head_trained / two_heads_trained: best objective of (8) found by training.
    """

    loss_factor: float
    convex_at_witness: float
    convex_opt: float
    Z_opt: np.ndarray
    one_head_opt: float
    one_head_lower_bound: float
    one_head_trained: float
    two_heads_trained: float


def _one_head_grid(X: np.ndarray, y: np.ndarray, beta: float, loss_factor: float,
                   grid: int = 2001) -> float:
    """min over w in the 2-simplex (grid) and p = v b (exact 1-D lasso) of
    ``loss_factor sum (p a_i - y_i)^2 + beta |p|`` with ``a_i = w^T X_i`` (d = 1)."""
    best = np.inf
    for t in np.linspace(0.0, 1.0, grid):
        a = X[:, :, 0] @ np.array([t, 1.0 - t])
        aa, ay = float(a @ a), float(a @ y)
        # minimizer of lf (p^2 aa - 2 p ay) + beta |p|: soft threshold
        p = np.sign(ay) * max(abs(ay) - beta / (2 * loss_factor), 0.0) / aa if aa > 0 else 0.0
        best = min(best, loss_factor * float(((p * a - y) ** 2).sum()) + beta * abs(p))
    return best


def width_counterexample(beta: float = 0.125, loss_factor: float = 1.0) -> WidthExample:
    """Compute the one-head counterexample (claims at beta = 1/8, loss factor 1: convex <= 1/4,
    every one-head model >= 1)."""
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    loss_factor = check_real("loss_factor", loss_factor, min=0.0, strict_min=True)
    X = np.array([[[1.0], [0.0]], [[0.0], [1.0]]])  # (N=2, n=2, d=1)
    y = np.array([1.0, -1.0])
    Zw = np.array([[1.0], [-1.0]])
    pred = np.einsum("ikd,kd->i", X, Zw)
    at_witness = loss_factor * float(((pred - y) ** 2).sum()) + beta * float(
        np.linalg.norm(Zw, axis=1).sum())
    opt, Z = convex_value(X, y, beta, loss_factor)
    b2 = beta / (2 * loss_factor)  # book-convention beta for the trainer
    one = train_heads(X, y, b2, 1, steps=1000, seed=0).best
    two = train_heads(X, y, b2, 2, steps=1000, seed=0).best
    return WidthExample(
        loss_factor=loss_factor, convex_at_witness=at_witness, convex_opt=opt, Z_opt=Z,
        one_head_opt=_one_head_grid(X, y, beta, loss_factor),
        one_head_lower_bound=loss_factor * 1.0,
        one_head_trained=2 * loss_factor * one, two_heads_trained=2 * loss_factor * two,
    )


@dataclass
class Prop1Example:
    """Proposition 1 prints ``w_j = e_j``; the recovery needs ``e_{k_j}``.

    One sample ``X = [0, 1]^T`` (d = 1), ``y = 1``; printed loss factor 1/2 (the book's).

    Attributes:
        Z: the convex optimum (claim: ``(0, 7/8)``); value: its objective (claim: 15/128).
        printed_prediction / corrected_prediction: prediction of the recovered heads
            (claims: 0 and 7/8).
        printed_objective / corrected_objective: head objective of the recovered heads.
    """

    Z: np.ndarray
    value: float
    printed_prediction: float
    corrected_prediction: float
    printed_objective: float
    corrected_objective: float


def prop1_example(beta: float = 0.125) -> Prop1Example:
    """Compute the e_j versus e_{k_j} example."""
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    X = np.array([[[0.0], [1.0]]])  # (N=1, n=2, d=1)
    y = np.ones(1)
    res = fit(X, y, beta, tol=1e-12)
    out = {}
    for variant in ("printed", "corrected"):
        w, v, b = recover_heads(res.Z, variant=variant)
        pred = float(np.einsum("jk,ikd,jd,j->i", w, X, v, b)[0])
        out[variant] = (pred, head_objective(w, v, b, X, y, beta))
    return Prop1Example(
        Z=np.asarray(res.Z)[:, 0], value=res.primal,
        printed_prediction=out["printed"][0], corrected_prediction=out["corrected"][0],
        printed_objective=out["printed"][1], corrected_objective=out["corrected"][1],
    )
