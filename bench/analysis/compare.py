"""`python -m bench compare BASE NEW`: did a kernel get slower? One verdict per case in both runs.

A case is *slower* (or *faster*) only when two things agree, as asv decides it: its change passes
the threshold, and a Mann-Whitney U test (scipy.stats) on the raw samples rejects equal
distributions at alpha. A case whose samples spread wider than the threshold itself is *noisy*
unless its change is larger than that spread too: such a run cannot tell a change of the
threshold's size from noise, and saying "same" would be a claim it cannot back. So is a case
that `bench run` marked starved (its threads waited for a core, so the samples time the wait too)
whose change the wait could explain: a run whose threads ran a share c of their ready time may be
up to 1/c slower for that alone, and only a change beyond that counts.

A shared machine drifts: on a busy day the kernels and the copy peak measured beside them are
slower together, and a VM's memory can switch between a fast and a slow phase within a run (seen
here: the same copy at 57 and at 100 GB/s minutes apart, and a case's samples split between the
two). `--normalise auto` (the default) compares a case that has a copy probe sampled beside it in
both runs (`bench run --interleave`, CPU arrays beyond the cache) round by round: each sample
divided by the probe's sample of the same round, the case's time in copies of its size, so drift
and phase changes cancel sample by sample (files from before those samples, with only the probe's
median `peak_gbps`: time x that probe's GB/s); every other case raw, kernels on one thread among
them (bench run records no probe samples for those: bench/measure/interleave.py says why). `peak`
multiplies every time by its run's copy peak, probed at the start and end of the run; `raw`
compares times as measured. The README gives the A/A false-positive and detection rates behind
the default.

Exit codes: 0 when nothing is slower, 1 when some case is, 2 for bad input (a missing, corrupt,
truncated or other-schema file, two runs with no case in common, another device model without
--force), said in one line.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import ClassVar
from pathlib import Path

import numpy as np
from scipy import stats as _st

from bench.model import results, stats
from bench.model.cases import UsageError
from bench.model.display import fmt_size, fmt_time
from rich import box
from rich.table import Table

SLOWER, FASTER, SAME, NOISY = "slower", "faster", "same", "noisy"
VERDICTS = (SLOWER, FASTER, NOISY, SAME)
NORMALISE = ("auto", "peak", "raw")
DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01
DEFAULT_NORMALISE = "auto"
KEY_FIELDS = ("op", "backend", "device", "dtype", "size", "axes")   # axes: the kind's, ((name, value), ...)


# ----------------------------------------------------------------------------------- loading
# What compare needs of a run (bench/model/results.py): each case's identity, status and raw samples,
# each device's copy peak, and the environment.

@dataclass(frozen=True)
class Loaded:
    path: str
    env: dict
    peaks: dict                     # device -> copy peak in GB/s
    samples: dict                   # case key -> np.ndarray of seconds (timed cases only)
    status: dict                    # case key -> "ok" | "failed" | "skipped"
    created: str = ""
    case_peaks: dict = field(default_factory=dict)   # case key -> copy peak sampled beside it (--interleave)
    probe_samples: dict = field(default_factory=dict)  # case key -> that probe's samples, one per round
    starved: frozenset = frozenset()  # case keys whose threads waited for a core (results.STARVED)
    cpu_got: dict = field(default_factory=dict)  # starved case key -> share of their ready time its threads ran


def case_key(e) -> tuple:
    """A case's identity in a CaseResult: op, backend, device, dtype, size, and its kind's axes as
    ((name, value), ...) (empty for an elementwise case; the sparse matmul's shape, batch, ...)."""
    return (e.op, e.backend, e.device, e.dtype, e.size, tuple((getattr(e, "axes", None) or {}).items()))


def key_fields(key: tuple) -> dict:
    """A case key as one flat dict: the common fields and each of the kind's axes by name."""
    d = dict(zip(KEY_FIELDS, key))
    return {k: v for k, v in d.items() if k != "axes"} | dict(d.get("axes") or ())


def key_of_row(row: dict) -> tuple:
    """The case key of a history row (history.rows) or of a row of `as_dict`: the common fields, and
    the axes (a row written before schema 4 has them as fields of its own: results.LEGACY_AXES)."""
    axes = row.get("axes")
    if axes is None:
        axes = {k: row[k] for k in results.LEGACY_AXES if row.get(k) is not None}
    return (*(row.get(k) for k in KEY_FIELDS[:-1]), tuple(dict(axes).items()))


def case_label(key: tuple) -> str:
    """'relu numba_cpu float32 2^25 (33.6M)'; 'sparse_matmul scipy_csr float32 shape 4096x4096
    batch 64 sparsity 0.9 pattern relu'."""
    d = dict(zip(KEY_FIELDS, key))
    where = " ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.get("axes") or ())
    return f"{d['op']} {d['backend']} {d['dtype']} {where or fmt_size(d['size'])}"


def load(path: str | Path) -> Loaded:
    """Read a results file for comparison; UsageError (one line) when it cannot serve."""
    try:
        run = results.load(path)
    except results.ResultsError as exc:
        raise UsageError(str(exc)) from None
    return from_run(run, str(path))


def from_run(run, path: str = "<run>") -> Loaded:
    """The comparable content of a results.Run."""
    samples, status, case_peaks, probe_samples, starved, cpu_got = {}, {}, {}, {}, set(), {}
    for e in run.results:
        k = case_key(e)
        status[k] = str(e.status)
        if "starved" in (getattr(e, "marks", None) or ()):
            starved.add(k)
            if isinstance(getattr(e, "cpu_got", None), (int, float)) and e.cpu_got > 0:
                cpu_got[k] = float(e.cpu_got)
        if getattr(e, "peak_gbps", None):
            case_peaks[k] = float(e.peak_gbps)
        if e.timed:
            samples[k] = _positive(e.samples_s, path, k)
            if e.probe_samples_s is not None:
                probe_samples[k] = _positive(e.probe_samples_s, path, k)
                if probe_samples[k].size != samples[k].size:
                    raise UsageError(f"{path}: malformed case entry (probe samples do not pair with "
                                     f"the samples of {case_label(k)})")
    peaks = {}
    for dev, p in (run.peaks or {}).items():
        if isinstance(p, dict) and isinstance(p.get("gbps"), (int, float)) and p["gbps"] > 0:
            peaks[dev] = float(p["gbps"])
    return Loaded(path, dict(run.env or {}), peaks, samples, status, str(run.created or ""), case_peaks,
                  probe_samples, frozenset(starved), cpu_got)


def _positive(values, path: str, k: tuple) -> np.ndarray:
    x = np.asarray(values or (), dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise UsageError(f"{path}: malformed case entry (bad samples for {case_label(k)})")
    return x


# ----------------------------------------------------------------------------------- one case

@dataclass(frozen=True)
class Change:
    """The comparison of one case: ratio new/base of the medians (after normalisation), the
    Mann-Whitney p-value, the wider relative IQR of the two sample sets, and the verdict."""

    ratio: float
    raw_ratio: float
    p: float
    spread: float
    verdict: str


def judge(base, new, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
          scale: float = 1.0, raw_ratio: float | None = None) -> Change:
    """Verdict on one case. `scale` multiplies the new samples before anything is computed (the
    drift normalisation: new peak / base peak); `threshold` is relative (0.10 = 10 %), applied
    symmetrically in log space so that 1.1x slower and 1/1.1 faster are the same size.
    `raw_ratio`: the ratio of the measured medians, where base and new are already normalised
    samples (else it is theirs). A normalised change is called slower or faster only where the
    measured times moved the same way by at least half the threshold: otherwise the machine
    changed between the runs in a way the case did not follow (a kernel that is not bound by
    memory like the copy, across a memory phase change) and the case is noisy."""
    base = np.asarray(base, dtype=float)
    new_raw = np.asarray(new, dtype=float)
    new = new_raw * scale
    normalised = raw_ratio is not None or scale != 1.0
    if raw_ratio is None:
        raw_ratio = float(np.median(new_raw) / np.median(base))
    ratio = float(np.median(new) / np.median(base))
    spread = max(stats.summarize(base).rel_iqr, stats.summarize(new).rel_iqr)
    try:
        p = float(_st.mannwhitneyu(new, base, alternative="two-sided").pvalue)
    except ValueError:              # every sample equal in both sets
        p = 1.0
    if not math.isfinite(p):
        p = 1.0
    change = abs(math.log(ratio))
    beyond = change > math.log1p(threshold)
    followed = not normalised or math.copysign(1.0, ratio - 1) * math.log(raw_ratio) >= 0.5 * math.log1p(threshold)
    if beyond and p < alpha and (spread <= threshold or change > math.log1p(spread)) and followed:
        v = SLOWER if ratio > 1 else FASTER
    elif spread > threshold or (beyond and p < alpha and not followed):
        v = NOISY
    else:
        v = SAME
    return Change(ratio, raw_ratio, p, spread, v)


# ----------------------------------------------------------------------------------- two runs

class Labelled:
    """A row of a comparison, named by its case key (compare's and bench ab's rows)."""
    key: tuple

    @property
    def label(self) -> str:
        return case_label(self.key)


class Verdicts:
    """What a report's rows say, each row's `change.verdict` one of `verdicts` (compare's and bench
    ab's reports)."""
    rows: list
    verdicts: ClassVar[tuple] = VERDICTS

    @property
    def slower(self) -> list:
        return [r for r in self.rows if r.change.verdict == SLOWER]

    def counts(self) -> dict[str, int]:
        return {v: sum(r.change.verdict == v for r in self.rows) for v in self.verdicts}


@dataclass(frozen=True)
class Row(Labelled):
    key: tuple
    base_median: float
    new_median: float
    change: Change


@dataclass(frozen=True)
class Report(Verdicts):
    base: str
    new: str
    threshold: float
    alpha: float
    normalise: str
    rows: list[Row]
    only_base: list[tuple]          # ok only in the base run (or absent from the new one)
    only_new: list[tuple]
    warnings: list[str]
    drift: dict = field(default_factory=dict)     # device -> new peak / base peak

    def geomeans(self) -> dict[tuple[str, str], tuple[float, float, int]]:
        """(device, backend) -> (geometric mean of the ratios used, of the raw ratios, cases)."""
        groups: dict[tuple[str, str], list[Row]] = {}
        for r in self.rows:
            d = key_fields(r.key)
            groups.setdefault((d["device"], d["backend"]), []).append(r)
        return {k: (_gmean([r.change.ratio for r in v]), _gmean([r.change.raw_ratio for r in v]), len(v))
                for k, v in sorted(groups.items())}

    @property
    def exit_code(self) -> int:
        return 1 if self.slower else 0


def _gmean(xs) -> float:
    return float(_st.gmean(xs))


def device_models(env: dict) -> dict[str, str | None]:
    gpu = env.get("gpu") or {}
    return {"cpu": (env.get("cpu") or {}).get("model"), "gpu": gpu.get("name")}


def _blas(env: dict) -> list[str]:
    return sorted(f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')} {b.get('num_threads')} threads"
                  for b in (env.get("numpy") or {}).get("blas", []) if b.get("user_api") == "blas")


def env_differences(a: dict, b: dict, force: bool = False) -> list[str]:
    """Warnings for environments that differ; UsageError for another device model (unless force)."""
    warnings = []
    ma, mb = device_models(a), device_models(b)
    for dev in ("cpu", "gpu"):
        if ma[dev] != mb[dev]:
            msg = f"{dev} model differs: {ma[dev] or 'none'} -> {mb[dev] or 'none'}"
            if ma[dev] and mb[dev] and not force:
                raise UsageError(msg + "; times from different devices are not comparable (--force compares anyway)")
            warnings.append(msg)
    ca, cb = (a.get("cpu") or {}).get("cores"), (b.get("cpu") or {}).get("cores")
    if ca != cb:
        warnings.append(f"cpu cores differ: {ca} -> {cb}")
    ga, gb = a.get("gpu") or {}, b.get("gpu") or {}
    for k in ("driver", "cuda_runtime"):
        if ga and gb and ga.get(k) != gb.get(k):
            warnings.append(f"gpu {k} differs: {ga.get(k)} -> {gb.get(k)}")
    if _blas(a) != _blas(b):
        warnings.append(f"BLAS differs: {'; '.join(_blas(a)) or 'none'} -> {'; '.join(_blas(b)) or 'none'}")
    na, nb = a.get("numba") or {}, b.get("numba") or {}
    if na.get("threads") != nb.get("threads"):
        warnings.append(f"numba threads differ: {na.get('threads')} -> {nb.get('threads')}")
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    for name in sorted(set(pa) | set(pb)):
        if pa.get(name) != pb.get(name):
            warnings.append(f"{name} differs: {pa.get(name, 'absent')} -> {pb.get(name, 'absent')}")
    if a.get("python") != b.get("python"):
        warnings.append(f"python differs: {a.get('python')} -> {b.get('python')}")
    if a.get("profile") != b.get("profile"):
        warnings.append(f"profile differs: {a.get('profile')} -> {b.get('profile')}")
    return warnings


def median_scaled(base, new) -> bool:
    """Whether --normalise auto scales two runs by the medians of the copy peak sampled beside
    each case: only for files from before the per-round samples (neither run has any); else each
    sample is divided by the probe's of the same round."""
    return not (base.probe_samples or new.probe_samples)


def compare_runs(base: Loaded, new: Loaded, *, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = DEFAULT_ALPHA, normalise: str = DEFAULT_NORMALISE,
                 force: bool = False) -> Report:
    if normalise not in NORMALISE:
        raise UsageError(f"unknown normalisation {normalise!r}; valid: {', '.join(NORMALISE)}")
    warnings = env_differences(base.env, new.env, force)
    common = [k for k in base.samples if k in new.samples]
    if not common:
        raise UsageError(f"{base.path} and {new.path} have no measured case in common")
    drift = {dev: new.peaks[dev] / base.peaks[dev] for dev in base.peaks if dev in new.peaks}
    by_median = median_scaled(base, new)
    rows, starved = [], []
    for k in common:
        dev = key_fields(k)["device"]
        scale, b, n, raw = 1.0, base.samples[k], new.samples[k], None
        beside = base.case_peaks.get(k), new.case_peaks.get(k)
        paired = base.probe_samples.get(k), new.probe_samples.get(k)
        if normalise == "auto" and paired[0] is not None and paired[1] is not None:
            raw = float(np.median(n) / np.median(b))
            b, n = b / paired[0], n / paired[1]          # each sample in copies of the same round
        elif normalise == "auto" and all(beside) and by_median:
            scale = beside[1] / beside[0]                # files from before the per-round samples
        elif normalise == "peak":
            if dev in drift:
                scale = drift[dev]
            elif f"no {dev} peak" not in " ".join(warnings):
                warnings.append(f"no {dev} peak in both runs: its cases are compared raw")
        change = judge(b, n, threshold=threshold, alpha=alpha, scale=scale, raw_ratio=raw)
        if not _beyond_the_wait(change, k, base, new, threshold):
            # its samples timed the wait for a core (bench run's starved mark), not the kernel: a
            # 2-thread kernel beside a busy process read 30x slower in an A/A pair
            change = replace(change, verdict=NOISY)
            starved.append(k)
        rows.append(Row(k, float(np.median(base.samples[k])), float(np.median(new.samples[k])), change))
    if starved:
        warnings.append(f"{len(starved)} case(s) whose threads waited for a core in one of the runs (marked "
                        "starved) moved no more than that wait explains: called noisy, not slower or faster: "
                        + ", ".join(map(case_label, starved)))
    rows.sort(key=lambda r: -r.change.ratio)
    for k, s in new.status.items():
        if s != "ok" and base.status.get(k) == "ok":
            warnings.append(f"{case_label(k)}: ok in the base run, {s} in the new one")
    only_base = [k for k in base.samples if k not in new.samples]
    only_new = [k for k in new.samples if k not in base.samples]
    return Report(base.path, new.path, threshold, alpha, normalise, rows, only_base, only_new, warnings, drift)


def _beyond_the_wait(change: Change, k: tuple, base: Loaded, new: Loaded, threshold: float) -> bool:
    """Whether a slower or faster verdict stands beside the starved marks: a side whose threads ran
    a share c of the time they were ready may have had its times stretched up to 1/c by the wait
    for a core (an unknown share: 1/c stands for it), so the change must pass the threshold with
    that stretch taken off. A starved base only hides a slowdown, a starved new run a speed-up."""
    if change.verdict not in (SLOWER, FASTER):
        return True
    side = new if change.verdict == SLOWER else base
    if k not in side.starved:
        return True
    stretch = 1.0 / side.cpu_got[k] if side.cpu_got.get(k) else math.inf
    return abs(math.log(change.ratio)) - math.log(stretch) > math.log1p(threshold)


# ----------------------------------------------------------------------------------- output

STYLE = {SLOWER: "bold red", FASTER: "bold green", NOISY: "yellow", SAME: "dim"}


def pct_change(ratio: float) -> str:
    """A ratio as a signed change: +12.5% ('-' where not finite)."""
    return f"{100 * (ratio - 1):+.1f}%" if math.isfinite(ratio) else "-"


def p_text(p: float) -> str:
    """A p-value as the reports write it ('-' where not finite)."""
    return "-" if not math.isfinite(p) else f"{p:.0e}" if p < 1e-3 else f"{p:.3f}"


def print_tail(console, only: tuple[tuple[str, list[tuple]], ...], summary: str, failed: bool) -> None:
    """The end of a printed comparison: the cases found on one side only, then the summary line."""
    for title, keys in only:
        if keys:
            console.print(f"{title}: {only_summary(keys)}", highlight=False, markup=False)
    console.print(summary, style="bold red" if failed else "bold green", highlight=False)


_HOW = {"raw": "raw times", "peak": "times x the run's copy peak",
        "auto": "times in copies of the probe sampled in the same round where both runs have one, else raw"}


def _normalised(rep: Report) -> bool:
    return any(r.change.ratio != r.change.raw_ratio for r in rep.rows)


def summary_line(rep: Report) -> str:
    c = rep.counts()
    return (f"{len(rep.rows)} cases compared: {c[SLOWER]} slower, {c[FASTER]} faster, {c[NOISY]} noisy, "
            f"{c[SAME]} same (threshold {100 * rep.threshold:g}%, Mann-Whitney alpha {rep.alpha:g}, "
            f"{_HOW[rep.normalise]})")


ONLY_LISTED = 6        # cases in one run only: named one by one up to this many, else summarised
_ONLY_VALUES = 4       # values shown per field in a summary; the rest counted


def only_summary(keys: list[tuple]) -> str:
    """The cases of one run only, in a line: each named when there are few; else how many, and per
    field (backend, op, dtype, size, ...) its values with their counts, the most frequent first, so
    a whole backend or dtype missing from the other run reads as one phrase instead of ~100 names."""
    if len(keys) <= ONLY_LISTED:
        return ", ".join(case_label(k) for k in keys)
    dicts = [key_fields(k) for k in keys]
    axes = list(dict.fromkeys(name for k in keys for name, _ in dict(zip(KEY_FIELDS, k)).get("axes") or ()))
    parts = []
    for name in ("backend", "op", "dtype", "size", *axes, "device"):
        counts = Counter(d.get(name) for d in dicts if d.get(name) is not None)
        if not counts or (name == "device" and len(counts) == 1):
            continue
        if len(counts) == 1:
            (value,) = counts
            parts.append(f"{name} {_only_value(name, value)} (all)")
            continue
        common = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        shown = ", ".join(f"{_only_value(name, v)} {n}" for v, n in common[:_ONLY_VALUES])
        more = f" and {len(common) - _ONLY_VALUES} more" if len(common) > _ONLY_VALUES else ""
        parts.append(f"{name} {shown}{more}")
    return f"{len(keys)} cases: " + "; ".join(parts)


def _only_value(name: str, value) -> str:
    if name == "size":
        return fmt_size(value).split(" ")[0]          # '2^25', not '2^25 (33.6M)': counts follow
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_report(rep: Report, console) -> None:

    for w in rep.warnings:
        console.print(f"warning: {w}", style="yellow", highlight=False, markup=False)
    for dev, d in rep.drift.items():
        console.print(f"{dev} copy peak: new / base = {d:.3f}", style="dim", highlight=False)
    t = Table(box=box.ROUNDED, title=f"{rep.base} -> {rep.new}")
    t.add_column("verdict")
    t.add_column("case")
    raw = _normalised(rep)
    for name in ("base", "new", "change", "raw change" if raw else None, "p", "spread"):
        if name:
            t.add_column(name, justify="right")
    for r in rep.rows:
        c = r.change
        cells = [c.verdict, r.label, fmt_time(r.base_median), fmt_time(r.new_median), pct_change(c.ratio)]
        if raw:
            cells.append(pct_change(c.raw_ratio))
        cells += [p_text(c.p), f"±{100 * c.spread:.1f}%"]
        t.add_row(*cells, style=STYLE[c.verdict])
    console.print(t)
    g = Table(box=box.SIMPLE, title="geometric mean of new / base per device and backend")
    for name in ("device", "backend", "cases", "change", "raw change"):
        g.add_column(name, justify="right" if name not in ("device", "backend") else "left")
    for (dev, be), (gm, gm_raw, n) in rep.geomeans().items():
        g.add_row(dev, be, str(n), pct_change(gm), pct_change(gm_raw))
    console.print(g)
    print_tail(console, (("only in the base run", rep.only_base), ("only in the new run", rep.only_new)),
               summary_line(rep), bool(rep.slower))


def markdown(rep: Report) -> str:
    """A table fit for a pull-request comment: slower cases first, then the rest by change."""
    icon = {SLOWER: "🔴 slower", FASTER: "🟢 faster", NOISY: "🟡 noisy", SAME: "same"}
    lines = [f"### actbench compare: {'**' + str(len(rep.slower)) + ' slower**' if rep.slower else 'nothing slower'}",
             "", summary_line(rep) + ".", ""]
    for w in rep.warnings:
        lines.append(f"> ⚠️ {w}")
    if rep.warnings:
        lines.append("")
    raw = _normalised(rep)
    lines.append("| verdict | case | base | new | change |" + (" raw change |" if raw else "") + " p | spread |")
    lines.append("|---|---|---:|---:|---:|" + ("---:|" if raw else "") + "---:|---:|")
    for r in rep.rows:
        c = r.change
        lines.append(f"| {icon[c.verdict]} | {r.label} | {fmt_time(r.base_median)} | {fmt_time(r.new_median)} | "
                     f"{pct_change(c.ratio)} |" + (f" {pct_change(c.raw_ratio)} |" if raw else "") + f" {p_text(c.p)} | "
                     f"±{100 * c.spread:.1f}% |")
    lines += ["", "| device | backend | cases | geometric mean change | raw |", "|---|---|---:|---:|---:|"]
    for (dev, be), (gm, gm_raw, n) in rep.geomeans().items():
        lines.append(f"| {dev} | {be} | {n} | {pct_change(gm)} | {pct_change(gm_raw)} |")
    for title, keys in (("Only in the base run", rep.only_base), ("Only in the new run", rep.only_new)):
        if keys:
            lines += ["", f"{title}: {only_summary(keys)}"]
            if len(keys) > ONLY_LISTED:     # a comment can fold the whole list away
                lines += ["", "<details><summary>every case</summary>", "",
                          *(f"- {case_label(k)}" for k in keys), "", "</details>"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- command line

def parse_threshold(text: str) -> float:
    """'10%' or '0.1' -> 0.10."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UsageError(f"malformed threshold {text!r}: use a percentage like 10% or a fraction like 0.1") from None
    if not 0 < v < 10:
        raise UsageError(f"threshold must be above 0 (and below 1000%), got {text!r}")
    return v


def add_parser(sub) -> None:
    c = sub.add_parser("compare", help="verdict per case between two runs: slower, faster, same or noisy",
                       description="Compare two saved runs case by case. Slower means: the change passes the "
                       "threshold AND a Mann-Whitney U test on the raw samples rejects equality at alpha. "
                       "Exit 0: nothing slower; 1: something slower; 2: bad input.")
    c.add_argument("base", type=Path, help="the baseline results JSON")
    c.add_argument("new", type=Path, help="the new results JSON")
    c.add_argument("--threshold", default=f"{100 * DEFAULT_THRESHOLD:g}%",
                   help="smallest change that counts, e.g. 10%% (default) or 0.1")
    c.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level of the Mann-Whitney "
                   f"U test (default {DEFAULT_ALPHA})")
    c.add_argument("--normalise", choices=NORMALISE, default=DEFAULT_NORMALISE,
                   help="auto (default): a case with a copy probe sampled beside it in both runs "
                   "(bench run --interleave, beyond the cache) is compared sample by sample in copies of the "
                   "probe's sample of the same round, others raw; peak: every time x its run's copy peak; "
                   "raw: times as measured. auto had the lowest A/A false-positive rate here (README)")
    c.add_argument("--markdown", type=Path, help="also write the comparison as Markdown (a PR comment) here")
    c.add_argument("--force", action="store_true", help="compare runs from different CPU or GPU models")


def run_command(args, console) -> int:
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    threshold = parse_threshold(args.threshold)
    rep = compare_runs(load(args.base), load(args.new), threshold=threshold, alpha=args.alpha,
                       normalise=args.normalise, force=args.force)
    print_report(rep, console)
    if args.markdown:
        try:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown(rep))
        except OSError as exc:
            raise UsageError(f"cannot write {args.markdown}: {exc.strerror}") from None
        console.print(f"wrote {args.markdown}", highlight=False)
    return rep.exit_code


def as_dict(rep: Report) -> dict:
    """The comparison as plain data (for scripts and the A/A experiments)."""
    return {"base": rep.base, "new": rep.new, "threshold": rep.threshold, "alpha": rep.alpha,
            "normalise": rep.normalise, "drift": rep.drift, "warnings": rep.warnings, "counts": rep.counts(),
            "only_base": [case_label(k) for k in rep.only_base], "only_new": [case_label(k) for k in rep.only_new],
            "rows": [dict(key_fields(r.key), ratio=r.change.ratio, raw_ratio=r.change.raw_ratio,
                          p=r.change.p, spread=r.change.spread, verdict=r.change.verdict) for r in rep.rows]}


def dumps(rep: Report) -> str:
    return json.dumps(as_dict(rep), indent=1, default=str)
