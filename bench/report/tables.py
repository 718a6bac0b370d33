"""A run as rich tables in the terminal: a table per op, several runs side by side, the summary.

A table per op has one row per (dtype, size) and one column per backend (numpy first); a cell
gives the median time +- IQR, GB/s, % of the device's copy peak measured in the same run, and the
speed-up over numpy. The fastest cell of a row is marked. Where that table is wider than the
terminal (80 columns, or a GPU machine's seven backends), the narrow layout shows the same figures
as one row per (size, backend) with a column each, so no cell wraps. A run's tables carry only
their footnotes; the legend is printed once, after the last. Nothing here runs or times a kernel.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bench import kinds
from bench.report.formatting import (
    BEST,
    STARVED_MARK,
    UNSTABLE,
    Notes,
    header_warnings,
    env_lines,
    fmt_pct_peak,
    fmt_size,
    fmt_time,
    level_legend,
    mark_lines,
    ok_lines,
    op_title,
    peak_label,
    ratio_label,
    run_label,
)
from bench.model.results import (
    STARVED,
    CaseResult,
    Run,
    Status,
    backend_order,
    best_backend,
    by_op,
    devices_of,
    dtypes_of,
    op_order,
    ratio,
    rows,
)

CELL_HELP = ("median ± IQR (relative) · GB/s · % of the device's copy peak · "
             "x speed-up vs numpy (numpy median / this median)")
NARROW_HELP = ("time: median ± IQR (relative) · GB/s · % peak: of the device's copy peak (cache or mem) · "
               "vs numpy: speed-up (numpy median / this median)")


def cell(e: CaseResult | None, best: bool, notes: Notes) -> Text:
    if e is None:
        return Text("-", style="dim")
    if e.status is Status.FAILED:
        return Text.assemble(("FAILED", "bold red"), f" [{notes.ref(e)}]")
    if e.status is Status.SKIPPED:
        return Text(f"skipped [{notes.ref(e)}]", style="dim")
    return Text("\n".join(ok_lines(e, best)), style="bold green" if best else "")


def legend(notes: Notes, entries: list[CaseResult], how: str = CELL_HELP, best: bool = True,
           levels: list[str] = ()) -> Text:
    """The caption: how to read a cell, which peak each % is of (`levels`: level_legend's lines),
    the markers, and the footnotes of failed / skipped cases."""
    text = Text(how, style="dim")
    for line in levels:
        text.append("\n" + line, style="dim")
    if best:
        text.append(f"\n{BEST} fastest in its row (bold green)", style="dim")
    if any((e.pct_peak or 0) > 100 and not e.peak_level for e in entries):   # a run without a cache peak
        text.append("\n% peak above 100: the arrays fit in a cache, which is faster than the memory "
                    "the copy peak streams through", style="dim")
    if any(e.stable is False for e in entries):
        text.append(f"\n{UNSTABLE} the timing did not stabilise within the case's budget "
                    "(its median's 95 % confidence interval stayed wider than the target): read it with care",
                    style="dim")
    for line in mark_lines(entries):
        text.append("\n" + line, style="yellow")
    for line in notes.lines():
        text.append("\n" + line, style="red" if "] failed:" in line else "dim")
    return text


def _new_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", caption_justify="left", show_lines=True, box=box.ROUNDED)
    table.add_column("dtype")
    table.add_column("size", no_wrap=True)
    return table


def op_table(run: Run, op: str, entries: list[CaseResult], caption: bool = True) -> Table:
    """`caption=False`: only the footnotes of failed and skipped cases under it (a run's tables
    share one legend, `run_legend`)."""
    notes, backends = Notes(), backend_order(entries)
    table = _new_table(op_title(run, op, entries))
    for b in backends:
        table.add_column(b, justify="right")
    for (dtype, size), cells in rows(entries).items():
        best = best_backend(cells)
        table.add_row(dtype, fmt_size(size), *(cell(cells.get(b), b == best, notes) for b in backends))
    table.caption = (legend(notes, entries, levels=[x for x in [level_legend(run, entries)] if x]) if caption
                     else _footnotes(notes))
    return table


def _footnotes(notes: Notes) -> Text | None:
    if not notes.items:
        return None
    return Text("\n".join(notes.lines()), style="dim")


def narrow_tables(run: Run, op: str, entries: list[CaseResult]) -> list[Table]:
    """The narrow layout of one op, a table per dtype: a row per (size, backend), the four figures
    of a cell as four columns (its marks included), the fastest row of a size in bold green."""
    out = []
    for dtype in dtypes_of(entries) or [None]:
        mine = [e for e in entries if e.dtype == dtype]
        notes, backends = Notes(), backend_order(mine)
        table = Table(title=" · ".join(p for p in (op, dtype) if p), title_justify="left",
                      caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("size", no_wrap=True)
        table.add_column("backend", no_wrap=True)
        for name in ("time", "GB/s", "% peak", "vs numpy"):
            table.add_column(name, justify="right", no_wrap=True)
        groups = list(rows(mine).items())
        for i, ((_, size), cells) in enumerate(groups):
            best = best_backend(cells)
            present = [b for b in backends if b in cells]
            for j, b in enumerate(present):
                table.add_row(fmt_size(size).split(" ")[0] if j == 0 else "", b,
                              *_narrow_cells(cells[b], b == best, notes),
                              style="bold green" if b == best else None,
                              end_section=j == len(present) - 1 and i < len(groups) - 1)
        table.caption = _footnotes(notes)
        out.append(table)
    return out


def _narrow_cells(e: CaseResult, best: bool, notes: Notes) -> list:
    """time, GB/s, % peak, speed-up of one case; FAILED / skipped with its footnote instead."""
    if not e.timed:
        return [cell(e, False, notes), "", "", ""]
    time, gbps, pct, speedup = ok_lines(e, best)
    return [time, gbps.removesuffix(" GB/s"), pct.replace(" peak", "", 1), speedup]


def run_legend(run: Run, narrow: bool = False) -> Text:
    """The legend of a run's tables, printed once after the last: how to read a cell (or a narrow
    row), which peak each % is of, the best-cell marker and every mark any case carries."""
    levels = list(dict.fromkeys(x for op, es in by_op(run).items() if kinds.of(es[0]).tables is None
                                if (x := level_legend(run, es))))
    # every case's marks: a kind with tables of its own writes the same ~ ? ! in its cells
    return legend(Notes(), list(run.results), how=NARROW_HELP if narrow else CELL_HELP, levels=levels)


def _fits(console: Console, table: Table) -> bool:
    """Whether the table's cells fit the console's width unwrapped."""
    unbounded = console.options.update(max_width=10**6)   # console.measure clamps to the console's width
    return Measurement.get(console, unbounded, table).maximum <= console.width


def op_tables(run: Run) -> list[Table]:
    """One rich Table per op: rows (dtype, size), columns backends (numpy first), cells of four lines."""
    return [op_table(run, op, entries) for op, entries in by_op(run).items() if kinds.of(entries[0]).tables is None]


# ------------------------------------------------------------------------------------ side by side

def _run_cell(e: CaseResult | None, first: CaseResult | None, later: bool, notes: Notes) -> Text:
    if e is None or e.status is not Status.OK:
        return cell(e, False, notes)
    lines = [(UNSTABLE if e.stable is False else "") + (STARVED_MARK if STARVED in (e.marks or ()) else "")
             + fmt_time(e.median_s), fmt_pct_peak(e.pct_peak, e.peak_level)]
    if later:
        lines.append(ratio_label(ratio(e, first)))
    return Text("\n".join(lines))


def side_by_side(runs: list[Run], labels: list[str] | None = None) -> list[Table]:
    """The same cases from several runs: per op a table whose columns are (backend, run), each cell
    median time and % of that run's peak, and for later runs the ratio to the first ('0.93x')."""
    labels = list(labels) if labels else [run_label(r, i) for i, r in enumerate(runs)]
    grouped = [by_op(r) for r in runs]
    return [_side_table(runs, labels, op, [g.get(op, []) for g in grouped])
            for op in op_order(op for g in grouped for op in g)]


def _side_table(runs: list[Run], labels: list[str], op: str, per_run: list[list[CaseResult]]) -> Table:
    everything = [e for entries in per_run for e in entries]
    backends, keys = backend_order(everything), list(rows(everything))
    cells = [rows(entries) for entries in per_run]
    peaks = " · ".join(f"{lab}: " + ", ".join(peak_label(r, d) for d in devices_of(everything))
                       for lab, r in zip(labels, runs))
    table = _new_table(f"{op} · {', '.join(dtypes_of(everything))} · {peaks}")
    for b in backends:
        for lab in labels:
            table.add_column(f"{b}\n{lab}", justify="right")
    notes = Notes()
    for key in keys:
        row = []
        for b in backends:
            first = cells[0].get(key, {}).get(b)
            row += [_run_cell(c.get(key, {}).get(b), first, i > 0, notes) for i, c in enumerate(cells)]
        table.add_row(key[0], fmt_size(key[1]), *row)
    levels = list(dict.fromkeys(x for r, entries in zip(runs, per_run) if (x := level_legend(r, entries))))
    table.caption = legend(notes, everything, best=False, levels=levels, how=(
        f"median · % of that run's own copy peak · ratio = this run's median / {labels[0]}'s median "
        "(below 1: faster) · - : not in that run"))
    return table


# ------------------------------------------------------------------------------------ summary

SHORT_HEADER = ("host", "cpu", "gpu", "git", "profile", "stopped by", "load", "peak", "peak note")


def summary(run: Run, short: bool = False) -> Panel:
    """The environment and the peaks, a few lines in a panel; `short`: only the lines that say
    where it ran and against which peaks (SHORT_HEADER)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan")
    grid.add_column()
    for label, text in env_lines(run):
        if short and label not in SHORT_HEADER:
            continue
        grid.add_row(label, Text(text, style="bold red" if "INTERRUPTED" in text else ""))
    return Panel(grid, title="actbench run", title_align="left", expand=False)


def print_run(run: Run, console: Console | None = None, short_header: bool = False) -> None:
    """Print the summary, then a table per op, each in the narrow layout where the wide one would
    not fit the console, then the legend once (what `bench run` and `bench report` show).
    `short_header`: the run's header without the BLAS, numba and tuning lines (`bench report`
    shows them all)."""
    console = console or Console()
    for warning in header_warnings(run):     # first, before anything is read
        console.print(warning, style="bold red", highlight=False, markup=False)
    console.print(summary(run, short_header))
    narrow, own = False, []
    for op, entries in by_op(run).items():
        kind = kinds.of(entries[0])
        if kind.tables is not None:            # a kind with tables of its own: after the standard ones
            own += [kind] if kind not in own else []
            continue
        wide = op_table(run, op, entries, caption=False)
        tables = [wide] if _fits(console, wide) else narrow_tables(run, op, entries)
        narrow = narrow or tables[0] is not wide
        for table in tables:
            console.print()
            console.print(table)
    thin = []
    for kind in own:
        for wide, narrow_one in zip(kind.tables(run), kind.tables(run, narrow=True)):
            console.print()
            console.print(wide if _fits(console, wide) else narrow_one)
            if not _fits(console, wide) and kind not in thin:
                thin.append(kind)
    if any(kinds.of(e).tables is None for e in run.results):
        console.print()
        console.print(run_legend(run, narrow))
    else:                             # only kinds with tables of their own: their marks still said
        for line in mark_lines(list(run.results)):
            console.print(line, style="yellow", highlight=False, markup=False)
    for kind in thin:                 # its wide tables say it in their titles
        console.print(kind.NARROW_HELP, style="dim", highlight=False, markup=False)
