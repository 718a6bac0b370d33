"""What `bench run` and `bench report` print in a terminal (issue 20): at 80 columns the narrow
layout (a row per size and backend) where the wide table would wrap, every figure still there; the
legend once, after the last table; one line for the backends that cannot run; and the closing
summary (fastest backend per op and its % of peak, the marks, the files)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from bench.cli import main as cli
from bench.run import plan
from bench import kinds
from bench.model import results
from bench.kinds import matmul as sparse
from bench.report import summary, tables
from bench.report.formatting import fmt_time, ok_lines, sig3
from tests.fakes import patch_peaks

ROOT = Path(__file__).resolve().parent.parent
WITH_SPARSE = ROOT / "reports/example/2026-11-29T144317-vm.json"     # has a cache peak and sparse_matmul


def render(run, width: int) -> str:
    console = Console(record=True, width=width)
    tables.print_run(run, console)
    return console.export_text()


def test_at_80_columns_no_line_is_wider_and_every_figure_is_shown():
    run = results.load(WITH_SPARSE)          # '% cache peak' cells: its wide tables need 83 columns
    text = render(run, 80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "size   backend" in text          # narrow where the wide table would wrap (mask ops, 2 backends, fit)
    lines = text.splitlines()
    narrow_ops = {line.split(" · ")[0] for line, nxt in zip(lines, lines[1:]) if nxt.startswith("size   backend")}
    assert {"relu", "sigmoid", "tanh_grad"} <= narrow_ops
    for e in run.results:
        if not e.timed or e.op not in narrow_ops:
            continue
        time, gbps, pct, speedup = ok_lines(e, False)
        row = [line for line in lines if f" {e.backend} " in line and fmt_time(e.median_s) in line
               and gbps.removesuffix(" GB/s") in line and pct.replace(" peak", "") in line and speedup in line]
        assert row, f"{e.op} {e.backend} {e.size}: a figure is missing at 80 columns"


def test_a_wide_table_that_fits_is_kept(example_run):
    text = render(example_run, 80)           # '% peak' cells (no cache peak): 79 columns
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "size   backend" not in text


def test_a_wide_terminal_keeps_the_wide_tables(example_run):
    text = render(example_run, 200)
    assert "size   backend" not in text
    assert text.count("╭─────────┬──────────────┬") == len(tables.op_tables(example_run))


@pytest.mark.parametrize("width", [80, 200])
def test_the_legend_is_printed_once_after_the_last_table(example_run, width):
    text = render(example_run, width)
    assert text.count("fastest in its row") == 1
    assert text.count("did not stabilise") == 1
    assert text.rindex("fastest in its row") > text.rindex("relu_grad_mask")


def test_footnotes_stay_under_their_table(example_run):
    mid = 2**18
    run = replace(example_run, results=tuple(
        replace(e, status=results.Status.FAILED, reason="max error 3.1e-02 at index 7", median_s=None,
                samples_s=None, n=0) if (e.op, e.backend, e.size) == ("tanh", "numpy", mid) else e
        for e in example_run.results))
    text = render(results.derive(run), 80)
    tanh = text[text.index("\ntanh · float32"):text.index("\ntanh_grad · float32")]
    assert "FAILED [1]" in tanh and "[1] failed: max error 3.1e-02 at index 7" in tanh


def test_sparse_tables_turn_narrow_too():
    run = kinds.derive(results.load(WITH_SPARSE))     # derived again: with the % of the limit in each cell
    text = render(run, 80)
    assert "zeros   backend" in text and "┏━━━━━━━━━━┳" not in text
    assert max(len(line.rstrip()) for line in text.splitlines() if not line.startswith(("│", "╭", "╰"))) <= 80
    assert text.count("crossover sparsity") == len(sparse.tables(run))
    assert " ".join(text.split()).count("% ideal: of 1/(1-s)") == 1      # the narrow sparse columns, explained once


def test_backends_that_cannot_run_are_one_note():
    notes = plan.build("quick")[2]
    absent = [n for n in notes if n.startswith("not measured here: ")]
    assert len(absent) <= 1 and all("\n" not in n and n.endswith("details: bench list") for n in absent)
    from kernels import registry
    gone = [b.name for b in registry.all_backends() if not b.available or b.simulated]
    assert all(b in (absent[0] if absent else "") for b in gone)


def test_summary_names_the_fastest_per_op_the_marks_and_the_files(example_run, tmp_path):
    paths = [tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r-plots/relu-float32.png",
             tmp_path / "r-plots/tanh-float32.png"]
    lines = summary.lines(example_run, paths)
    assert lines[0] == "fastest at the largest size, per op:"
    relu = next(line for line in lines if line.startswith("relu "))
    e = summary.fastest([x for x in example_run.results if x.op == "relu"])
    assert (e.backend, e.size) == ("numba_cpu", 2**25)                   # the ★ of the 2^25 row
    assert relu.split() == ["relu", "numba_cpu", f"{sig3(e.pct_peak)}%", "peak", "at", "2^25,", "x", "3.82", "vs",
                            "numpy", "(marked)"]                         # ~: its timing did not stabilise
    marked = [x for x in example_run.results if x.timed and results.is_marked(x)]
    assert f"marked: {len(marked)} case(s), {len(marked)} ~ unstable: see the tables and the legend" in lines
    assert lines[-3:] == [f"results: {paths[0]}", f"report: {paths[1]}", f"plots: 2 PNG(s) in {tmp_path / 'r-plots'}/"]
    assert all(len(line) <= 80 for line in lines[:-3])
    few = replace(example_run, results=tuple(e if e.op == "relu" and e.size == 2**25 else replace(e, stable=True)
                                             for e in example_run.results))
    assert ("marked: 3 case(s), 3 ~ unstable (see the legend): relu numpy float32 2^25, relu numba_cpu float32 "
            "2^25, relu torch float32 2^25") in summary.lines(few)


def test_a_clean_run_says_nothing_was_marked(example_run):
    clean = replace(example_run, results=tuple(replace(e, stable=True, marks=None) for e in example_run.results))
    assert "marked: none" in "\n".join(summary.lines(clean))


def test_bench_run_at_80_columns_ends_with_the_summary(tmp_path, monkeypatch, capsys):
    patch_peaks(monkeypatch)
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu,sigmoid", "--backends", "numpy,numba_cpu", "--sizes", "2**12,2**14",
                   "--budget", "0.05", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    tail = text[text.rindex("summary"):].splitlines()
    assert tail[1] == "fastest at the largest size, per op:"
    assert tail[2].startswith("relu ") and tail[3].startswith("sigmoid ")
    flat = " ".join(" ".join(tail).split())          # the paths of pytest's tmp_path wrap at 80 columns
    assert flat.endswith(f"results: {out} report: {out.with_suffix('.md')} plots: 2 PNG(s) in {tmp_path / 'r-plots'}/")
    assert text.count("fastest in its row") == 1 and text.index("fastest in its row") < text.rindex("summary")


def test_report_of_several_files_names_each_file_whole(capsys):
    files = [str(ROOT / "reports/example/2026-11-28T140009-vm.json"), str(WITH_SPARSE)]
    assert cli.main(["report", *files]) == 0
    out = capsys.readouterr().out
    assert f"#1 = {files[0]}" in out and f"#2 = {files[1]}" in out
    assert "…" not in out                                  # no header cut to '2026-11-29T144317-…'
    assert "ratio = this run's median / #1's median" in " ".join(out.split())


def test_report_of_a_schema_3_file_derives_the_sparse_cells_figures(capsys):
    """A file written before pct_of_limit existed (schema 3): `bench report` derives it again, so its
    batch-64 cells show the % of the best dense FLOP rate as a new run's do."""
    assert cli.main(["report", str(WITH_SPARSE)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "99% of dense FLOP/s" in out and "40% of dense FLOP/s" in out
