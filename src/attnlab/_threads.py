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

With ``blas=True`` the limit also covers the BLAS libraries NumPy and SciPy call
(OpenBLAS, via threadpoolctl): the convex solvers do their small dense algebra in NumPy,
and a second pool that ignores the limit spins beside torch's. Only the convex solvers ask
for it: resizing an OpenBLAS pool while another thread is inside a NumPy call is not
something OpenBLAS promises to survive, and a widget may train in a worker thread while
the main thread draws. Measured on the 48 BCD fits of
``bench_convex_peers.py --quick`` (2 cores, two alternating rounds): with one core busy
they took 1.12x as long in geometric mean with NumPy's OpenBLAS at its default 2 threads
(up to 2.5x on single fits); on a quiet machine the two were equal within noise (0.98).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import ThreadpoolController

__all__ = ["limit_threads", "small", "for_data", "SMALL", "GRAM_SMALL"]

_lock = threading.Lock()
_inside: dict[int, int] = {}  # thread id -> depth of its limit_threads blocks
_original: list[tuple[int, ...]] = []  # the setting found when the first block was entered
_blas: list = []  # threadpoolctl's controllers of the BLAS libraries (built on first use)


def _libraries() -> list:
    """The BLAS libraries loaded in this process (NumPy's and SciPy's OpenBLAS), found once
    (about 4 ms); SciPy's LAPACK is loaded first so that it is among them."""
    if not _blas:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)

        _blas.append(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas[0]


def _get() -> tuple[int, ...]:
    """The thread counts of torch's pool and of each BLAS library."""
    return (torch.get_num_threads(), *(lib.num_threads for lib in _libraries()))


def _set(setting: tuple[int, ...]) -> None:
    """Set the counts of :func:`_get`, touching only the pools whose count differs."""
    if torch.get_num_threads() != setting[0]:
        torch.set_num_threads(setting[0])
    for lib, k in zip(_libraries(), setting[1:], strict=True):
        if lib.num_threads != k:
            lib.set_num_threads(k)


@contextmanager
def limit_threads(k: int | None, blas: bool = False) -> Iterator[None]:
    """Use ``k`` intra-op CPU threads inside the block (``None``: leave the setting as is);
    ``blas=True``: NumPy's and SciPy's BLAS too, else their setting is left alone.

    Safe to nest and to use from several threads at once (see the module doc): while
    another thread is inside a block the setting is left alone, and the original setting
    is back once every block has been left.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be an int >= 1 or None, got {k!r}")
    me = threading.get_ident()
    with _lock:
        prev = _get()
        if not _inside:
            _original[:] = [prev]
        alone = all(t == me for t in _inside)
        want = None if k is None else (k,) + ((k,) * (len(prev) - 1) if blas else prev[1:])
        changed = alone and want is not None and want != prev
        if changed:
            _set(want)
        _inside[me] = _inside.get(me, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _inside[me] -= 1
            if not _inside[me]:
                del _inside[me]
            if not _inside:  # the last one out restores the setting found by the first
                _set(_original[0])
            elif changed and all(t == me for t in _inside):
                _set(prev)  # nested block of a thread that is alone


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
