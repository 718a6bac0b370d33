"""bench/analysis/history.py's plot (issue 20): each case drawn relative to its first check, so cases five
decades apart share one axis and a 10 % regression stands a threshold band's height above 0."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from bench.analysis import compare, history


def _row(date, backend, size, median, iqr=0.0, commit="abc1234"):
    return {"date": date, "commit": commit, "dirty": False, "machine": "amd-epyc-2c", "profile": "quick",
            "op": "relu", "backend": backend, "device": "cpu", "dtype": "float32", "size": size, "shape": None,
            "batch": None, "sparsity": None, "pattern": None, "median_s": median, "iqr_s": iqr, "n": 10}


@pytest.fixture
def drawn(monkeypatch):
    """The figures plot saves, kept for inspection."""
    figs = []
    real = Figure.savefig

    def keep(self, path, **kw):
        figs.append(self)
        return real(self, path, **kw)
    monkeypatch.setattr(Figure, "savefig", keep)
    return figs


def test_each_case_is_relative_to_its_first_check(tmp_path, drawn):
    rows = [_row("2026-12-01", "numpy", 2**12, 2e-6, iqr=2e-7), _row("2026-12-01", "numpy", 2**25, 2e-2),
            _row("2026-12-02", "numpy", 2**12, 2.2e-6), _row("2026-12-02", "numpy", 2**25, 1.8e-2),
            _row("2026-12-03", "numpy", 2**12, 2e-6), _row("2026-12-03", "numpy", 2**25, 2e-2)]
    (path,) = history.plot(rows, tmp_path)
    assert path.name == "relu.png" and path.stat().st_size > 1000
    (fig,) = drawn
    ax = fig.axes[0]
    lines = {c.get_label(): list(c.lines[0].get_ydata()) for c in ax.containers}     # errorbar's line, by label
    assert lines["numpy float32 2^12 (4.10k)"] == pytest.approx([1.0, 1.1, 1.0])      # +10 %: a tenth of the axis
    assert lines["numpy float32 2^25 (33.6M)"] == pytest.approx([1.0, 0.9, 1.0])
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    assert lo < 1 / (1 + 2 * compare.DEFAULT_THRESHOLD) and hi > 1 + 2 * compare.DEFAULT_THRESHOLD
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "+10 %" in labels and "-10 %" in labels and "0" in labels


def test_a_large_change_widens_the_axis_and_keeps_round_ticks(tmp_path, drawn):
    rows = [_row("2026-12-01", "numba_cpu", 2**25, 1e-3), _row("2026-12-02", "numba_cpu", 2**25, 3e-3)]
    history.plot(rows, tmp_path)
    ax = drawn[0].axes[0]
    assert ax.get_ylim()[1] > 3.0
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "+200 %" in labels and "+10 %" not in labels          # 10 % steps would crowd a 3x axis
