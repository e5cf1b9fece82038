"""Run tiny tensor work on one CPU thread.

On a shared 2-core machine, torch's intra-op thread pool stalls tiny operations when the
other core is busy (measured: 300 Adam steps on 8 small heads took 4.8-8.4 s with 2 threads
versus 0.26-0.44 s with 1).  The solvers here do many tiny operations, so they switch to one
thread for those loops and restore the caller's setting afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

SMALL = 2_000_000  # flops per operation below which threads only add overhead


@contextmanager
def threads(k: int | None) -> Iterator[None]:
    """Use ``k`` intra-op threads inside the block (None: leave as is)."""
    old = torch.get_num_threads()
    if k is None or k == old:
        yield
        return
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def small(work: float) -> int | None:
    """1 when ``work`` (flops of the typical operation) is small, else None."""
    return 1 if work < SMALL else None


GRAM_SMALL = 5e8  # flops of the Gram matrix below which one thread is about as fast


def for_data(N: int, p: int) -> int | None:
    """Threads for a whole fit on ``A (N, p)``: 1 when forming ``A^T A`` is cheap.

    Measured at N = 2000, p = 256 under load from other jobs: 0.06-0.12 s with 2 threads
    versus 0.012 s with 1 (the Gram product takes ~10 ms on one core)."""
    return 1 if N * p * min(N, p) < GRAM_SMALL else None
