"""The flow of one run, left to right: cases -> inputs -> kernels -> check -> timing -> roofline -> results.

`run_cases` measures the peaks of each device involved, then every case through its op kind
(bench/kinds/: its inputs, the correctness gate (a failing case is never timed), the timing with
preallocated outputs, bench/measure/case.py's steps); the memory peak is probed again before the arrays beyond
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
import traceback
from pathlib import Path
from typing import Callable

from kernels import registry

from bench import kinds
from bench.measure import devices, load, roofline, timing
from bench.measure import interleave as _interleave
from bench.measure.case import Context, timeable
from bench.measure.environment import environment
from bench.model.cases import Case, Profile
from bench.model.results import Run
from bench.measure.scope import RunScope

_ROOT = Path(__file__).resolve().parents[2]     # the checkout: bench/ and kernels/ live here



def run_cases(profile: Profile, cases: list[Case], *, seed: int = 0, command: str | None = None,
              progress=None, on_case: Callable[[Run], None] | None = None, interleave: bool = False,
              plugins: list[dict] | None = None) -> Run:
    """Measure `cases`; returns the Run (bench/model/results.py). `progress` is a rich Progress (or
    None); `on_case` is called with the run so far after each case (for saving as it goes).
    `interleave`: the backends of each (op, dtype, size) are sampled round-robin (bench/measure/interleave.py).
    `plugins`: the records of the plugins loaded (bench/run/plugins.py), kept in the run's env."""
    run = Run(env=environment(command, profile=profile.name, seed=seed, gpu=_gpu_info(cases),
                              plugins=list(plugins or [])))
    interrupted, error, where = False, None, "peaks"
    sampling = profile.sampling
    # peaks only where some case will be timed: a backend that is missing or simulated has none
    devices = sorted({c.device for c in cases if timeable(registry.backend(c.backend))})
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
            probed_again: set[str] = set()
            ctx = Context(sampling, seed, scope, _interleave.CopyProbe(), interleave)
            sessions: dict[str, object] = {}      # per op kind, its inputs over the run
            current = None
            for group in _groups(cases, interleave):
                case = group[0]
                kind = kinds.for_op(case.op)
                where = case.name if len(group) == 1 else f"{case.op} {case.dtype} {case.size} group"
                if progress:
                    progress.update(task, description=case.name if len(group) == 1 else
                                    f"{case.op} {case.dtype} {case.size} x {len(group)} interleaved")
                if current is not None and current is not kind:
                    sessions[current.NAME].release()      # one kind's inputs at a time
                current = kind
                session = sessions.setdefault(kind.NAME, kind.Session(ctx))
                beyond = _beyond_cache(case, first_peaks.get("cpu"))
                if case.device == "cpu" and "cpu" not in probed_again and beyond:
                    # before the first arrays beyond the cache, probe the peak again (once): a
                    # probe that met a busy moment of a shared machine must not set every % of peak
                    session.release()
                    again = _measure_peak("cpu", cases, sampling, scope)
                    first_peaks["cpu"] = _combine_peaks(first_peaks["cpu"], again)
                    probed_again.add("cpu")
                for entry in session.run(group, beyond):
                    run = run.adding(entry)
                    if on_case:
                        on_case(run)
                    advance(f"{entry.op} {entry.backend}")
            ctx.probe.release()
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
    env = dict(run.env, settings=_backend_settings(cases), load=loadlog.finish())
    return kinds.derive(dataclasses.replace(run, env=env, peaks=first_peaks, interrupted=interrupted, error=error))


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


def _backend_settings(cases: list[Case]) -> dict:
    """Each timed backend's tuning choices of this run (Backend.settings: measured on this machine
    at first use, cached, or forced), for the header and the JSON; backends with none left out."""
    out = {}
    for name in dict.fromkeys(c.backend for c in cases):
        be = registry.backend(name)
        if not timeable(be):
            continue
        try:
            got = be.settings()
        except Exception as exc:      # a plugin's own hook: its fault must not lose the run at its end
            got = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
        if got:
            out[name] = got
    return out


def _groups(cases: list[Case], interleave: bool) -> list[list[Case]]:
    """Consecutive cases of one op kind's `group_key` together when interleaving (elementwise: one
    (device, op, dtype, size)), else (and for a kind without one) one by one."""
    if not interleave:
        return [[c] for c in cases]
    groups = itertools.groupby(cases, key=lambda c: kinds.for_op(c.op).group_key(c) or id(c))
    return [list(g) for _, g in groups]


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
               if be.device == "gpu" and timeable(be))
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
    """Whether the case's arrays are past the measured cache boundary (where the memory peak
    applies), by the bytes its kind says it moves (none: it does not matter)."""
    boundary = ((peak or {}).get("cache") or {}).get("applies_below_bytes")
    working_set = kinds.for_op(case.op).working_set(case)
    return boundary is not None and working_set is not None and working_set >= boundary


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


def _gpu_info(cases: list[Case]) -> dict | None:
    """GPU name, memory, driver and CUDA versions, from whichever GPU library a case uses."""
    for name in {c.backend for c in cases if c.device == "gpu"}:
        be = registry.backend(name)
        if not timeable(be):
            continue
        try:
            return devices.adapter_for(be).device_info()
        except Exception as exc:  # environment capture must never end a run
            return {"name": None, "error": f"{type(exc).__name__}: {exc}"}
    return None
