"""The single-layer attention model with a leading model axis ``M`` on every parameter.

``M`` independent models (different init scales, seeds, kernels, or embedding dimensions)
are evaluated in one batched computation; ``M = 1`` is the ordinary case.

Parameters (:class:`Params`)::

    W_Q, W_K: (M, H, D, d)     W_V: (M, H, D, d_v)     W_O: (M, H d_v, 1) or None

Without ``out_proj`` the value dimension is 1 and ``W_O`` is merged into ``W_V`` (the theory
setting): ``out[m, i, k] = sum_h (S_mhi X_i W_V[m, h])[k]``. With ``out_proj`` the heads
``S_h X W_V[h]`` (``n x d_v``) are concatenated and multiplied by ``W_O``.

Different embedding dimensions are supported by **zero-padding**: ``D`` may be a sequence
of ``M`` ints; tensors use ``D_max`` and the padded rows of every weight (and the padded
coordinates of the tokens from :func:`attnlab.data.random_tokens`) are zero. Because those
token coordinates are zero, the padded rows never change outputs and receive exactly zero
gradient, so a padded model trains exactly like the unpadded one (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ._arrays import to_numpy, to_tensor
from ._validate import check_array, check_choice, check_finite, check_int, check_real
from .device import get_device
from .kernels import DEFAULT_KERNEL, KERNEL_TABLE, KERNELS, _project

__all__ = ["Params", "init_params", "forward", "stack_params", "PARAM_NAMES"]

PARAM_NAMES = ("W_Q", "W_K", "W_V", "W_O")
MIXED = "mixed"  # the kind of a batch whose models use different kernels


@dataclass
class Params:
    """Weights of ``M`` independent single-layer models (torch tensors).

    Attributes:
        W_Q, W_K: ``(M, H, D, d)``. W_V: ``(M, H, D, d_v)``. W_O: ``(M, H d_v, 1)`` or None.
        init_scale: ``(M,)`` the init scale ``s`` of ``W_Q, W_K`` (used by the teacher).
        D_model: ``(M,)`` each model's real embedding dimension (``< D`` when zero-padded).
    """

    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor | None = None
    init_scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    D_model: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.D_model is None:
            self.D_model = np.full(self.W_Q.shape[0], self.W_Q.shape[2], dtype=np.int64)

    M = property(lambda self: self.W_Q.shape[0], doc="number of models")
    H = property(lambda self: self.W_Q.shape[1], doc="heads")
    D = property(lambda self: self.W_Q.shape[2], doc="(padded) embedding dimension")
    d = property(lambda self: self.W_Q.shape[3], doc="head dimension")
    d_v = property(lambda self: self.W_V.shape[3], doc="value dimension")
    dtype = property(lambda self: self.W_Q.dtype)
    device = property(lambda self: self.W_Q.device)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The parameter tensors by name (``W_O`` only when present)."""
        out = {"W_Q": self.W_Q, "W_K": self.W_K, "W_V": self.W_V}
        if self.W_O is not None:
            out["W_O"] = self.W_O
        return out

    def replace(self, **tensors: torch.Tensor) -> Params:
        """A copy with some tensors replaced (metadata kept)."""
        return replace(self, **tensors)

    def clone(self) -> Params:
        """Detached deep copy."""
        return self.replace(**{k: v.detach().clone() for k, v in self.tensors().items()})

    def select(self, idx: int | Sequence[int] | slice) -> Params:
        """Models ``idx`` as a new :class:`Params` (an int keeps the model axis, M = 1)."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        sel = {k: v[idx] for k, v in self.tensors().items()}
        return Params(**sel, init_scale=np.asarray(self.init_scale)[idx],
                      D_model=np.asarray(self.D_model)[idx])

    def to(self, device: str | torch.device | None = None,
           dtype: torch.dtype | None = None) -> Params:
        """Move/cast all tensors."""
        return self.replace(**{k: v.to(device=device, dtype=dtype)
                               for k, v in self.tensors().items()})


def stack_params(params: Sequence[Params]) -> Params:
    """Concatenate several :class:`Params` along the model axis (same H, D, d, d_v)."""
    params = list(params)
    if not params or not all(isinstance(p, Params) for p in params):
        raise TypeError("params must be a non-empty sequence of Params")
    first = params[0]
    for p in params[1:]:
        if p.W_Q.shape[1:] != first.W_Q.shape[1:] or p.W_V.shape[1:] != first.W_V.shape[1:] \
                or (p.W_O is None) != (first.W_O is None):
            raise ValueError("params must all have the same H, D, d, d_v and out_proj; "
                             "pad D first (init_params with a sequence D)")
    cat = {k: torch.cat([p.tensors()[k] for p in params]) for k in first.tensors()}
    return Params(**cat, init_scale=np.concatenate([p.init_scale for p in params]),
                  D_model=np.concatenate([p.D_model for p in params]))


# ----------------------------------------------------------------------------- helpers
def _stream_seed(seed: int, tag: int) -> int:
    """An independent torch seed for purpose ``tag`` (tokens, targets, params, teacher), so
    that the same user seed never reuses one random stream for two purposes."""
    state = np.random.SeedSequence([int(seed), int(tag)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _per_model(name: str, value: Any, M: int, *, kind: str = "real",
               min: float | None = None, strict_min: bool = False) -> list:
    """A scalar broadcast to M values, or a length-M sequence checked element-wise."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = to_numpy(value)
        value = value.tolist() if value.ndim else value.item()
    if isinstance(value, (list, tuple)):
        if len(value) != M:
            raise ValueError(f"{name} must be a scalar or have one entry per model "
                             f"(M = {M}), got {len(value)} entries")
        vals = list(value)
    else:
        vals = [value] * M
    if kind == "int":
        return [check_int(name, v, min=None if min is None else int(min)) for v in vals]
    return [check_real(name, v, min=min, strict_min=strict_min) for v in vals]


def model_seeds(seed: int | Sequence[int], M: int) -> list[int]:
    """Per-model seeds: an int ``s`` gives ``s, s+1, ..., s+M-1``; a sequence is used as is.

    So model ``m`` of a batch equals the single model created with seed ``s + m``.
    """
    if isinstance(seed, (list, tuple, np.ndarray)):
        return _per_model("seed", seed, M, kind="int", min=0)
    s = check_int("seed", seed, min=0)
    return [s + m for m in range(M)]


def _dims(D: int | Sequence[int], M: int) -> list[int]:
    if isinstance(D, (list, tuple, np.ndarray)):
        return _per_model("D", D, M, kind="int", min=1)
    return [check_int("D", D, min=1)] * M


# ----------------------------------------------------------------------------- init
def init_params(*, M: int = 1, H: int, D: int | Sequence[int], d: int,
                init_scale: float | Sequence[float], value_scale: float | Sequence[float] = 1.0,
                seed: int | Sequence[int], dtype: torch.dtype = torch.float64,
                device: str | torch.device | None = "cpu", d_v: int = 1,
                out_proj: bool = False) -> Params:
    """Initialize ``M`` models: ``W_Q, W_K ~ N(0, s^2)``, ``W_V ~ N(0, v^2)``.

    Args:
        M: number of independent models (>= 1).
        H, d, d_v: heads, head dimension, value dimension (``d_v > 1`` needs ``out_proj``).
        D: embedding dimension, or one per model (zero-padded to the largest, see module doc).
        init_scale: ``s`` (> 0), scalar or one per model. value_scale: ``v`` (>= 0) likewise.
        seed: int ``s`` (model ``m`` uses seed ``s + m``) or one seed per model.
        out_proj: add ``W_O ~ N(0, 1/(H d_v))`` of shape ``(M, H d_v, 1)``.

    Draws happen on the CPU in float64 from a seeded ``torch.Generator`` per model, then
    are cast: the same seed gives the same weights for every dtype and device.
    """
    M = check_int("M", M, min=1)
    H = check_int("H", H, min=1)
    d = check_int("d", d, min=1)
    d_v = check_int("d_v", d_v, min=1)
    if d_v > 1 and not out_proj:
        raise ValueError(f"d_v must be 1 unless out_proj=True (W_O merged), got d_v={d_v}")
    Ds = _dims(D, M)
    # > 0: at s = 0 the attention is uniform and W_Q, W_K get exactly zero gradient
    scales = _per_model("init_scale", init_scale, M, min=0.0, strict_min=True)
    vscales = _per_model("value_scale", value_scale, M, min=0.0)
    seeds = model_seeds(seed, M)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    dev = get_device(device, dtype)
    Dmax = max(Ds)
    shapes = {"W_Q": (H, Dmax, d), "W_K": (H, Dmax, d), "W_V": (H, Dmax, d_v)}
    out = {k: torch.zeros((M, *s), dtype=torch.float64) for k, s in shapes.items()}
    W_O = torch.zeros((M, H * d_v, 1), dtype=torch.float64) if out_proj else None
    for m in range(M):
        g = torch.Generator().manual_seed(_stream_seed(seeds[m], 3))
        Dm = Ds[m]
        for k, sc in (("W_Q", scales[m]), ("W_K", scales[m]), ("W_V", vscales[m])):
            e = shapes[k][2]
            out[k][m, :, :Dm] = sc * torch.randn((H, Dm, e), generator=g, dtype=torch.float64)
        if out_proj:
            W_O[m] = torch.randn((H * d_v, 1), generator=g, dtype=torch.float64) \
                / math.sqrt(H * d_v)
    conv = {k: v.to(device=dev, dtype=dtype) for k, v in out.items()}
    return Params(**conv, W_O=None if W_O is None else W_O.to(device=dev, dtype=dtype),
                  init_scale=np.asarray(scales, dtype=float),
                  D_model=np.asarray(Ds, dtype=np.int64))


# ----------------------------------------------------------------------------- forward
def kernel_spec(kernel: str | Sequence[str], M: int) -> tuple[str, torch.Tensor | None]:
    """Validate ``kernel`` (a name, or one name per model) -> (kind, kernel ids or None).

    ``kind`` is a kernel name of :data:`~attnlab.kernels.KERNELS` or :data:`MIXED`; for a
    mixed batch the ids ``(M,)`` (long) index ``KERNELS`` per model (every kernel of the
    batch is then evaluated and selected).
    """
    if isinstance(kernel, str):
        return check_choice("kernel", kernel, KERNELS), None
    if not isinstance(kernel, (list, tuple)):
        raise TypeError(f"kernel must be a str or a sequence of str, got {type(kernel).__name__}")
    if len(kernel) != M:
        raise ValueError(f"kernel must be one name or one per model (M = {M}), "
                         f"got {len(kernel)} names")
    names = [check_choice("kernel", k, KERNELS) for k in kernel]
    if len(set(names)) == 1:
        return names[0], None
    return MIXED, torch.tensor([KERNELS.index(k) for k in names])


def _attention_core(Q, K, kind, kernel_ids, scale, normalize):
    if kind != MIXED:
        return KERNEL_TABLE[kind].forward(Q, K, scale, normalize)
    ids = kernel_ids.to(Q.device).view(-1, *([1] * (Q.ndim - 1)))
    S = KERNEL_TABLE[KERNELS[0]].forward(Q, K, scale, normalize)
    for k, name in enumerate(KERNELS[1:], start=1):
        S = torch.where(ids == k, KERNEL_TABLE[name].forward(Q, K, scale, normalize), S)
    return S


def forward_core(W: dict[str, torch.Tensor | None], X: torch.Tensor, kind: str,
                 kernel_ids: torch.Tensor | None, scale: float, normalize: bool,
                 pool: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Unvalidated batched forward -> (out ``(M, N, n)`` or ``(M, N)``, S ``(M,H,N,n,n)``)."""
    Q = _project(X, W["W_Q"])
    K = _project(X, W["W_K"])
    S = _attention_core(Q, K, kind, kernel_ids, scale, normalize)
    W_O = W.get("W_O")
    if W_O is None:
        V = _project(X, W["W_V"])  # (M, H, N, n, 1)
        out = (S @ V).sum(1).squeeze(-1)
    else:
        M, H = W["W_V"].shape[:2]
        heads = S @ _project(X, W["W_V"])  # (M, H, N, n, d_v)
        out = torch.einsum("mhinv,mhv->min", heads, W_O.view(M, H, -1))
    return (out.mean(-1) if pool else out), S


def prepare_X(X: Any, params: Params, name: str = "X") -> torch.Tensor:
    """Check tokens ``(N, n, D)`` or ``(M, N, n, D)`` against ``params``; cast to its dtype."""
    check_array(name, X)
    Xt = to_tensor(X)
    if Xt.ndim not in (3, 4) or Xt.shape[-1] != params.D or \
            (Xt.ndim == 4 and Xt.shape[0] != params.M):
        raise ValueError(f"{name} must have shape (N, n, D) or (M, N, n, D) with "
                         f"M = {params.M}, D = {params.D}; got {tuple(Xt.shape)}")
    check_finite(name, Xt)
    return Xt.to(device=params.device, dtype=params.dtype)


def check_inputs(params: Params, X: Any, kernel: str | Sequence[str], scale: float | None
                 ) -> tuple[str, torch.Tensor | None, torch.Tensor, float]:
    """The checks that open :func:`forward` and :func:`attnlab.train`: ``params`` is a
    :class:`Params`, ``kernel`` names kernels (see :func:`kernel_spec`), ``X`` fits
    ``params`` (see :func:`prepare_X`), ``scale`` is ``None`` (``1/sqrt(d)``) or > 0.

    Returns ``(kind, kernel_ids, X as a tensor of params' dtype and device, scale)``.
    """
    if not isinstance(params, Params):
        raise TypeError(f"params must be Params, got {type(params).__name__}")
    kind, kernel_ids = kernel_spec(kernel, params.M)
    Xt = prepare_X(X, params)
    sc = 1.0 / math.sqrt(params.d) if scale is None else \
        _per_model("scale", scale, 1, min=0.0, strict_min=True)[0]
    return kind, kernel_ids, Xt, sc


def forward(params: Params, X: Any, kernel: str | Sequence[str] = DEFAULT_KERNEL,
            pool: bool = False, *, scale: float | None = None,
            normalize: bool = False) -> torch.Tensor:
    """Outputs of the ``M`` models.

    Args:
        params: :class:`Params`. X: ``(N, n, D)`` shared or ``(M, N, n, D)`` per model.
        kernel: ``"softmax"``/``"gaussian"`` or one per model. pool: mean over tokens.
        scale: logit scale (default ``1/sqrt(d)``). normalize: row-normalize the Gaussian.

    Returns:
        ``(M, N, n)`` or pooled ``(M, N)`` (torch).
    """
    kind, kernel_ids, Xt, sc = check_inputs(params, X, kernel, scale)
    out, _ = forward_core(params.tensors(), Xt, kind, kernel_ids, sc, bool(normalize),
                          bool(pool))
    return out
