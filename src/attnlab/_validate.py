"""Input validation helpers.

Convention used across attnlab: every public function checks its inputs up front and
raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong value)
with a message that names the parameter and says what is allowed, e.g.::

    ValueError: init_scale must be >= 0, got -1.0
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

__all__ = [
    "MAX_STEPS",
    "MAX_ELEMENTS",
    "check_int",
    "check_int_sequence",
    "check_real_sequence",
    "check_instance",
    "check_callable",
    "check_float_array",
    "check_size",
    "check_adam",
    "check_real",
    "check_choice",
    "check_finite",
    "check_shape",
    "check_array",
    "check_bool",
    "check_seeds",
]


# Upper bounds that keep a mistyped size from allocating absurd memory before any work
# starts (``steps=10**9`` would otherwise build its step buffers first).
MAX_STEPS = 10**8
MAX_ELEMENTS = 2 * 10**8  # largest array (elements) a size argument may ask for


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and the allowed range.

    Only integers are accepted (NumPy's too): ``2.9`` or ``2.0`` raise ``TypeError`` rather
    than being truncated, and so does ``True``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if min is not None and value < min:
        raise ValueError(f"{name} must be >= {min}, got {value}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be <= {max}, got {value}")
    return value


def check_real(
    name: str,
    value: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    strict_min: bool = False,
) -> float:
    """Return ``value`` as a finite float in range, or raise naming ``name``.

    ``strict_min=True`` makes the lower bound exclusive (``value > min``).
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if min is not None:
        if strict_min and value <= min:
            raise ValueError(f"{name} must be > {min}, got {value}")
        if not strict_min and value < min:
            raise ValueError(f"{name} must be >= {min}, got {value}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be <= {max}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name``."""
    choices = tuple(choices)
    allowed = ", ".join(repr(c) for c in choices)
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim > 0:
        raise TypeError(f"{name} must be one of {allowed}, not an array of shape "
                        f"{tuple(value.shape)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def check_finite(name: str, x: np.ndarray | torch.Tensor) -> None:
    """Raise ``ValueError`` if the array ``x`` holds NaN or inf."""
    if isinstance(x, torch.Tensor):
        ok = bool(torch.isfinite(x.detach()).all())
    else:
        ok = bool(np.isfinite(x).all())
    if not ok:
        raise ValueError(f"{name} contains NaN or inf values (it must be finite)")


def check_array(name: str, x: Any) -> None:
    """Raise ``TypeError`` unless ``x`` is a NumPy array or a torch tensor."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor, got {type(x).__name__}")


def check_shape(
    name: str, x: np.ndarray | torch.Tensor, shape: tuple[int | None | str, ...]
) -> None:
    """Check ``x.shape`` against a pattern; ``None`` or a string matches any size.

    Strings name the dimension in the message, e.g. ``("N", "n", "D")``.
    """
    check_array(name, x)
    if x.ndim != len(shape):
        pattern = "(" + ", ".join(str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {pattern}, got {tuple(x.shape)}")
    for axis, (got, want) in enumerate(zip(x.shape, shape, strict=True)):
        if isinstance(want, int) and got != want:
            pattern = "(" + ", ".join(str(s) for s in shape) + ")"
            raise ValueError(
                f"{name} must have shape {pattern} (axis {axis} = {want}), got {tuple(x.shape)}"
            )


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (NumPy's included), else raise ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_seeds(name: str, seeds: Any, *, max_count: int = 100_000) -> list[int]:
    """Seeds as a non-empty list of ints >= 0: one int, or an iterable of ints (a range).

    The one seed helper of attnlab: experiments that run one model per seed call it.
    """
    if isinstance(seeds, (Integral, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"{name} must be an int or a sequence of ints >= 0, got "
                        f"{type(seeds).__name__} {seeds!r}")
    out = [check_int(name, s, min=0) for s in seeds]
    if not out:
        raise ValueError(f"{name} must hold at least one seed")
    if len(out) > max_count:
        raise ValueError(f"{name} must hold at most {max_count} seeds, got {len(out)}")
    return out


def check_size(names: str, *sizes: int, limit: int = MAX_ELEMENTS) -> None:
    """Raise ``ValueError`` when the product of ``sizes`` (an array's element count) exceeds
    ``limit``; ``names`` says which arguments they are, e.g. ``"N * n * D"``."""
    total = 1
    for s in sizes:
        total *= int(s)
    if total > limit:
        raise ValueError(f"{names} = {total:,} elements is too large (at most {limit:,}); "
                         f"got {' * '.join(str(int(s)) for s in sizes)}")


def check_instance(name: str, value: Any, cls: type | tuple[type, ...], *,
                   allow_none: bool = False) -> Any:
    """Return ``value`` if it is an instance of ``cls`` (or ``None`` when allowed), else
    raise ``TypeError`` naming ``name``, the expected type and what was received."""
    if value is None and allow_none:
        return value
    if not isinstance(value, cls):
        want = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        if allow_none:
            want += " or None"
        raise TypeError(f"{name} must be a {want}, got {type(value).__name__}")
    return value


def check_callable(name: str, value: Any, *, allow_none: bool = True) -> Any:
    """Return ``value`` if it is callable (or ``None`` when allowed), else ``TypeError``."""
    if value is None and allow_none:
        return value
    if not callable(value):
        raise TypeError(f"{name} must be callable{' or None' if allow_none else ''}, got "
                        f"{type(value).__name__}")
    return value


def check_int_sequence(name: str, values: Any, *, min: int | None = None,
                       max: int | None = None, max_count: int = 100_000) -> list[int]:
    """A non-empty sequence of integers (each checked as by :func:`check_int`) as a list."""
    if isinstance(values, (np.ndarray, torch.Tensor)):
        arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-d sequence of integers, got shape {arr.shape}")
        values = arr.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of integers, got {type(values).__name__} "
                        f"{values!r}")
    out = [check_int(name, v, min=min, max=max) for v in values]
    if not out:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got no values")
    if len(out) > max_count:
        raise ValueError(f"{name} must hold at most {max_count} values, got {len(out)}")
    return out


def check_real_sequence(name: str, values: Any, *, min: float | None = None,
                        max: float | None = None, strict_min: bool = False,
                        max_count: int = 100_000) -> list[float]:
    """A non-empty sequence of finite reals (each checked as by :func:`check_real`)."""
    if isinstance(values, (np.ndarray, torch.Tensor)):
        arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-d sequence of numbers, got shape {arr.shape}")
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        values = arr.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__} "
                        f"{values!r}")
    out = [check_real(name, v, min=min, max=max, strict_min=strict_min) for v in values]
    if not out:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got no values")
    if len(out) > max_count:
        raise ValueError(f"{name} must hold at most {max_count} values, got {len(out)}")
    return out


_KIND_NAMES = {"b": "bool", "c": "complex", "O": "object", "U": "str", "S": "bytes",
               "V": "void", "M": "datetime", "m": "timedelta"}


def _dtype_kind(x: np.ndarray | torch.Tensor) -> tuple[str, str]:
    """(NumPy kind letter, dtype name) of an array or tensor."""
    if isinstance(x, torch.Tensor):
        dt = x.dtype
        if dt.is_complex:
            return "c", str(dt)
        if dt == torch.bool:
            return "b", str(dt)
        return ("f" if dt.is_floating_point else "i"), str(dt)
    return x.dtype.kind, str(x.dtype)


def check_float_array(
    name: str,
    x: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple[int | None | str, ...] | None = None,
    finite: bool = True,
    allow_int: bool = True,
    nonempty: bool = True,
    grad: str = "detach",
) -> np.ndarray | torch.Tensor:
    """Check an array argument; return it (detached when ``grad="detach"``).

    - type: a NumPy array or a torch tensor (``TypeError`` otherwise);
    - dtype: real numbers. Complex values raise (they would be cast to their real part),
      and so do bool, string and object arrays; integer arrays are accepted (converted
      exactly to floats by the callers) unless ``allow_int=False``;
    - ``ndim`` (one value or several allowed) and ``shape`` (see :func:`check_shape`);
    - ``nonempty``: at least one element; ``finite``: no NaN or inf;
    - ``grad``: a tensor that requires grad is detached (``"detach"``: the result is a
      plain number), kept (``"keep"``: the function is differentiable), or rejected
      (``"reject"``).
    """
    check_array(name, x)
    kind, dname = _dtype_kind(x)
    if kind == "c":
        raise TypeError(f"{name} must hold real numbers, got complex dtype {dname} "
                        f"(pass x.real explicitly if the imaginary part is meant to be dropped)")
    if kind not in "iuf" or (kind in "iu" and not allow_int):
        want = "floating-point" if not allow_int else "real (integer or floating-point)"
        raise TypeError(f"{name} must hold {want} numbers, got dtype {dname}")
    if isinstance(x, torch.Tensor) and x.requires_grad:
        if grad == "reject":
            raise ValueError(f"{name} must not require grad (call {name}.detach() first)")
        if grad == "detach":
            x = x.detach()
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if shape is not None:
        check_shape(name, x, shape)
    if nonempty and _numel(x) == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if finite:
        check_finite(name, x)
    return x


def _numel(x: np.ndarray | torch.Tensor) -> int:
    return int(x.numel()) if isinstance(x, torch.Tensor) else int(x.size)


def check_adam(betas: Any, eps: Any) -> tuple[tuple[float, float], float]:
    """Adam's constants: ``betas`` two reals in ``[0, 1)``, ``eps`` a real > 0."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, (tuple, list)):
        raise TypeError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got "
                        f"{type(betas).__name__} {betas!r}")
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {len(betas)} values")
    b = tuple(check_real("betas", v, min=0.0) for v in betas)
    if not all(v < 1 for v in b):
        raise ValueError(f"betas must each be in [0, 1), got {tuple(betas)!r}")
    return b, check_real("eps", eps, min=0.0, strict_min=True)
