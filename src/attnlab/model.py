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
from ._validate import (
    check_bool,
    check_choice,
    check_finite,
    check_float_array,
    check_int,
    check_real,
    check_size,
)
from .device import get_device
from .kernels import DEFAULT_KERNEL, KERNEL_TABLE, KERNELS, _project

__all__ = ["Params", "init_params", "forward", "stack_params", "PARAM_NAMES"]

PARAM_NAMES = ("W_Q", "W_K", "W_V", "W_O")
MAX_MODELS = 1_000_000  # models of one batch (M); more is a typo, not a batch
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
        # Shapes, dtypes and devices only: a diverged run's final weights may hold NaN
        # (trainers and forward check finiteness where it matters).
        for name in ("W_Q", "W_K", "W_V"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got "
                                f"{type(getattr(self, name)).__name__}")
            check_float_array(name, getattr(self, name), ndim=4, finite=False,
                              allow_int=False, grad="keep")
        if self.W_O is not None:
            if not isinstance(self.W_O, torch.Tensor):
                raise TypeError(f"W_O must be a torch.Tensor or None, got "
                                f"{type(self.W_O).__name__}")
            check_float_array("W_O", self.W_O, ndim=3, finite=False, allow_int=False,
                              grad="keep")
        M, H, D, _ = self.W_Q.shape
        if self.W_K.shape != self.W_Q.shape:
            raise ValueError(f"W_K must have the shape of W_Q {tuple(self.W_Q.shape)}, "
                             f"got {tuple(self.W_K.shape)}")
        if self.W_V.shape[:3] != (M, H, D):
            raise ValueError(f"W_V must have shape (M, H, D, d_v) = ({M}, {H}, {D}, d_v), "
                             f"got {tuple(self.W_V.shape)}")
        if self.W_O is not None and tuple(self.W_O.shape) != (M, H * self.W_V.shape[3], 1):
            raise ValueError(f"W_O must have shape (M, H d_v, 1) = "
                             f"{(M, H * self.W_V.shape[3], 1)}, got {tuple(self.W_O.shape)}")
        for name, t in self.tensors().items():
            if t.dtype != self.W_Q.dtype or t.device != self.W_Q.device:
                raise ValueError(f"{name} must have the dtype and device of W_Q "
                                 f"({self.W_Q.dtype}, {self.W_Q.device}), got "
                                 f"({t.dtype}, {t.device})")
        scale = check_float_array("init_scale", _as_1d("init_scale", self.init_scale), ndim=1)
        if scale.shape[0] not in (1, M):
            raise ValueError(f"init_scale must have one entry per model (M = {M}), "
                             f"got shape {tuple(scale.shape)}")
        self.init_scale = np.broadcast_to(np.asarray(scale, dtype=float), (M,)).copy() \
            if scale.shape[0] != M else scale
        if self.D_model is None:
            self.D_model = np.full(M, D, dtype=np.int64)
        else:
            dm = check_float_array("D_model", _as_1d("D_model", self.D_model), ndim=1)
            if dm.dtype.kind not in "iu" or dm.shape != (M,) or (dm < 1).any() \
                    or (dm > D).any():
                raise ValueError(f"D_model must hold one integer in [1, D = {D}] per model "
                                 f"(M = {M}), got {self.D_model!r}")
            self.D_model = dm

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


def _as_1d(name: str, value: Any) -> np.ndarray:
    """A scalar, sequence, array or tensor as a 1-d NumPy array (dtype checked later)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.atleast_1d(np.asarray(value))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers, one per model, got {value!r}") from None


def stack_params(params: Sequence[Params]) -> Params:
    """Concatenate several :class:`Params` along the model axis (same H, D, d, d_v)."""
    if isinstance(params, (Params, str, bytes)) or not isinstance(params, Sequence):
        raise TypeError(f"params must be a non-empty sequence of Params, got "
                        f"{type(params).__name__}")
    params = list(params)
    if not params or not all(isinstance(p, Params) for p in params):
        raise TypeError("params must be a non-empty sequence of Params")
    first = params[0]
    for p in params[1:]:
        if p.W_Q.shape[1:] != first.W_Q.shape[1:] or p.W_V.shape[1:] != first.W_V.shape[1:] \
                or (p.W_O is None) != (first.W_O is None) or p.dtype != first.dtype \
                or p.device != first.device:
            raise ValueError("params must all have the same H, D, d, d_v, out_proj, dtype "
                             "and device; pad D first (init_params with a sequence D)")
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
    M = check_int("M", M, min=1, max=MAX_MODELS)
    H = check_int("H", H, min=1)
    d = check_int("d", d, min=1)
    d_v = check_int("d_v", d_v, min=1)
    out_proj = check_bool("out_proj", out_proj)
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
    check_size("M * H * D * max(d, d_v)", M, H, Dmax, max(d, d_v))
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
    Xt = to_tensor(check_float_array(name, X, finite=False, grad="keep"))
    if Xt.ndim not in (3, 4) or Xt.shape[-1] != params.D or \
            (Xt.ndim == 4 and Xt.shape[0] != params.M):
        raise ValueError(f"{name} must have shape (N, n, D) or (M, N, n, D) with "
                         f"M = {params.M}, D = {params.D}; got {tuple(Xt.shape)}")
    check_finite(name, Xt)
    return Xt.to(device=params.device, dtype=params.dtype)


def check_params(name: str, params: Any, *, finite: bool = True) -> Params:
    """``params`` must be a :class:`Params` (``TypeError`` naming ``name`` otherwise) whose
    weights are finite (``ValueError``: NaN/inf weights are bad input, not a divergence)."""
    if not isinstance(params, Params):
        raise TypeError(f"{name} must be Params (from attnlab.init_params), got "
                        f"{type(params).__name__}")
    if finite:
        for k, t in params.tensors().items():
            if not bool(torch.isfinite(t.detach()).all()):
                raise ValueError(f"{name}.{k} is not finite: the weights hold NaN or inf "
                                 f"(pass finite weights)")
    return params


def check_inputs(params: Params, X: Any, kernel: str | Sequence[str], scale: float | None,
                 *, finite: bool = True
                 ) -> tuple[str, torch.Tensor | None, torch.Tensor, float]:
    """The checks that open :func:`forward` and :func:`attnlab.train`: ``params`` is a
    :class:`Params`, ``kernel`` names kernels (see :func:`kernel_spec`), ``X`` fits
    ``params`` (see :func:`prepare_X`), ``scale`` is ``None`` (``1/sqrt(d)``) or > 0.

    Returns ``(kind, kernel_ids, X as a tensor of params' dtype and device, scale)``.
    """
    check_params("params", params, finite=finite)
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
    return _forward(params, X, kernel, pool, scale, normalize)


def _forward(params: Params, X: Any, kernel: Any, pool: Any = False, scale: Any = None,
             normalize: Any = False, *, finite: bool = True) -> torch.Tensor:
    """:func:`forward`; ``finite=False`` lets NaN weights through (snapshots of a batch in
    which some models diverged: their outputs are NaN by design)."""
    kind, kernel_ids, Xt, sc = check_inputs(params, X, kernel, scale, finite=finite)
    out, _ = forward_core(params.tensors(), Xt, kind, kernel_ids, sc,
                          check_bool("normalize", normalize), check_bool("pool", pool))
    return out
