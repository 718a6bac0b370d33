"""The median's distribution-free confidence interval (bench/stats.py) at the sample counts the
stopping rule meets in practice (30 to 100 samples), against exact ranks and by simulation.

At n = 10 and 25 the ranks for alpha and for alpha/2 happen to coincide, so tests there cannot tell
a one-sided rank from the two-sided one; at n = 30 and 100 they differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from bench import stats


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
