"""bench/report/plots.py on the recorded example run and cases made from it: one line per backend,
failed and skipped points left out, the right axes, and valid PNG files named <op>-<dtype>.png."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.report import plots
from bench.model import results
from bench.model.results import Run, Status
from tests.conftest import edited

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = [4096, 2**18, 2**25]


@pytest.fixture(scope="module")
def run(example_run):
    """relu: numba_cpu failed at 2**18, torch skipped but at 4096; sigmoid on numpy also in float64."""
    run = edited(example_run, {
        ("relu", "numba_cpu", 2**18): {"status": Status.FAILED, "reason": "why not"},
        ("relu", "torch", 2**18): {"status": Status.SKIPPED, "reason": "why not"},
        ("relu", "torch", 2**25): {"status": Status.SKIPPED, "reason": "why not"}})
    f64 = [replace(e, dtype="float64") for e in run.results if e.op == "sigmoid" and e.backend == "numpy"]
    return replace(run, results=run.results + tuple(f64))


def labelled_lines(ax) -> dict:
    """Backend label -> Line2D, leaving out helper lines (labels starting with '_')."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_one_line_per_backend_with_points_failed_and_skipped_left_out(run):
    fig = plots.figure(run, "relu")
    ax_time, ax_pct = fig.axes[:2]
    for ax in (ax_time, ax_pct):
        lines = labelled_lines(ax)
        assert list(lines) == ["numpy", "numba_cpu", "torch"]
        assert list(lines["numpy"].get_xdata()) == SIZES
        assert list(lines["numba_cpu"].get_xdata()) == [4096, 2**25]
        assert list(lines["torch"].get_xdata()) == [4096]
    numpy = [e for e in run.results if e.op == "relu" and e.backend == "numpy"]
    assert list(labelled_lines(ax_time)["numpy"].get_ydata()) == [e.median_s for e in numpy]
    assert list(labelled_lines(ax_pct)["numpy"].get_ydata()) == [e.pct_peak for e in numpy]


def test_axes_scales_labels_and_title(run):
    fig = plots.figure(run, "relu")
    ax_time, ax_pct = fig.axes[:2]
    assert (ax_time.get_xscale(), ax_time.get_yscale()) == ("log", "log")
    assert (ax_pct.get_xscale(), ax_pct.get_yscale()) == ("log", "linear")
    assert "% of copy peak" in ax_pct.get_ylabel()
    assert fig._suptitle.get_text() == \
        "relu · float32 · cpu peak 38.7 GB/s (numba streaming-store copy, 2 threads) · vm"
    assert ax_pct.get_ylim()[1] >= max(e.pct_peak for e in run.results if e.op == "relu" and e.timed)


def test_same_backend_same_style_across_figures(run):
    a = labelled_lines(plots.figure(run, "relu").axes[0])["numpy"]
    b = labelled_lines(plots.figure(run, "sigmoid", "float64").axes[0])["numpy"]
    assert (a.get_color(), a.get_marker()) == (b.get_color(), b.get_marker())
    lines = labelled_lines(plots.figure(run, "relu").axes[0])
    assert len({line.get_color() for line in lines.values()}) == 3


def test_dtype_selects_the_cases(run):
    assert list(labelled_lines(plots.figure(run, "sigmoid", "float64").axes[0])) == ["numpy"]
    assert labelled_lines(plots.figure(run, "sigmoid", "float16").axes[0]) == {}


def test_write_plots_writes_valid_pngs_per_op_and_dtype(run, tmp_path):
    small = replace(run, results=tuple(e for e in run.results if e.op in ("relu", "sigmoid")))
    paths = plots.write_plots(small, tmp_path / "plots")
    assert [p.name for p in paths] == ["relu-float32.png", "sigmoid-float32.png", "sigmoid-float64.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    assert [p.name for p in plots.write_plots(small, tmp_path, dtypes=["float64"])] == ["sigmoid-float64.png"]
    assert plots.plot_keys(run)[:3] == [("relu", "float32"), ("relu_grad", "float32"), ("sigmoid", "float32")]


def test_write_plots_of_an_empty_run_writes_nothing(tmp_path):
    assert plots.write_plots(Run(env={}), tmp_path) == []


def test_no_pyplot_figures_are_left_open(run, tmp_path):
    import matplotlib.pyplot as plt
    before = len(plt.get_fignums())
    plots.write_plots(results.Run(env={}, results=run.results[:3]), tmp_path)
    assert len(plt.get_fignums()) == before
