"""Plots of a run: per op and dtype, time per call and % of peak against size, one line per backend.

Built on matplotlib's object API (a Figure on the Agg canvas, no pyplot): nothing opens a window and
no global figure state is left behind. Reads a Run only (bench/results.py). Failed and skipped
cases are left out of the lines; the tables say why.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

from .formatting import peak_label
from .results import CaseResult, Run, backend_order, by_op, devices_of, is_marked

# Same colour and marker for a backend in every figure; backends not listed take the next ones.
KNOWN_BACKENDS = ("numpy", "numba_cpu", "cupy", "cupy_elementwise", "cupy_raw", "numba_cuda", "torch",
                  "scipy_csr", "cupyx_csr")
MARKERS = "osD^vP<>Xh*"


def style(backend: str) -> dict:
    i = KNOWN_BACKENDS.index(backend) if backend in KNOWN_BACKENDS else sum(map(ord, backend))
    return {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)]}


def points(entries: list[CaseResult], backend: str) -> tuple[list, list, list]:
    """Sizes, median seconds and % of peak of a backend's timed cases, by size."""
    ok = sorted((e.size, e.median_s, e.pct_peak) for e in entries if e.backend == backend and e.timed)
    return [p[0] for p in ok], [p[1] for p in ok], [p[2] for p in ok]


def marked_points(entries: list[CaseResult], backend: str) -> list[tuple]:
    """(size, median seconds, % of peak) of a backend's timed cases that carry a mark of their own
    (starved, above their peak: results.is_marked without the unstable ones, which the tables mark)."""
    return sorted((e.size, e.median_s, e.pct_peak) for e in entries
                  if e.backend == backend and e.timed and is_marked(e) and e.marks)


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
    ringed = False
    for backend in backend_order(entries):
        sizes, times, pcts = points(entries, backend)
        if not sizes:
            continue
        ax_time.plot(sizes, times, label=backend, **style(backend))
        pct_pts = [(s, p) for s, p in zip(sizes, pcts) if p is not None]
        ax_pct.plot([s for s, _ in pct_pts], [p for _, p in pct_pts], label=backend, **style(backend))
        top = max([top] + [p for _, p in pct_pts])
        marked = marked_points(entries, backend)
        if marked:                     # marked cases (starved, above their peak): a black ring on both panels
            ring = "marked (see the table)" if not ringed else "_marked"
            ringed = True
            ax_time.scatter([m[0] for m in marked], [m[1] for m in marked], s=140, facecolors="none",
                            edgecolors="black", linewidths=1.2, zorder=5, label=ring)
            ax_pct.scatter([m[0] for m in marked if m[2] is not None], [m[2] for m in marked if m[2] is not None],
                           s=140, facecolors="none", edgecolors="black", linewidths=1.2, zorder=5, label="_marked")
    ax_pct.set_ylim(0, top * 1.08)
    if ax_time.get_legend_handles_labels()[0]:
        ax_time.legend(fontsize="small")
    host = run.env.get("host") or "unknown host"
    peaks = ", ".join(peak_label(run, d) for d in devices_of(entries))
    fig.suptitle(f"{op} · {dtype} · {peaks} · {host}", fontsize="medium")
    return fig


def plot_keys(run: Run, dtypes=None) -> list[tuple[str, str]]:
    """(op, dtype) pairs that have a figure: every dtype of every op, or only those in `dtypes`."""
    keys = []
    for op, entries in by_op(run).items():
        if op == "sparse_matmul":           # bench/sparse.py draws speed-up against sparsity
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
    from .sparse import write_plots as sparse_plots
    return paths + sparse_plots(run, folder, dpi=dpi)
