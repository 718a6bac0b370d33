"""CPU and GPU timers: warm-up, adaptive sampling, cache flush.

- CPU: `time.perf_counter_ns` around the call, outputs preallocated by the caller. Warm-up calls
  (which include any JIT compilation) are never samples. Calls shorter than `min_sample_s` are
  repeated inside one sample and the sample divided by the repetitions: the timer's resolution and
  overhead would otherwise dominate. Small arrays are therefore measured warm, in cache, as a layer
  called in a loop sees them; arrays beyond the last-level cache are cold by nature.
- GPU: CUDA events recorded on the launching stream around the call, after a write of 2x the L2
  cache has evicted the inputs (cold cache, as NVBench does) and a short spin has given the host
  time to prepare the launch (NVBench's blocking kernel); the end event is synchronised before
  reading. A host clock never times an asynchronous launch. The library's events, flush and spin
  come from its adapter (bench/measure/devices.py).
- Adaptive sampling: at least `min_samples`; then stop as soon as the median's 95 % confidence
  interval is within `rel_tol` of it, or the case's time budget is spent. Raw samples are kept.
- CPU timings also keep what the machine gave their threads over the samples (`Timing.tally`,
  bench/measure/load.py): a timing whose threads waited for a core is starved, whatever its spread.

The clocks and the device adapter are parameters, so the tests drive the logic with fakes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from bench.model.cases import Sampling  # noqa: F401  (timing.Sampling: the rules it samples by)
from bench.measure import load
from bench.model import stats


@dataclass
class Timing:
    samples_s: list[float]
    stable: bool
    timer: str
    reps: int = 1                  # calls per sample
    tally: load.Tally | None = None  # the CPU its threads got over the samples (CPU timings)
    summary: stats.Summary = field(init=False)

    def __post_init__(self):
        self.summary = stats.summarize(self.samples_s)


def sample(measure: Callable[[], float], sampling: Sampling,
           clock: Callable[[], float] = time.perf_counter,
           tally: load.Tally | None = None, clocks: load.Clocks | None = None) -> tuple[list[float], bool]:
    """Call `measure` (one sample, in seconds) until the median is stable or the budget is spent.
    Returns the samples and whether the stopping rule was met. With `tally`, what the machine gave
    the threads during each sample is added to it (read with `clocks`)."""
    samples: list[float] = []
    if tally is not None:
        clocks = clocks or load.Clocks()
        clocks.start()
    start = clock()
    while True:
        samples.append(measure())
        if tally is not None:
            clocks.into(tally)
        n = len(samples)
        if n < sampling.min_samples:
            continue
        if stats.is_stable(samples, sampling.rel_tol, sampling.min_samples):
            return samples, True
        if n >= sampling.max_samples or clock() - start >= sampling.budget_s:
            return samples, False


def reps_for(call_s: float, sampling: Sampling) -> int:
    """Calls per sample so that one sample lasts at least min_sample_s."""
    if call_s <= 0:
        return 1000
    return max(1, min(1000, math.ceil(sampling.min_sample_s / call_s * (1 - 1e-6))))


def warm_up(call: Callable[[], None], sampling: Sampling, clock: Callable[[], float] = time.perf_counter) -> float:
    """Run the first call (JIT compilation happens here), then keep calling for warmup_s; return
    the shortest warm call's duration in seconds."""
    call()
    best = math.inf
    start = clock()
    for _ in range(1000):
        t0 = clock()
        call()
        best = min(best, clock() - t0)
        if clock() - start >= sampling.warmup_s:
            break
    return best


def cpu_sampler(fn, args, kwargs, sampling: Sampling,
                clock_ns: Callable[[], int] = time.perf_counter_ns) -> tuple[Callable[[], float], int]:
    """Warm fn(*args, **kwargs) up and return (measure, reps): measure() takes one sample, in
    seconds per call, of `reps` calls timed together with perf_counter_ns."""
    def call():
        fn(*args, **kwargs)

    one = warm_up(call, sampling, clock=lambda: clock_ns() / 1e9)
    reps = reps_for(one, sampling)

    def measure() -> float:
        t0 = clock_ns()
        for _ in range(reps):
            fn(*args, **kwargs)
        return (clock_ns() - t0) / 1e9 / reps

    return measure, reps


def time_cpu(fn, args, kwargs, sampling: Sampling, clock_ns: Callable[[], int] = time.perf_counter_ns,
             clocks: load.Clocks | None = None) -> Timing:
    """Time fn(*args, **kwargs) on the CPU with perf_counter_ns, tallying the CPU its threads got."""
    measure, reps = cpu_sampler(fn, args, kwargs, sampling, clock_ns)
    tally = load.Tally()
    samples, stable = sample(measure, sampling, clock=lambda: clock_ns() / 1e9, tally=tally, clocks=clocks)
    return Timing(samples, stable, "perf_counter_ns", reps, tally)


# --------------------------------------------------------------------------------------- GPU

SPIN_MIN_S = 20e-6        # the shortest spin before a timed GPU call
SPIN_MAX_S = 5e-3         # the longest: a host slower than this is not a launch overhead worth hiding


def spin_for(host_s: float) -> float:
    """How long the GPU should spin before a timed call whose enqueueing took the host `host_s`
    seconds: long enough that the host's preparation ends before the GPU reaches the start event."""
    return min(SPIN_MAX_S, max(SPIN_MIN_S, 2 * host_s))


def gpu_sampler(fn, args, kwargs, device, flush: bool = True,
                clock: Callable[[], float] = time.perf_counter) -> Callable[[], float]:
    """Warm fn(*args, **kwargs) up on the GPU and return measure(): one sample in seconds, taken
    with CUDA events through `device` (a bench.measure.devices.GpuAdapter). Before each sample: the L2
    flushed, then a short spin enqueued before the start event, so the time the host spends
    preparing the launch (argument conversion, views, the dispatcher) overlaps device work
    instead of counting as kernel time."""
    start, end = device.events()

    def enqueue():
        device.record(start)
        fn(*args, **kwargs)
        device.record(end)

    # warm-up: compilation and first touch, and how long the host takes to enqueue one timed call
    fn(*args, **kwargs)
    host_s = 0.0
    for _ in range(3):
        t0 = clock()
        enqueue()
        host_s = max(host_s, clock() - t0)
        device.elapsed_s(start, end)           # nothing left in flight
    spin_s = spin_for(host_s)

    def measure() -> float:
        if flush:
            device.flush()
        device.spin(spin_s)
        enqueue()
        return device.elapsed_s(start, end)

    return measure


def time_gpu(fn, args, kwargs, sampling: Sampling, device, flush: bool = True,
             clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time fn(*args, **kwargs) on the GPU with CUDA events (see gpu_sampler)."""
    measure = gpu_sampler(fn, args, kwargs, device, flush, clock)
    samples, stable = sample(measure, sampling, clock=clock)
    return Timing(samples, stable, "cuda_event", 1)
