"""Measuring one case, whatever its kind: why it cannot run here, the correctness gate, the timing
with the right clock (sampled again when its threads were starved), and the record of the result.
Each op kind (bench/kinds/) builds its inputs and timed call and goes through these steps, so that
every case of every kind is gated, timed and marked by the same rules.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable

from kernels import registry

from bench.measure import check, devices, load, roofline, timing
from bench.measure import interleave as _interleave
from bench.measure.scope import RunScope
from bench.model.cases import Case
from bench.model.results import STARVED, CaseResult, Status


@dataclasses.dataclass
class Context:
    """What every case of a run shares: its sampling, seed and scope, the gate's small checks done
    so far (per (op, backend, dtype)), the copy probe that runs beside CPU cases, and whether the
    backends of a case are sampled round-robin."""
    sampling: timing.Sampling
    seed: int
    scope: RunScope
    probe: _interleave.CopyProbe
    interleave: bool = False
    checked: dict = dataclasses.field(default_factory=dict)


MEMORY_HEADROOM = 0.8      # a case may use at most this fraction of the free memory


def timeable(be: registry.Backend) -> bool:
    return be.available and not be.simulated


def skip_reason(case: Case, be: registry.Backend, device: devices.HostAdapter) -> str | None:
    if not be.available:
        return be.reason
    if be.simulated:
        return "runs on the CUDA simulator here: checked in tests, never timed"
    if case.dtype not in be.dtypes:
        return f"{be.name} does not support {case.dtype}"
    need = 3 * roofline.traffic(case.op, case.size, case.dtype)   # inputs, checked and timed outputs
    try:
        free = device.free_bytes()
    except Exception:  # a query that fails leaves the decision to the allocation itself
        free = None
    if free is not None and need > MEMORY_HEADROOM * free:
        return f"needs {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free on the {be.device}"
    return None


def starved(t: timing.Timing | None, device: str) -> bool:
    """bench/measure/load.py's rule on a CPU timing's tally (a GPU timing's host thread waits on events)."""
    return device == "cpu" and t is not None and t.tally is not None and load.starved(t.tally.got)


def round_robin_again(members: list, sampling: timing.Sampling, seed: int, devices_of: dict[str, str]):
    """round_robin over `members`, sampled again with what is left of the group's budget when a
    CPU member's threads were starved (load.remeasured). Returns (times, passes)."""
    def measure(budget_s: float):
        per = dataclasses.replace(sampling, budget_s=budget_s / len(members))
        return _interleave.round_robin(members, per, random.Random(seed))

    def count(times) -> int:
        return sum(starved(times[m.name], devices_of.get(m.name, "cpu")) for m in members)

    return load.remeasured(measure, count, sampling.budget_s * len(members))


def guarded(case: Case, be: registry.Backend, base: dict, inputs, scope: RunScope, measure) -> CaseResult:
    """A skipped case where `be` cannot run it, else measure(device, base); an out-of-memory error
    in it skips this case (with the reason) and the run goes on."""
    device = scope.device(be) if be.available else None
    why = skip_reason(case, be, device)
    if why:
        return CaseResult(**base, status=Status.SKIPPED, reason=why)
    try:
        return measure(device, base)
    except Exception as exc:
        if not devices.is_out_of_memory(exc):
            raise
        # the free-memory estimate let it through, the allocation did not: skip this case, keep the run
        inputs.forget_moved()
        scope.release()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return CaseResult(**base, status=Status.SKIPPED,
                          reason=f"out of memory on the {be.device}: {type(exc).__name__}: {first_line}")


@dataclasses.dataclass(frozen=True)
class Ready:
    """A case that passed its correctness gate, with everything its timing needs."""
    case: Case
    be: registry.Backend
    device: devices.HostAdapter
    fn: Callable
    native: tuple
    kwargs: dict
    worst: float
    reason: str
    base: dict


def time_alone(ready: Ready, sampling: timing.Sampling) -> tuple[timing.Timing, int]:
    """The timing of one case on its own: CUDA events on a GPU, perf_counter_ns on the CPU, there
    sampled again with what is left of its budget when its threads were starved. (timing, passes)"""
    if ready.be.device == "gpu":
        return timing.time_gpu(ready.fn, ready.native, ready.kwargs, sampling, device=ready.device), 1
    return load.remeasured(
        lambda budget_s: timing.time_cpu(ready.fn, ready.native, ready.kwargs,
                                         dataclasses.replace(sampling, budget_s=budget_s)),
        lambda t: int(starved(t, "cpu")), sampling.budget_s)


def gate(case: Case, checked: dict, small_checks: Callable[[], check.CheckResult],
          check_case: Callable[[], check.CheckResult], host, base: dict) -> check.CheckResult | CaseResult:
    """The correctness gate: small_checks() once per (op, backend, dtype) of the run (kept in
    `checked`), then check_case() on the case's own inputs; a failure is the case's FAILED result."""
    key = (case.op, case.backend, case.dtype)
    if key not in checked:
        checked[key] = small_checks()
    r = checked[key]
    if r.ok:
        r = check_case()
    if not r.ok:
        host.forget_moved()       # the failed kernel may have written into them
        return CaseResult(**base, status=Status.FAILED, reason=r.message)
    return r


ALLOCATES = "allocates its output (no out= on this backend): allocation is timed"


def timed(ready: Ready, t: timing.Timing, peak_gbps: float | None = None,
           probe: timing.Timing | None = None, passes: int = 1, **extra) -> CaseResult:
    """The case's OK result from its timing (`extra`: fields of its kind, conversion_s say): on the
    CPU with the share of their runnable time its threads ran, marked STARVED by bench/measure/load.py's
    rule (`passes`: 2 when it was sampled again for that)."""
    s = t.summary
    cpu = ready.be.device == "cpu"
    got = t.tally.got if cpu and t.tally is not None else None
    return CaseResult(**ready.base, status=Status.OK, reason=ready.reason, median_s=s.median, iqr_s=s.iqr,
                      min_s=s.min, n=s.n, samples_s=t.samples_s, stable=t.stable, timer=t.timer,
                      check_worst=ready.worst, peak_gbps=peak_gbps,
                      probe_samples_s=probe.samples_s if probe is not None else None,
                      cpu_got=got, remeasured=True if passes > 1 else None,
                      marks=(STARVED,) if starved(t, ready.be.device) else None, **extra)
