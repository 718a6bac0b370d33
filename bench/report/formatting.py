"""Numbers and labels as text, shared by the rich tables, the Markdown report and the plots.

Times, counts and sizes with 3 significant digits, the four short lines of a timed cell, peak and
run labels, the environment as (label, text) pairs, and footnote numbering for failed and skipped
cases. Plain strings only: no rich, no Markdown.
"""

from __future__ import annotations


from bench.measure import blas
from bench.measure import load as _load
from bench.model.display import ABOVE_MARK, STARVED_MARK, UNSTABLE, fmt_bytes, fmt_size, fmt_speedup, fmt_time, sig3  # noqa: F401  (the marks: formatting's names)
from bench.model.results import ABOVE_PEAK, MARKED_BASELINE, PEAK_LEVELS, STARVED, CaseResult, Run, devices_of, dtypes_of

BEST = "★"          # the fastest (lowest median) cell of a row
MARKED_MARK = "?"   # on the speed-up line: the case or its NumPy case is marked

MARK_HELP = {
    STARVED: f"{STARVED_MARK} before the time: its threads were starved (they ran less than "
             f"{_load.GOT_MIN:.0%} of the time they were ready to; sampled again within its budget and "
             "still so): the time measures the wait for a core, not the kernel",
    ABOVE_PEAK: f"{ABOVE_MARK} after the % of peak: above its level's peak by more than the peak's own "
                "spread, which no copy of these bytes can be: the peak or the time is wrong",
    MARKED_BASELINE: f"{MARKED_MARK} before the speed-up: the case or its NumPy case is marked "
                     f"({STARVED_MARK}, {ABOVE_MARK} or {UNSTABLE}): the ratio is not to be trusted",
}


def fmt_iqr(e: CaseResult) -> str:
    """The IQR relative to the median: ' ±1.6%' ('' when unknown)."""
    if not e.median_s or e.iqr_s is None:
        return ""
    pct = 100 * e.iqr_s / e.median_s
    return f" ±{pct:.1f}%" if pct < 10 else f" ±{pct:.0f}%"


def fmt_pct_peak(pct: float | None, level: str | None = None) -> str:
    """'74.4% mem peak', '21.9% cache peak' ('74.4% peak' for a run that names no level)."""
    name = f"{PEAK_LEVELS.get(level, level)} peak" if level else "peak"
    return f"{sig3(pct)}% {name}" if pct is not None else f"- % {name}"


def ok_lines(e: CaseResult, best: bool) -> list[str]:
    """The four short lines of a timed case: time ± IQR, GB/s, % of peak, speed-up vs numpy."""
    marks = e.marks or ()
    mark = (f"{BEST} " if best else "") + (UNSTABLE if e.stable is False else "") \
        + (STARVED_MARK if STARVED in marks else "")
    return [f"{mark}{fmt_time(e.median_s)}{fmt_iqr(e)}",
            f"{sig3(e.gbps)} GB/s" if e.gbps is not None else "- GB/s",
            fmt_pct_peak(e.pct_peak, e.peak_level) + (f" {ABOVE_MARK}" if ABOVE_PEAK in marks else ""),
            (MARKED_MARK if marks and e.speedup_vs_numpy is not None else "") + fmt_speedup(e.speedup_vs_numpy)]


def mark_lines(entries: list[CaseResult]) -> list[str]:
    """The legend lines of the marks that `entries` carry, in a fixed order."""
    present = {m for e in entries for m in e.marks or ()}
    lines = [MARK_HELP[m] for m in (STARVED, ABOVE_PEAK) if m in present]
    if present:
        lines.append(MARK_HELP[MARKED_BASELINE])
    return lines


def busy_warning(run: Run) -> str | None:
    """The warning a run measured on a busy machine opens with (bench/measure/load.py's `busy`), or None."""
    why = _load.busy((run.env or {}).get("load"))
    if not why:
        return None
    marked = sum(1 for e in run.results if e.marks)
    return (f"WARNING: the machine was busy: {why}. Times and ratios may be off; {marked} case(s) "
            "are marked (see the legend)")


def header_warnings(run: Run) -> list[str]:
    """What a run's header opens with: the busy-machine warning, and where an environment variable
    forced an older BLAS kernel than the CPU has, that (bench/measure/blas.py)."""
    busy = busy_warning(run)
    return ([busy] if busy else []) + blas.warnings(run.env or {})


def load_line(load: dict | None) -> str | None:
    """'load 0.4 -> 2.1 (1-minute average, 2 cores); others used 3 % (up to 9 %) of the CPU'."""
    if not load:
        return None
    la = [((load.get(k) or {}).get("loadavg") or [None])[0] for k in ("before", "after")]
    text = " -> ".join("?" if v is None else f"{v:.2f}" for v in la) + \
        f" (1-minute average, {load.get('cores', '?')} cores)"
    if load.get("others_mean") is not None:
        text += (f"; other processes used {100 * load['others_mean']:.0f} % of the CPU during the run "
                 f"(up to {100 * (load.get('others_max') or 0):.0f} % between two cases)")
    return text


def ratio_label(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


class Notes:
    """Footnotes for failed and skipped cases: one number per distinct (status, reason)."""

    def __init__(self):
        self.items: dict[tuple[str, str], int] = {}

    def ref(self, e: CaseResult) -> int:
        reason = " ".join(str(e.reason or "no reason given").split())
        return self.items.setdefault((e.status.value, reason), len(self.items) + 1)

    def lines(self) -> list[str]:
        return [f"[{n}] {status}: {reason}" for (status, reason), n in self.items.items()]


# ------------------------------------------------------------------------------------ labels

def peak_label(run: Run, device: str) -> str:
    """'cpu peak 24.1 GB/s (2-thread copy)', with a cache peak 'cpu mem peak 24.1 GB/s (...),
    cache peak 310 GB/s below 64.0 MiB', or that no peak was measured."""
    peak = run.peaks.get(device) or {}
    if peak.get("gbps") is None:
        return f"{device} peak not measured"
    method = f" ({peak['method']})" if peak.get("method") else ""
    cache = peak.get("cache") or {}
    if cache.get("refused_gbps") is not None:
        return (f"{device} mem peak {sig3(peak['gbps'])} GB/s{method}, cache peak refused "
                f"({sig3(cache['refused_gbps'])} GB/s, not above it): the memory peak judges every case")
    if cache.get("gbps") is None:
        return f"{device} peak {sig3(peak['gbps'])} GB/s{method}"
    return (f"{device} mem peak {sig3(peak['gbps'])} GB/s{method}, cache peak {sig3(cache['gbps'])} GB/s"
            + cache_scope(cache))


def cache_scope(cache: dict) -> str:
    """' below 64.0 MiB': the working sets the cache peak judges ('' when unknown)."""
    below = cache.get("applies_below_bytes")
    return f" below {fmt_bytes(below)}" if below else ""


def level_legend(run: Run, entries: list[CaseResult]) -> str | None:
    """The legend line saying which peak each '% ... peak' is of (None when no case names a level)."""
    if not any(e.peak_level for e in entries):
        return None
    scopes = [cache_scope((run.peaks.get(d) or {}).get("cache") or {}) for d in devices_of(entries)]
    below = next((s for s in scopes if s), "")
    return ("% mem peak: of the memory copy peak; % cache peak: of the cache-resident copy peak, which "
            f"judges cases whose bytes (inputs + outputs) are{below or ' below the measured boundary'}, "
            "the working set up to which a copy ran clearly faster than from memory (measured sweep)")


def op_title(run: Run, op: str, entries: list[CaseResult]) -> str:
    peaks = ", ".join(peak_label(run, d) for d in devices_of(entries))
    return " · ".join(p for p in (op, ", ".join(dtypes_of(entries)), peaks) if p)


def run_label(run: Run, i: int = 0) -> str:
    """'host commit' of a run, or 'run <i+1>' when neither is known."""
    commit = ((run.env.get("git") or {}).get("commit") or "")[:7]
    return " ".join(p for p in (run.env.get("host"), commit) if p) or f"run {i + 1}"


# ------------------------------------------------------------------------------------ environment

def _blas_line(info: dict) -> str:
    arch = info.get("architecture") or info.get("coretype")
    parts = [f"{info.get('internal_api', '?')} {info.get('version') or ''}".strip(),
             f"{info.get('num_threads', '?')} threads", arch]
    return f"{info.get('user_api', 'blas')}: " + ", ".join(str(p) for p in parts if p)


def _gpu_line(gpu: dict | None) -> str:
    if not gpu:
        return "no GPU"
    mem = gpu.get("memory_bytes")
    parts = [gpu.get("name"), f"{mem / 2**30:.0f} GiB" if mem else None,
             f"cc {gpu['compute_capability']}" if gpu.get("compute_capability") else None,
             f"driver {gpu['driver']}" if gpu.get("driver") else None,
             f"CUDA {gpu['cuda_runtime']}" if gpu.get("cuda_runtime") else None]
    return ", ".join(str(p) for p in parts if p)


def _git_line(git: dict | None) -> str:
    git = git or {}
    if not git.get("commit"):
        return "unknown"
    return git["commit"][:10] + (" (dirty)" if git.get("dirty") else "")


def _cores(cpu: dict) -> str:
    """'2 cores', or '2 of 64 cores' where the affinity mask gave the run fewer than the host has."""
    cores, host = cpu.get("cores", "?"), cpu.get("logical_cpus")
    return f"{cores} of {host} cores" if host and host != cores else f"{cores} cores"


def _simd(flags) -> str:
    """', AVX-512': the widest vector extension the CPU's recorded flags name ('' when none or unknown)."""
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("sve", "SVE"), ("asimd", "NEON")):
        if flag in (flags or ()):
            return f", {name}"
    return ""


def env_lines(run: Run) -> list[tuple[str, str]]:
    """(label, text) pairs describing where and how the run happened, then the peaks."""
    env = run.env
    cpu, nb, npy = env.get("cpu") or {}, env.get("numba") or {}, env.get("numpy") or {}
    llc = f", LLC {cpu['llc_bytes'] / 2**20:.0f} MiB" if cpu.get("llc_bytes") else ""
    lines = [("host", ", ".join(str(p) for p in (env.get("host"), env.get("platform"),
                                                   env.get("python") and f"Python {env['python']}") if p)),
             ("cpu", f"{cpu.get('model', '?')}, {_cores(cpu)}{llc}{_simd(cpu.get('flags'))}"),
             ("numpy", f"{npy.get('version', '?')}; " + ("; ".join(map(_blas_line, npy.get("blas") or []))
                                                        or "no BLAS info"))]
    if nb:
        lines.append(("numba", f"{nb.get('version', '?')}, {nb.get('threads', '?')} threads"
                      + (f" ({nb['threading_layer']})" if nb.get("threading_layer") else "")))
    numba_cpu = (env.get("settings") or {}).get("numba_cpu") or {}
    strategy = numba_cpu.get("stores") or env.get("numba_cpu_stores") or {}   # the key of runs before 2026-12
    stores = strategy.get("choices") or {}
    if stores:
        lines.append(("stores", "numba_cpu beyond " + fmt_bytes(strategy.get("min_bytes") or 0) + ": "
                      + "; ".join(f"{k} {'streaming' if c.get('stream') else 'ordinary'}, block {c.get('block')} "
                                  f"({c.get('source')}"
                                  + (f", x{c['speedup']:.2f}" if c.get("speedup") else "") + ")"
                                  for k, c in stores.items())))
    split = strategy.get("serial_max") or {}
    if split:
        lines.append(("threads", "numba_cpu on one thread below: " + "; ".join(
            f"{k} {fmt_size(c.get('serial_max') or 0)} ({c.get('source')})" for k, c in split.items())))
    methods = (numba_cpu.get("sparse_method") or {}).get("choices") or {}
    if methods:
        lines.append(("sparse", "numba_cpu sparse_matmul batches: " + "; ".join(
            f"{k} {c.get('method')} ({c.get('source')})" for k, c in methods.items())))
    lines += [("gpu", _gpu_line(env.get("gpu"))),
              ("git", _git_line(env.get("git"))),
              ("profile", f"{env.get('profile') or '-'}, seed {env.get('seed', '-')}, "
                          f"created {run.created or '?'}"
                          + (", INTERRUPTED (partial results)" if run.interrupted else ""))]
    if run.error:
        lines.append(("stopped by", run.error))
    if load_line(env.get("load")):
        lines.append(("load", load_line(env.get("load"))))
    for dev in run.peaks:
        lines.append(("peak", peak_label(run, dev)))
        for note in (run.peaks.get(dev) or {}).get("notes") or []:
            lines.append(("peak note", f"{dev}: {note}"))
        cache = (run.peaks.get(dev) or {}).get("cache") or {}
        if cache.get("method"):
            sweep = ", ".join(f"{fmt_bytes(p['working_set_bytes'])} {sig3(p['gbps'])}"
                              for p in cache.get("sweep") or [])
            lines.append(("cache peak", f"{cache['method']}" + (f"; sweep (working set GB/s): {sweep}"
                                                                    if sweep else "")))
    return lines
