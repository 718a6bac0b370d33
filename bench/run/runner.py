"""The flow of one run, left to right: cases -> inputs -> kernels -> check -> timing -> roofline -> results.

`run_cases` measures the peaks of each device involved, then every case: its inputs (shared by
every op and backend at one dtype and size), the correctness gate (a failing case is never timed),
the timing with preallocated outputs; the memory peak is probed again before the arrays beyond
the measured cache boundary (CPU) or after the last case (GPU), and the fastest probe counts; the
CPU cache peak and its boundary are probed at the start, the cache peak twice; a peak that
contradicts physics (bench/measure/roofline.py's `peak_faults`: a cache peak below the memory peak, a
fastest probe with no repeat near it) is probed again, and where the cache peak stays below the
memory peak the memory peak judges every case, with a note. A CPU case whose threads were starved
(bench/measure/load.py's rule: they waited for a core) is sampled again with what is left of its budget
and marked when it stays starved. The machine's load is read before, during (once per case) and
after the run (`env.load`). Bandwidth,
% of peak and speed-up over NumPy are derived at the end from the raw medians. Ctrl-C stops
cleanly: what was measured is kept and the run is marked interrupted; so does any exception, whose
one-line account (`Run.error`: what failed, in which case, at which line) goes into the results.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from kernels import registry
from kernels.ops import OPS

from bench.measure import check, devices, inputs, load, roofline, timing
from bench.kinds import matmul as sparse
from bench.measure import interleave as _interleave
from bench.run.cases import Case, Profile
from bench.measure.environment import environment
from bench.model.results import STARVED, CaseResult, Run, Status, derive
from bench.measure.scope import RunScope

_ROOT = Path(__file__).resolve().parents[2]     # the checkout: bench/ and kernels/ live here
MEMORY_HEADROOM = 0.8      # a case may use at most this fraction of the free memory


TILE_ABOVE = 2**24         # larger inputs repeat a random block of this many elements


def _big_random(size: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Random normal values; above TILE_ABOVE a random block repeated (NumPy draws ~60 M normals
    a second on one core: 2**30 of them would take longer than the whole benchmark)."""
    if size <= TILE_ABOVE:
        return inputs.random_array((size,), dtype, rng)
    return np.resize(inputs.random_array((TILE_ABOVE,), dtype, rng), size)


class _Inputs:
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


def _small_checks(op: str, backend: str, dtype: str, seed: int,
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


def run_cases(profile: Profile, cases: list[Case], *, seed: int = 0, command: str | None = None,
              progress=None, on_case: Callable[[Run], None] | None = None, interleave: bool = False) -> Run:
    """Measure `cases`; returns the Run (bench/model/results.py). `progress` is a rich Progress (or
    None); `on_case` is called with the run so far after each case (for saving as it goes).
    `interleave`: the backends of each (op, dtype, size) are sampled round-robin (bench/measure/interleave.py)."""
    run = Run(env=environment(command, profile=profile.name, seed=seed, gpu=_gpu_info(cases)))
    interrupted, error, where = False, None, "peaks"
    sampling = profile.sampling
    # peaks only where some case will be timed: a backend that is missing or simulated has none
    devices = sorted({c.device for c in cases if _timeable(registry.backend(c.backend))})
    task = progress.add_task("peaks", total=len(cases) + 2 * len(devices)) if progress else None
    loadlog = load.LoadLog()

    def advance(label: str):
        nonlocal where
        where = label
        loadlog.mark()
        if progress:
            progress.update(task, advance=1, description=label)

    first_peaks = {}
    with RunScope() as scope:       # the gate's buffers and the probe's threads live as long as the run
        try:
            for dev in devices:
                advance(f"peak bandwidth ({dev})")
                first_peaks[dev] = _sound_peak(_measure_peak(dev, cases, sampling, scope, cache=True, repeat=True),
                                               lambda p, d=dev: _probe_again(d, p, cases, sampling, scope))
            host_inputs: dict[tuple[str, int], _Inputs] = {}
            probed_again: set[str] = set()
            checked: dict[tuple[str, str, str], check.CheckResult] = {}
            matmul_inputs = sparse.Inputs(seed)
            probe = _interleave.CopyProbe()
            for group in _groups(cases, interleave):
                case = group[0]
                where = case.name if len(group) == 1 else f"{case.op} {case.dtype} {case.size} group"
                if progress:
                    progress.update(task, description=case.name if len(group) == 1 else
                                    f"{case.op} {case.dtype} {case.size} x {len(group)} interleaved")
                if case.shape is not None:        # sparse_matmul: its own inputs (bench/kinds/matmul.py)
                    host_inputs.clear()
                    run = run.adding(_run_matmul_case(case, matmul_inputs, sampling, checked, seed, scope,
                                                      probe if interleave else None))
                    if on_case:
                        on_case(run)
                    advance(case.name)
                    continue
                key = (case.dtype, case.size)
                if key not in host_inputs:
                    host_inputs.clear()           # one size at a time: large inputs are large
                    probe.release()
                    scope.release()               # and what the libraries pooled for them goes back
                    if case.device == "cpu" and "cpu" not in probed_again and _beyond_cache(case, first_peaks.get("cpu")):
                        # before the first arrays beyond the cache, probe the peak again (once): a
                        # probe that met a busy moment of a shared machine must not set every % of peak
                        again = _measure_peak("cpu", cases, sampling, scope)
                        first_peaks["cpu"] = _combine_peaks(first_peaks["cpu"], again)
                        probed_again.add("cpu")
                    room = _host_room(case)
                    if room:          # checked before the inputs are built: a size too large is skipped
                        for c in group:
                            run = run.adding(CaseResult(**_base(c), status=Status.SKIPPED, reason=room))
                            if on_case:
                                on_case(run)
                            advance(f"{c.op} {c.backend}")
                        continue
                    host_inputs[key] = _Inputs(case.dtype, case.size, seed)
                if interleave:
                    entries = _run_group(group, host_inputs[key], sampling, checked, seed, scope, probe,
                                         beyond=_beyond_cache(case, first_peaks.get("cpu")))
                else:
                    entries = [_run_case(case, host_inputs[key], sampling, checked, seed, scope)]
                for entry in entries:
                    run = run.adding(entry)
                    if on_case:
                        on_case(run)
                    advance(f"{entry.op} {entry.backend}")
            probe.release()
            for dev in devices:
                advance(f"peak bandwidth again ({dev})")
                if dev not in probed_again:           # at the end, unless probed beside the large arrays
                    first_peaks[dev] = _combine_peaks(first_peaks[dev], _measure_peak(dev, cases, sampling, scope))
                first_peaks[dev] = _sound_peak(first_peaks[dev],
                                               lambda p, d=dev: _probe_again(d, p, cases, sampling, scope))
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:    # a fault mid-run: keep what was measured, say what failed and where
            interrupted, error = True, failure(exc, where)
    env = dict(run.env, **_store_strategy(cases), load=loadlog.finish())
    return derive(dataclasses.replace(run, env=env, peaks=first_peaks, interrupted=interrupted, error=error))


def failure(exc: BaseException, where: str) -> str:
    """One line for a run that died of `exc` while measuring `where`: the exception, and the
    innermost frame of actbench's own code it came through (a library's frames say less)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_ROOT)]
    at = ""
    if ours:
        f = ours[-1]
        at = f" (at {Path(f.filename).resolve().relative_to(_ROOT)}:{f.lineno} in {f.name})"
    text = " ".join(str(exc).split()) or "no message"
    return f"{where}: {type(exc).__name__}: {text}{at}"


def _store_strategy(cases: list[Case]) -> dict:
    """numba_cpu's store choices that this run used (measured on this machine at first use), for
    the header and the JSON; nothing when numba_cpu was not timed."""
    if not any(c.backend == "numba_cpu" for c in cases) or not _timeable(registry.backend("numba_cpu")):
        return {}
    from kernels.backends.numba_cpu import store_strategy
    return {"numba_cpu_stores": store_strategy(probe=False)}


def _groups(cases: list[Case], interleave: bool) -> list[list[Case]]:
    """Consecutive elementwise cases of one (device, op, dtype, size) together when interleaving,
    else (and for sparse_matmul cases, which have inputs of their own) one by one."""
    if not interleave:
        return [[c] for c in cases]
    groups = itertools.groupby(cases, key=lambda c: (c.device, c.op, c.dtype, c.size) if c.shape is None else id(c))
    return [list(g) for _, g in groups]


def _timeable(be: registry.Backend) -> bool:
    return be.available and not be.simulated


def _peak_sampling(sampling: timing.Sampling) -> timing.Sampling:
    return timing.Sampling(min_samples=10, budget_s=max(0.5, sampling.budget_s), rel_tol=0.01)


def _measure_peak(device: str, cases: list[Case], sampling: timing.Sampling, scope: RunScope,
                  cache: bool = False, repeat: bool = False) -> dict:
    """The device's memory copy peak; on the CPU with `cache`, its cache peak too (under "cache"),
    with `repeat` probed twice (the second without the sweep), so that a probe that met a busy
    moment has a repeat to be judged against."""
    peak_sampling = _peak_sampling(sampling)
    if device == "cpu":
        # 5 samples of the memory copy: each streams 2 GiB, its median is steady well before 10
        memory = roofline.cpu_copy_peak(dataclasses.replace(peak_sampling, min_samples=5), pools=scope.pools)
        if cache:
            fastest = memory.get("fastest_gbps", memory["gbps"])
            memory["cache"] = roofline.cpu_cache_peak(peak_sampling, fastest)
            if repeat:
                memory = roofline.with_cache_repeat(memory, roofline.cpu_cache_peak(peak_sampling, fastest,
                                                                                    sweep=False))
        return memory
    gpu = next(be for be in (registry.backend(c.backend) for c in cases)
               if be.device == "gpu" and _timeable(be))
    return roofline.gpu_copy_peak(scope.device(gpu), peak_sampling)


def _probe_again(device: str, peak: dict, cases: list[Case], sampling: timing.Sampling, scope: RunScope) -> dict:
    """`peak` with one more probe of each of its levels (the memory copy; on the CPU the cache
    copy too, without the sweep)."""
    again = _measure_peak(device, cases, sampling, scope)
    out = _combine_peaks(peak, again)
    if (peak.get("cache") or {}).get("gbps"):
        fastest = out.get("fastest_gbps", out["gbps"])
        out = roofline.with_cache_repeat(out, roofline.cpu_cache_peak(_peak_sampling(sampling), fastest, sweep=False))
    return out


def _sound_peak(peak: dict, again: Callable[[dict], dict]) -> dict:
    """`peak` when nothing in it contradicts physics (roofline.peak_faults); else probed again
    (`again(peak)`: one more probe of each level, the fastest counting), and what still contradicts
    physics noted: a cache peak still below the memory peak is refused, the memory peak (the sound
    level) judging every case; a fastest probe still without a repeat near it is kept, said so."""
    faults = roofline.peak_faults(peak)
    if not faults:
        return peak
    peak = again(peak)
    notes = list(peak.get("notes") or []) + [f"probed again: {f}" for f in faults]
    peak = dict(peak, notes=notes)
    for fault in roofline.peak_faults(peak):
        if fault.startswith("cache peak"):
            peak = roofline.without_cache_level(peak, fault)
        else:
            peak = dict(peak, notes=peak["notes"] + [f"{fault} after probing again: the fastest counts"])
    return peak


def _beyond_cache(case: Case, peak: dict | None) -> bool:
    """Whether the case's arrays are past the measured cache boundary (where the memory peak applies)."""
    boundary = ((peak or {}).get("cache") or {}).get("applies_below_bytes")
    return boundary is not None and roofline.traffic(case.op, case.size, case.dtype) >= boundary


def _combine_peaks(best_so_far: dict, again: dict) -> dict:
    """The peak is the fastest of the probes of a run (start, before the largest arrays, end);
    every probe's methods are kept under `measured`, numbered by `probe`."""
    probes = best_so_far["measured"]
    if not any("probe" in m for m in probes):
        probes = [dict(m, probe=0) for m in probes]
    n = 1 + max(m["probe"] for m in probes)
    best = max((best_so_far, again), key=lambda p: p["gbps"])
    out = dict(best, measured=probes + [dict(m, probe=n) for m in again["measured"]])
    if "cache" in best_so_far:                     # probed at the start (and when found unsound)
        out["cache"] = best_so_far["cache"]
    if best_so_far.get("notes"):
        out["notes"] = best_so_far["notes"]
    if "fastest_gbps" in again:
        out["fastest_gbps"] = max(best_so_far.get("fastest_gbps", 0), again["fastest_gbps"])
    return out


def _host_room(case: Case) -> str | None:
    """Why this machine cannot hold a size's host inputs (x, dy and an array derived from them),
    else None. Asked before they are built: 2**36 elements raised MemoryError from NumPy before the
    per-case check could skip them."""
    need = 3 * case.size * np.dtype(case.dtype).itemsize
    free = devices.HostAdapter().free_bytes()
    if free is not None and need > MEMORY_HEADROOM * free:
        return f"its inputs need {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free on the host"
    return None


def _skip_reason(case: Case, be: registry.Backend, device: devices.HostAdapter) -> str | None:
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


def _run_case(case: Case, host: _Inputs, sampling: timing.Sampling,
              checked: dict, seed: int, scope: RunScope) -> CaseResult:
    be = registry.backend(case.backend)
    return _guarded(case, be, _base(case), host, scope,
                    lambda device, base: _check_and_time(case, be, device, host, sampling, checked, seed,
                                                         scope, base))


def _starved(t: timing.Timing | None, device: str) -> bool:
    """bench/measure/load.py's rule on a CPU timing's tally (a GPU timing's host thread waits on events)."""
    return device == "cpu" and t is not None and t.tally is not None and load.starved(t.tally.got)


def _round_robin_again(members: list, sampling: timing.Sampling, seed: int, devices_of: dict[str, str]):
    """round_robin over `members`, sampled again with what is left of the group's budget when a
    CPU member's threads were starved (load.remeasured). Returns (times, passes)."""
    def measure(budget_s: float):
        per = dataclasses.replace(sampling, budget_s=budget_s / len(members))
        return _interleave.round_robin(members, per, random.Random(seed))

    def count(times) -> int:
        return sum(_starved(times[m.name], devices_of.get(m.name, "cpu")) for m in members)

    return load.remeasured(measure, count, sampling.budget_s * len(members))


def _run_matmul_case(case: Case, matmul_inputs: sparse.Inputs, sampling: timing.Sampling,
                     checked: dict, seed: int, scope: RunScope,
                     probe: _interleave.CopyProbe | None = None) -> CaseResult:
    """One sparse_matmul case on its own inputs. With `probe` (interleaved runs), a CPU case whose
    backend uses every core is sampled in rounds with a copy of its weights' size beside it, whose
    samples `bench compare` divides by (the VM's memory phases moved these cases 1.2-1.6x between
    runs of the same code)."""
    base = dict(op=case.op, backend=case.backend, device=case.device, dtype=case.dtype, size=case.size,
                shape=f"{case.shape[0]}x{case.shape[1]}", batch=case.batch, sparsity=case.sparsity,
                pattern=case.pattern)
    be = registry.backend(case.backend)

    def measure(device, base):
        ready = _check_matmul(case, be, device, matmul_inputs, checked, seed, scope, base)
        if isinstance(ready, CaseResult):
            return ready
        beside = None
        if probe is not None and case.device == "cpu" and case.op not in be.one_thread_ops:
            member = _interleave.cpu_member("case", ready.fn, ready.native, ready.kwargs, sampling)
            times, passes = _round_robin_again([member, probe.member(case.dtype, case.size, sampling)[0]],
                                               sampling, seed, {})
            t, beside = times["case"], times[_interleave.PROBE]
        else:
            t, passes = _time(ready, sampling)
        pool = matmul_inputs.pool(case.dtype, case.shape, case.batch, case.sparsity, case.pattern)
        conv = sparse.conversion_s(case.backend, [a[0] if case.batch == 1 else a for a in pool])
        return _timed(ready, t, probe=beside, passes=passes, conversion_s=conv)

    return _guarded(case, be, base, matmul_inputs, scope, measure)


def _guarded(case: Case, be: registry.Backend, base: dict, inputs, scope: RunScope, measure) -> CaseResult:
    """A skipped case where `be` cannot run it, else measure(device, base); an out-of-memory error
    in it skips this case (with the reason) and the run goes on."""
    device = scope.device(be) if be.available else None
    why = _skip_reason(case, be, device)
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
class _Ready:
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


def _check_and_time(case: Case, be: registry.Backend, device: devices.HostAdapter, host: _Inputs,
                    sampling: timing.Sampling, checked: dict, seed: int, scope: RunScope, base: dict) -> CaseResult:
    ready = _check(case, be, device, host, checked, seed, scope, base)
    if isinstance(ready, CaseResult):
        return ready
    t, passes = _time(ready, sampling)
    return _timed(ready, t, passes=passes)


def _time(ready: _Ready, sampling: timing.Sampling) -> tuple[timing.Timing, int]:
    """The timing of one case on its own: CUDA events on a GPU, perf_counter_ns on the CPU, there
    sampled again with what is left of its budget when its threads were starved. (timing, passes)"""
    if ready.be.device == "gpu":
        return timing.time_gpu(ready.fn, ready.native, ready.kwargs, sampling, device=ready.device), 1
    return load.remeasured(
        lambda budget_s: timing.time_cpu(ready.fn, ready.native, ready.kwargs,
                                         dataclasses.replace(sampling, budget_s=budget_s)),
        lambda t: int(_starved(t, "cpu")), sampling.budget_s)


def _gate(case: Case, checked: dict, small_checks: Callable[[], check.CheckResult],
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


def _check(case: Case, be: registry.Backend, device: devices.HostAdapter, host: _Inputs,
           checked: dict, seed: int, scope: RunScope, base: dict) -> CaseResult | _Ready:
    """The correctness gate, then the outputs and arguments of the timed call."""
    args = host.of(case.op)
    native = host.on(be, case.op)
    r = _gate(case, checked, lambda: _small_checks(case.op, case.backend, case.dtype, seed, scope.scratch),
              lambda: check.check_call(case.op, case.backend, args, native=native, scratch=scope.scratch),
              host, base)
    if isinstance(r, CaseResult):
        return r
    fn, kwargs = registry.timed_call(case.op, case.backend, native)
    allocates = kwargs["out"] is None
    return _Ready(case, be, device, fn, native, kwargs, r.worst, ALLOCATES if allocates else "", base)


def _check_matmul(case: Case, be: registry.Backend, device: devices.HostAdapter, host: sparse.Inputs,
                  checked: dict, seed: int, scope: RunScope, base: dict) -> CaseResult | _Ready:
    """A sparse_matmul case's gate (on the first matrix of its pool), then its timed call: each call
    takes the next (activation, weight copy) pair of the rotation (bench/kinds/matmul.py's cold weights)."""
    weights = host.weights(case.dtype, case.shape)
    pool = host.pool(case.dtype, case.shape, case.batch, case.sparsity, case.pattern)
    base = dict(base, bytes=sparse.traffic(pool, case.shape, case.dtype),
                flops=sparse.useful_flops(pool, case.shape[1]))
    native_w = host.on(be, weights)
    native_a = host.on(be, pool)
    a0 = pool[0][0] if case.batch == 1 else pool[0]
    na0 = native_a[0][0] if case.batch == 1 else native_a[0]
    r = _gate(case, checked, lambda: sparse.small_check(case.backend, case.dtype, seed, scope.scratch),
              lambda: check.check_call(case.op, case.backend, (a0, weights[0]), native=(na0, native_w[0]),
                                       scratch=scope.scratch),
              host, base)
    if isinstance(r, CaseResult):
        return r
    k = registry.kernel(case.op, case.backend)
    if case.batch == 1:                     # a K-vector, the GEMV every inference step runs
        native_a = [a[0] for a in native_a]
    out_shape = (case.shape[1],) if case.batch == 1 else (case.batch, case.shape[1])
    out = be.empty(out_shape, case.dtype) if k.supports_out else None
    pairs = itertools.cycle(sparse.Rotation(native_a, native_w).pairs())   # no index arithmetic while timed

    def call(out=None):
        return k.raw(*next(pairs), out=out)

    return _Ready(case, be, device, call, (), {"out": out}, r.worst, "" if k.supports_out else ALLOCATES, base)


def _timed(ready: _Ready, t: timing.Timing, peak_gbps: float | None = None,
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
                      marks=(STARVED,) if _starved(t, ready.be.device) else None, **extra)


def _run_group(group: list[Case], host: _Inputs, sampling: timing.Sampling, checked: dict, seed: int,
               scope: RunScope, probe: _interleave.CopyProbe, beyond: bool = False) -> list[CaseResult]:
    """The cases of one (op, dtype, size), sampled round-robin (bench/measure/interleave.py), with a copy
    probe beside the CPU cases past the measured cache boundary (`beyond`); a case skipped or failed
    is left out of the rounds.
    Out of memory: the group's cases one by one instead, each skipped if it still does not fit."""
    try:
        return _interleaved(group, host, sampling, checked, seed, scope, probe, beyond)
    except Exception as exc:
        if not devices.is_out_of_memory(exc):
            raise
        host.forget_moved()
        probe.release()
        scope.release()
        return [_run_case(c, host, sampling, checked, seed, scope) for c in group]


def _interleaved(group: list[Case], host: _Inputs, sampling: timing.Sampling, checked: dict, seed: int,
                 scope: RunScope, probe: _interleave.CopyProbe, beyond: bool) -> list[CaseResult]:
    done: dict[int, CaseResult] = {}
    ready: dict[int, _Ready] = {}
    for i, case in enumerate(group):
        be = registry.backend(case.backend)
        base = _base(case)
        device = scope.device(be) if be.available else None
        why = _skip_reason(case, be, device)
        if why:
            done[i] = CaseResult(**base, status=Status.SKIPPED, reason=why)
            continue
        r = _check(case, be, device, host, checked, seed, scope, base)
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
            m, probe_bytes = probe.member(first.dtype, first.size, sampling)
            members.append(m)
        times, passes = _round_robin_again(members, sampling, seed,
                                           {str(i): r.be.device for i, r in ready.items()})
        peak = None
        if probe_bytes:
            peak = probe_bytes / float(np.median(times[_interleave.PROBE].samples_s)) / 1e9
        for i, r in ready.items():
            cpu = r.be.device == "cpu"
            # the probe's samples beside every CPU kernel but those on one thread (interleave.py)
            paired = cpu and probe_bytes and group[i].op not in r.be.one_thread_ops
            done[i] = _timed(r, times[str(i)], peak if cpu else None, times[_interleave.PROBE] if paired else None,
                             passes=passes)
    return [done[i] for i in range(len(group))]


def _base(case: Case) -> dict:
    return dict(op=case.op, backend=case.backend, device=case.device, dtype=case.dtype, size=case.size,
                bytes=roofline.traffic(case.op, case.size, case.dtype), flops=roofline.flops(case.op, case.size))


def _gpu_info(cases: list[Case]) -> dict | None:
    """GPU name, memory, driver and CUDA versions, from whichever GPU library a case uses."""
    for name in {c.backend for c in cases if c.device == "gpu"}:
        be = registry.backend(name)
        if not _timeable(be):
            continue
        try:
            return devices.adapter_for(be).device_info()
        except Exception as exc:  # environment capture must never end a run
            return {"name": None, "error": f"{type(exc).__name__}: {exc}"}
    return None
