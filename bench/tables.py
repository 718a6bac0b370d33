"""A run as rich tables in the terminal: a table per op, several runs side by side, the summary.

A table per op has one row per (dtype, size) and one column per backend (numpy first); a cell
gives the median time +- IQR, GB/s, % of the device's copy peak measured in the same run, and the
speed-up over numpy. The fastest cell of a row is marked. Nothing here runs or times a kernel.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .formatting import (BEST, STARVED_MARK, UNSTABLE, Notes, busy_warning, env_lines, fmt_pct_peak, fmt_size,
                         fmt_time, level_legend, mark_lines, ok_lines, op_title, peak_label, ratio_label, run_label)
from .results import (STARVED, CaseResult, Run, Status, backend_order, best_backend, by_op, devices_of, dtypes_of,
                      op_order, ratio, rows)

CELL_HELP = ("median ± IQR (relative) · GB/s · % of the device's copy peak · "
             "x speed-up vs numpy (numpy median / this median)")


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


def op_table(run: Run, op: str, entries: list[CaseResult]) -> Table:
    notes, backends = Notes(), backend_order(entries)
    table = _new_table(op_title(run, op, entries))
    for b in backends:
        table.add_column(b, justify="right")
    for (dtype, size), cells in rows(entries).items():
        best = best_backend(cells)
        table.add_row(dtype, fmt_size(size), *(cell(cells.get(b), b == best, notes) for b in backends))
    table.caption = legend(notes, entries, levels=[x for x in [level_legend(run, entries)] if x])
    return table


def op_tables(run: Run) -> list[Table]:
    """One rich Table per op: rows (dtype, size), columns backends (numpy first), cells of four lines."""
    return [op_table(run, op, entries) for op, entries in by_op(run).items() if op != "sparse_matmul"]


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

def summary(run: Run) -> Panel:
    """The environment and the peaks, a few lines in a panel."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan")
    grid.add_column()
    for label, text in env_lines(run):
        grid.add_row(label, Text(text, style="bold red" if "INTERRUPTED" in text else ""))
    return Panel(grid, title="actbench run", title_align="left", expand=False)


def print_run(run: Run, console: Console | None = None) -> None:
    """Print the summary, then a table per op (what `bench run` and `bench report` show)."""
    console = console or Console()
    warning = busy_warning(run)
    if warning:                       # first, before anything is read
        console.print(warning, style="bold red", highlight=False, markup=False)
    console.print(summary(run))
    from .sparse import tables as sparse_tables    # per shape and batch, rows by sparsity
    for table in op_tables(run) + sparse_tables(run):
        console.print()
        console.print(table)
