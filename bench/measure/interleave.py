"""Interleaved sampling (`bench run --interleave`): the backends of one (op, dtype, size) sampled
round-robin, in a new random order each round, so that every ratio between them comes from samples
taken side by side rather than seconds apart on a machine whose load changes meanwhile.

For CPU cases past the run's measured cache boundary (where the memory peak judges them) a copy
probe joins the rounds: a copy of the case's size with numba_cpu's streaming stores on every core,
so the case's % of peak comes from a memory peak measured beside it too (`CaseResult.peak_gbps`),
and each of its samples can be read against the probe's sample of the same round
(`CaseResult.probe_samples_s`, what `bench compare` divides by), except for a kernel that runs
on one thread (`Backend.one_thread_ops`: NumPy's ufuncs): the two do not move together (a VM
memory phase that took the all-core copy from 57 to 100 GB/s left NumPy's one-thread relu where it
was, and a copy on one thread beside it, tried too, only added its own noise), so such a case
keeps its raw samples alone.

A group's time budget is the profile's budget per case times its members; it ends as soon as
every member's median is stable (bench/measure/timing.py's rule), after at least `min_samples` rounds.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.measure import load, roofline, timing
from bench.model import stats


@dataclass(frozen=True)
class Member:
    """One thing sampled in the rounds: measure() returns one sample in seconds."""

    name: str
    measure: Callable[[], float]
    timer: str
    reps: int = 1


def round_robin(members: list[Member], sampling: timing.Sampling, rng: random.Random | None = None,
                clock: Callable[[], float] = time.perf_counter,
                clocks: load.Clocks | None = None) -> dict[str, timing.Timing]:
    """Sample every member once per round, in a shuffled order, until all are stable or the
    group's budget (budget_s per member) is spent; at least min_samples rounds. What the machine
    gave the threads during each member's samples is tallied for that member (`Timing.tally`)."""
    rng = rng or random.Random(0)
    samples: dict[str, list[float]] = {m.name: [] for m in members}
    tallies = {m.name: load.Tally() for m in members}
    clocks = clocks or load.Clocks()
    clocks.start()
    budget = sampling.budget_s * len(members)
    start = clock()
    rounds = 0
    while True:
        order = list(members)
        rng.shuffle(order)
        for m in order:
            samples[m.name].append(m.measure())
            clocks.into(tallies[m.name])
        rounds += 1
        if rounds < sampling.min_samples:
            continue
        stable = {k: stats.is_stable(v, sampling.rel_tol, sampling.min_samples) for k, v in samples.items()}
        if all(stable.values()) or rounds >= sampling.max_samples or clock() - start >= budget:
            return {m.name: timing.Timing(samples[m.name], stable[m.name], m.timer, m.reps, tallies[m.name])
                    for m in members}


def cpu_member(name: str, fn, args, kwargs, sampling: timing.Sampling) -> Member:
    measure, reps = timing.cpu_sampler(fn, args, kwargs, sampling)
    return Member(name, measure, "perf_counter_ns", reps)


def gpu_member(name: str, fn, args, kwargs, device) -> Member:
    return Member(name, timing.gpu_sampler(fn, args, kwargs, device), "cuda_event", 1)


PROBE = "copy probe"


PROBE_DTYPES = ("float32", "float64")     # what the streaming-store copy is compiled for


def stand_in(dtype: str, size: int) -> tuple[int, str]:
    """(elements, dtype) of the probe's arrays for a case of `size` elements of `dtype`: the same
    dtype where the streaming copy serves it, else float32 arrays of the same bytes (rounded up to
    whole float32 elements), since a copy moves bytes, not values (numba compiles no float16)."""
    if np.dtype(dtype).name in PROBE_DTYPES:
        return size, np.dtype(dtype).name
    return -(-size * np.dtype(dtype).itemsize // 4), "float32"


class CopyProbe:
    """The CPU copy probe of one (dtype, size), its two arrays kept while the size lasts."""

    def __init__(self):
        self._arrays: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def member(self, dtype: str, size: int, sampling: timing.Sampling) -> tuple[Member, int]:
        """The probe as a round member, and the bytes one copy moves (read + write)."""
        key = (dtype, size)
        if key not in self._arrays:
            self._arrays.clear()
            src = np.ones(*stand_in(dtype, size))
            self._arrays[key] = (src, np.zeros_like(src))
        src, dst = self._arrays[key]
        measure, reps = timing.cpu_sampler(roofline._streaming_copy(), (src, dst), {}, sampling)
        return Member(PROBE, measure, "perf_counter_ns", reps), 2 * src.nbytes

    def release(self) -> None:
        self._arrays.clear()
