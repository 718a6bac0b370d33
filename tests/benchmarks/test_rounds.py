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


def test_limits_are_the_sessions_options_as_numbers():
    """What the suite passes to rounds_for: the options as pytest-benchmark stores them (the max
    time a string on the command line, the min rounds an int), as numbers."""
    class Config:
        def getoption(self, name):
            return {"benchmark_max_time": "2.5", "benchmark_min_rounds": 7}[name]
    assert limits(Config()) == (2.5, 7)
