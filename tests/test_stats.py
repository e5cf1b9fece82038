"""Wilson intervals, spreads and the claim mechanism."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.book import ClaimError, claim
from attnlab.stats import count, spread, wilson_interval


def test_wilson_matches_the_closed_form_and_known_values():
    # Reference values (Wilson 1927; e.g. Newcombe 1998, table I): 0/10 -> [0, 0.2775],
    # 81/263 -> [0.2553, 0.3662].
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(32, 32)[1] == 1.0


def test_wilson_covers_at_about_the_nominal_rate():
    # Coverage of a 95 % interval at p = 0.3, n = 40 over 4000 simulated experiments.
    rng = np.random.default_rng(0)
    ks = rng.binomial(40, 0.3, size=4000)
    covered = np.mean([lo <= 0.3 <= hi for lo, hi in (wilson_interval(int(k), 40) for k in ks)])
    assert 0.93 <= covered <= 0.97


def test_count_and_spread_reject_bad_input():
    with pytest.raises(TypeError, match="success"):
        count([1, 0, 1])
    with pytest.raises(ValueError, match="values"):
        spread([1.0, np.nan])
    with pytest.raises(ValueError, match="k must be <= 3"):
        wilson_interval(4, 3)
    c = count(np.array([True, False, True, True]))
    assert (c.k, c.n) == (3, 4) and c.lo < 0.75 < c.hi and "3/4" in str(c)
    s = spread(np.arange(101.0))
    assert (s.median, s.lo, s.hi) == (50.0, 25.0, 75.0)


def test_claim_raises_with_the_sentence_and_values():
    claim(np.bool_(True), "holds")
    with pytest.raises(ClaimError, match="the Gaussian wins.*k = 3"):
        claim(False, "the Gaussian wins", k=3)
    with pytest.raises(TypeError, match="condition"):
        claim(np.array([True, True]), "ambiguous")


def test_chance_bound_is_n_se_binomial_errors_above_chance():
    from attnlab.stats import chance_bound

    assert chance_bound(2000) == pytest.approx(0.5 + 4 * 0.5 / np.sqrt(2000))
    assert chance_bound(100, n_se=2.0, chance=0.1) == pytest.approx(0.1 + 2 * 0.03)
    # a guessing classifier stays below the bound: 20,000 simulated test sets of 500 examples
    acc = np.random.default_rng(0).binomial(500, 0.5, size=20_000) / 500
    assert np.mean(acc > chance_bound(500)) < 1e-3
    assert np.mean(acc > chance_bound(500, n_se=1.0)) == pytest.approx(0.16, abs=0.02)
    with pytest.raises(ValueError, match="chance must be < 1"):
        chance_bound(10, chance=1.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        chance_bound(0)


def test_seeds_needed_is_the_first_n_whose_welch_interval_is_narrower_than_the_difference():
    from scipy.stats import t as student_t

    from attnlab.stats import seeds_needed

    # sd 1 and 1, diff 1: df = 2n - 2; t_{0.975,16} sqrt(2/9) = 0.9993 < 1 <= 1.0724 at n = 8
    assert seeds_needed(1.0, 1.0, 1.0) == 9 == seeds_needed(1.0, 1.0, -1.0)
    # the normal approximation 2 (1.96)^2 / 1 = 7.7 would say 8: the t quantile needs more
    for sa, sb, diff in ((0.008, 0.009, 0.006), (1.0, 3.0, 0.5), (0.2, 0.0, 0.1)):
        n = seeds_needed(sa, sb, diff)
        v, r = sa**2 + sb**2, (sa**2 + sb**2) ** 2 / (sa**4 + sb**4)
        assert student_t.ppf(0.975, (n - 1) * r) * np.sqrt(v / n) < abs(diff)
        assert n == 2 or student_t.ppf(0.975, (n - 2) * r) * np.sqrt(v / (n - 1)) >= abs(diff)
    assert seeds_needed(1.0, 1.0, 1.0, level=0.99) > 9
    assert seeds_needed(0.0, 0.0, 0.1) == 2
    # scale-free, and no overflow or underflow at the ends of the floats
    assert seeds_needed(1e300, 1e300, 1e300) == seeds_needed(1e-300, 1e-300, 1e-300) == 9
    assert seeds_needed(1e-200, 0.0, 1.0) == 2
    with pytest.raises(ValueError, match="diff"):
        seeds_needed(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="max_seeds"):
        seeds_needed(1.0, 1.0, 1e-3, max_seeds=100)
    with pytest.raises(ValueError, match="sd_a"):
        seeds_needed(-1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="level"):
        seeds_needed(1.0, 1.0, 1.0, level=1.0)
