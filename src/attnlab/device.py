"""Pick the compute device: ``cuda`` -> ``mps`` -> ``cpu``, with an override.

Override with the argument or the environment variable ``ATTNLAB_DEVICE``.
MPS has no float64, so ``get_device(dtype=torch.float64)`` falls back to the CPU there.
"""

from __future__ import annotations

import os

import torch

from ._validate import check_choice

__all__ = ["available_devices", "get_device", "resolve_device", "DTYPES"]

_KINDS = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def available_devices() -> list[str]:
    """Devices usable on this machine, best first, ``"cpu"`` always last."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def get_device(
    device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.device:
    """Return a ``torch.device``.

    Args:
        device: ``"auto"``/``None`` (best available, or ``$ATTNLAB_DEVICE`` if set),
            ``"cpu"``, ``"cuda"``, ``"mps"``, or a ``torch.device``.
        dtype: the dtype the computation will use; ``torch.float64`` on MPS falls back
            to the CPU (MPS has no float64).

    Raises:
        ValueError: unknown device name, or a device that is not available here.
    """
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or None, got {type(dtype).__name__}")
    if isinstance(device, torch.device):
        kind = device.type
    else:
        if device is None:
            device = os.environ.get("ATTNLAB_DEVICE", "auto") or "auto"
        if not isinstance(device, str):
            raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
        kind = check_choice("device", device.split(":")[0], _KINDS)
    if kind == "auto":
        kind = available_devices()[0]
    elif kind not in available_devices():
        raise ValueError(
            f"device {kind!r} is not available on this machine; available: {available_devices()}"
        )
    if kind == "mps" and dtype == torch.float64:
        kind = "cpu"
    if isinstance(device, torch.device) and device.type == kind:
        return device
    if isinstance(device, str) and ":" in device and device.startswith(kind):
        return torch.device(device)
    return torch.device(kind)


def resolve_device(device: str, dtype: str = "float64") -> tuple[str, str]:
    """Return ``(device, note)``: the device to use and why it differs from the request.

    A device that is not available here (e.g. ``"cuda"`` without a GPU) falls back to the
    CPU, and so does ``"mps"`` with float64 (MPS has no float64); the note says so.
    ``"auto"`` picks the best available device. Unlike :func:`get_device` this never
    raises for an unavailable device: widgets and experiments run on, and show the note.
    """
    check_choice("device", device, _KINDS)
    check_choice("dtype", dtype, tuple(DTYPES))
    if device != "auto" and device not in available_devices():
        return "cpu", f"{device} is not available on this machine, so this runs on the CPU."
    dev = get_device(device, dtype=DTYPES[dtype]).type
    if dev != device and device != "auto":
        return dev, f"{device} has no {dtype}, so this runs on the {dev.upper()}."
    return dev, ""
