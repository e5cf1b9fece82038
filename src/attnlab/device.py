"""Pick the compute device: ``cuda`` -> ``mps`` -> ``cpu``, with an override.

Override with the argument or the environment variable ``ATTNLAB_DEVICE``.
MPS has no float64, so ``get_device(dtype=torch.float64)`` falls back to the CPU there.
"""

from __future__ import annotations

import os

import torch

from ._validate import check_choice

__all__ = ["available_devices", "get_device"]

_KINDS = ("auto", "cpu", "cuda", "mps")


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
