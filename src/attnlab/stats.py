"""Statistics over seeds: counts with a Wilson interval, medians with quantiles.

The book's rule: a sentence that generalizes from runs ("converges in k of n") rests on at
least 32 consecutive seeds and is reported as ``k/n`` with a 95 % interval, or as a median
with quantiles. These helpers compute exactly those, for :func:`attnlab.dynamics.sweep`
and for chapters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._validate import check_float_array, check_int, check_real

__all__ = ["Count", "Spread", "chance_bound", "count", "seeds_needed", "spread",
           "wilson_interval"]

# Two-sided standard-normal quantiles for the levels the book uses.
_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n`` at confidence ``level``.

    Unlike ``k/n +- z sqrt(p(1-p)/n)`` it stays inside [0, 1] and is not empty at
    ``k = 0`` or ``k = n``: for 0/32 it is [0, 0.107].
    """
    n = check_int("n", n, min=1)
    k = check_int("k", k, min=0, max=n)
    level = check_real("level", level)
    if level not in _Z:
        raise ValueError(f"level must be one of {sorted(_Z)}, got {level}")
    z = _Z[level]
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact ends at k = 0 and k = n (rounding would put them a hair off 0 or 1).
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def chance_bound(n: int, n_se: float = 4.0, chance: float = 0.5) -> float:
    """Accuracy ``n_se`` standard errors above ``chance`` on ``n`` test examples.

    A classifier that guesses has accuracy ``chance +- sqrt(chance (1 - chance) / n)``; a
    final test accuracy above ``chance + n_se`` of those errors has "left chance" (for
    ``n = 2000`` at 0.5 and four errors: 0.545).
    """
    n = check_int("n", n, min=1)
    n_se = check_real("n_se", n_se, min=0.0)
    chance = check_real("chance", chance, min=0.0, max=1.0, strict_min=True)
    if chance >= 1.0:
        raise ValueError(f"chance must be < 1, got {chance}")
    return chance + n_se * math.sqrt(chance * (1.0 - chance) / n)


@dataclass(frozen=True)
class Count:
    """``k`` successes in ``n`` runs with a Wilson interval ``[lo, hi]``."""

    k: int
    n: int
    lo: float
    hi: float
    level: float = 0.95

    @property
    def rate(self) -> float:
        return self.k / self.n

    def __str__(self) -> str:
        return f"{self.k}/{self.n} ({self.level:.0%} CI {self.lo:.2f}-{self.hi:.2f})"


def count(success: Sequence[bool] | np.ndarray, level: float = 0.95) -> Count:
    """Count the true entries of a boolean vector (one entry per run) with its interval."""
    s = np.asarray(success)
    if s.dtype != bool:
        raise TypeError(f"success must be a boolean array, got dtype {s.dtype}")
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"success must be a non-empty 1-d array, got shape {s.shape}")
    k, n = int(s.sum()), int(s.size)
    lo, hi = wilson_interval(k, n, level)
    return Count(k, n, lo, hi, level)


@dataclass(frozen=True)
class Spread:
    """Median and the ``q`` and ``1 - q`` quantiles of a sample of ``n`` runs."""

    median: float
    lo: float
    hi: float
    n: int
    q: float = 0.25

    def __str__(self) -> str:
        return (f"median {self.median:.3g} ({self.q:.0%}-{1 - self.q:.0%} quantiles "
                f"{self.lo:.3g}-{self.hi:.3g}, n = {self.n})")


def spread(values: Sequence[float] | np.ndarray, q: float = 0.25) -> Spread:
    """Median with the ``q`` and ``1 - q`` quantiles (default: the quartiles).

    NaN entries (diverged runs) are not dropped silently: they raise ``ValueError``.
    """
    if isinstance(values, (list, tuple)):
        try:
            values = np.asarray(values)
        except (TypeError, ValueError):
            raise TypeError("values must be a sequence of numbers") from None
    v = np.asarray(check_float_array("values", values, finite=False, nonempty=False),
                   dtype=float).reshape(-1)
    q = check_real("q", q, min=0.0, max=0.5)
    if v.size == 0:
        raise ValueError("values must hold at least one run")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite (count diverged runs separately)")
    lo, med, hi = np.quantile(v, [q, 0.5, 1 - q])
    return Spread(float(med), float(lo), float(hi), int(v.size), q)


def _welch_halfwidth(var_a: float, var_b: float, n_a: int, n_b: int, level: float) -> float:
    """Half-width ``t_{(1+level)/2, df} sqrt(var_a / n_a + var_b / n_b)`` of Welch's interval
    for a difference of two means, from the variances over ``n_a`` and ``n_b >= 2`` runs
    (``df``: Welch-Satterthwaite). The one formula behind :func:`seeds_needed` and
    :func:`attnlab.experiments.results.difference`."""
    from scipy.stats import t as student_t

    ea, eb = var_a / n_a, var_b / n_b
    if ea + eb == 0.0:
        return 0.0
    top = max(ea, eb)  # relative to the larger: no underflow in the squares
    ra, rb = ea / top, eb / top
    df = (ra + rb) ** 2 / (ra * ra / (n_a - 1) + rb * rb / (n_b - 1))
    return float(student_t.ppf(0.5 + level / 2, df)) * math.sqrt(ea + eb)


def seeds_needed(sd_a: float, sd_b: float, diff: float, level: float = 0.95,
                 max_seeds: int = 100_000) -> int:
    """Seeds per variant from which a Welch ``level`` interval of a difference of means is
    narrower on each side than ``|diff|``: the smallest ``n >= 2`` with
    ``t_{(1+level)/2, df} sqrt((sd_a^2 + sd_b^2) / n) < |diff|`` (``df``: Welch's, for ``n``
    runs of each). With spreads ``sd_a``, ``sd_b`` over seeds, fewer seeds give an interval
    that cannot exclude zero for a true difference of that size, on average.

    A planning number for a difference of a given size, not the power of a finished study.
    Raises ``ValueError`` when ``max_seeds`` would not do.
    """
    sd_a = check_real("sd_a", sd_a, min=0.0)
    sd_b = check_real("sd_b", sd_b, min=0.0)
    diff = check_real("diff", diff)
    if not 0.0 < (level := check_real("level", level)) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    max_seeds = check_int("max_seeds", max_seeds, min=2)
    if diff == 0.0:
        raise ValueError("diff must be nonzero: no number of seeds resolves a zero difference")
    if sd_a == sd_b == 0.0:
        return 2
    m = max(sd_a, sd_b, abs(diff))  # in units of m: no overflow for huge inputs
    a, b, delta = sd_a / m, sd_b / m, abs(diff) / m

    def narrow(n: int) -> bool:
        return _welch_halfwidth(a * a, b * b, n, n, level) < delta

    if not narrow(max_seeds):
        raise ValueError(f"more than max_seeds={max_seeds} seeds would be needed for "
                         f"diff={diff} with sd_a={sd_a}, sd_b={sd_b}")
    lo, hi = 1, max_seeds  # the half-width falls with n: bisect for the first narrow n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if narrow(mid) else (mid, hi)
    return max(hi, 2)
