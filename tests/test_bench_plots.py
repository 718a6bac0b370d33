"""Tests of bench/plots.py on hand-built results dicts: one line per backend, failed and skipped
points left out, the right axes, and valid PNG files named <op>-<dtype>.png."""

from __future__ import annotations

import time

import pytest

from bench import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = (2**10, 2**15, 2**20, 2**25)


def case(op, backend, size, median=None, status="ok", dtype="float32", peak=20.0):
    """One results entry (the fields plots read, plus status and reason); ok cases are timed. A
    failed case given a median keeps it: a stray time must still never be drawn."""
    e = {"op": op, "backend": backend, "device": "cpu", "dtype": dtype, "size": size, "status": status,
         "reason": None if status == "ok" else "why not", "median_s": median, "gbps": None, "pct_peak": None}
    if status == "ok":
        e["gbps"] = 8 * size / median / 1e9
        e["pct_peak"] = 100 * e["gbps"] / peak
    return e


def make_run(results):
    return {"schema": "actbench.results/1", "env": {"host": "box"},
            "peaks": {"cpu": {"gbps": 20.0, "method": "2-thread copy"}}, "results": results}


@pytest.fixture
def run():
    """relu on three backends (numba_cpu fails at 2**20, torch skipped everywhere but 2**10),
    sigmoid on numpy only, in float32 and float64."""
    res = []
    for size in SIZES:
        res.append(case("relu", "numpy", size, size * 2e-9))
        res.append(case("relu", "numba_cpu", size, size * 1e-9, status="failed" if size == 2**20 else "ok"))
        res.append(case("relu", "torch", size, size * 1.5e-9, status="ok" if size == 2**10 else "skipped"))
        res.append(case("relu", "cupy", size, status="skipped"))
        for dtype in ("float32", "float64"):
            res.append(case("sigmoid", "numpy", size, size * 4e-9, dtype=dtype))
    return make_run(res)


def labelled_lines(ax) -> dict:
    """Backend label -> Line2D, leaving out helper lines (labels starting with '_')."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_one_line_per_backend_with_points_failed_and_skipped_left_out(run):
    fig = plots.figure(run, "relu")
    ax_time, ax_pct = fig.axes[:2]
    for ax in (ax_time, ax_pct):
        lines = labelled_lines(ax)
        assert list(lines) == ["numpy", "numba_cpu", "torch"]          # cupy: skipped everywhere, no line
        assert list(lines["numpy"].get_xdata()) == list(SIZES)
        assert list(lines["numba_cpu"].get_xdata()) == [2**10, 2**15, 2**25]
        assert list(lines["torch"].get_xdata()) == [2**10]
    assert list(labelled_lines(ax_time)["numpy"].get_ydata()) == pytest.approx([s * 2e-9 for s in SIZES])
    assert list(labelled_lines(ax_pct)["numba_cpu"].get_ydata()) == pytest.approx([40.0] * 3)


def test_axes_scales_labels_and_title(run):
    fig = plots.figure(run, "relu")
    ax_time, ax_pct = fig.axes[:2]
    assert (ax_time.get_xscale(), ax_time.get_yscale()) == ("log", "log")
    assert (ax_pct.get_xscale(), ax_pct.get_yscale()) == ("log", "linear")
    assert "% of copy peak" in ax_pct.get_ylabel()
    title = fig._suptitle.get_text()
    assert "relu" in title and "float32" in title and "cpu peak 20.0 GB/s (2-thread copy)" in title
    assert "box" in title


def test_same_backend_same_style_across_figures(run):
    a = labelled_lines(plots.figure(run, "relu").axes[0])["numpy"]
    b = labelled_lines(plots.figure(run, "sigmoid", "float64").axes[0])["numpy"]
    assert (a.get_color(), a.get_marker()) == (b.get_color(), b.get_marker())
    lines = labelled_lines(plots.figure(run, "relu").axes[0])
    assert len({line.get_color() for line in lines.values()}) == 3


def test_dtype_selects_the_cases(run):
    line = labelled_lines(plots.figure(run, "sigmoid", "float64").axes[0])["numpy"]
    assert len(line.get_xdata()) == len(SIZES)
    assert labelled_lines(plots.figure(run, "sigmoid", "float16").axes[0]) == {}


def test_write_plots_writes_valid_pngs_per_op_and_dtype(run, tmp_path):
    start = time.perf_counter()
    paths = plots.write_plots(run, tmp_path / "plots")
    elapsed = time.perf_counter() - start
    assert [p.name for p in paths] == ["relu-float32.png", "sigmoid-float32.png", "sigmoid-float64.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    assert elapsed < 5, f"3 plots took {elapsed:.1f} s"


def test_write_plots_restricted_to_dtypes(run, tmp_path):
    paths = plots.write_plots(run, tmp_path, dtypes=["float64"])
    assert [p.name for p in paths] == ["sigmoid-float64.png"]


def test_write_plots_of_an_empty_run_writes_nothing(tmp_path):
    assert plots.write_plots(make_run([]), tmp_path) == []


def test_no_pyplot_figures_are_left_open(run, tmp_path):
    import matplotlib.pyplot as plt
    before = len(plt.get_fignums())
    plots.write_plots(run, tmp_path)
    assert len(plt.get_fignums()) == before
