"""The results model: typed records of a run, the figures derived from them, their grouping for
tables and plots, and the JSON schema with atomic save / load.

A `Run` holds one `CaseResult` per case; both are frozen, so a figure is derived by making a new
record (`derive`), never by editing one in place. On disk a run is one JSON document:

    {
      "schema": "actbench.results/4",
      "created": "2026-11-28T12:00:00+00:00",
      "interrupted": false,                 # true when Ctrl-C, SIGTERM or an exception ended the run early
      "error": null,                        # an exception's one line: what failed, in which case, where
      "env": {                              # bench/measure/environment.py: where and how it ran
        "host", "platform", "python", "command", "profile", "seed",
        "cpu": {"model", "cores", "llc_bytes"},
        "numpy": {"version", "blas": [threadpoolctl's info dicts]},
        "numba": {"version", "threads", "threading_layer"},
        "gpu": null | {"name", "memory_bytes", "driver", "cuda_runtime", "compute_capability", "l2_bytes"},
        "packages": {name: version},
        "git": {"commit", "dirty"}
      },
      "peaks": {                            # per device, measured in the same run: the fastest
        "cpu": {"gbps", "method", "bytes", "median_s", "samples_s": [...],   # of several probes:
                "fastest_gbps",                                              # the memory peak
                "measured": [{"method", "gbps", "median_s", "samples_s", "probe"}, ...],
                "cache": {"gbps", "method", "bytes", "median_s", "samples_s", "measured",
                          "working_set_bytes",       # src + dst of the cache probe
                          "sweep": [{"working_set_bytes", "gbps"}, ...],
                          "applies_below_bytes"}},   # the cache peak judges smaller working sets
        "gpu": {...}                                 # memory peak only
      },
      "results": [{CaseResult's fields}, ...]   # one entry per case, status "ok" | "failed" | "skipped"
    }

Each case names its op kind (`kind`: "elementwise", "matmul": bench/kinds/), and a kind whose
cases have axes beyond the size, or figures of their own, keeps them in the generic `axes` and
`figures` objects (the sparse matmul: axes shape "KxN", batch, sparsity, pattern; figures
speedup_vs_dense, pct_of_ideal, conversion_s). Schemas 1-3 had those seven as fields of every case
(null for elementwise ones); they load into `axes` and `figures` (`_migrate`).

Fields that a failed or skipped case cannot have are null. A timed CPU case records `cpu_got`,
the share of their runnable time its threads ran during its samples (bench/measure/load.py), and its
`marks`, what makes a figure of it unsafe to read: "starved" (its threads waited for a core: it was
measured again within its budget, `remeasured`, and stayed so), "above peak" (faster than its
level's peak by more than the peak's own spread: the peak, not the case, is wrong), "marked
baseline" (its speed-up is over a NumPy case that is marked or did not stabilise). The run's
`env.load` holds the machine's load before, during and after it (bench/measure/load.py), and a peak that
contradicted physics names it in its `notes` (bench/measure/roofline.py's `peak_faults`). These fields
are absent from files written before them, which load and render as they did.
Each timed case's `peak_level` says
which peak its pct_peak is of: "cache" when its working set (the bytes it moves, inputs + outputs)
is below the cache peak's `applies_below_bytes`, else "memory". Schema 2 files (one peak per device,
no `peak_level`: every % is of the memory peak) and schema 1 files (the same, plus shape,
batch and sparsity fields that were always null) still load. Saving writes a temporary file in the
same folder and renames it over the target, so a crash or Ctrl-C never leaves half a file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import socket
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.model.stats import summarize

SCHEMA = "actbench.results/4"
SCHEMA_3 = "actbench.results/3"     # a matmul case's axes and figures as fields of every case
SCHEMA_2 = "actbench.results/2"     # no cache peak, no peak_level: read as they are
SCHEMA_1 = "actbench.results/1"
_DROPPED_IN_2 = ("shape", "batch", "sparsity")     # schema 1 fields nothing ever filled


class ResultsError(ValueError):
    """A results file that cannot be read as actbench results."""


class Status(str, enum.Enum):
    """What became of a case. A str, so that it is its own JSON value."""
    OK = "ok"              # checked and timed
    FAILED = "failed"      # the correctness gate rejected it: never timed
    SKIPPED = "skipped"    # not run here (backend missing, dtype unsupported, too little memory)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CaseResult:
    """One case of a run. Build it with the fields the case has; the derived figures (gbps,
    pct_peak, speedup_vs_numpy) come from `derive`."""
    op: str
    backend: str
    device: str
    dtype: str
    size: int                                  # elements of x
    status: Status
    reason: str | None = None                  # why failed / skipped; a caveat of an ok case
    median_s: float | None = None
    iqr_s: float | None = None
    min_s: float | None = None
    n: int | None = None
    samples_s: tuple[float, ...] | None = None
    stable: bool | None = None                 # the median stabilised within the case's budget
    timer: str | None = None
    bytes: int | None = None                   # bytes the op must move (bench/measure/roofline.py)
    flops: int | None = None
    gbps: float | None = None
    pct_peak: float | None = None
    speedup_vs_numpy: float | None = None
    check_worst: float | None = None
    kind: str = "elementwise"                  # the op's kind (bench/kinds/): its axes, figures, tables
    axes: Mapping[str, Any] | None = None      # the kind's axes beyond the size, in its order
    figures: Mapping[str, float] | None = None  # the kind's own derived figures
    peak_level: str | None = None              # "memory" | "cache": the peak pct_peak is of (None: schema 1-2)
    peak_gbps: float | None = None             # the memory copy peak sampled beside this case (--interleave)
    # the samples of the copy probe beside it, one per round of samples_s (not for kernels on one
    # thread, Backend.one_thread_ops: the all-core probe does not move with them)
    probe_samples_s: tuple[float, ...] | None = None
    cpu_got: float | None = None               # share of their runnable time its threads ran (bench/measure/load.py)
    remeasured: bool | None = None             # sampled again because its threads were starved
    marks: tuple[str, ...] | None = None       # STARVED, ABOVE_PEAK, MARKED_BASELINE: figures not to trust

    def __post_init__(self):
        # plain Python values whatever the caller passes (strings, lists, NumPy scalars), so that
        # records compare equal to what JSON gives back
        set_ = object.__setattr__
        set_(self, "status", Status(self.status))
        for name in ("median_s", "iqr_s", "min_s", "gbps", "pct_peak", "speedup_vs_numpy", "check_worst",
                     "peak_gbps", "cpu_got"):
            v = getattr(self, name)
            if v is not None:
                set_(self, name, float(v))
        for name in ("size", "n", "bytes", "flops"):
            v = getattr(self, name)
            if v is not None:
                set_(self, name, int(v))
        for name in ("samples_s", "probe_samples_s"):
            v = getattr(self, name)
            if v is not None:
                set_(self, name, tuple(float(s) for s in v))
        if self.marks is not None:
            set_(self, "marks", tuple(str(m) for m in self.marks))
        if self.axes is not None:
            set_(self, "axes", {str(k): _plain(v) for k, v in self.axes.items()} or None)
        if self.figures is not None:
            set_(self, "figures", {str(k): float(v) for k, v in self.figures.items() if v is not None} or None)

    def figure(self, name: str) -> float | None:
        """One of the kind's figures, None where the case has none."""
        return (self.figures or {}).get(name)

    def axis(self, name: str) -> Any:
        """One of the kind's axes, None where the case has none."""
        return (self.axes or {}).get(name)

    @property
    def axes_key(self) -> tuple:
        """The kind's axes as a hashable tuple of (name, value), in the kind's order."""
        return tuple((self.axes or {}).items())

    @property
    def timed(self) -> bool:
        """Checked, timed, and with a median to show."""
        return self.status is Status.OK and self.median_s is not None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in _OPTIONAL:                      # only in the cases that have them
            if d[name] is None:
                del d[name]
        d["status"] = self.status.value
        for name in ("samples_s", "probe_samples_s", "marks"):
            if d.get(name) is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CaseResult:
        return cls(**d)


_FIELDS = frozenset(f.name for f in dataclasses.fields(CaseResult))
_OPTIONAL = ("peak_gbps", "probe_samples_s", "cpu_got", "remeasured", "marks", "axes", "figures")  # null: left out
# Schemas 1-3 kept a matmul case's axes and figures as fields of every case (`_migrate`)
LEGACY_AXES = ("shape", "batch", "sparsity", "pattern")
_OLD_FIGURES = ("speedup_vs_dense", "pct_of_ideal", "conversion_s")


def _plain(v):
    """A NumPy scalar as the Python value JSON gives back."""
    return v.item() if hasattr(v, "item") else v


def _migrate(e: dict, schema: str) -> dict:
    """A case entry of schema 1-3 in schema 4's form: the matmul fields every case carried (null for
    an elementwise case) become the `axes` and `figures` of the cases that have them."""
    axes = {k: e.pop(k) for k in LEGACY_AXES if k in e}
    figures = {k: e.pop(k) for k in _OLD_FIGURES if k in e}
    axes = {k: v for k, v in axes.items() if v is not None}
    figures = {k: v for k, v in figures.items() if v is not None}
    if axes:
        e.update(kind="matmul", axes=axes)
    if figures:
        e["figures"] = figures
    return e

STARVED = "starved"                  # its threads waited for a core (bench/measure/load.py's rule)
ABOVE_PEAK = "above peak"            # faster than its level's peak by more than the peak's spread
MARKED_BASELINE = "marked baseline"  # its speed-up's NumPy case is marked or unstable
_DERIVED_MARKS = (ABOVE_PEAK, MARKED_BASELINE)     # recomputed by every derive


def is_marked(e: CaseResult) -> bool:
    """Whether a timed case's own figures are unsafe: starved, above its peak, or unstable."""
    return e.stable is False or any(m in (STARVED, ABOVE_PEAK) for m in e.marks or ())


def speedup_marked(e: CaseResult) -> bool:
    """Whether a case's speed-up over NumPy is unsafe: the case or its NumPy case is marked."""
    return is_marked(e) or MARKED_BASELINE in (e.marks or ())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Run:
    """A whole run: where it ran (env, a dict: bench/measure/environment.py), the copy peak of each
    device, and the cases in the order they ran."""
    env: Mapping[str, Any]
    results: tuple[CaseResult, ...] = ()
    peaks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    interrupted: bool = False
    error: str | None = None      # why a run that died of an exception stopped (it is interrupted too)

    def __post_init__(self):
        object.__setattr__(self, "results", tuple(self.results))

    def adding(self, case: CaseResult) -> Run:
        """This run with one more case."""
        return replace(self, results=self.results + (case,))

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "created": self.created, "interrupted": self.interrupted, "error": self.error,
                "env": self.env, "peaks": self.peaks, "results": [e.to_json() for e in self.results]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Run:
        """A run from its JSON document (schema 4, 3, 2 or 1); ResultsError when it is none of them."""
        schema = d.get("schema") if isinstance(d, Mapping) else None
        if schema not in (SCHEMA, SCHEMA_3, SCHEMA_2, SCHEMA_1):
            newer = _schema_number(schema)
            if newer is not None and newer > _schema_number(SCHEMA):
                raise ResultsError(f"written by a newer actbench (schema {schema!r}); this one reads schemas 1 to "
                                   f"{_schema_number(SCHEMA)}: update actbench to read it")
            raise ResultsError(f"not an actbench results file (expected schema {SCHEMA!r})")
        # the containers' types first: a file edited by hand or by another tool must be one line, not
        # a traceback from deep in a table
        for name, kind in (("results", list), ("env", Mapping), ("peaks", Mapping)):
            if d.get(name) is not None and not isinstance(d[name], kind):
                raise ResultsError(f"{name!r} must be a JSON {'list' if kind is list else 'object'}, "
                                   f"got {type(d[name]).__name__}")
        for dev, peak in (d.get("peaks") or {}).items():
            if not isinstance(peak, Mapping) or not _positive_or_none(peak.get("gbps")):
                raise ResultsError(f"peaks[{dev!r}] must be an object with a positive 'gbps'")
        cases = []
        for i, e in enumerate(d.get("results") or []):
            if not isinstance(e, Mapping):
                raise ResultsError(f"case {i}: a JSON object expected, got {type(e).__name__}")
            e = dict(e)
            if schema == SCHEMA_1:
                for k in _DROPPED_IN_2:
                    if e.pop(k, None) is not None:
                        raise ResultsError(f"case {i}: a {k!r} value, which no actbench run has written")
            if schema != SCHEMA:
                e = _migrate(e, schema)
            unknown = set(e) - _FIELDS
            if unknown:
                raise ResultsError(f"case {i}: unknown fields {sorted(unknown)}")
            try:
                case = CaseResult.from_json(e)
            except (TypeError, ValueError) as exc:
                raise ResultsError(f"case {i}: {exc}") from None
            if case.status is Status.OK and case.median_s is not None and not _positive_or_none(case.median_s):
                # a time that cannot be (NaN, zero, negative) would be starred as the fastest
                raise ResultsError(f"case {i} ({case.op} {case.backend}): median_s must be a positive number of "
                                   f"seconds, got {case.median_s}")
            cases.append(case)
        return cls(env=d.get("env") or {}, results=tuple(cases), peaks=d.get("peaks") or {},
                   created=d.get("created") or "", interrupted=bool(d.get("interrupted")),
                   error=d.get("error") if isinstance(d.get("error"), str) else None)


def _schema_number(schema) -> int | None:
    """3 for 'actbench.results/3'; None for anything else."""
    prefix = "actbench.results/"
    if isinstance(schema, str) and schema.startswith(prefix) and schema[len(prefix):].isdigit():
        return int(schema[len(prefix):])
    return None


def _positive_or_none(v) -> bool:
    """v is None or a finite number above 0."""
    if v is None:
        return True
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# ------------------------------------------------------------------------------------ derived figures

PEAK_LEVELS = {"memory": "mem", "cache": "cache"}    # level -> its short name in a cell


def peak_for(peak: Mapping[str, Any] | None, working_set: int | None) -> tuple[str | None, float | None]:
    """(level, GB/s) of the peak that judges a case moving `working_set` bytes on a device whose
    peaks entry is `peak`: the cache peak below its measured `applies_below_bytes`, the memory peak
    from there on (and wherever no cache peak was measured: the GPU, schema 2 runs)."""
    if not peak or peak.get("gbps") is None:
        return None, None
    cache = peak.get("cache") or {}
    below = cache.get("applies_below_bytes")
    if cache.get("gbps") and below is not None and working_set is not None and working_set < below:
        return "cache", float(cache["gbps"])
    return "memory", float(peak["gbps"])


def derive(run: Run) -> Run:
    """The run with gbps, pct_peak (of the peak of the level the case's bytes fit in: `peak_for`),
    peak_level and speedup_vs_numpy of every timed case computed from the medians, the bytes each
    op moves and the run's own peaks. A kind's own figures come from its `derive` (bench/kinds/)."""
    def key(e: CaseResult) -> tuple:
        return (e.op, e.dtype, e.size, e.axes_key)

    def figures(e: CaseResult) -> CaseResult:
        if not e.timed or not e.median_s:
            return e
        gbps = e.bytes / e.median_s / 1e9
        level, peak = ("memory", e.peak_gbps) if e.peak_gbps else peak_for(run.peaks.get(e.device), e.bytes)
        pct = 100 * gbps / peak if peak else None
        marks = [m for m in e.marks or () if m not in _DERIVED_MARKS]
        dev_peak = run.peaks.get(e.device) or {}
        # a CPU run without a cache peak (schema 2) judges in-cache cases by the memory peak, which
        # they pass by nature; so does a case in a cache whose peak was refused
        scoped = "cache" in dev_peak or e.device != "cpu"
        if pct is not None and scoped and pct > 100 * (1 + peak_spread(dev_peak, level, e)) \
                and not in_refused_cache(dev_peak, e.bytes):
            marks.append(ABOVE_PEAK)
        return replace(e, gbps=gbps, pct_peak=pct, peak_level=level, marks=tuple(marks) or None)

    cases = [figures(e) for e in run.results]
    numpy_case = {key(e): e for e in cases if e.backend == "numpy" and e.timed}

    def speedup(e: CaseResult) -> CaseResult:
        if not e.timed or not e.median_s:
            return e
        ref = numpy_case.get(key(e))
        marks = list(e.marks or ())
        if ref is not None and ref is not e and is_marked(ref):
            marks.append(MARKED_BASELINE)
        return replace(e, speedup_vs_numpy=ref.median_s / e.median_s if ref else None, marks=tuple(marks) or None)

    return replace(run, results=tuple(speedup(e) for e in cases))


def in_refused_cache(peak: Mapping[str, Any] | None, working_set: int | None) -> bool:
    """Whether a case's working set lies in a cache whose peak was refused (it stayed below the
    memory peak): the memory peak judges it, and being faster than that is no contradiction."""
    cache = (peak or {}).get("cache") or {}
    below = cache.get("applies_below_bytes")
    return cache.get("refused_gbps") is not None and below is not None and working_set is not None \
        and working_set < below


def peak_spread(peak: Mapping[str, Any] | None, level: str | None, e: CaseResult | None = None) -> float:
    """The relative spread (IQR / median) of the samples behind the peak that judges a case: the
    copy probe beside it (interleaved runs), else the run's `level` peak of its device; 0 unknown."""
    if e is not None and e.peak_gbps and e.probe_samples_s:
        samples = e.probe_samples_s
    else:
        p = (peak or {}).get("cache") if level == "cache" else peak
        samples = (p or {}).get("samples_s")
    if not samples:
        return 0.0
    spread = summarize(samples).rel_iqr
    return spread if spread == spread and spread != float("inf") else 0.0


def ratio(e: CaseResult | None, first: CaseResult | None) -> float | None:
    """e's median over the first run's median of the same case (None when either is untimed)."""
    if not e or not first or not e.timed or not first.timed or not e.median_s or not first.median_s:
        return None
    return e.median_s / first.median_s


# ------------------------------------------------------------------------------------ grouping

def op_order(ops: Iterable[str], known: Iterable[str] = ()) -> list[str]:
    """The ops in the order of `known` (kernels.ops.OPS, where the caller has the kernels); the
    others after them, as they appear (a run's cases come in OPS order at each size)."""
    known = list(known)
    ops = list(dict.fromkeys(ops))
    return sorted(ops, key=lambda op: known.index(op) if op in known else len(known) + ops.index(op))


def backend_order(entries: Iterable[CaseResult]) -> list[str]:
    """numpy first, then the other backends in order of appearance."""
    names = list(dict.fromkeys(e.backend for e in entries))
    return sorted(names, key=lambda b: (b != "numpy", names.index(b)))


def by_op(run: Run) -> dict[str, list[CaseResult]]:
    """The run's cases grouped by op, ops in their canonical order."""
    return {op: [e for e in run.results if e.op == op] for op in op_order(e.op for e in run.results)}


RowKey = tuple[str, int]      # (dtype, size): one table row


def rows(entries: Iterable[CaseResult]) -> dict[RowKey, dict[str, CaseResult]]:
    """(dtype, size) -> {backend: case}, rows sorted by dtype (as they appear) then size."""
    entries = list(entries)
    dtypes = dtypes_of(entries)
    out: dict[RowKey, dict[str, CaseResult]] = {}
    for e in entries:
        out.setdefault((e.dtype, e.size), {}).setdefault(e.backend, e)
    return {k: out[k] for k in sorted(out, key=lambda k: (dtypes.index(k[0]), k[1]))}


def best_backend(cells: Mapping[str, CaseResult]) -> str | None:
    """The backend with the lowest median among a row's timed cases."""
    timed = [(e.median_s, b) for b, e in cells.items() if e.timed]
    return min(timed)[1] if timed else None


def dtypes_of(entries: Iterable[CaseResult]) -> list[str]:
    return list(dict.fromkeys(e.dtype for e in entries if e.dtype))


def devices_of(entries: Iterable[CaseResult]) -> list[str]:
    return list(dict.fromkeys(e.device for e in entries if e.device))


# ------------------------------------------------------------------------------------ files

def _jsonable(o):
    """NumPy scalars and arrays, and paths, in env and peaks (cases are plain already)."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save(run: Run, path: str | Path) -> Path:
    """Write run as JSON to path atomically (temp file in the same folder, then rename)."""
    return write_json(run.to_json(), path)


def write_json(doc: Any, path: str | Path) -> Path:
    """Write doc as JSON to path atomically (temp file in the same folder, then rename): a reader
    never sees half a file. NumPy values and paths are written as lists, numbers and strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _mode_for(path))      # mkstemp's 0600 would hide the results from the team
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, default=_jsonable, allow_nan=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mode_for(path: Path) -> int:
    """The permissions a rewritten file keeps (its own), or a new one gets (0666 less the umask,
    as open() would give)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def load(path: str | Path) -> Run:
    """Read a results file; ResultsError (one line) when it is missing or not actbench results."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{path}: a folder, not a results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    try:
        return Run.from_json(doc)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None


def default_path(folder: str | Path = "reports/results") -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    return Path(folder) / f"{stamp}-{socket.gethostname()}.json"
