"""The token group lasso (Theorem 1 of Ergen et al., corrected), its dual and certificate.

Conventions used throughout ``attnlab.convex``:

- data ``X`` of shape ``(N, n, d)``: N samples, n tokens, d embedding dimension;
- targets ``y`` of shape ``(N,)`` (scalar output) or ``(N, c)`` (c outputs);
- squared loss ``1/2 (yhat - y)^2`` per sample and output;
- convex variable ``Z`` of shape ``(n, d)`` for ``y (N,)``, or ``(c, n, d)`` for ``y (N, c)``
  (one token group lasso per output, Theorem 2); ``yhat_i = <X_i, Z>_F``;
- primal ``P(Z) = sum_i 1/2 (<X_i, Z> - y_i)^2 + beta sum_k ||z_k||_2`` (summed over outputs);
- dual ``D(lam) = lam^T y - 1/2 ||lam||^2`` subject to ``||sum_i lam_i x_ik||_2 <= beta`` for
  every token k (and output); strong duality holds and ``lam* = y - yhat*``.

All functions accept NumPy arrays or torch tensors. Scalars come back as Python floats;
arrays as the kind of ``X`` (NumPy in, NumPy out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._arrays import to_numpy, to_tensor
from .._validate import check_array, check_finite, check_float_array, check_real, check_shape

__all__ = [
    "primal_objective",
    "dual_objective",
    "dual_certificate",
    "beta_max",
    "predict",
]

Array = np.ndarray | torch.Tensor


def as_tensor(name: str, x: Any, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Validated float tensor (no copy when dtype and device already match)."""
    # real numbers (complex, bool and string arrays raise), detached from any graph
    t = to_tensor(check_float_array(name, x, finite=False, nonempty=False, grad="detach"))
    t = t.to(dtype=dtype, device=device if device is not None else t.device)
    # one cheap reduction first (NaN/inf propagate through a sum); the full elementwise
    # check, which allocates a mask as large as X, only runs when the sum is not finite
    if t.numel() and not bool(torch.isfinite(t.sum())):
        check_finite(name, t)
        raise ValueError(f"{name} is too large: its sum overflows float64")
    return t


def like(x: torch.Tensor, ref: Any) -> Array:
    """Return ``x`` as the kind of ``ref``: NumPy array if ``ref`` is NumPy, else a tensor."""
    if isinstance(ref, np.ndarray):
        return to_numpy(x)
    return x.detach().to(ref.device if isinstance(ref, torch.Tensor) else "cpu")


def check_data(X: Any, y: Any, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None,
               y_name: str = "y") -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``X (N, n, d)`` and ``y (N,)`` or ``(N, c)`` (named ``y_name`` in
    messages, e.g. ``lam``); return float tensors."""
    check_shape("X", X, ("N", "n", "d"))
    check_array(y_name, y)
    if y.ndim not in (1, 2):
        raise ValueError(f"{y_name} must have shape (N,) or (N, c), got {tuple(y.shape)}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{y_name} must have one row per sample: X has N={X.shape[0]} samples, "
            f"{y_name} has shape {tuple(y.shape)}"
        )
    if min(X.shape) == 0:
        raise ValueError(f"X must be non-empty, got shape {tuple(X.shape)}")
    if min(y.shape) == 0:
        raise ValueError(f"{y_name} must be non-empty, got shape {tuple(y.shape)}")
    return as_tensor("X", X, dtype, device), as_tensor(y_name, y, dtype, device)


def check_beta(beta: Any) -> float:
    """``beta`` must be a finite real number > 0."""
    return check_real("beta", beta, min=0.0, strict_min=True)


def check_Z(Z: Any, n: int, d: int, c: int | None, name: str = "Z") -> None:
    """``Z`` must be ``(n, d)`` for scalar outputs (c None) or ``(c, n, d)``."""
    shape = ("n", "d") if c is None else ("c", "n", "d")
    want = (n, d) if c is None else (c, n, d)
    check_shape(name, Z, shape)
    if tuple(Z.shape) != want:
        pattern = "(n, d)" if c is None else "(c, n, d)"
        raise ValueError(f"{name} must have shape {pattern} = {want} for this X and y, "
                         f"got {tuple(Z.shape)}")


def _Z3(Z: torch.Tensor) -> torch.Tensor:
    """View Z as (c, n, d)."""
    return Z.unsqueeze(0) if Z.ndim == 2 else Z


def predict(Z: Array, X: Array) -> Array:
    """Predictions ``yhat_i = <X_i, Z>``.

    Args:
        Z: ``(n, d)`` or ``(c, n, d)``.
        X: ``(N, n, d)``.

    Returns:
        ``(N,)`` for ``Z (n, d)``, ``(N, c)`` for ``Z (c, n, d)``; kind of ``X``.
    """
    check_shape("X", X, ("N", "n", "d"))
    if 0 in tuple(X.shape):
        raise ValueError(f"X must be non-empty, got shape {tuple(X.shape)}")
    Xt = as_tensor("X", X)
    check_array("Z", Z)
    c = None if Z.ndim == 2 else Z.shape[0]
    check_Z(Z, Xt.shape[1], Xt.shape[2], c)
    Zt = as_tensor("Z", Z, device=Xt.device)
    out = torch.einsum("ikd,lkd->il", Xt, _Z3(Zt))
    return like(out[:, 0] if c is None else out, X)


def primal_objective(Z: Array, X: Array, y: Array, beta: float) -> float:
    """``P(Z) = sum_i 1/2 ||<X_i, Z> - y_i||^2 + beta sum_{l,k} ||z_{l,k}||_2``.

    Args:
        Z: ``(n, d)`` if ``y`` is ``(N,)``; ``(c, n, d)`` if ``y`` is ``(N, c)``.
        X: ``(N, n, d)``.
        y: ``(N,)`` or ``(N, c)``.
        beta: regularization strength > 0.
    """
    Xt, yt = check_data(X, y)
    beta = check_beta(beta)
    c = None if yt.ndim == 1 else yt.shape[1]
    check_Z(Z, Xt.shape[1], Xt.shape[2], c)
    Zt = as_tensor("Z", Z, device=Xt.device)
    Z3 = _Z3(Zt)
    yhat = torch.einsum("ikd,lkd->il", Xt, Z3)
    r = yhat - yt.reshape(yt.shape[0], -1)
    return float(0.5 * (r * r).sum() + beta * Z3.norm(dim=2).sum())


def dual_objective(lam: Array, y: Array) -> float:
    """``D(lam) = sum lam * y - 1/2 ||lam||^2`` (a lower bound on P when lam is feasible).

    Args:
        lam: ``(N,)`` or ``(N, c)``, same shape as ``y``.
        y: ``(N,)`` or ``(N, c)``.
    """
    lt, yt = as_tensor("lam", lam), as_tensor("y", y)
    if tuple(lt.shape) != tuple(yt.shape):
        raise ValueError(f"lam must have the shape of y {tuple(yt.shape)}, got {tuple(lt.shape)}")
    return float((lt * yt).sum() - 0.5 * (lt * lt).sum())


def dual_certificate(lam: Array, X: Array) -> Array:
    """Token certificate ``||sum_i lam_i x_ik||_2`` for each token k (and output).

    ``lam`` is dual feasible iff every entry is ``<= beta``; at the optimum the entries
    equal ``beta`` on active tokens (nonzero rows of Z).

    Args:
        lam: ``(N,)`` or ``(N, c)``.
        X: ``(N, n, d)``.

    Returns:
        ``(n,)`` for ``lam (N,)``, ``(c, n)`` for ``lam (N, c)``; kind of ``X``.
    """
    Xt, lt = check_data(X, lam, y_name="lam")
    g = torch.einsum("ikd,il->lkd", Xt, lt.reshape(lt.shape[0], -1)).norm(dim=2)
    return like(g[0] if lt.ndim == 1 else g, X)


def beta_max(X: Array, y: Array) -> float:
    """Smallest beta for which ``Z = 0`` is optimal: ``max_{k,l} ||sum_i y_il x_ik||``.

    Args:
        X: ``(N, n, d)``.
        y: ``(N,)`` or ``(N, c)``.
    """
    Xt, yt = check_data(X, y)
    cert = dual_certificate(yt, Xt)
    return float(np.max(np.asarray(cert))) if isinstance(cert, np.ndarray) else float(cert.max())
