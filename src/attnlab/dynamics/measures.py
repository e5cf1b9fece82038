"""Measurements on problems and runs, shared by the Part II chapters: least-squares
floors, reachable intervals, Jacobians in ``W_Q``, the curvature step, per-step factors and
per-block gradient norms. No training happens here.

Conventions: loss ``f = 1/2 sum_{i,k} (out_ik - y_ik)^2``; float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._validate import (
    check_choice,
    check_float_array,
    check_int,
    check_real,
    check_real_sequence,
)
from ..kernels import KERNEL_TABLE, KERNELS, feature_matrix
from ..model import Params, check_params, forward, prepare_X

# NumPy array or torch tensor (functions convert as needed).
ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "lstsq_floor",
    "per_step_factor",
    "feature_svals",
    "reachable_interval",
    "reachable_floor",
    "wq_jacobian",
    "curvature_lr",
    "block_grad_norms",
]


def _numpy(name: str, x: ArrayLike) -> np.ndarray:
    """A checked real, finite array (NumPy or torch, detached) as float64 NumPy."""
    x = check_float_array(name, x)
    return np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, dtype=float)


def lstsq_floor(C: ArrayLike, y: ArrayLike) -> np.ndarray:
    """``1/2 min_w ||C w - y||^2`` by ``numpy.linalg.lstsq``: the loss W_V-only GD plateaus at.

    Args:
        C: ``(Nn, HD)`` or ``(M, Nn, HD)``. y: ``(N, n)``/``(Nn,)`` or per model ``(M, ...)``.

    Returns:
        ``(M,)`` (``(1,)`` for a single ``C``).
    """
    # finite input only: LAPACK's least squares may never return on an inf
    C, y = _numpy("C", C), _numpy("y", y)
    if C.ndim not in (2, 3):
        raise ValueError(f"C must have shape (Nn, HD) or (M, Nn, HD), got {C.shape}")
    C = C[None] if C.ndim == 2 else C
    if y.size not in (C.shape[1], C.shape[0] * C.shape[1]):
        raise ValueError(f"y must hold Nn = {C.shape[1]} values (or M Nn = "
                         f"{C.shape[0] * C.shape[1]}), got shape {y.shape}")
    y = np.broadcast_to(
        y.reshape(-1, C.shape[1]) if y.size != C.shape[1] else y.reshape(1, -1),
        (C.shape[0], C.shape[1]),
    )
    out = []
    for Cm, ym in zip(C, y, strict=True):
        w = np.linalg.lstsq(Cm, ym, rcond=None)[0]
        out.append(0.5 * float(np.sum((Cm @ w - ym) ** 2)))
    return np.asarray(out)


def per_step_factor(
    loss: np.ndarray, steps: np.ndarray, *, window: int = 10, tiny: float = 1e-22
) -> float:
    """Measured per-step factor ``(f_t1 / f_t0)^(1/(t1 - t0))`` over the last ``window``
    logged intervals whose losses are above ``tiny * f_0`` (below, rounding dominates).

    Args:
        loss: ``(T,)`` logged losses. steps: ``(T,)`` their step numbers.
    """
    # NaN/inf losses are allowed (a diverged run's tail); they are skipped
    loss = np.asarray(check_float_array("loss", loss, ndim=1, finite=False), dtype=float)
    steps = np.asarray(check_float_array("steps", steps, ndim=1))
    if steps.shape != loss.shape:
        raise ValueError(f"steps must have the shape of loss {loss.shape}, got {steps.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    window = check_int("window", window, min=1)
    tiny = check_real("tiny", tiny, min=0.0)
    ok = np.nonzero(np.isfinite(loss) & (loss > tiny * loss[0]))[0]
    if len(ok) < 2:
        return float("nan")
    last = ok[-1]
    first = ok[max(0, len(ok) - 1 - window)]
    return float((loss[last] / loss[first]) ** (1.0 / (steps[last] - steps[first])))


def feature_svals(X: torch.Tensor, p: Params, kernel: str | Sequence[str], Nn: int
                  ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Per model: ``sigma_max`` and the ``min(Nn, H D_m)``-th singular value of the feature
    matrix ``C``, and ``C`` itself ``(M, Nn, H D)``."""
    check_params("p", p)
    kernel = check_choice("kernel", kernel, KERNELS)
    X = prepare_X(X, p)
    Nn = check_int("Nn", Nn, min=1)
    if Nn != X.shape[-3] * X.shape[-2]:
        raise ValueError(f"Nn must be N n = {X.shape[-3] * X.shape[-2]} for X of shape "
                         f"{tuple(X.shape)}, got {Nn}")
    C = feature_matrix(X, p.W_Q, p.W_K, kernel)
    s = torch.linalg.svdvals(C.detach()).cpu().numpy()
    k = np.minimum(Nn, p.H * np.asarray(p.D_model))
    return s[:, 0], s[np.arange(len(k)), k - 1], C


def reachable_interval(X: ArrayLike, params: Params, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """Interval that contains every output ``out_ik`` reachable by moving ``W_Q`` alone.

    With values ``u_hij = <x_ij, W_V[h]>`` fixed: a row-normalized kernel's row (softmax) is
    a probability vector, so head ``h`` contributes a point of ``[min_j u_hij, max_j
    u_hij]``; an unnormalized Gaussian row has entries in ``(0, 1]``, so head ``h``
    contributes a point of ``[sum_j min(u_hij, 0), sum_j max(u_hij, 0)]``. Summing over
    heads gives the interval.

    Args:
        X: ``(N, n, D)`` or ``(M, N, n, D)``. params: :class:`attnlab.Params` (``d_v = 1``,
        no ``W_O``).

    Returns:
        ``(lo, hi)``, each ``(M, N, n)`` NumPy.
    """
    spec = KERNEL_TABLE[check_choice("kernel", kernel, KERNELS)]
    check_params("params", params)
    if params.W_O is not None or params.d_v != 1:
        raise ValueError("params must have d_v = 1 and no W_O (the theory setting)")
    Xt = prepare_X(X, params).detach()
    eq = "ind,mhd->mhin" if Xt.ndim == 3 else "mind,mhd->mhin"
    u = torch.einsum(eq, Xt, params.W_V[..., 0].detach())  # (M, H, N, n)
    if spec.row_normalized:
        lo, hi = u.amin(-1), u.amax(-1)
    else:
        lo, hi = u.clamp(max=0).sum(-1), u.clamp(min=0).sum(-1)
    shape = (u.shape[0], u.shape[2], u.shape[3])  # (M, N, n): same interval for every k
    lo = lo.sum(1).unsqueeze(-1).expand(shape)
    hi = hi.sum(1).unsqueeze(-1).expand(shape)
    return lo.numpy().copy(), hi.numpy().copy()


def reachable_floor(X: ArrayLike, params: Params, y: ArrayLike, kernel: str) -> np.ndarray:
    """Lower bound on ``inf_{W_Q} f``: ``1/2 sum_ik dist(y_ik, [lo_ik, hi_ik])^2`` with the
    interval of :func:`reachable_interval`. ``(M,)`` NumPy."""
    lo, hi = reachable_interval(X, params, kernel)
    yv = _numpy("y", y)
    if yv.shape not in (lo.shape[1:], lo.shape):
        raise ValueError(f"y must have shape (N, n) = {lo.shape[1:]} or (M, N, n), got "
                         f"{yv.shape}")
    gap = np.maximum(lo - yv, 0.0) + np.maximum(yv - hi, 0.0)
    return 0.5 * (gap**2).sum((-2, -1))


def wq_jacobian(
    X: ArrayLike, params: Params, kernel: str | Sequence[str] = KERNELS[0]
) -> torch.Tensor:
    """Jacobian of the outputs w.r.t. ``W_Q``, per model: ``(M, N n, H D d)``.

    Autograd through :func:`attnlab.forward`, one backward pass per output coordinate for
    all ``M`` models at once (the models are independent, so summing them separates).
    """
    check_params("params", params)
    W = params.W_Q.detach().clone().requires_grad_(True)
    out = forward(params.replace(W_Q=W), prepare_X(X, params).detach(),
                  kernel).reshape(params.M, -1)
    rows = [
        torch.autograd.grad(out[:, r].sum(), W, retain_graph=True)[0].reshape(params.M, -1)
        for r in range(out.shape[1])
    ]
    return torch.stack(rows, 1).detach()


def curvature_lr(
    X: ArrayLike, params: Params, kernel: str | Sequence[str] = KERNELS[0],
    c: float | Sequence[float] | np.ndarray = 1.0,
) -> np.ndarray:
    """Step sizes ``c / lambda_max(J J^T)`` per model, ``J`` = :func:`wq_jacobian` at
    ``params``. ``J^T J`` is the Gauss-Newton curvature of ``f`` in ``W_Q`` (the Hessian at a
    zero-loss point), so ``c < 2`` is the classical stable range there. ``c``: one constant
    or one per model. ``(M,)``."""
    check_params("params", params)
    if isinstance(c, (list, tuple, np.ndarray, torch.Tensor)):
        cs = np.asarray(check_real_sequence("c", c, min=0.0, strict_min=True), dtype=float)
    else:
        cs = np.asarray([check_real("c", c, min=0.0, strict_min=True)])
    if cs.size not in (1, params.M):
        raise ValueError(f"c must be one number or one per model ({params.M}), got {cs.shape}")
    J = wq_jacobian(X, params, kernel)
    lam = torch.linalg.eigvalsh(J @ J.transpose(1, 2))[:, -1]
    if cs.size == 1:
        return (float(cs[0]) / lam).numpy()
    return (torch.as_tensor(cs, dtype=lam.dtype) / lam).numpy()


def block_grad_norms(
    params: Params,
    X: ArrayLike,
    y: ArrayLike,
    kernel: str | Sequence[str] = KERNELS[0],
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """``||grad_B f||^2`` for each parameter block ``B`` (autograd through
    :func:`attnlab.forward`), ``(M,)`` per block."""
    check_params("params", params)
    if names is not None and (isinstance(names, (str, bytes))
                              or not isinstance(names, (list, tuple))):
        raise TypeError(f"names must be a sequence of parameter names or None, got "
                        f"{type(names).__name__} {names!r}")
    names = tuple(params.tensors()) if names is None else tuple(names)
    if not names:
        raise ValueError(f"names must name at least one of {tuple(params.tensors())}")
    for nm in names:
        check_choice("names", nm, tuple(params.tensors()))
    y = check_float_array("y", y)
    W = {k: v.detach().clone().requires_grad_(k in names) for k, v in params.tensors().items()}
    q = params.replace(**W)
    out = forward(q, prepare_X(X, params).detach(), kernel)
    yt = torch.as_tensor(y).to(dtype=out.dtype, device=out.device)
    if tuple(yt.shape) not in (tuple(out.shape[1:]), tuple(out.shape)):
        raise ValueError(f"y must have shape (N, n) = {tuple(out.shape[1:])} or (M, N, n), "
                         f"got {tuple(yt.shape)}")
    f = 0.5 * (out - yt).square().flatten(1).sum(1)
    grads = torch.autograd.grad(f.sum(), [W[k] for k in names])
    return {k: g.square().flatten(1).sum(1).numpy() for k, g in zip(names, grads, strict=True)}
