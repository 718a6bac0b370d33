"""What the run's plots draw (issue 20): each median's spread (IQR) on both panels, the tables' `~`
on a median that did not stabilise, one % series per peak level (never a line from a cache-level
% to a memory-level one), and the sparse plot's ideal line in a colour no backend has."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.colors import to_rgba

from bench.report import plots
from bench.model import results
from bench.kinds import matmul as sparse

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run():
    return results.load(ROOT / "reports/example/2026-11-29T144317-vm.json")     # a cache and a memory peak


def _lines(ax, color):
    return [ln for ln in ax.get_lines() if to_rgba(ln.get_color()) == to_rgba(color)]


def _bars(ax, color):
    """The IQR bars' segments of one colour: [((x, low), (x, high)), ...]."""
    return [seg for c in ax.containers for coll in c.lines[2]
            if to_rgba(coll.get_color()[0]) == to_rgba(color) for seg in coll.get_segments()]


def test_each_peak_level_is_its_own_series(run):
    entries = [e for e in run.results if e.op == "relu_grad" and e.dtype == "float32"]
    fig = plots.figure(run, "relu_grad", "float32")
    ax_pct = fig.axes[1]
    numba = [ln for ln in _lines(ax_pct, plots.style("numba_cpu")["color"])
             if ln.get_label() in ("numba_cpu", "_numba_cpu")]          # not the IQR bars' caps
    by_level = plots.level_points(entries, "numba_cpu")
    assert set(by_level) == {"cache", "memory"} and len(numba) == 2
    for line in numba:
        xs = list(line.get_xdata())
        levels = {e.peak_level for e in entries if e.backend == "numba_cpu" and e.size in xs}
        assert len(levels) == 1                              # no line joins the two denominators
    assert [t.get_text() for t in ax_pct.get_legend().get_texts()] == ["% of memory peak", "% of cache peak"]


def test_the_spread_is_drawn_on_both_panels(run):
    e = next(x for x in run.results if (x.op, x.backend, x.size) == ("sigmoid", "numpy", 2**18))
    fig = plots.figure(run, "sigmoid", "float32")
    ax_time, ax_pct = fig.axes
    colour = plots.style("numpy")["color"]
    seg = next(s for s in _bars(ax_time, colour) if s[0][0] == e.size)
    assert seg[1][1] - seg[0][1] == pytest.approx(e.iqr_s)        # median ± IQR/2
    seg = next(s for s in _bars(ax_pct, colour) if s[0][0] == e.size)
    assert seg[1][1] - seg[0][1] == pytest.approx(e.pct_peak * e.iqr_s / e.median_s)


def test_a_median_that_did_not_stabilise_carries_the_tables_tilde(run):
    fig = plots.figure(run, "relu_grad", "float32")
    ax_time = fig.axes[0]
    unstable = [e for e in run.results if e.op == "relu_grad" and e.dtype == "float32" and e.timed
                and e.stable is False]
    tildes = [t for t in ax_time.texts if t.get_text() == "~"]
    assert unstable and len(tildes) == len(unstable)
    assert {t.xy for t in tildes} == {(e.size, e.median_s) for e in unstable}
    assert "did not stabilise (see the table)" in [t.get_text() for t in ax_time.get_legend().get_texts()]
    stable = plots.figure(run, "sigmoid", "float32").axes[0]
    n = sum(1 for e in run.results if e.op == "sigmoid" and e.timed and e.stable is False)
    assert len([t for t in stable.texts if t.get_text() == "~"]) == n


def test_the_sparse_ideal_line_is_not_a_backends_colour(run):
    e = next(x for x in run.results if x.op == "sparse_matmul" and x.timed)
    fig = sparse.figure(run, e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern'))
    lines = {ln.get_label(): to_rgba(ln.get_color()) for ln in fig.axes[0].get_lines()}
    ideal = lines.pop("ideal 1/(1-s)")
    assert "scipy_csr" in lines and ideal not in lines.values()
