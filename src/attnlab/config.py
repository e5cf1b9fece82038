"""Book-wide run settings: fast mode for CI, full mode for readers.

``ATTNLAB_FAST=1`` shrinks every chapter's sizes and step counts. Chapters write
``steps = pick(full=20_000, fast=500)`` so both modes are visible in one place.
"""

from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["fast_mode", "pick"]

T = TypeVar("T")


def fast_mode() -> bool:
    """True when ``ATTNLAB_FAST`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("ATTNLAB_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full: T, fast: T) -> T:
    """Return ``fast`` in fast mode, else ``full``."""
    return fast if fast_mode() else full
