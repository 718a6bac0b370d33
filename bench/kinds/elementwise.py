"""The elementwise op kind: y = f(x) (or dx = f(dy, x)) element by element, over a size.

How it is benchmarked: its cases are op x backend x dtype x size, the profile's sizes per device;
one set of host inputs per (dtype, size), shared by every op and backend at that size (kept while
the cases of that size run); the gate's small checks at an awkward size and on the special values;
the backends of one (op, dtype, size) sampled round-robin when the run interleaves, with a copy
probe beside the CPU cases beyond the cache. Its tables, Markdown and plots are the report's
standard ones (a row per size, a column per backend), so it defines none of its own.
"""

from __future__ import annotations

import numpy as np

from kernels import registry
from kernels.ops import OPS

from bench.measure import check, devices, inputs, roofline
from bench.measure import interleave as _interleave
from bench.measure.case import (
    ALLOCATES,
    MEMORY_HEADROOM,
    Context,
    Ready,
    gate,
    guarded,
    round_robin_again,
    skip_reason,
    time_alone,
    timed,
)
from bench.model.cases import Case, Profile
from bench.model.results import CaseResult, Status

NAME = "elementwise"
FLAGS: tuple = ()              # no flags of its own: --sizes narrows its cases


# ---------------------------------------------------------------------------------------- cases

def options(profile: Profile, given: dict) -> None:
    """Its flags, checked: none."""
    return None


def cases(op: str, be: registry.Backend, profile: Profile, dtypes: list[str], dtypes_given: bool,
          sizes: list[int] | None, opts) -> list[Case]:
    """op on backend `be` at every dtype and size: the given sizes, else the profile's for the device."""
    dev_sizes = sizes or (profile.gpu_sizes if be.device == "gpu" else profile.cpu_sizes)
    return [Case(op, be.name, be.device, dt, n) for dt in dtypes for n in dev_sizes]


def order(case: Case) -> tuple[tuple, tuple]:
    """Its place within the cases of one (device, dtype, size, op): nothing but the backend's."""
    return (), ()


def group_key(case: Case):
    """The cases sampled round-robin together when the run interleaves: one (device, op, dtype, size)."""
    return (case.device, case.op, case.dtype, case.size)


def working_set(case: Case) -> int:
    """The bytes the case moves (inputs + outputs), to tell whether it lies beyond the cache."""
    return roofline.traffic(case.op, case.size, case.dtype)


def derive(results: list[CaseResult]) -> list[CaseResult]:
    """No figures beyond the common ones (bench/model/results.py's derive)."""
    return results


# the report draws this kind with its standard table, Markdown and plot
tables = markdown = write_plots = summary_line = None


# ------------------------------------------------------------------------------------- measuring

class Session:
    """The elementwise cases of one run: the host inputs of one (dtype, size) at a time."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.key: tuple | None = None
        self.host: Inputs | None = None

    def run(self, group: list[Case], beyond: bool) -> list[CaseResult]:
        """The results of a group of cases of one (op, dtype, size): skipped when the host cannot
        hold the inputs, else checked and timed, round-robin when the run interleaves."""
        case = group[0]
        key = (case.dtype, case.size)
        if key != self.key:
            self.release()                 # one size at a time: large inputs are large
            room = host_room(case)
            if room:          # checked before the inputs are built: a size too large is skipped
                return [CaseResult(**case_base(c), status=Status.SKIPPED, reason=room) for c in group]
            self.host, self.key = Inputs(case.dtype, case.size, self.ctx.seed), key
        if self.ctx.interleave:
            return _run_group(group, self.host, self.ctx, beyond=beyond)
        return [_run_case(c, self.host, self.ctx) for c in group]

    def release(self) -> None:
        """Drop the inputs, the probe's arrays and what the libraries pooled for them."""
        self.host, self.key = None, None
        self.ctx.probe.release()
        self.ctx.scope.release()


TILE_ABOVE = 2**24         # larger inputs repeat a random block of this many elements


def _big_random(size: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Random normal values; above TILE_ABOVE a random block repeated (NumPy draws ~60 M normals
    a second on one core: 2**30 of them would take longer than the whole benchmark)."""
    if size <= TILE_ABOVE:
        return inputs.random_array((size,), dtype, rng)
    return np.resize(inputs.random_array((TILE_ABOVE,), dtype, rng), size)


class Inputs:
    """Host inputs for one (dtype, size), shared by every op and backend; derived arrays cached."""

    def __init__(self, dtype: str, size: int, seed: int):
        rng = np.random.default_rng([seed, size, np.dtype(dtype).num])
        self.x = _big_random(size, dtype, rng)
        self.dy = _big_random(size, dtype, rng)
        self._rng = rng
        self._by_op: dict[str, tuple] = {}
        self._moved = inputs.Moved()

    def of(self, op: str) -> tuple[np.ndarray, ...]:
        spec = OPS[op]
        key = spec.forward if spec.grad_of_output or spec.mask_input else ("grad" if spec.grad else "fwd")
        if key not in self._by_op:
            self._by_op[key] = inputs.op_inputs(op, self.x, self._rng, dy=self.dy)
        return self._by_op[key]

    def on(self, be: registry.Backend, op: str) -> tuple:
        """op's inputs as arrays of backend `be`, each host array moved once per array library
        (the three CuPy backends share one copy on the device; host backends move nothing)."""
        return tuple(self._moved.on(be, self.of(op)))

    def forget_moved(self) -> None:
        """Drop the moved copies (after a kernel wrote into its inputs, say)."""
        self._moved.clear()


def small_checks(op: str, backend: str, dtype: str, seed: int,
                 scratch: check.Scratch | None = None) -> check.CheckResult:
    """Fresh random trials at an awkward size and the special values, before the first timing."""
    rng = np.random.default_rng([seed, 7])
    trials = [("random 1031", inputs.random_inputs(op, (1031,), dtype, rng, s)) for s in inputs.SCALES]
    trials += inputs.special_inputs(op, dtype, rng)
    for label, args in trials:
        r = check.check_call(op, backend, args, scratch=scratch)
        if not r.ok:
            return check.CheckResult(False, f"{label}: {r.message}")
    return check.OK


def host_room(case: Case) -> str | None:
    """Why this machine cannot hold a size's host inputs (x, dy and an array derived from them),
    else None. Asked before they are built: 2**36 elements raised MemoryError from NumPy before the
    per-case check could skip them."""
    need = 3 * case.size * np.dtype(case.dtype).itemsize
    free = devices.HostAdapter().free_bytes()
    if free is not None and need > MEMORY_HEADROOM * free:
        return f"its inputs need {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free on the host"
    return None


def _run_case(case: Case, host: Inputs, ctx: Context) -> CaseResult:
    be = registry.backend(case.backend)
    return guarded(case, be, case_base(case), host, ctx.scope,
                   lambda device, base: _check_and_time(case, be, device, host, ctx, base))


def _check_and_time(case: Case, be: registry.Backend, device: devices.HostAdapter, host: Inputs,
                    ctx: Context, base: dict) -> CaseResult:
    ready = _check(case, be, device, host, ctx, base)
    if isinstance(ready, CaseResult):
        return ready
    t, passes = time_alone(ready, ctx.sampling)
    return timed(ready, t, passes=passes)


def _check(case: Case, be: registry.Backend, device: devices.HostAdapter, host: Inputs,
           ctx: Context, base: dict) -> CaseResult | Ready:
    """The correctness gate, then the outputs and arguments of the timed call."""
    args = host.of(case.op)
    native = host.on(be, case.op)
    scratch = ctx.scope.scratch
    r = gate(case, ctx.checked, lambda: small_checks(case.op, case.backend, case.dtype, ctx.seed, scratch),
             lambda: check.check_call(case.op, case.backend, args, native=native, scratch=scratch),
             host, base)
    if isinstance(r, CaseResult):
        return r
    fn, kwargs = registry.timed_call(case.op, case.backend, native)
    allocates = kwargs["out"] is None
    return Ready(case, be, device, fn, native, kwargs, r.worst, ALLOCATES if allocates else "", base)


def _run_group(group: list[Case], host: Inputs, ctx: Context, beyond: bool = False) -> list[CaseResult]:
    """The cases of one (op, dtype, size), sampled round-robin (bench/measure/interleave.py), with a copy
    probe beside the CPU cases past the measured cache boundary (`beyond`); a case skipped or failed
    is left out of the rounds.
    Out of memory: the group's cases one by one instead, each skipped if it still does not fit."""
    try:
        return _interleaved(group, host, ctx, beyond)
    except Exception as exc:
        if not devices.is_out_of_memory(exc):
            raise
        host.forget_moved()
        ctx.probe.release()
        ctx.scope.release()
        return [_run_case(c, host, ctx) for c in group]


def _interleaved(group: list[Case], host: Inputs, ctx: Context, beyond: bool) -> list[CaseResult]:
    sampling = ctx.sampling
    done: dict[int, CaseResult] = {}
    ready: dict[int, Ready] = {}
    for i, case in enumerate(group):
        be = registry.backend(case.backend)
        base = case_base(case)
        device = ctx.scope.device(be) if be.available else None
        why = skip_reason(case, be, device)
        if why:
            done[i] = CaseResult(**base, status=Status.SKIPPED, reason=why)
            continue
        r = _check(case, be, device, host, ctx, base)
        if isinstance(r, CaseResult):
            done[i] = r
        else:
            ready[i] = r
    if ready:
        members = [_interleave.gpu_member(str(i), r.fn, r.native, r.kwargs, r.device) if r.be.device == "gpu"
                   else _interleave.cpu_member(str(i), r.fn, r.native, r.kwargs, sampling) for i, r in ready.items()]
        first = group[min(ready)]
        probe_bytes = None
        if first.device == "cpu" and beyond:
            m, probe_bytes = ctx.probe.member(first.dtype, first.size, sampling)
            members.append(m)
        times, passes = round_robin_again(members, sampling, ctx.seed,
                                          {str(i): r.be.device for i, r in ready.items()})
        peak = None
        if probe_bytes:
            peak = probe_bytes / float(np.median(times[_interleave.PROBE].samples_s)) / 1e9
        for i, r in ready.items():
            cpu = r.be.device == "cpu"
            # the probe's samples beside every CPU kernel but those on one thread (interleave.py)
            paired = cpu and probe_bytes and group[i].op not in r.be.one_thread_ops
            done[i] = timed(r, times[str(i)], peak if cpu else None, times[_interleave.PROBE] if paired else None,
                            passes=passes)
    return [done[i] for i in range(len(group))]


def case_base(case: Case) -> dict:
    """The fields of an elementwise case's record that do not depend on how it went."""
    return dict(op=case.op, kind=NAME, backend=case.backend, device=case.device, dtype=case.dtype, size=case.size,
                bytes=roofline.traffic(case.op, case.size, case.dtype), flops=roofline.flops(case.op, case.size))
