"""Reference solver: the token group lasso written in cvxpy and solved by Clarabel.

Two formulations (same optimum):

- ``form="residual"``: ``1/2 sum_squares(A z - y) + beta sum_k ||z_k||``, as a user would
  write it; the conic problem grows with N.
- ``form="gram"``: ``1/2 z^T G z - (A^T y)^T z + 1/2 ||y||^2 + ...`` with ``G = A^T A``
  precomputed: the solver sees only ``p = n d`` variables per output, whatever N is.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._validate import check_choice

__all__ = ["solve_cvxpy", "SolverUnavailableError", "SolverFailedError"]


class SolverUnavailableError(ValueError):
    """The requested cvxpy solver is not installed."""


class SolverFailedError(RuntimeError):
    """cvxpy returned a status other than ``optimal``."""


def _check_solver(cvx_solver: str) -> str:
    import cvxpy as cp

    if not isinstance(cvx_solver, str):
        raise TypeError(f"cvx_solver must be a str, got {type(cvx_solver).__name__}")
    name = cvx_solver.upper()
    installed = cp.installed_solvers()
    if name not in installed:
        raise SolverUnavailableError(
            f"cvx_solver {cvx_solver!r} is not installed; installed cvxpy solvers: {installed}"
        )
    return name


def solve_cvxpy(A: np.ndarray, Y: np.ndarray, beta: float, n: int, d: int, *,
                tol: float = 1e-8, cvx_solver: str = "CLARABEL",
                form: str = "residual", options: dict | None = None) -> np.ndarray:
    """Solve with cvxpy; return ``x (p, c)``.

    Args:
        A: ``(N, p)`` with ``p = n d``, rows ``X_i`` flattened token by token.
        Y: ``(N, c)``.
        tol: passed to Clarabel as its gap and feasibility tolerances.
        options: extra keyword arguments for ``prob.solve`` (solver settings).

    Raises:
        SolverUnavailableError: ``cvx_solver`` is not installed.
        SolverFailedError: the status is not ``optimal`` (infeasible, inaccurate, limit).
    """
    import cvxpy as cp

    name = _check_solver(cvx_solver)
    form = check_choice("cvx_form", form, ("residual", "gram"))
    p, c = A.shape[1], Y.shape[1]
    z = cp.Variable((p, c))
    penalty = sum(cp.sum(cp.norm(cp.reshape(z[:, l], (n, d), order="C"), 2, axis=1))
                  for l in range(c))
    if form == "residual":
        loss = 0.5 * cp.sum_squares(A @ z - Y)
    else:
        G = A.T @ A
        G = 0.5 * (G + G.T)
        AtY = A.T @ Y
        Gw = cp.psd_wrap(G)
        loss = sum(0.5 * cp.quad_form(z[:, l], Gw) - AtY[:, l] @ z[:, l] for l in range(c))
        loss = loss + 0.5 * float((Y * Y).sum())
    prob = cp.Problem(cp.Minimize(loss + beta * penalty))
    opts: dict = {}
    if name == "CLARABEL":
        opts = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol}
    opts.update(options or {})
    try:
        with warnings.catch_warnings():  # "may be inaccurate": the status check below raises
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            prob.solve(solver=name, **opts)
    except (cp.error.SolverError, TypeError, ValueError) as e:
        raise SolverFailedError(f"cvxpy solver {name} failed: {e}") from e
    if prob.status != cp.OPTIMAL or z.value is None:
        raise SolverFailedError(
            f"cvxpy solver {name} returned status {prob.status!r} (need 'optimal'); "
            "try a looser tol or another cvx_solver"
        )
    return np.asarray(z.value, dtype=np.float64)
