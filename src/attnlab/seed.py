"""Seeding: one call seeds Python, NumPy and torch and returns a local generator."""

from __future__ import annotations

import random

import numpy as np
import torch

from ._validate import check_int
from .device import available_devices

__all__ = ["seed_everything", "make_generator"]


def seed_everything(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """Seed ``random``, ``numpy`` and ``torch`` globally; return a ``torch.Generator``.

    Library functions in attnlab never rely on the global state: they take a ``seed`` or
    a generator. This helper is for notebooks that also call third-party code.
    """
    seed = check_int("seed", seed, min=0, max=2**63 - 1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return make_generator(seed, device)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``.

    Raises ``ValueError`` naming ``device`` when it is not available on this machine."""
    seed = check_int("seed", seed, min=0, max=2**63 - 1)
    try:
        g = torch.Generator(device=device)
    except (RuntimeError, TypeError):
        # torch's own message ("Device type CUDA is not supported ...") names no parameter
        if isinstance(device, (str, torch.device)):
            raise ValueError(f"device {str(device)!r} is not available on this machine; "
                             f"available: {available_devices()}") from None
        raise TypeError(f"device must be a str or torch.device, got "
                        f"{type(device).__name__}") from None
    g.manual_seed(seed)
    return g
