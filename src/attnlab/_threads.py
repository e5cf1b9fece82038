"""The one thread limiter of attnlab: run tiny tensor work on fewer CPU threads.

Why: theory-sized problems do many tiny operations; torch's intra-op thread pool only
adds synchronization there, and on a shared 2-core machine a waiting OpenMP thread made
steps up to 40x slower (300 Adam steps on 8 small heads: 4.8-8.4 s with 2 threads versus
0.26-0.44 s with 1).

``torch.set_num_threads`` is process-wide, and a widget may train in a worker thread
while the main thread computes something else. So :func:`limit_threads` changes the
setting only while no *other* thread is inside a ``limit_threads`` block, and the last
thread to leave restores the setting found by the first one to enter (also on errors).
Nested blocks in one thread change and restore it like a stack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["limit_threads", "small", "for_data", "SMALL", "GRAM_SMALL"]

_lock = threading.Lock()
_inside: dict[int, int] = {}  # thread id -> depth of its limit_threads blocks
_original: list[int] = []  # the setting found when the first block was entered


@contextmanager
def limit_threads(k: int | None) -> Iterator[None]:
    """Use ``k`` intra-op CPU threads inside the block (``None``: leave the setting as is).

    Safe to nest and to use from several threads at once (see the module doc): while
    another thread is inside a block the setting is left alone, and the original setting
    is back once every block has been left.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be an int >= 1 or None, got {k!r}")
    me = threading.get_ident()
    with _lock:
        if not _inside:
            _original[:] = [torch.get_num_threads()]
        alone = all(t == me for t in _inside)
        prev = torch.get_num_threads()
        changed = alone and k is not None and k != prev
        if changed:
            torch.set_num_threads(k)
        _inside[me] = _inside.get(me, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _inside[me] -= 1
            if not _inside[me]:
                del _inside[me]
            if not _inside:  # the last one out restores the setting found by the first
                if torch.get_num_threads() != _original[0]:
                    torch.set_num_threads(_original[0])
            elif changed and all(t == me for t in _inside):
                torch.set_num_threads(prev)  # nested block of a thread that is alone


SMALL = 2_000_000  # flops per operation below which threads only add overhead


def small(work: float) -> int | None:
    """1 when ``work`` (flops of the typical operation) is small, else None."""
    return 1 if work < SMALL else None


GRAM_SMALL = 5e8  # flops of the Gram matrix below which one thread is about as fast


def for_data(N: int, p: int) -> int | None:
    """Threads for a whole fit on ``A (N, p)``: 1 when forming ``A^T A`` is cheap.

    Measured at N = 2000, p = 256 under load from other jobs: 0.06-0.12 s with 2 threads
    versus 0.012 s with 1 (the Gram product takes ~10 ms on one core)."""
    return 1 if N * p * min(N, p) < GRAM_SMALL else None
