"""Plots of a run: per op and dtype, time per call and % of peak against size, one line per backend.

The time panel shows each median's spread (its IQR, as a bar) and marks a median that did not
stabilise with the tables' `~`; the % panel draws each peak level (memory, cache) as its own
series, since a cache-level % and a memory-level % have different denominators and a line joining
them would read as one curve.

Built on matplotlib's object API (a Figure on the Agg canvas, no pyplot): nothing opens a window and
no global figure state is left behind. Reads a Run only (bench/model/results.py). Failed and skipped
cases are left out of the lines; the tables say why.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

from bench import kinds
from bench.model.display import style
from bench.report.formatting import peak_label
from bench.model.results import CaseResult, Run, backend_order, by_op, devices_of, is_marked


def points(entries: list[CaseResult], backend: str) -> tuple[list, list, list]:
    """Sizes, median seconds and % of peak of a backend's timed cases, by size."""
    ok = sorted((e.size, e.median_s, e.pct_peak) for e in entries if e.backend == backend and e.timed)
    return [p[0] for p in ok], [p[1] for p in ok], [p[2] for p in ok]


def marked_points(entries: list[CaseResult], backend: str) -> list[tuple]:
    """(size, median seconds, % of peak) of a backend's timed cases that carry a mark of their own
    (starved, above their peak: results.is_marked without the unstable ones, which the tables mark)."""
    return sorted((e.size, e.median_s, e.pct_peak) for e in entries
                  if e.backend == backend and e.timed and is_marked(e) and e.marks)


def spread_points(entries: list[CaseResult], backend: str) -> list[tuple]:
    """(size, median, IQR or 0, stable) of a backend's timed cases, by size."""
    return sorted((e.size, e.median_s, e.iqr_s or 0.0, e.stable is not False) for e in entries
                  if e.backend == backend and e.timed)


def level_points(entries: list[CaseResult], backend: str) -> dict:
    """A backend's % of peak by the peak level that judged it: {level: [(size, %, IQR / median), ...]}
    (level None for a run that measured one peak)."""
    out: dict = {}
    for e in sorted(entries, key=lambda e: e.size or 0):
        if e.backend == backend and e.timed and e.pct_peak is not None:
            out.setdefault(e.peak_level, []).append((e.size, e.pct_peak, (e.iqr_s or 0.0) / e.median_s))
    return out


LEVEL_STYLE = {"memory": "-", "cache": ":", None: "-"}    # one line per peak level, never joined


def _axes_setup(ax_time, ax_pct) -> None:
    for ax in (ax_time, ax_pct):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"2^{math.log2(v):.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("size (elements)")
        ax.grid(True, which="major", alpha=0.3)
    ax_time.set_yscale("log")
    ax_time.yaxis.set_major_formatter(EngFormatter(unit="s"))
    ax_time.yaxis.set_minor_formatter(NullFormatter())
    ax_time.set_ylabel("time per call (median)")
    ax_pct.set_ylabel("% of copy peak")
    ax_pct.axhline(100, color="grey", linestyle="--", linewidth=1, label="_copy peak")


def figure(run: Run, op: str, dtype: str = "float32") -> Figure:
    """The two-panel figure of one op and dtype: time vs size (log-log), % of peak vs size (log-x)."""
    entries = [e for e in by_op(run).get(op, []) if e.dtype == dtype]
    fig = Figure(figsize=(11, 4.2))     # fixed margins: a layout engine would double the drawing time
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.88, wspace=0.22)
    ax_time, ax_pct = fig.subplots(1, 2)
    _axes_setup(ax_time, ax_pct)
    top = 100.0
    ringed = unstable = False
    levels: set = set()
    for backend in backend_order(entries):
        sizes, times, pcts = points(entries, backend)
        if not sizes:
            continue
        ax_time.plot(sizes, times, label=backend, **style(backend))
        spread = spread_points(entries, backend)
        ax_time.errorbar([p[0] for p in spread], [p[1] for p in spread], color=style(backend)["color"],
                         yerr=[[min(p[2] / 2, p[1] * 0.99) for p in spread], [p[2] / 2 for p in spread]],
                         fmt="none", capsize=3, linewidth=1, label="_iqr")
        for size, median, _, stable in spread:
            if not stable:             # the tables' ~: the median did not stabilise within its budget
                ax_time.annotate("~", (size, median), xytext=(0, 7), textcoords="offset points", ha="center",
                                 fontsize=13, fontweight="bold", color=style(backend)["color"])
                unstable = True
        for i, (level, pts) in enumerate(level_points(entries, backend).items()):
            ax_pct.plot([p[0] for p in pts], [p[1] for p in pts], linestyle=LEVEL_STYLE.get(level, "-"),
                        label=backend if i == 0 else "_" + backend, **style(backend))
            # the same spread on the linear % axis, where the time panel's five decades hide it
            ax_pct.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[1] * p[2] / 2 for p in pts],
                            fmt="none", color=style(backend)["color"], capsize=3, linewidth=1, label="_iqr")
            levels.add(level)
            top = max([top] + [p[1] * (1 + p[2] / 2) for p in pts])
        marked = marked_points(entries, backend)
        if marked:                     # marked cases (starved, above their peak): a black ring on both panels
            ring = "marked (see the table)" if not ringed else "_marked"
            ringed = True
            ax_time.scatter([m[0] for m in marked], [m[1] for m in marked], s=140, facecolors="none",
                            edgecolors="black", linewidths=1.2, zorder=5, label=ring)
            ax_pct.scatter([m[0] for m in marked if m[2] is not None], [m[2] for m in marked if m[2] is not None],
                           s=140, facecolors="none", edgecolors="black", linewidths=1.2, zorder=5, label="_marked")
    ax_pct.set_ylim(0, top * 1.08)
    ax_time.margins(y=0.12)            # room above the top point for its ~
    handles, labels = ax_time.get_legend_handles_labels()
    if unstable:                       # a legend entry only: no line is added to the axes
        handles.append(Line2D([], [], linestyle="none", marker=r"$\sim$", markersize=9, color="black"))
        labels.append("did not stabilise (see the table)")
    if handles:
        ax_time.legend(handles, labels, fontsize="small")
    named = [lv for lv in ("memory", "cache") if lv in levels]
    if named:                          # which line style is which denominator
        ax_pct.legend([Line2D([], [], color="black", linestyle=LEVEL_STYLE[lv]) for lv in named],
                      [f"% of {lv} peak" for lv in named], fontsize="small", loc="upper left")
        ax_pct.set_ylabel("% of copy peak (its level's: line style)")
    host = run.env.get("host") or "unknown host"
    peaks = ", ".join(peak_label(run, d) for d in devices_of(entries))
    fig.suptitle(f"{op} · {dtype} · {peaks} · {host}", fontsize="medium")
    return fig


def plot_keys(run: Run, dtypes=None) -> list[tuple[str, str]]:
    """(op, dtype) pairs that have a figure: every dtype of every op, or only those in `dtypes`."""
    keys = []
    for op, entries in by_op(run).items():
        if kinds.of(entries[0]).write_plots is not None:      # a kind that draws its own
            continue
        for dtype in dict.fromkeys(e.dtype for e in entries):
            if dtype and (dtypes is None or dtype in dtypes):
                keys.append((op, dtype))
    return keys


def write_plots(run: Run, folder, dtypes=None, dpi: int = 100) -> list[Path]:
    """Write <op>-<dtype>.png into folder for every op and dtype of the run; the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for op, dtype in plot_keys(run, dtypes):
        path = folder / f"{op}-{dtype}.png"
        figure(run, op, dtype).savefig(path, dpi=dpi)
        paths.append(path)
    for kind in dict.fromkeys(kinds.of(e) for e in run.results):
        if kind.write_plots is not None:
            paths += kind.write_plots(run, folder, dpi=dpi)
    return paths
