"""CPU and GPU timers: warm-up, adaptive sampling, cache flush.

- CPU: `time.perf_counter_ns` around the call, outputs preallocated by the caller. Warm-up calls
  (which include any JIT compilation) are never samples. Calls shorter than `min_sample_s` are
  repeated inside one sample and the sample divided by the repetitions: the timer's resolution and
  overhead would otherwise dominate. Small arrays are therefore measured warm, in cache, as a layer
  called in a loop sees them; arrays beyond the last-level cache are cold by nature.
- GPU: CUDA events recorded on the launching stream around the call, after a write of 2x the L2
  cache has evicted the inputs (cold cache, as NVBench does); the end event is synchronised before
  reading. A host clock never times an asynchronous launch.
- Adaptive sampling: at least `min_samples`; then stop as soon as the median's 95 % confidence
  interval is within `rel_tol` of it, or the case's time budget is spent. Raw samples are kept.

The clock and the event library are parameters, so the tests drive the logic with fake clocks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from . import stats


@dataclass(frozen=True)
class Sampling:
    """How long and how precisely to measure one case."""

    min_samples: int = 10
    max_samples: int = 2000
    rel_tol: float = 0.02          # stop when the median's CI half-width is within 2 % of it
    budget_s: float = 1.0          # sampling time budget per case (at least min_samples are taken)
    warmup_s: float = 0.02         # warm-up time after the first (compiling) call
    min_sample_s: float = 2e-4     # repeat short calls so one sample lasts at least this long


@dataclass
class Timing:
    samples_s: list[float]
    stable: bool
    timer: str
    reps: int = 1                  # calls per sample
    summary: stats.Summary = field(init=False)

    def __post_init__(self):
        self.summary = stats.summarize(self.samples_s)


def sample(measure: Callable[[], float], sampling: Sampling,
           clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], bool]:
    """Call `measure` (one sample, in seconds) until the median is stable or the budget is spent.
    Returns the samples and whether the stopping rule was met."""
    samples: list[float] = []
    start = clock()
    while True:
        samples.append(measure())
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


def time_cpu(fn, args, kwargs, sampling: Sampling, clock_ns: Callable[[], int] = time.perf_counter_ns) -> Timing:
    """Time fn(*args, **kwargs) on the CPU with perf_counter_ns."""
    def call():
        fn(*args, **kwargs)

    one = warm_up(call, sampling, clock=lambda: clock_ns() / 1e9)
    reps = reps_for(one, sampling)

    def measure() -> float:
        t0 = clock_ns()
        for _ in range(reps):
            fn(*args, **kwargs)
        return (clock_ns() - t0) / 1e9 / reps

    samples, stable = sample(measure, sampling, clock=lambda: clock_ns() / 1e9)
    return Timing(samples, stable, "perf_counter_ns", reps)


# --------------------------------------------------------------------------------------- GPU

class Events:
    """CUDA events and an L2 flush, for one array library (cupy, numba or torch)."""

    def __init__(self, library: str):
        self.library = library
        if library == "cupy":
            import cupy
            self._cp = cupy
        elif library == "numba":
            from numba import cuda
            self._cuda = cuda
        elif library == "torch":
            import torch
            self._torch = torch
        else:
            raise ValueError(f"no CUDA events for array library {library!r}")
        self._flush_buf = None

    def pair(self):
        if self.library == "cupy":
            return self._cp.cuda.Event(), self._cp.cuda.Event()
        if self.library == "numba":
            return self._cuda.event(timing=True), self._cuda.event(timing=True)
        return (self._torch.cuda.Event(enable_timing=True), self._torch.cuda.Event(enable_timing=True))

    def record(self, ev):
        if self.library == "numba":
            ev.record(stream=0)
        else:
            ev.record()

    def elapsed_s(self, start, end) -> float:
        end.synchronize()
        if self.library == "cupy":
            return self._cp.cuda.get_elapsed_time(start, end) / 1e3
        if self.library == "numba":
            return self._cuda.event_elapsed_time(start, end) / 1e3
        return start.elapsed_time(end) / 1e3

    def l2_bytes(self) -> int:
        if self.library == "cupy":
            return int(self._cp.cuda.Device().attributes["L2CacheSize"])
        if self.library == "numba":
            return int(self._cuda.get_current_device().L2_CACHE_SIZE)
        return int(self._torch.cuda.get_device_properties(0).L2_cache_size)

    def flush(self):
        """Overwrite 2x the L2 cache on the launching stream, so the next kernel starts cold."""
        if self._flush_buf is None:
            n = max(2 * self.l2_bytes(), 2**25)
            if self.library == "cupy":
                self._flush_buf = self._cp.empty(n, dtype=self._cp.uint8)
            elif self.library == "numba":
                self._flush_buf = self._cuda.device_array(n, dtype="uint8")
            else:
                self._flush_buf = self._torch.empty(n, dtype=self._torch.uint8, device="cuda")
        buf = self._flush_buf
        if self.library == "cupy":
            buf.fill(0)
        elif self.library == "numba":
            from numba.cuda.cudadrv import driver
            driver.device_memset(buf, 0, buf.nbytes, stream=0)
        else:
            buf.zero_()


def time_gpu(fn, args, kwargs, sampling: Sampling, library: str, flush: bool = True,
             events: Events | None = None) -> Timing:
    """Time fn(*args, **kwargs) on the GPU with CUDA events; L2 flushed before each sample."""
    ev = events or Events(library)
    start, end = ev.pair()

    def call():
        fn(*args, **kwargs)

    def measure() -> float:
        if flush:
            ev.flush()
        ev.record(start)
        fn(*args, **kwargs)
        ev.record(end)
        return ev.elapsed_s(start, end)

    # warm-up: compilation and first-touch, timed with events so nothing is left in flight
    call()
    for _ in range(3):
        measure()
    samples, stable = sample(measure, sampling)
    return Timing(samples, stable, "cuda_event", 1)
