"""Modular division ``a / b = c (mod p)``: the grokking task (Power et al. 2022).

Every equation ``a / b = c`` with ``a in 0..p-1``, ``b in 1..p-1`` and
``c = a * b^(p-2) mod p`` (Fermat's inverse, ``p`` prime), so ``c * b == a (mod p)``:
``p (p - 1)`` equations, 9,312 for ``p = 97`` (``shared/notes/data.md`` §4; experiment E2
of the convex-attention paper). A seeded random fraction is the training set, the rest the
test set.

Vocabulary (``p + 2`` tokens): ids ``0..p-1`` are the numbers, ``p`` is the operator ``/``,
``p + 1`` is ``=``. A sequence is the 5 tokens ``(a, /, b, =, c)``; a model reads the first
four and predicts ``c``: ``x, y = seq[:, :4], seq[:, 4]``. (Power et al. also wrap the
sequence in ``<eos>`` tokens; our choice is to leave them out, as they carry nothing for a
fixed-length task.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import check_int, check_real

__all__ = ["ModularDivision", "division_equations", "modular_division"]


@dataclass(frozen=True)
class ModularDivision:
    """Train/test split of the modular-division equations.

    Attributes:
        p: the prime modulus.
        train: ``(N_train, 5)`` int64 rows ``(a, op, b, eq, c)``, sorted by ``(a, b)``.
        test: ``(N_test, 5)`` int64, the remaining equations; ``N_train + N_test = p (p-1)``.
        op_token, eq_token: ids of ``/`` (``p``) and ``=`` (``p + 1``).
        vocab_size: ``p + 2``.
        train_fraction, seed: how the split was drawn.
    """

    p: int
    train: np.ndarray
    test: np.ndarray
    op_token: int
    eq_token: int
    vocab_size: int
    train_fraction: float
    seed: int


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % q for q in range(2, math.isqrt(p) + 1))


def _check_p(p: int) -> int:
    p = check_int("p", p, min=3, max=10_007)  # p^2 equations: larger is a typo
    if not _is_prime(p):
        raise ValueError(f"p must be a prime >= 3 (division needs inverses mod p), got {p}")
    return p


def division_equations(p: int = 97) -> np.ndarray:
    """All ``p (p - 1)`` equations ``(a, p, b, p + 1, c)``, sorted by ``(a, b)``.

    Returns:
        int64 ``(p (p - 1), 5)``.
    """
    p = _check_p(p)
    a, b = np.meshgrid(np.arange(p), np.arange(1, p), indexing="ij")
    a, b = a.ravel(), b.ravel()
    inverse = np.array([0] + [pow(int(v), p - 2, p) for v in range(1, p)], np.int64)
    c = a * inverse[b] % p
    return np.stack([a, np.full_like(a, p), b, np.full_like(a, p + 1), c], 1).astype(np.int64)


def modular_division(p: int = 97, *, train_fraction: float = 0.5,
                     seed: int = 0) -> ModularDivision:
    """Seeded train/test split of all equations ``a / b = c (mod p)``.

    Args:
        p: prime modulus ``>= 3`` (97 in Power et al. and the convex-attention paper).
        train_fraction: share of the ``p (p - 1)`` equations in the training set, in
            ``(0, 1)``; both sides keep at least one equation.
        seed: seed of the ``np.random.default_rng`` permutation.

    Returns:
        :class:`ModularDivision` with ``train (N_train, 5)`` and ``test (N_test, 5)``.
    """
    p = _check_p(p)
    train_fraction = check_real("train_fraction", train_fraction, min=0.0, strict_min=True)
    if train_fraction >= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    seed = check_int("seed", seed, min=0)
    eqs = division_equations(p)
    n_train = min(max(int(round(train_fraction * len(eqs))), 1), len(eqs) - 1)
    perm = np.random.default_rng(seed).permutation(len(eqs))
    train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    return ModularDivision(p, eqs[train], eqs[test], p, p + 1, p + 2, train_fraction, seed)
