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
    "check_int",
    "check_real",
    "check_choice",
    "check_finite",
    "check_shape",
    "check_array",
    "check_bool",
    "check_seeds",
]


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and the allowed range."""
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
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def check_finite(name: str, x: np.ndarray | torch.Tensor) -> None:
    """Raise ``ValueError`` if the array ``x`` holds NaN or inf."""
    if isinstance(x, torch.Tensor):
        ok = bool(torch.isfinite(x).all())
    else:
        ok = bool(np.isfinite(x).all())
    if not ok:
        raise ValueError(f"{name} contains NaN or inf values")


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
