"""Timing and statistics logic with fake clocks and recorded samples (bench/measure/timing.py, bench/model/stats.py).

No test here times anything real: the clocks are scripted, so the assertions hold on any machine.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as st

from bench.model import stats
from bench.measure import timing


class FakeClock:
    """A perf_counter_ns stand-in: each call to `tick(s)` advances it by s seconds."""

    def __init__(self):
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance(self, s: float):
        self.ns += int(round(s * 1e9))


def test_median_ci_is_distribution_free_order_statistics():
    x = np.arange(1, 11, dtype=float)                 # n = 10: ranks 2 and 9 (1-based) at 95 %
    lo, hi = stats.median_ci(x)
    assert (lo, hi) == (2.0, 9.0)
    # coverage of that interval is 1 - 2 P(K <= 1), K ~ binom(10, 1/2)
    assert 1 - 2 * st.binom.cdf(1, 10, 0.5) >= 0.95
    assert stats.median_ci([1.0, 2.0, 3.0]) == (-np.inf, np.inf)     # too few for 95 %


def test_median_ci_coverage_by_simulation():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        x = rng.lognormal(size=25)                     # skewed, like timings; true median 1
        lo, hi = stats.median_ci(x)
        hits += lo <= 1.0 <= hi
    assert 0.94 <= hits / 2000 <= 0.995


def test_summarize_records_median_iqr_min_n():
    s = stats.summarize([3.0, 1.0, 2.0, 4.0, 100.0])
    assert s.median == 3.0 and s.min == 1.0 and s.n == 5
    assert s.iqr == pytest.approx(np.percentile([1, 2, 3, 4, 100], 75) - np.percentile([1, 2, 3, 4, 100], 25))


def test_is_stable_needs_min_samples_and_a_narrow_interval():
    assert not stats.is_stable([1.0] * 9, 0.02, min_samples=10)
    assert stats.is_stable([1.0] * 10, 0.02, min_samples=10)
    noisy = [1.0, 2.0] * 10
    assert not stats.is_stable(noisy, 0.02)


def test_sampling_stops_when_stable():
    clock = FakeClock()
    calls = itertools.count()

    def measure():
        next(calls)
        clock.advance(0.001)
        return 0.001
    samples, stable = timing.sample(measure, timing.Sampling(min_samples=10, budget_s=10), clock=lambda: clock() / 1e9)
    assert stable and len(samples) == 10


def test_sampling_stops_at_the_budget_when_noisy():
    clock = FakeClock()
    rng = np.random.default_rng(1)

    def measure():
        s = float(rng.choice([0.01, 0.02]))           # bimodal: the median never settles to 2 %
        clock.advance(s)
        return s
    samples, stable = timing.sample(measure, timing.Sampling(min_samples=10, budget_s=1.0, rel_tol=0.001),
                                    clock=lambda: clock() / 1e9)
    assert not stable
    total = sum(samples)
    assert 1.0 <= total < 1.0 + 0.02 + 1e-9            # stopped on the first sample past the budget


def test_sampling_takes_min_samples_even_past_the_budget():
    clock = FakeClock()

    def measure():
        clock.advance(5.0)                           # one sample is longer than the whole budget
        return 5.0 + clock() * 1e-12
    samples, _ = timing.sample(measure, timing.Sampling(min_samples=10, budget_s=1.0), clock=lambda: clock() / 1e9)
    assert len(samples) == 10


def test_reps_repeat_short_calls():
    s = timing.Sampling(min_sample_s=1e-3)
    assert timing.reps_for(1e-6, s) == 1000
    assert timing.reps_for(2e-4, s) == 5
    assert timing.reps_for(5e-3, s) == 1
    assert timing.reps_for(0.0, s) == 1000


def test_time_cpu_excludes_warm_up_and_divides_by_reps():
    """The first (compiling) call costs 1 s and is never a sample; later calls cost 10 us each and
    are batched so each sample lasts >= min_sample_s."""
    clock = FakeClock()
    calls = []

    def fn(x, out=None):
        calls.append(1)
        clock.advance(1.0 if len(calls) == 1 else 10e-6)

    t = timing.time_cpu(fn, (None,), {}, timing.Sampling(min_sample_s=1e-3, warmup_s=1e-4, budget_s=1), clock_ns=clock)
    assert t.reps == 100
    assert t.timer == "perf_counter_ns"
    assert all(s == pytest.approx(10e-6) for s in t.samples_s)
    assert t.stable and t.summary.median == pytest.approx(10e-6)


class FakeEvent:
    t: float = 0.0


class FakeGpu:
    """A GPU adapter (bench/measure/devices.py) on a scripted timeline: a host clock, and one stream that
    runs what is enqueued in order, each item starting once the host has enqueued it and the stream
    is free. An event records the moment the stream reaches it. A flush costs 1 ms of GPU time."""

    library, device = "fake", "gpu"

    def __init__(self, spins: bool = True):
        self.host = 0.0              # host clock, seconds
        self.stream_free = 0.0       # when the stream has finished everything enqueued so far
        self.spins = spins
        self.log: list[str] = []

    def clock(self) -> float:
        return self.host

    def enqueue(self, name: str, seconds: float):
        self.log.append(name)
        self.stream_free = max(self.host, self.stream_free) + seconds

    def events(self):
        return FakeEvent(), FakeEvent()

    def record(self, ev):
        self.log.append("record")
        ev.t = max(self.host, self.stream_free)

    def elapsed_s(self, start, end):
        self.log.append("sync")
        self.host = max(self.host, self.stream_free)
        return end.t - start.t

    def flush(self):
        self.enqueue("flush", 1e-3)

    def spin(self, seconds):
        if self.spins:
            self.enqueue("spin", seconds)


def kernel_on(gpu: FakeGpu, host_s: float, gpu_s: float):
    """A launcher that spends host_s preparing (views, argument checks) before enqueuing gpu_s of work."""
    def kernel(x, out=None):
        gpu.host += host_s
        gpu.enqueue("kernel", gpu_s)
    return kernel


def test_time_gpu_flushes_and_spins_before_each_sample_and_times_between_events():
    gpu = FakeGpu()
    t = timing.time_gpu(kernel_on(gpu, 0.0, 2e-3), (None,), {}, timing.Sampling(budget_s=1), device=gpu,
                        clock=gpu.clock)
    assert t.timer == "cuda_event"
    assert all(s == pytest.approx(2e-3) for s in t.samples_s)     # flush and spin are outside the events
    body = gpu.log[gpu.log.index("flush"):]
    assert body[:6] == ["flush", "spin", "record", "kernel", "record", "sync"]
    assert body.count("flush") == body.count("spin") == body.count("kernel")


@pytest.mark.parametrize("spins", [True, False])
def test_a_slow_host_does_not_count_as_kernel_time(spins):
    """The launcher takes 3 ms of host time to enqueue a 20 us kernel, longer than the flush keeps
    the GPU busy. Without the spin the GPU idles between the start event and the kernel, and the
    idle time is counted; with it, only the kernel is."""
    gpu = FakeGpu(spins=spins)
    t = timing.time_gpu(kernel_on(gpu, 3e-3, 20e-6), (None,), {}, timing.Sampling(budget_s=1), device=gpu,
                        clock=gpu.clock)
    if spins:
        assert all(s == pytest.approx(20e-6) for s in t.samples_s)
    else:
        assert all(s == pytest.approx(2e-3 + 20e-6) for s in t.samples_s)   # 3 ms of host, 1 ms hidden by the flush


def test_spin_outlasts_the_host_within_bounds():
    assert timing.spin_for(0.0) == timing.SPIN_MIN_S
    assert timing.spin_for(1e-3) == 2e-3
    assert timing.spin_for(1.0) == timing.SPIN_MAX_S
