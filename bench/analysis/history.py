"""The CI gate's memory: this machine's baseline, the history of every check, one plot per op.

    python -m bench.cli.check baseline [--profile quick] [--run-args "..."]   # make bench's baseline
    python -m bench.cli.check check    [--profile quick] [--threshold 10%] ... # make bench-check
    python -m bench.cli.check plot     [--history reports/history.jsonl]       # redraw the plots

A baseline is a run kept as reports/baselines/<machine>.json, where <machine> names what the
numbers depend on: the CPU model and core count, and the GPU model (never the hostname: every
machine here is called `vm`, and two of them were different CPUs). `check` runs the profile,
compares it with the baseline (making the baseline when there is none), appends one row per case
to reports/history.jsonl (commit, date, median, % of peak), draws the history of each op, and
exits 1 when a case is significantly slower (bench/analysis/compare.py decides), 2 for bad input, 4 when
this machine has no baseline and the check may not make one (never a silent pass: a pull request
is gated by `bench ab` instead, bench/analysis/ab.py). `--update-baseline --accept-slower` makes an
intentional slowdown the baseline.

A case called slower is measured again (`--confirm`, twice by default) and the fastest of its
measurements kept: load from other processes only ever adds time, so a kernel that met a busy
moment recovers, while one that really got slower is slower every time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from bench.analysis import compare
from bench.model import cases as model_cases
from bench.run import runner
from bench.model import results
from bench.model.display import style
from bench.model.cases import UsageError

BASELINES = Path("reports/baselines")
HISTORY = Path("reports/history.jsonl")
PLOTS = Path("reports/history")
ROW_FIELDS = compare.KEY_FIELDS[:-1]     # and "axes", where the case's kind has axes
EXIT_ERROR, EXIT_INTERRUPTED = 3, 130      # a Stopped re-measurement: a fault, Ctrl-C


class Stopped(Exception):
    """A check that cannot give a verdict (Ctrl-C or a fault while measuring again): one line, its
    exit code, and neither the baseline nor the history touched."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm|c)\)|\b(cpu|processor)\b|@.*$", " ", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def machine_name(env: dict) -> str:
    """'amd-epyc-2c', 'intel-xeon-platinum-8480-16c-nvidia-h100-80gb-hbm3': CPU model and cores,
    then the GPU model when the run had one."""
    cpu = env.get("cpu") or {}
    name = f"{_slug(str(cpu.get('model') or 'unknown-cpu'))}-{cpu.get('cores') or 0}c"
    gpu = (env.get("gpu") or {}).get("name")
    return f"{name}-{_slug(gpu)}" if gpu else name


def baseline_path(env: dict, folder: Path = BASELINES) -> Path:
    return Path(folder) / f"{machine_name(env)}.json"


# ---------------------------------------------------------------------------------- history rows

def rows(run: results.Run) -> list[dict]:
    """One summary row per timed case of a run: what the history keeps."""
    env = run.env or {}
    git = env.get("git") or {}
    out = []
    for e in run.results:
        if not e.timed:
            continue
        row = {"date": run.created, "commit": git.get("commit"), "dirty": git.get("dirty"),
               "machine": machine_name(env), "profile": env.get("profile")}
        row.update({k: getattr(e, k) for k in ROW_FIELDS})
        if e.axes:
            row["axes"] = dict(e.axes)
        row.update(median_s=e.median_s, iqr_s=e.iqr_s, n=e.n, pct_peak=e.pct_peak, gbps=e.gbps)
        out.append(row)
    return out


def append(run: results.Run, path: Path = HISTORY) -> int:
    """Append the run's rows to the history file (JSON lines); returns how many."""
    new = rows(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab+") as f:
        # a writer killed mid-line left a fragment: end it, so that it stays one bad line (skipped
        # by read) instead of swallowing the first row appended now
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write("".join(json.dumps(r) + "\n" for r in new).encode())
    return len(new)


def _row_ok(row) -> bool:
    """Whether a history line is a row plot and check can use: the fields they read, typed."""
    if not isinstance(row, dict) or not isinstance(row.get("op"), str):
        return False
    if not all(isinstance(row.get(k), str) for k in ("date", "machine")):
        return False
    m = row.get("median_s")
    return isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) and m > 0


def read(path: Path = HISTORY, notes=None) -> list[dict]:
    """The history's rows. A line that is not a usable row (cut by a killed writer, bad bytes, a
    field of the wrong type) is skipped; `notes`, a callable, is told how many once."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")   # bad bytes: that line is skipped
    except OSError as exc:
        raise UsageError(f"cannot read the history {path}: {exc.strerror or exc}") from None
    out, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if _row_ok(row):
            out.append(row)
        else:
            bad += 1
    if bad and notes is not None:
        notes(f"{path}: {bad} malformed line(s) skipped")
    return out


def plot(history: list[dict], folder: Path = PLOTS, machine: str | None = None) -> list[Path]:
    """One PNG per op: each (backend, dtype, size) over the checks, oldest first, as its time over
    that case's first check in the history, with the spread (IQR) of each check and compare's
    threshold as a band. Times of one op span five decades (4k to 32M elements), so on one time
    axis a 10 % regression was a pixel; relative to its own start every case shares one scale, on
    which the threshold is a fixed height. Only one machine's rows (the latest row's machine
    unless given): times from other machines would not mean anything on the same axis."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter


    if not history:
        return []
    machine = machine or history[-1]["machine"]
    mine = [r for r in history if r.get("machine") == machine]
    checks = sorted({r["date"] for r in mine if r.get("date")})
    index = {d: i for i, d in enumerate(checks)}
    labels = {}
    for r in mine:
        labels.setdefault(index.get(r["date"]), (r.get("commit") or "?")[:7] + ("+" if r.get("dirty") else ""))
    folder = Path(folder) / machine
    folder.mkdir(parents=True, exist_ok=True)
    t = compare.DEFAULT_THRESHOLD

    def ticks(lo: float, hi: float) -> list[float]:
        # round changes; the 10 % and 20 % ones only while the axis is narrow enough to tell them apart
        steps = [0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2, 3, 5, 10, 30, 100]
        if hi / lo > 2.5:
            steps = [v for v in steps if v not in (0.8, 0.9, 1.1, 1.2)]
        return [v for v in steps if lo <= v <= hi] or [1.0]

    paths = []
    for op in sorted({r["op"] for r in mine}):
        series: dict[tuple, list[tuple[int, float, float]]] = {}
        for r in mine:
            if r["op"] == op and r.get("median_s") and r.get("date") in index:
                key = compare.key_of_row(r)
                iqr = r.get("iqr_s") if isinstance(r.get("iqr_s"), (int, float)) else 0.0
                series.setdefault(key, []).append((index[r["date"]], r["median_s"], iqr or 0.0))
        fig = Figure(figsize=(10, 4.5))
        fig.subplots_adjust(left=0.09, right=0.72, bottom=0.2, top=0.9)
        ax = fig.subplots()
        ax.axhspan(1 / (1 + t), 1 + t, color="0.9", zorder=0,
                   label=f"within ±{100 * t:g} % (compare's threshold)")
        ax.axhline(1.0, color="0.5", linewidth=0.8, zorder=1)
        sizes = sorted({k[4] for k in series}, key=lambda v: (v is None, v or 0))
        dashes = ["-", "--", ":", "-."]
        lo, hi = 1 / (1 + 2 * t), 1 + 2 * t        # at least twice the threshold: the band never fills it
        for key, pts in sorted(series.items(), key=lambda kv: tuple((0, v, "") if isinstance(v, (int, float))
                                                              else (1, 0, str(v)) for v in kv[0])):
            pts.sort()
            ref = pts[0][1]                          # the case's first check
            x = [p[0] for p in pts]
            y = [p[1] / ref for p in pts]
            half = [p[2] / 2 / ref for p in pts]     # IQR as a bar around the median
            below = [min(h, v * 0.99) for h, v in zip(half, y)]     # a log axis: the bar stays above 0
            st = style(key[1])
            ax.errorbar(x, y, yerr=[below, half], color=st["color"],
                        marker=st["marker"], linestyle=dashes[sizes.index(key[4]) % len(dashes)], markersize=4,
                        linewidth=1.2, elinewidth=0.8, capsize=2, label=compare.case_label(key).split(" ", 1)[1])
            lo, hi = min(lo, *(v - h for v, h in zip(y, below))), max(hi, *(v + h for v, h in zip(y, half)))
        ax.set_yscale("log", base=2)                 # 2x slower and 2x faster equally far from 1
        ax.set_ylim(lo / 1.05, hi * 1.05)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * (v - 1):+.0f} %" if abs(v - 1) > 1e-9 else "0"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(ticks(lo / 1.05, hi * 1.05))
        ax.set_ylabel("time vs the case's first check")
        ax.set_xticks(range(len(checks)))
        ax.set_xticklabels([labels.get(i, "") for i in range(len(checks))], rotation=60, fontsize=7)
        ax.set_xlabel("check (commit)")
        ax.set_title(f"{op} on {machine}: history of bench-check (up = slower; bars: IQR)")
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        path = folder / f"{op}.png"
        fig.savefig(path, dpi=90)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------- the gate


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False, markup=False)


def confirm(base: compare.Loaded, new_run: results.Run, rep: compare.Report, profile: str, seed: int,
            attempts: int, console=None, interleave: bool = True) -> results.Run:
    """Measure the cases called slower again, up to `attempts` times, keeping each one's fastest
    measurement (lowest median) in the new run, which is returned. `interleave` as the run was
    measured, so that a case keeps its copy probe beside it."""
    prof = model_cases.PROFILES[profile]
    for attempt in range(1, attempts + 1):
        if not rep.slower:
            break
        _say(console, f"measuring {len(rep.slower)} slower case(s) again ({attempt} of {attempts})")
        todo = [_case(model_cases.Case, r.key) for r in rep.slower]
        again_run = runner.run_cases(prof, todo, seed=seed, interleave=interleave)
        if again_run.interrupted:    # Ctrl-C (or a fault) mid-way: no verdict, nothing rewritten
            left = "the baseline and the history are left as they were"
            if again_run.error:
                raise Stopped(EXIT_ERROR, f"measuring {len(todo)} slower case(s) again stopped at {again_run.error}; {left}")
            raise Stopped(EXIT_INTERRUPTED, f"interrupted while measuring {len(todo)} slower case(s) again; {left}")
        again = {compare.case_key(e): e for e in again_run.results if e.timed}
        scale = compare.median_scaled(base, compare.from_run(new_run, rep.new))
        kept = []
        for e in new_run.results:
            a = again.get(compare.case_key(e))
            better = a is not None and e.timed and _cost(a, e, rep.normalise, scale) < _cost(e, a, rep.normalise, scale)
            kept.append(a if better else e)
        new_run = dataclasses.replace(new_run, results=tuple(kept))
        rep = compare.compare_runs(base, compare.from_run(new_run, rep.new), threshold=rep.threshold,
                                   alpha=rep.alpha, normalise=rep.normalise, force=True)
    return new_run


def _cost(e, other, normalise: str, median_scale: bool = True) -> float:
    """What "fastest" means for one of two measurements of a case, as compare will judge it: with
    --normalise auto, the median of its samples in copies of the probe's sample of the same round
    where both have them; the median x the probe's GB/s where both have that and the runs have no
    per-round samples at all (`median_scale`: files from before them, as compare_runs decides);
    else the median."""
    if normalise == "auto" and e.probe_samples_s and other.probe_samples_s:
        return float(np.median(np.asarray(e.samples_s) / np.asarray(e.probe_samples_s)))
    if normalise == "auto" and median_scale and e.peak_gbps and other.peak_gbps:
        return e.median_s * e.peak_gbps
    return e.median_s


def _case(make, key: tuple):
    """The bench.model.model_cases.Case of a comparison key."""
    return make(**dict(zip(compare.KEY_FIELDS, key)))


def next_baseline(base: results.Run, run: results.Run, rep: compare.Report,
                  accept_slower: bool = False) -> tuple[results.Run, int]:
    """The baseline after a check: the new run's measurement of every case the comparison called
    same or faster (a baseline that met a slow moment is replaced by a better one, case by case),
    the baseline's own for a case called slower or noisy (a regression is not absorbed, and a run
    measured beside a busy process never sets the spread later runs are judged against), and the
    baseline's cases the run did not measure. `accept_slower`: a slowdown someone chose (merged
    with the accept-slowdown token or the workflow's input) becomes the baseline too, or every
    later check would fail on it. Returns it and the number of cases kept."""
    kept_verdicts = (compare.NOISY,) if accept_slower else (compare.SLOWER, compare.NOISY)
    keep = {r.key for r in rep.rows if r.change.verdict in kept_verdicts}
    old = {compare.case_key(e): e for e in base.results}
    merged, seen = [], set()
    for e in run.results:
        k = compare.case_key(e)
        seen.add(k)
        merged.append(old[k] if k in keep and k in old else e)
    merged += [e for k, e in old.items() if k not in seen]
    return dataclasses.replace(run, results=tuple(merged)), len(keep & old.keys())
