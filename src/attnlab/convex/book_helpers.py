"""Sequence outputs (the paper's App. A.7): the book's convex program and its heads.

Owned by the Part I chapters (book/convex/vector_outputs.md); small sizes only.

Model (the paper's eq. 30): head j has a row-stochastic ``W_j (n, n)``, ``V_j (d, c)`` and a
scalar ``b_j``::

    f(X_i) = sum_j b_j W_j X_i V_j                      (n, c)
    objective = sum_i 1/2 ||f(X_i) - Y_i||_F^2 + beta/2 sum_j (||V_j||_1^2 + b_j^2)

with the entrywise l1 norm.  The book's convex program (its reconstruction, not the paper's
printed eq. 33): for each input coordinate q and output l, nonnegative ``C+_ql, C-_ql (n, n)``
whose rows all sum to ``t+_ql``, ``t-_ql``::

    Yhat_i[r, l] = sum_{q, k} (C+_ql - C-_ql)[r, k] X_i[k, q]
    min sum_i 1/2 ||Yhat_i - Y_i||_F^2 + beta sum_{q, l} (t+_ql + t-_ql)

``equal_row_sums=False`` drops the equal-row-sum constraint and charges the largest row sum
instead (the printed program with ``||C||_{1,inf}`` read as the largest row l1 norm), which
is a strict relaxation.  Recovery: one head per (q, l, sign) with ``t > 0``:
``W = C / t``, ``V = sqrt(t) e_q e_l^T``, ``b = +-sqrt(t)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .._validate import check_real, check_shape
from .cvx import SolverFailedError, _check_solver
from .problem import as_tensor
from .relaxation import shared_attention_output

__all__ = [
    "SequenceFit",
    "fit_sequence",
    "recover_sequence_heads",
    "sequence_head_objective",
]

MAX_VARIABLES = 20_000  # cvxpy reference only: keep the book's examples tiny


@dataclass
class SequenceFit:
    """Result of :func:`fit_sequence`.

    Attributes:
        value: optimal objective.
        C_plus, C_minus: ``(d, c, n, n)`` nonnegative coefficient matrices; ``C = C+ - C-``.
        t_plus, t_minus: ``(d, c)`` row sums (equal rows) or largest row sums (printed).
        equal_row_sums: which program was solved.
        seconds: wall time (build and solve).
    """

    value: float
    C_plus: np.ndarray
    C_minus: np.ndarray
    t_plus: np.ndarray
    t_minus: np.ndarray
    beta: float
    equal_row_sums: bool
    seconds: float

    @property
    def C(self) -> np.ndarray:
        """``C+ - C-``: ``(d, c, n, n)``."""
        return self.C_plus - self.C_minus


def _check_data(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    check_shape("X", X, ("N", "n", "d"))
    check_shape("Y", Y, (X.shape[0], X.shape[1], "c"))
    Xn = as_tensor("X", X).cpu().numpy()
    Yn = as_tensor("Y", Y).cpu().numpy()
    return Xn, Yn


def fit_sequence(X: np.ndarray, Y: np.ndarray, beta: float, *, equal_row_sums: bool = True,
                 cvx_solver: str = "CLARABEL") -> SequenceFit:
    """Solve the sequence-output convex program with cvxpy.

    Args:
        X: ``(N, n, d)``; Y: ``(N, n, c)``.
        beta: > 0.
        equal_row_sums: True for the book's program (exact for the paper's eq. 30 with
            ``h >= 2 d c``),
            False for the printed one (largest row sums, no constraint).
        cvx_solver: an installed cvxpy solver.

    Raises:
        ValueError on bad input or a problem too large for this reference solver;
        SolverFailedError if the solver does not report an optimal status.
    """
    import cvxpy as cp

    t0 = time.perf_counter()
    Xn, Yn = _check_data(X, Y)
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    if not isinstance(equal_row_sums, bool):
        raise TypeError(f"equal_row_sums must be a bool, got {type(equal_row_sums).__name__}")
    name = _check_solver(cvx_solver)
    N, n, d = Xn.shape
    c = Yn.shape[2]
    if 2 * d * c * (n * n + 1) > MAX_VARIABLES:
        raise ValueError(f"problem too large for the cvxpy reference: 2 d c (n^2 + 1) = "
                         f"{2 * d * c * (n * n + 1)} > {MAX_VARIABLES} variables")
    Cp = [[cp.Variable((n, n), nonneg=True) for _ in range(c)] for _ in range(d)]
    Cm = [[cp.Variable((n, n), nonneg=True) for _ in range(c)] for _ in range(d)]
    tp = cp.Variable((d, c), nonneg=True)
    tm = cp.Variable((d, c), nonneg=True)
    ones = np.ones(n)
    cons = []
    for q in range(d):
        for l in range(c):
            for C, t in ((Cp[q][l], tp[q, l]), (Cm[q][l], tm[q, l])):
                cons.append(C @ ones == t * ones if equal_row_sums else C @ ones <= t * ones)
    loss = 0
    for l in range(c):
        pred = sum(Xn[:, :, q] @ (Cp[q][l] - Cm[q][l]).T for q in range(d))  # (N, n)
        loss = loss + 0.5 * cp.sum_squares(pred - Yn[:, :, l])
    prob = cp.Problem(cp.Minimize(loss + beta * (cp.sum(tp) + cp.sum(tm))), cons)
    prob.solve(solver=name)
    if prob.status != cp.OPTIMAL:
        raise SolverFailedError(f"cvxpy solver {name} returned status {prob.status!r}")

    def stack(M: list[list[cp.Variable]]) -> np.ndarray:
        return np.array([[np.maximum(M[q][l].value, 0.0) for l in range(c)] for q in range(d)])

    return SequenceFit(
        value=float(prob.value), C_plus=stack(Cp), C_minus=stack(Cm),
        t_plus=np.maximum(tp.value, 0.0), t_minus=np.maximum(tm.value, 0.0), beta=beta,
        equal_row_sums=equal_row_sums, seconds=time.perf_counter() - t0,
    )


def recover_sequence_heads(fit: SequenceFit, tol: float = 1e-7
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heads of the paper's eq. 30 that reproduce a solution of the book's program (at most
    ``2 d c``).

    Args:
        fit: a :class:`SequenceFit` with ``equal_row_sums=True``.
        tol: ``t`` below ``tol * max t`` counts as zero.

    Returns:
        ``W (h, n, n)`` row-stochastic, ``V (h, d, c)``, ``b (h,)``.
    """
    if not isinstance(fit, SequenceFit):
        raise TypeError(f"fit must be a SequenceFit, got {type(fit).__name__}")
    if not fit.equal_row_sums:
        raise ValueError("recover_sequence_heads needs equal_row_sums=True: without equal row "
                         "sums a coefficient matrix is not a multiple of a row-stochastic one")
    tol = check_real("tol", tol, min=0.0, max=1.0)
    d, c, n, _ = fit.C_plus.shape
    top = max(float(fit.t_plus.max()), float(fit.t_minus.max()), 0.0)
    Ws, Vs, bs = [], [], []
    for sign, C, t in ((1.0, fit.C_plus, fit.t_plus), (-1.0, fit.C_minus, fit.t_minus)):
        for q in range(d):
            for l in range(c):
                if top == 0.0 or t[q, l] <= tol * top:
                    continue
                W = C[q, l] / C[q, l].sum(axis=1, keepdims=True)  # rows sum to t up to rounding
                V = np.zeros((d, c))
                V[q, l] = np.sqrt(t[q, l])
                Ws.append(W)
                Vs.append(V)
                bs.append(sign * np.sqrt(t[q, l]))
    return (np.array(Ws).reshape(-1, n, n), np.array(Vs).reshape(-1, d, c), np.array(bs))


def sequence_head_objective(W: np.ndarray, V: np.ndarray, b: np.ndarray, X: np.ndarray,
                            Y: np.ndarray, beta: float, *, simplex_tol: float = 1e-6) -> float:
    """``sum_i 1/2 ||sum_j b_j W_j X_i V_j - Y_i||_F^2 + beta/2 sum_j (||V_j||_1^2 + b_j^2)``.

    Args:
        W: ``(h, n, n)`` row-stochastic (checked to ``simplex_tol``); V: ``(h, d, c)``;
        b: ``(h,)``; X: ``(N, n, d)``; Y: ``(N, n, c)``.
    """
    Xn, Yn = _check_data(X, Y)
    beta = check_real("beta", beta, min=0.0, strict_min=True)
    N, n, d = Xn.shape
    c = Yn.shape[2]
    check_shape("W", W, ("h", n, n))
    check_shape("V", V, (W.shape[0], d, c))
    check_shape("b", b, (W.shape[0],))
    Wt, Vt, bt = as_tensor("W", W), as_tensor("V", V), as_tensor("b", b)
    if Wt.numel() and (float(Wt.min()) < -simplex_tol
                       or float((Wt.sum(2) - 1).abs().max()) > simplex_tol):
        raise ValueError("W must be row-stochastic (W >= 0, each row sums to 1)")
    Xt = torch.from_numpy(Xn)
    out = torch.zeros(N, n, c, dtype=torch.float64)
    eye = torch.eye(c, dtype=torch.float64)
    # one head of the paper's eq. 30 is the shared-attention layer of its eq. 4
    for j in range(Wt.shape[0]):
        out = out + shared_attention_output(Wt[j], Xt, Vt[j], bt[j] * eye)
    r = out - torch.from_numpy(Yn)
    reg = (Vt.abs().sum(dim=(1, 2)) ** 2).sum() + (bt * bt).sum()
    return float(0.5 * (r * r).sum() + 0.5 * beta * reg)
