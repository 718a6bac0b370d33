"""The few lines a run ends with: per op the fastest backend at the largest size and its % of peak,
what was marked or failed, and where the files went. Plain strings, each short enough for an
80-column terminal, so a user learns what the run found without scrolling back through the tables.
"""

from __future__ import annotations

from pathlib import Path

from bench import kinds
from bench.report.formatting import STARVED_MARK, UNSTABLE, fmt_pct_peak, fmt_size, fmt_speedup
from bench.model.results import ABOVE_PEAK, STARVED, CaseResult, Run, Status, best_backend, by_op, is_marked, rows

MAX_NAMED = 3       # marked or failed cases named in the summary, when no more; the tables show them all


def fastest(entries: list[CaseResult]) -> CaseResult | None:
    """The fastest timed case at the op's largest measured size (its first dtype, float32 when
    present): there the kernels stream from memory, the % of peak that travels between machines."""
    timed = [e for e in entries if e.timed and e.size]
    if not timed:
        return None
    dtypes = list(dict.fromkeys(e.dtype for e in timed))
    dtype = "float32" if "float32" in dtypes else dtypes[0]
    table = rows(e for e in timed if e.dtype == dtype)
    cells = table[max(table, key=lambda k: k[1])]
    return cells[best_backend(cells)]


def op_line(op: str, entries: list[CaseResult], width: int) -> str | None:
    """'relu        numba_cpu   98.9% mem peak at 2^25, x 2.18 vs numpy'."""
    kind = kinds.of(entries[0])
    if kind.summary_line is not None:         # a kind with figures of its own says what it found
        return kind.summary_line(op, entries, width)
    e = fastest(entries)
    if e is None:
        return None
    marked = " (marked)" if is_marked(e) else ""
    speed = f", {fmt_speedup(e.speedup_vs_numpy)} vs numpy" if e.backend != "numpy" and e.speedup_vs_numpy else ""
    return (f"{op:<{width}} {e.backend:<11} {fmt_pct_peak(e.pct_peak, e.peak_level)} at "
            f"{fmt_size(e.size).split(' ')[0]}{speed}{marked}")


def _label(e: CaseResult) -> str:
    where = " ".join(str(v) for v in e.axes.values()) if e.axes else fmt_size(e.size).split(" ")[0]
    return f"{e.op} {e.backend} {e.dtype} {where}"


def marks_line(run: Run) -> str:
    """'marked: 2 case(s), 1 ~ unstable, 1 ? starved (see the legend): relu numba_cpu float32 2^25,
    ...', the cases named only when there are few (the tables show every mark)."""
    marked = [e for e in run.results if e.timed and is_marked(e)]
    if not marked:
        return "marked: none (every timed case stabilised, got its cores and stayed below its peak)"
    kinds = [(f"{UNSTABLE} unstable", sum(e.stable is False for e in marked)),
             (f"{STARVED_MARK} starved", sum(STARVED in (e.marks or ()) for e in marked)),
             ("! above its peak", sum(ABOVE_PEAK in (e.marks or ()) for e in marked))]
    counts = ", ".join(f"{n} {name}" for name, n in kinds if n)
    if len(marked) > MAX_NAMED:
        return f"marked: {len(marked)} case(s), {counts}: see the tables and the legend"
    return f"marked: {len(marked)} case(s), {counts} (see the legend): " + ", ".join(_label(e) for e in marked)


def failed_line(run: Run) -> str | None:
    failed = [e for e in run.results if e.status is Status.FAILED]
    if not failed:
        return None
    named = ", ".join(_label(e) for e in failed[:MAX_NAMED]) + (" ..." if len(failed) > MAX_NAMED else "")
    return f"FAILED the correctness check: {len(failed)} case(s): {named}"


def files_lines(paths: list[Path]) -> list[str]:
    """Where the files went: the results JSON, the Markdown report, the plots' folder and count."""
    paths = [Path(p) for p in paths]
    pngs = [p for p in paths if p.suffix == ".png"]
    lines = [f"{kind}: {p}" for p in paths if p.suffix in (".json", ".md")
             for kind in ["results" if p.suffix == ".json" else "report"]]
    if pngs:
        folders = list(dict.fromkeys(str(p.parent) for p in pngs))
        lines.append(f"plots: {len(pngs)} PNG(s) in {', '.join(f + '/' for f in folders)}")
    return lines


def lines(run: Run, paths: list[Path] = ()) -> list[str]:
    """The closing summary: a line per op, then marks, failures and files."""
    groups = by_op(run)
    width = max((len(op) for op in groups), default=0)
    out = [x for op, entries in groups.items() if (x := op_line(op, entries, width))]
    if out:
        out.insert(0, "fastest at the largest size, per op:")
    out.append(marks_line(run))
    if (f := failed_line(run)):
        out.append(f)
    return out + files_lines(list(paths))
