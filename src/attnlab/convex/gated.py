"""The book's reconstruction of the attention + gated-ReLU block (the paper's §3.4 text was
not available): Theorem 1 combined with the gated-ReLU convexification of Mishkin, Sahiner
and Pilanci (2022).

Fixed gates ``g_p (d,)``, ``p = 1..P``, and token masks ``D[i, p, k] = 1[x_ik^T g_p >= 0]``::

    min_{z_{p,k}} sum_i 1/2 (sum_{p,k} D[i,p,k] x_ik^T z_{p,k} - y_i)^2 + beta sum_{p,k} ||z_{p,k}||

This is a token group lasso on the lifted data ``Xg[i, p*n + k] = D[i,p,k] x_ik`` with
``P n`` groups, so :func:`attnlab.convex.fit` solves it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_finite, check_int, check_shape, check_size
from .problem import Array, as_tensor, like
from .solvers import ConvexFit, fit

__all__ = ["make_gates", "gate_masks", "lifted_design", "fit_gated", "gated_predict"]


def make_gates(P: int, d: int, *, seed: int = 0) -> np.ndarray:
    """``P`` seeded standard normal gate vectors: ``(P, d)``."""
    P, d = check_int("P", P, min=1), check_int("d", d, min=1)
    check_size("P * d", P, d)
    return np.random.default_rng(check_int("seed", seed, min=0)).standard_normal((P, d))


def _check(X: Any, gates: Any) -> None:
    check_shape("X", X, ("N", "n", "d"))
    check_shape("gates", gates, ("P", X.shape[2]))
    if 0 in tuple(X.shape):
        raise ValueError(f"X must have N, n, d >= 1, got shape {tuple(X.shape)}")
    if gates.shape[0] == 0:
        raise ValueError("gates must hold at least one gate (P >= 1)")


def gate_masks(X: Array, gates: Array) -> Array:
    """``D[i, p, k] = 1[x_ik^T g_p >= 0]``: ``X (N, n, d)``, ``gates (P, d)`` -> ``(N, P, n)``."""
    _check(X, gates)
    Xt, Gt = as_tensor("X", X), as_tensor("gates", gates)
    return like((Xt @ Gt.T >= 0).to(Xt.dtype).transpose(1, 2), X)


def lifted_design(X: Array, gates: Array) -> Array:
    """``Xg[i, p*n + k] = D[i,p,k] x_ik``: ``(N, P n, d)``."""
    _check(X, gates)
    Xt = as_tensor("X", X)
    D = as_tensor("D", gate_masks(Xt, gates))  # (N, P, n)
    N, n, d = Xt.shape
    return like((D.unsqueeze(-1) * Xt.unsqueeze(1)).reshape(N, -1, d), X)


def fit_gated(X: Array, y: Array, beta: float, gates: Array, **kw: Any) -> ConvexFit:
    """Solve the gated block's group lasso; ``kw`` as in :func:`attnlab.convex.fit`.

    The result's ``Z`` has shape ``(P n, d)`` (or ``(c, P n, d)``): row ``p*n + k`` is
    ``z_{p,k}``; reshape to ``(P, n, d)`` for plots. ``active`` indexes those rows.
    """
    return fit(lifted_design(X, gates), y, beta, **kw)


def gated_predict(Z: Array, X: Array, gates: Array) -> Array:
    """Block output ``sum_{p,k} D[i,p,k] x_ik^T z_{p,k}``: ``Z (P n, d)`` or ``(P, n, d)``
    -> ``(N,)``."""
    _check(X, gates)
    Xg = as_tensor("Xg", lifted_design(X, gates))
    Zt = as_tensor("Z", Z)
    Pn, d = Xg.shape[1], Xg.shape[2]
    if tuple(Zt.shape) not in ((Pn, d), (gates.shape[0], X.shape[1], d)):
        raise ValueError(f"Z must have shape (P n, d) = {(Pn, d)} or (P, n, d) = "
                         f"{(gates.shape[0], X.shape[1], d)}, got {tuple(Zt.shape)}")
    check_finite("Z", Zt)
    Zt = Zt.reshape(Pn, d)
    return like((Xg * Zt).sum(dim=(1, 2)), X)
