"""Convex attention (Part I): the token group lasso, its dual, head recovery and examples.

Conventions: X ``(N, n, d)``, y ``(N,)`` or ``(N, c)``, squared loss ``1/2 (yhat - y)^2``;
``P(Z) = sum_i 1/2 (<X_i, Z> - y_i)^2 + beta sum_k ||z_k||_2`` with Z ``(n, d)`` or
``(c, n, d)``; head objective
``sum_i 1/2 (sum_j (w_j^T X_i v_j) b_j - y_i)^2 + beta/2 sum_j (||v_j||^2 + b_j^2)``.
"""

from . import examples, gated, relaxation
from .cvx import SolverFailedError, SolverUnavailableError
from .fista import ConvergenceError
from .heads import (
    HeadsBatch,
    HeadsResult,
    head_certificate,
    head_objective,
    heads_to_Z,
    min_norm_attention,
    recover_heads,
    train_heads,
    train_heads_batch,
)
from .problem import beta_max, dual_certificate, dual_objective, predict, primal_objective
from .solvers import SOLVERS, ConvexFit, ConvexPath, fit, path, regularization_path

__all__ = [
    "SOLVERS",
    "ConvexFit",
    "ConvexPath",
    "ConvergenceError",
    "HeadsBatch",
    "HeadsResult",
    "SolverFailedError",
    "SolverUnavailableError",
    "beta_max",
    "dual_certificate",
    "dual_objective",
    "examples",
    "fit",
    "gated",
    "head_certificate",
    "head_objective",
    "heads_to_Z",
    "predict",
    "min_norm_attention",
    "path",
    "primal_objective",
    "recover_heads",
    "relaxation",
    "regularization_path",
    "train_heads",
    "train_heads_batch",
]
