"""Attention kernels and the functional core of the single-layer model.

Shapes: ``N`` sequences, ``n`` tokens, ``D`` embedding dim, ``H`` heads, ``d`` head dim,
``M`` independent models (optional leading axis). Every public function accepts NumPy
arrays or torch tensors and returns the same kind (torch if any input is a tensor).

Kernels (``scale`` defaults to ``1/sqrt(d)``)::

    softmax:  S[k, j] = exp(scale <q_k, k_j>) / sum_l exp(scale <q_k, k_l>)
    gaussian: S[k, j] = exp(-scale ||q_k - k_j||^2 / 2)      (no row normalization
              unless ``normalize=True``)

Value dimension 1 with ``W_O`` merged into ``W_V``: ``W_V`` is ``(H, D)`` and
``out[i, k] = sum_h (S_ih X_i W_V[h])[k]``. The feature matrix ``C`` (``(N n, H D)``, rows
ordered ``(i, k)``, columns ``(h, D)``) makes the model linear in ``W_V``:
``layer_output(...).reshape(-1) == C @ W_V.reshape(-1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._arrays import back, to_torch
from ._logits import DISTANCE, DOT, LogitForm, _sqdist_t  # noqa: F401 (_sqdist_t re-exported)
from ._validate import check_bool, check_choice, check_finite, check_int, check_real

__all__ = [
    "KERNELS",
    "KERNEL_CHOICES",
    "KERNEL_TABLE",
    "DEFAULT_KERNEL",
    "KernelSpec",
    "expand_kernels",
    "nn_threshold",
    "softmax_kernel",
    "gaussian_kernel",
    "row_stochastic",
    "attention_matrix",
    "layer_output",
    "feature_matrix",
    "sigma_min",
    "wq_gradient",
    "pl_lower_bound",
]

# The kernel table is defined below the kernel functions (it holds them); these names are
# the table's keys, in display order.
KERNELS: tuple[str, ...]
BOTH = "both"  # every kernel of the table, side by side

Array = Any  # np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------- conversion
_to_torch, _back = to_torch, back  # NumPy in, NumPy out (see attnlab._arrays)


def _default_scale(scale: float | None, d: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(d)
    return check_real("scale", scale, min=0.0, strict_min=True)


# ----------------------------------------------------------------------------- kernels
@dataclass(frozen=True)
class KernelSpec:
    """One row of the kernel table.

    ``name`` is the key used everywhere (``kernel="softmax"``); ``display`` the label of
    widgets and figures; ``color`` its colour in every figure; ``logits`` its
    :class:`~attnlab._logits.LogitForm` (logits from ``Q, K`` and the pieces of their
    derivative that the closed-form gradients use); ``row_normalized`` whether the rows of
    ``S`` sum to 1 without ``normalize`` (``S = softmax(L)``, else ``S = exp(L)``);
    ``step_rule`` the default step rule when ``W_Q`` is trained (``"curvature"``:
    ``c / lambda_max(J_0 J_0^T)``). Adding a kernel: one row here (and a ``LogitForm`` for
    new logits).
    """

    name: str
    display: str
    color: str
    logits: LogitForm
    row_normalized: bool
    step_rule: str = "curvature"

    def normalizes(self, normalize: bool) -> bool:
        """Whether ``S = softmax(L)`` (rows sum to 1) under the option ``normalize``; then
        the gradient of the row normalization centers the values (``u_j - Z_k``)."""
        return self.row_normalized or normalize

    def forward(self, Q: torch.Tensor, K: torch.Tensor, scale: float,
                normalize: bool) -> torch.Tensor:
        """The attention matrix ``(..., n, n)`` from ``Q, K`` (``(..., n, d)``)."""
        L = self.logits.logits(Q, K, scale)
        # torch.softmax subtracts the row max: stable for any logit size.
        return torch.softmax(L, dim=-1) if self.normalizes(normalize) else torch.exp(L)


KERNEL_TABLE: dict[str, KernelSpec] = {
    spec.name: spec
    for spec in (
        KernelSpec("softmax", "Softmax", "#1f77b4", DOT, row_normalized=True),
        KernelSpec("gaussian", "Gaussian", "#d62728", DISTANCE, row_normalized=False),
    )
}
KERNELS = tuple(KERNEL_TABLE)
KERNEL_CHOICES = (*KERNELS, BOTH)
DEFAULT_KERNEL = KERNELS[0]  # the default of every ``kernel=`` argument


def _kernel_t(Q: torch.Tensor, K: torch.Tensor, kernel: str, scale: float,
              normalize: bool) -> torch.Tensor:
    return KERNEL_TABLE[kernel].forward(Q, K, scale, normalize)


def expand_kernels(kernel: str | Sequence[str], name: str = "kernel") -> tuple[str, ...]:
    """The kernels a choice names: one kernel, ``"both"`` (every kernel of the table), or a
    non-empty sequence of kernel names. Raises ``ValueError`` naming ``name`` otherwise."""
    if isinstance(kernel, str):
        check_choice(name, kernel, KERNEL_CHOICES)
        return KERNELS if kernel == BOTH else (kernel,)
    if not isinstance(kernel, Sequence):
        raise TypeError(f"{name} must be a kernel name or a sequence of names, got "
                        f"{type(kernel).__name__}")
    out = tuple(check_choice(name, k, KERNELS) for k in kernel)
    if not out:
        raise ValueError(f"{name} must name at least one of {', '.join(KERNELS)}")
    return out


def nn_threshold(N: int, n: int, H: int) -> float:
    """The embedding dimension ``D* = N n / H`` where ``H D = N n``: the feature matrix
    ``C`` (``(N n, H D)``) can have full row rank only for ``D >= D*``."""
    N, n, H = (check_int(k, v, min=1) for k, v in (("N", N), ("n", n), ("H", H)))
    return N * n / H


def softmax_kernel(Q: Array, K: Array, scale: float | None = None) -> Array:
    """Softmax attention ``S`` (..., n, n) from queries and keys ``Q, K`` (..., n, d).

    ``S[k, j] = exp(scale <q_k, k_j>) / sum_l exp(scale <q_k, k_l>)``, ``scale = 1/sqrt(d)``
    by default; computed with max subtraction (stable).
    """
    (Q, K), np_out = _to_torch({"Q": Q, "K": K})
    _check_qk(Q, K)
    L = DOT.logits(Q, K, _default_scale(scale, Q.shape[-1]))
    return _back(torch.softmax(L, dim=-1), np_out)


def gaussian_kernel(Q: Array, K: Array, scale: float | None = None,
                    normalize: bool = False) -> Array:
    """Gaussian attention ``S`` (..., n, n) from ``Q, K`` (..., n, d).

    ``S[k, j] = exp(-scale ||q_k - k_j||^2 / 2)`` = ``exp(-||q-k||^2 / (2 sqrt d))`` by
    default; ``normalize=True`` divides each row by its sum. The squared distance is formed
    from the difference ``q_k - k_j`` (no cancellation between large norms).
    """
    (Q, K), np_out = _to_torch({"Q": Q, "K": K})
    _check_qk(Q, K)
    normalize = check_bool("normalize", normalize)
    L = DISTANCE.logits(Q, K, _default_scale(scale, Q.shape[-1]))
    return _back(torch.softmax(L, dim=-1) if normalize else torch.exp(L), np_out)


def row_stochastic(logits: Array) -> Array:
    """Softmax over the last axis: an unconstrained parametrization of a row-stochastic
    matrix (the shared attention matrix of the convex relaxation). ``(..., n, n)``."""
    # A model's parameters (requires grad) skip the finiteness check: it would cost a host
    # sync in every forward pass on a GPU.
    grad = isinstance(logits, torch.Tensor) and logits.requires_grad
    (L,), np_out = _to_torch({"logits": logits}, finite=not grad)
    if L.ndim < 1 or L.numel() == 0:
        raise ValueError(f"logits must have at least 1 dimension and one entry, got shape "
                         f"{tuple(L.shape)}")
    return _back(torch.softmax(L, dim=-1), np_out)


def _check_qk(Q: torch.Tensor, K: torch.Tensor) -> None:
    if Q.ndim < 2 or Q.numel() == 0:
        raise ValueError(f"Q must have shape (..., n, d) (non-empty), got {tuple(Q.shape)}")
    if K.numel() == 0:
        raise ValueError(f"K must be non-empty, got shape {tuple(K.shape)}")
    if K.ndim < 2 or K.shape[-1] != Q.shape[-1]:
        raise ValueError(f"K must have shape (..., n, d) with d = {Q.shape[-1]} like Q, "
                         f"got {tuple(K.shape)}")


# ----------------------------------------------------------------------------- model core
def _check_model(X: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor,
                 W_V: torch.Tensor | None = None, y: torch.Tensor | None = None) -> bool:
    """Validate shapes; return True for batched models (leading M axis on the weights)."""
    if W_Q.ndim not in (3, 4):
        raise ValueError(f"W_Q must have shape (H, D, d) or (M, H, D, d), got {tuple(W_Q.shape)}")
    batched = W_Q.ndim == 4
    if W_K.shape != W_Q.shape:
        raise ValueError(f"W_K must have the shape of W_Q {tuple(W_Q.shape)}, "
                         f"got {tuple(W_K.shape)}")
    D = W_Q.shape[-2]
    if X.ndim not in ((3, 4) if batched else (3,)):
        want = "(N, n, D) or (M, N, n, D)" if batched else "(N, n, D)"
        raise ValueError(f"X must have shape {want}, got {tuple(X.shape)}")
    if X.shape[-1] != D:
        raise ValueError(f"X must have last axis D = {D} (from W_Q), got {tuple(X.shape)}")
    if X.ndim == 4 and X.shape[0] != W_Q.shape[0]:
        raise ValueError(f"X has {X.shape[0]} models on axis 0 but W_Q has {W_Q.shape[0]}")
    if X.numel() == 0:
        raise ValueError(f"X must be non-empty, got shape {tuple(X.shape)}")
    check_finite("X", X)
    if W_V is not None:
        H = W_Q.shape[-3]
        lead = tuple(W_Q.shape[:-3])
        if tuple(W_V.shape) not in (lead + (H, D), lead + (H, D, 1)):
            want = "(M, H, D)" if batched else "(H, D)"
            raise ValueError(f"W_V must have shape {want} = {lead + (H, D)}, "
                             f"got {tuple(W_V.shape)}")
    if y is not None:
        N, n = X.shape[-3], X.shape[-2]
        ok = tuple(y.shape) in ((N, n),) + (((W_Q.shape[0], N, n),) if batched else ())
        if not ok:
            raise ValueError(f"y must have shape (N, n) = {(N, n)}"
                             + (" or (M, N, n)" if batched else "") + f", got {tuple(y.shape)}")
        check_finite("y", y)
    return batched


def _project(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """X (N,n,D) or (M,N,n,D) times W (H,D,e) or (M,H,D,e) -> (..., H, N, n, e)."""
    if W.ndim == 3:
        return torch.einsum("ind,hde->hine", X, W)
    if X.ndim == 3:
        return torch.einsum("ind,mhde->mhine", X, W)
    return torch.einsum("mind,mhde->mhine", X, W)


def _attention_t(X, W_Q, W_K, kernel, scale, normalize):
    Q = _project(X, W_Q)
    K = _project(X, W_K)
    return _kernel_t(Q, K, kernel, _default_scale(scale, W_Q.shape[-1]), normalize), Q, K


def _values(X: torch.Tensor, W_V: torch.Tensor) -> torch.Tensor:
    """u[..., h, i, j] = X_i[j] . W_V[h] with W_V (H, D) or (M, H, D): (..., H, N, n)."""
    return _project(X, W_V.unsqueeze(-1)).squeeze(-1)


def _squeeze_wv(W_V: torch.Tensor, W_Q: torch.Tensor) -> torch.Tensor:
    return W_V[..., 0] if W_V.ndim == W_Q.ndim else W_V


def _setup(kernel: str, arrays: dict[str, Any]):
    check_choice("kernel", kernel, KERNELS)
    return _to_torch(arrays)


def attention_matrix(X: Array, W_Q: Array, W_K: Array, kernel: str = DEFAULT_KERNEL, *,
                     scale: float | None = None, normalize: bool = False) -> Array:
    """Attention matrices of every head and sequence.

    Args:
        X: tokens ``(N, n, D)``, or ``(M, N, n, D)`` per model.
        W_Q, W_K: ``(H, D, d)``, or ``(M, H, D, d)`` for ``M`` batched models.
        kernel: a name of :data:`KERNELS` (``"softmax"`` or ``"gaussian"``).
        scale: logit scale, default ``1/sqrt(d)``. normalize: row-normalize the Gaussian.

    Returns:
        S ``(H, N, n, n)`` or ``(M, H, N, n, n)``; ``S[h, i, k, j]`` = weight of token ``j``
        in the output of token ``k`` of sequence ``i``.
    """
    (X, W_Q, W_K), np_out = _setup(kernel, {"X": X, "W_Q": W_Q, "W_K": W_K})
    _check_model(X, W_Q, W_K)
    S, _, _ = _attention_t(X, W_Q, W_K, kernel, scale, check_bool("normalize", normalize))
    return _back(S, np_out)


def layer_output(X: Array, W_Q: Array, W_K: Array, W_V: Array, kernel: str = DEFAULT_KERNEL, *,
                 scale: float | None = None, normalize: bool = False) -> Array:
    """Outputs of the single layer, value dim 1, ``W_O`` merged into ``W_V``.

    ``out[i, k] = sum_h sum_j S[h, i, k, j] <x_ij, W_V[h]>``.

    Args:
        X: ``(N, n, D)`` (or ``(M, N, n, D)``); W_Q, W_K: ``(H, D, d)`` (or ``(M, H, D, d)``);
        W_V: ``(H, D)`` (or ``(M, H, D)``; a trailing axis of size 1 is accepted).

    Returns:
        out ``(N, n)`` or ``(M, N, n)``.
    """
    (X, W_Q, W_K, W_V), np_out = _setup(kernel, {"X": X, "W_Q": W_Q, "W_K": W_K, "W_V": W_V})
    _check_model(X, W_Q, W_K, W_V)
    S, _, _ = _attention_t(X, W_Q, W_K, kernel, scale, check_bool("normalize", normalize))
    u = _values(X, _squeeze_wv(W_V, W_Q))
    out = (S @ u.unsqueeze(-1)).squeeze(-1).sum(-3)
    return _back(out, np_out)


def feature_matrix(X: Array, W_Q: Array, W_K: Array, kernel: str = DEFAULT_KERNEL, *,
                   scale: float | None = None, normalize: bool = False) -> Array:
    """Feature matrix ``C`` with ``vec(outputs) = C vec(W_V)`` for fixed ``W_Q, W_K``.

    Row ``i * n + k`` (sequence ``i``, token ``k``), column ``h * D + a`` (head ``h``,
    embedding coordinate ``a``): ``C[(i,k), (h,a)] = sum_j S[h,i,k,j] X[i,j,a]``, i.e. the
    block row ``i`` is ``[S_i1 X_i, ..., S_iH X_i]``.

    Returns:
        C ``(N n, H D)``, or ``(M, N n, H D)`` for batched weights.
    """
    (X, W_Q, W_K), np_out = _setup(kernel, {"X": X, "W_Q": W_Q, "W_K": W_K})
    _check_model(X, W_Q, W_K)
    S, _, _ = _attention_t(X, W_Q, W_K, kernel, scale, check_bool("normalize", normalize))
    return _back(_feature_t(S, X), np_out)


def _feature_t(S: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """S (..., H, N, n, n), X (N, n, D) or (M, N, n, D) -> C (..., N n, H D)."""
    SX = S @ X.unsqueeze(-4)  # (..., H, N, n, D)
    H, N, n, D = SX.shape[-4:]
    return SX.movedim(-4, -2).reshape(*SX.shape[:-4], N * n, H * D)


def sigma_min(C: Array, k: int | Array | None = None) -> Array:
    """Smallest singular value of ``C`` among its first ``min(rows, cols)`` (or first ``k``).

    Args:
        C: ``(Nn, HD)`` or batched ``(M, Nn, HD)``.
        k: optional count of singular values to consider (int, or ``(M,)`` per model; used
            for zero-padded models whose real ``H D`` is smaller than the padded width).

    Returns:
        A scalar (0-d array / tensor) or ``(M,)``; (numerically) zero when ``C`` is rank
        deficient, e.g. for a saturated softmax.
    """
    (Ct,), np_out = _to_torch({"C": C})
    if Ct.ndim not in (2, 3):
        raise ValueError(f"C must have shape (Nn, HD) or (M, Nn, HD), got {tuple(Ct.shape)}")
    if Ct.shape[-1] == 0 or Ct.shape[-2] == 0:
        raise ValueError(f"C must have at least one row and one column, got {tuple(Ct.shape)}")
    r = min(Ct.shape[-2], Ct.shape[-1])
    kk = None if k is None else _check_k(k, r, Ct.shape[:-2])
    s = torch.linalg.svdvals(Ct)  # descending, (..., min(rows, cols))
    if kk is None:
        out = s[..., r - 1]
    else:
        kk = kk.to(s.device)
        kk = kk.expand(s.shape[:-1]) if kk.ndim == 0 else kk
        out = s.gather(-1, (kk - 1).unsqueeze(-1)).squeeze(-1)
    return _back(out, np_out)


def _check_k(k: Any, r: int, batch: tuple[int, ...]) -> torch.Tensor:
    """``k`` of :func:`sigma_min`: an int or one int per model, each in ``[1, r]``; integral
    values only (``2.9`` raises instead of being truncated to 2)."""
    if isinstance(k, torch.Tensor):
        k = k.detach().cpu().numpy()
    if isinstance(k, np.ndarray) and k.ndim > 0:
        if k.dtype.kind not in "iu":
            raise TypeError(f"k must hold integers, got dtype {k.dtype}")
        if tuple(k.shape) != tuple(batch):
            raise ValueError(f"k must be one int or one per model {tuple(batch)}, "
                             f"got shape {k.shape}")
        vals = [check_int("k", int(v), min=1, max=r) for v in k.reshape(-1)]
        return torch.as_tensor(vals, dtype=torch.long).reshape(k.shape)
    if isinstance(k, (list, tuple)):
        return _check_k(np.asarray([check_int("k", v) for v in k], dtype=np.int64)
                        if k else np.zeros(0, dtype=np.int64), r, batch)
    if isinstance(k, np.ndarray):
        k = k.item()
    return torch.tensor(check_int("k", k, min=1, max=r), dtype=torch.long)


# ----------------------------------------------------------------------------- gradients
def _token_grads(X, W_Q, W_K, W_V, y, kernel, scale, normalize):
    """Per-token query gradients ``g[..., h, i, k, :]`` (d) and residuals ``r[..., i, k]``.

    dF/dW_Q[h] = sum_{i,k} r_ik x_ik^T g_hik  (gd-dynamics.md §2). With per-head values
    ``u_hij`` and per-head output ``Z_hik = sum_j S_hkj u_hij``:
      softmax:              g = scale * sum_j S_kj (u_j - Z_k) k_j
      gaussian:             g = -scale * sum_j S_kj u_j (q_k - k_j)
      gaussian, normalized: g = -scale * sum_j S_kj (u_j - Z_k) (q_k - k_j)
    """
    sc = _default_scale(scale, W_Q.shape[-1])
    S, Q, K = _attention_t(X, W_Q, W_K, kernel, sc, normalize)
    u = _values(X, _squeeze_wv(W_V, W_Q))  # (..., H, N, n)
    Zh = (S @ u.unsqueeze(-1)).squeeze(-1)  # (..., H, N, n)
    r = Zh.sum(-3) - y  # (..., N, n)
    spec = KERNEL_TABLE[kernel]
    if spec.normalizes(normalize):
        A = S * (u.unsqueeze(-2) - Zh.unsqueeze(-1))  # (..., H, N, n, n): S_kj (u_j - Z_k)
    else:
        A = S * u.unsqueeze(-2)
    return spec.logits.query_grad(A, Q, K, sc), r


def wq_gradient(X: Array, W_Q: Array, W_K: Array, W_V: Array, y: Array,
                kernel: str = DEFAULT_KERNEL, *, scale: float | None = None,
                normalize: bool = False) -> Array:
    """Closed-form gradient of ``f = 1/2 sum_{i,k} (out_ik - y_ik)^2`` w.r.t. ``W_Q``.

    Implements ``dF/dW_Q[h] = sum_{i,k} r_ik x_ik^T g_hik`` with the per-token query
    gradients of gd-dynamics.md §2 (the book's derivation), head by head; for ``H > 1`` the
    softmax term uses the head's own output ``Z_hik = sum_j S_hkj u_hij``.

    Shapes:
        X ``(N, n, D)``; W_Q, W_K ``(H, D, d)``; W_V ``(H, D)``; y ``(N, n)``. Batched:
        leading ``M`` on the weights (and optionally on X, y).

    Returns:
        ``(H, D, d)`` or ``(M, H, D, d)``.
    """
    (X, W_Q, W_K, W_V, y), np_out = _setup(
        kernel, {"X": X, "W_Q": W_Q, "W_K": W_K, "W_V": W_V, "y": y})
    _check_model(X, W_Q, W_K, W_V, y)
    g, r = _token_grads(X, W_Q, W_K, W_V, y, kernel, scale, check_bool("normalize", normalize))
    Xr = X * r.unsqueeze(-1)  # (..., N, n, D)
    # grad[h] = Xr^T G_h with tokens stacked: (D, Nn) @ (Nn, d) per head
    grad = Xr.flatten(-3, -2).transpose(-1, -2).unsqueeze(-3) @ g.flatten(-3, -2)
    return _back(grad, np_out)


def pl_lower_bound(X: Array, W_Q: Array, W_K: Array, W_V: Array, y: Array,
                   kernel: str = DEFAULT_KERNEL, *, scale: float | None = None,
                   normalize: bool = False) -> tuple[Array, Array]:
    """Both sides of the Schur PL bound for ``W_Q``-only training (gd-dynamics.md §2).

    The Jacobian ``J`` of the outputs (rows ``(i, k)``) w.r.t. ``vec(W_Q)`` (all heads)
    satisfies ``J J^T = (X X^T) o (sum_h G_h G_h^T)`` where ``X`` stacks all tokens
    ``(Nn, D)`` and ``G_h`` stacks ``g_hik``. Schur's inequality gives
    ``lambda_min(J J^T) >= lambda_min(X X^T) * min_{ik} sum_h ||g_hik||^2`` and
    ``||grad_{W_Q} f||^2 >= 2 lambda_min(J J^T) f``. For ``H = 1`` the right side is the
    single-head ``lambda_min(XX^T) min ||g_ik||^2``. ``g`` does not depend on ``y``; ``y`` is
    taken (and validated) for a uniform signature with :func:`wq_gradient`.

    Returns:
        ``(lam_min_JJt, bound)``, scalars or ``(M,)``. ``bound`` is 0 when ``D < N n``.
    """
    (X, W_Q, W_K, W_V, y), np_out = _setup(
        kernel, {"X": X, "W_Q": W_Q, "W_K": W_K, "W_V": W_V, "y": y})
    _check_model(X, W_Q, W_K, W_V, y)
    g, _ = _token_grads(X, W_Q, W_K, W_V, y, kernel, scale, check_bool("normalize", normalize))
    G = g.flatten(-3, -2)  # (..., H, Nn, d)
    GG = (G @ G.transpose(-1, -2)).sum(-3)  # (..., Nn, Nn)
    Xf = X.flatten(-3, -2)  # (..., Nn, D)
    XX = Xf @ Xf.transpose(-1, -2)
    lam_J = torch.linalg.eigvalsh(XX * GG)[..., 0]
    lam_X = torch.linalg.eigvalsh(XX)[..., 0].clamp_min(0.0)
    gmin = GG.diagonal(dim1=-2, dim2=-1).min(-1).values
    bound = lam_X * gmin
    if bound.shape != lam_J.shape:
        bound = bound.expand(lam_J.shape)
    return _back(lam_J, np_out), _back(bound, np_out)
