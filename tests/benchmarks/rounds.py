"""How many rounds each benchmark of this suite runs: pytest-benchmark's own rule for its
calibrated mode (enough rounds to fill --benchmark-max-time, at least --benchmark-min-rounds),
applied to a call time measured here. The suite runs in pedantic mode (to synchronise a GPU around
each round), which calibrates nothing: a fixed count would rest on a guessed call time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Every round's time goes into the saved file; past 1000 rounds the median of a ms-scale call is
# known far better than the 15 % that `make bench-pytest-compare` fails on, and files stay small.
MAX_ROUNDS = 1000
# timed calls; the fastest decides: a slow one (a page fault, another process, a strategy still
# settling) would cut the rounds and the samples with them, while a fast one can only make the
# benchmark run past --benchmark-max-time, by at most the ratio and never beyond MAX_ROUNDS
PROBES = 5


def call_time(call: Callable[[], object], clock: Callable[[], float] = time.perf_counter,
              probes: int = PROBES) -> float:
    """The shortest time of `probes` calls of `call` (already compiled), by `clock`."""
    times = []
    for _ in range(probes):
        t0 = clock()
        call()
        times.append(clock() - t0)
    return min(times)


def limits(config) -> tuple[float, int]:
    """(--benchmark-max-time in s, --benchmark-min-rounds) of this pytest session (the plugin keeps
    the time as a decimal string)."""
    return float(config.getoption("benchmark_max_time")), int(config.getoption("benchmark_min_rounds"))


def rounds_for(duration: float, max_time: float, min_rounds: int) -> int:
    """Rounds of a call taking `duration` s: ceil(max_time / duration), as pytest-benchmark picks
    them, at least min_rounds, at most MAX_ROUNDS (a call too fast for the clock gets the most)."""
    if duration <= 0:
        return max(min_rounds, MAX_ROUNDS)
    return max(min_rounds, min(MAX_ROUNDS, math.ceil(max_time / duration)))
