"""tests/benchmarks/rounds.py with a fake clock: the measured call time and the rounds it gives.
Runs in `make test` (it uses no benchmark fixture, so --benchmark-skip leaves it in)."""

from __future__ import annotations

import pytest

from .rounds import MAX_ROUNDS, PROBES, call_time, limits, rounds_for


class FakeClock:
    """A clock that each call of `call` moves on by the next of `durations`."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 100.0, list(durations), 0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.durations[self.calls]
        self.calls += 1


def test_call_time_is_the_fastest_of_the_timed_calls():
    clock = FakeClock([4.0, 0.003, 0.002, 0.009, 0.004])     # the first call slow (a page fault, say)
    assert call_time(clock.call, clock) == pytest.approx(0.002)
    assert clock.calls == PROBES


@pytest.mark.parametrize("duration, max_time, min_rounds, rounds", [
    (0.1, 1.0, 5, 10),          # the old assumption about a CPU matmul: 10 rounds fill the second
    (0.004, 1.0, 5, 250),       # a matmul of a few ms gets many more
    (0.03, 1.0, 5, 34),         # rounded up, as pytest-benchmark does
    (0.004, 2.0, 5, 500),       # --benchmark-max-time scales it
    (0.5, 1.0, 5, 5),           # a slow call: --benchmark-min-rounds
    (1e-7, 1.0, 5, MAX_ROUNDS),  # a call faster than the saved files need
    (0.0, 1.0, 5, MAX_ROUNDS),  # below the clock's resolution: no division by zero
    (1e-7, 1.0, 2000, 2000),    # an explicit --benchmark-min-rounds wins over the cap
])
def test_rounds_fill_the_max_time(duration, max_time, min_rounds, rounds):
    assert rounds_for(duration, max_time, min_rounds) == rounds


def test_measured_rounds_follow_the_call_time():
    fast, slow = FakeClock([0.01] * PROBES), FakeClock([0.2] * PROBES)
    assert rounds_for(call_time(fast.call, fast), 1.0, 5) == 100
    assert rounds_for(call_time(slow.call, slow), 1.0, 5) == 5


def test_limits_are_this_sessions_options_as_numbers(pytestconfig):
    """What the suite passes to rounds_for: the session's options (defaults 1 s and 5 here)."""
    max_time, min_rounds = limits(pytestconfig)
    assert max_time == float(pytestconfig.getoption("benchmark_max_time")) > 0
    assert min_rounds == pytestconfig.getoption("benchmark_min_rounds") >= 1
    assert rounds_for(max_time / 40, max_time, min_rounds) == max(40, min_rounds)
