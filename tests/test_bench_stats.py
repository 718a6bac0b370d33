"""The median's distribution-free confidence interval (bench/model/stats.py) at the sample counts the
stopping rule meets in practice (30 to 100 samples), against exact ranks and by simulation.

At n = 10 and 25 the ranks for alpha and for alpha/2 happen to coincide, so tests there cannot tell
a one-sided rank from the two-sided one; at n = 30 and 100 they differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from bench.model import stats


# Exact 95 % ranks (1-based) of the order statistics bracketing the median: the largest r with
# P(K <= r - 1) <= 0.025, K ~ binom(n, 1/2), and n + 1 - r. They are the ranks tabulated by
# Campbell & Gardner, "Calculating confidence intervals for some non-parametric analyses",
# BMJ 1988;296:1454 (n = 30: 10th and 21st; n = 100: 40th and 61st).
@pytest.mark.parametrize("n,low,high,below,above", [
    (30, 10, 21, 0.021387, 0.049369),        # P(K <= 9), P(K <= 10): 0.025 falls between
    (100, 40, 61, 0.017600, 0.028444),       # P(K <= 39), P(K <= 40)
])
def test_median_ci_ranks_are_the_exact_binomial_ones(n, low, high, below, above):
    assert st.binom.cdf(low - 1, n, 0.5) == pytest.approx(below, abs=1e-6) and below <= 0.025 < above
    assert st.binom.cdf(low, n, 0.5) == pytest.approx(above, abs=1e-6)
    x = np.arange(1, n + 1, dtype=float)[::-1]            # the values are their own ranks; order of input irrelevant
    assert stats.median_ci(x) == (float(low), float(high))
    # 99 %: wider, still two-sided (alpha/2 = 0.005 in each tail)
    lo99 = int(st.binom.ppf(0.005, n, 0.5))
    assert stats.median_ci(x, confidence=0.99) == (float(lo99), float(n + 1 - lo99))


@pytest.mark.parametrize("n,exact", [(30, 0.95723), (100, 0.96480)])
def test_median_ci_covers_the_true_median_at_least_95_percent_of_the_time(n, exact):
    # the interval's exact coverage is 1 - 2 P(K <= r - 1); a one-sided rank (alpha in place of
    # alpha/2) would cover about 90 % (0.9013 at n = 30, 0.9114 at n = 100)
    low = stats.median_ci(np.arange(1, n + 1))[0]
    assert 1 - 2 * st.binom.cdf(low - 1, n, 0.5) == pytest.approx(exact, abs=1e-5)
    rng = np.random.default_rng(n)
    trials = 4000
    hits = 0
    for _ in range(trials):
        x = rng.lognormal(size=n)                          # skewed, like timings; true median 1
        lo, hi = stats.median_ci(x)
        hits += lo <= 1.0 <= hi
    # 4000 trials: the standard error of the coverage is about 0.003
    assert exact - 0.015 <= hits / trials <= exact + 0.015


def test_median_ci_at_the_edges_of_its_domain():
    assert all(np.isnan(stats.median_ci([])))
    assert stats.median_ci([5.0]) == (-np.inf, np.inf)
    # n = 6 is the smallest count with a 95 % interval: the extremes, P(K <= 0) = 1/64 <= 0.025
    assert stats.median_ci([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]) == (1.0, 6.0)
    assert stats.median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) == (-np.inf, np.inf)


def test_summarize_empty_and_at_another_confidence():
    s = stats.summarize([])
    assert s.n == 0 and all(np.isnan(v) for v in (s.median, s.iqr, s.min, s.ci_low, s.ci_high))
    one = stats.summarize([2.0])
    assert (one.median, one.iqr, one.min, one.n) == (2.0, 0.0, 2.0, 1)
    x = np.arange(1, 31, dtype=float)
    assert (stats.summarize(x).ci_low, stats.summarize(x).ci_high) == (10.0, 21.0)
    lo99 = float(st.binom.ppf(0.005, 30, 0.5))                 # 99 %: the 8th and 23rd
    assert (stats.summarize(x, confidence=0.99).ci_low, stats.summarize(x, confidence=0.99).ci_high) == (lo99, 31 - lo99)
    assert lo99 == 8.0


def test_is_stable_defaults_to_10_samples_and_accepts_a_half_width_equal_to_the_tolerance():
    assert stats.is_stable([1.0] * 10, 0.02) and not stats.is_stable([1.0] * 9, 0.02)
    assert stats.is_stable([1.0] * 10, 0.0)                    # half-width 0 <= 0
    assert stats.summarize([]).rel_ci_halfwidth == np.inf and stats.summarize([0.0] * 10).rel_iqr == np.inf
