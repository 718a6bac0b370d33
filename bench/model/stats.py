"""Summaries of timing samples and the stopping rule, with scipy.stats underneath.

A case is summarised by its median, interquartile range, minimum and sample count. The median's
confidence interval is distribution-free (order statistics: the ranks come from the binomial
distribution, scipy.stats.binom), so it needs no assumption about the shape of timing noise,
which is skewed and often multi-modal. Sampling stops when that interval is narrow enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st


@dataclass(frozen=True)
class Summary:
    median: float
    iqr: float
    min: float
    n: int
    ci_low: float
    ci_high: float

    @property
    def rel_ci_halfwidth(self) -> float:
        """Half the width of the median's confidence interval, relative to the median."""
        if not self.median > 0:
            return float("inf")
        return (self.ci_high - self.ci_low) / 2 / self.median

    @property
    def rel_iqr(self) -> float:
        return self.iqr / self.median if self.median > 0 else float("inf")


def median_ci(samples, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median: the order statistics whose ranks the
    binomial(n, 1/2) distribution puts around the middle. (-inf, inf) when n is too small (< 6)."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    alpha = 1 - confidence
    # The largest 0-based rank lo with P(K <= lo) <= alpha/2, K ~ binom(n, 1/2): then x[lo] and
    # x[n-1-lo] bracket the median with probability 1 - 2 P(K <= lo) >= confidence.
    # binom.ppf gives the smallest k with P(K <= k) >= alpha/2, hence the - 1.
    lo = int(_st.binom.ppf(alpha / 2, n, 0.5)) - 1
    hi = n - 1 - lo
    if lo < 0:
        return float("-inf"), float("inf")
    return float(x[lo]), float(x[hi])


def summarize(samples, confidence: float = 0.95) -> Summary:
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        nan = float("nan")
        return Summary(nan, nan, nan, 0, nan, nan)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    lo, hi = median_ci(x, confidence)
    return Summary(float(med), float(q3 - q1), float(x.min()), int(x.size), lo, hi)


def is_stable(samples, rel_tol: float, min_samples: int = 10) -> bool:
    """The stopping rule: enough samples, and the median known to within rel_tol (the half-width of
    its 95 % confidence interval, relative to the median)."""
    if len(samples) < min_samples:
        return False
    return summarize(samples).rel_ci_halfwidth <= rel_tol
