"""NumPy <-> torch conversion, in one place (private).

Public functions of attnlab accept NumPy arrays or torch tensors and return the kind they
were given; these helpers do the conversions (no copy where none is needed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._validate import check_float_array

__all__ = ["to_numpy", "to_tensor", "to_torch", "back"]


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (detached, moved to the CPU) or anything array-like as a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_tensor(x: Any) -> torch.Tensor:
    """A tensor as is, anything array-like as a tensor sharing its memory where possible."""
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def to_torch(arrays: dict[str, Any], *, finite: bool = True,
             grad: str = "keep") -> tuple[list[torch.Tensor], bool]:
    """Named arrays as tensors of one common float dtype and device (the first non-CPU
    device among them, else the CPU).

    Each is checked by :func:`attnlab._validate.check_float_array` (NumPy or torch, real
    numbers: complex, bool and object arrays raise; integers convert exactly; finite unless
    ``finite=False``; tensors that require grad are kept differentiable unless
    ``grad="detach"``), and the error names the array.

    Returns the tensors and ``True`` when the caller should return NumPy (no torch input).
    """
    arrays = {name: check_float_array(name, x, finite=finite, nonempty=False, grad=grad)
              for name, x in arrays.items()}
    any_torch = any(isinstance(x, torch.Tensor) for x in arrays.values())
    ts = [to_tensor(x) for x in arrays.values()]
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    device = next((t.device for t in ts if t.device.type != "cpu"), torch.device("cpu"))
    return [t.to(device=device, dtype=dtype) for t in ts], not any_torch


def back(t: torch.Tensor, numpy_out: bool) -> Any:
    """``t`` as NumPy when ``numpy_out`` (see :func:`to_torch`), else the tensor."""
    return to_numpy(t) if numpy_out else t
