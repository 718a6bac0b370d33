"""bench/report/tables.py: the rich tables of the recorded example run (byte for byte what `bench report`
printed before the results were typed), and failed, skipped, unstable and missing cells made from it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from bench.report import tables
from bench.report.formatting import BEST
from bench.model.results import Run, Status, derive
from tests.conftest import edited

DATA = Path(__file__).resolve().parent / "data"
MID = 2**18


def text_of(*renderables, width=200) -> str:
    console = Console(record=True, width=width)
    for r in renderables:
        console.print(r)
    return console.export_text()


def table_rows(text: str) -> list[list[str]]:
    """Lines of a rendered table split on its vertical rules into stripped cells."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.count("│") > 2]


def test_print_run_of_the_example_is_the_recorded_text(example_run):
    console = Console(record=True, width=200)
    tables.print_run(example_run, console)
    assert console.export_text() == (DATA / "example-report.txt").read_text()


def test_side_by_side_of_the_example_with_itself_is_the_recorded_text(example_run):
    assert text_of(*tables.side_by_side([example_run, example_run], ["a", "b"])) == \
        (DATA / "example-side-by-side.txt").read_text()


def test_one_table_per_op_with_numpy_first(example_run):
    ts = tables.op_tables(example_run)
    assert len(ts) == 10 and ts[0].title.startswith("relu · float32 · cpu peak 38.7 GB/s")
    assert [c.header for c in ts[0].columns] == ["dtype", "size", "numpy", "numba_cpu", "torch"]
    assert tables.op_tables(Run(env={})) == []


def test_best_cell_is_marked_and_bold_green(example_run):
    relu = tables.op_tables(example_run)[0]
    marked = [(col.header, i) for col in relu.columns for i, cell in enumerate(col._cells) if BEST in str(cell)]
    assert marked == [("numba_cpu", 0), ("numba_cpu", 2), ("torch", 1)]
    styles = [str(cell.style) for col in relu.columns for cell in col._cells if BEST in str(cell)]
    assert styles == ["bold green"] * 3


def test_failed_and_skipped_show_reasons_and_never_a_time(example_run):
    run = edited(example_run, {
        ("tanh", "numpy", MID): {"status": Status.FAILED, "reason": "max error 3.1e-02 at index 7"},
        ("tanh", "torch", MID): {"status": Status.SKIPPED, "reason": "torch is not installed"},
        ("tanh", "numba_cpu", MID): {"stable": False}})
    tanh = tables.op_tables(run)[4]
    text = text_of(tanh)
    assert "[1] failed: max error 3.1e-02 at index 7" in text and "[2] skipped: torch is not installed" in text
    row = [r for r in table_rows(text) if r[1].startswith("2^18")][0]
    assert row[2] == "FAILED [1]" and row[4] == "skipped [2]"       # their medians are neither shown ...
    assert row[3].startswith(f"{BEST} ~")                           # ... nor the fastest
    assert any("bold red" in str(span.style) for c in tanh.columns[2]._cells for span in c.spans)
    assert "did not stabilise" in str(tanh.caption)
    steady = edited(example_run, {(e.op, e.backend, e.size): {"stable": True} for e in example_run.results})
    assert "did not stabilise" not in str(tables.op_tables(steady)[4].caption)


def test_a_missing_cell_and_a_missing_peak(example_run):
    run = derive(replace(edited(example_run, {}, drop={("relu", "torch", MID)}), peaks={}))
    relu = tables.op_tables(run)[0]
    assert relu.title == "relu · float32 · cpu peak not measured"
    rows = table_rows(text_of(relu))
    assert [r for r in rows if r[1].startswith("2^18")][0][4] == "-"
    assert "- % peak" in text_of(relu)


def test_side_by_side_ratios_and_missing_cases(example_run):
    later = edited(example_run, {("relu", "numba_cpu", 4096): {"median_s": 1.5 * example_run.results[1].median_s}},
                   drop={("relu", "torch", 2**25)})
    later = derive(replace(later, peaks={"cpu": dict(later.peaks["cpu"], gbps=19.35)}))
    relu = tables.side_by_side([example_run, later], ["before", "after"])[0]
    headers = [c.header for c in relu.columns]
    assert headers[2:4] == ["numpy\nbefore", "numpy\nafter"]
    cells = {h: [str(c) for c in col._cells] for h, col in zip(headers, relu.columns)}
    assert cells["numba_cpu\nafter"][0].endswith("1.50x") and cells["numpy\nafter"][0].endswith("1.00x")
    assert "40.6% peak" in cells["numba_cpu\nbefore"][0]
    assert "54.1% mem peak" in cells["numba_cpu\nafter"][0]        # 1.5 x the time, half the peak
    assert cells["torch\nafter"][2] == "-"                          # not in the later run
    assert "before: cpu peak 38.7 GB/s" in relu.title and "after: cpu peak 19.4 GB/s" in relu.title
    assert BEST not in text_of(relu)                                        # no "fastest" across runs


def test_side_by_side_failed_first_case_has_no_ratio_and_default_labels(example_run):
    first = edited(example_run, {("relu", "numpy", 4096): {"status": Status.FAILED, "reason": "bad"}})
    relu = tables.side_by_side([first, example_run])[0]
    assert relu.columns[2].header == "numpy\nvm b6d8a4b"
    before, after = str(relu.columns[2]._cells[0]), str(relu.columns[3]._cells[0])
    assert before.startswith("FAILED") and after.endswith("\n-") and "failed: bad" in text_of(relu)


def test_summary_names_environment_and_peaks(example_run):
    text = text_of(tables.summary(example_run))
    for needle in ("vm", "AMD EPYC, 2 cores", "openblas 0.3.31", "2 threads", "Haswell", "numba", "no GPU",
                   "b6d8a4b741", "quick", "cpu peak 38.7 GB/s"):
        assert needle in text, needle


def test_cells_and_legend_name_the_peak_level(example_run):
    peaks = {"cpu": dict(example_run.peaks["cpu"], cache={"gbps": 400.0, "method": "fake cache copy",
                                                           "applies_below_bytes": 2**20})}
    run = derive(replace(example_run, peaks=peaks))
    relu = tables.op_tables(run)[0]
    text = text_of(relu)
    assert "cache peak" in text and "mem peak" in text
    caption = str(relu.caption)
    assert "% mem peak: of the memory copy peak; % cache peak: of the cache-resident copy peak" in caption
    assert "below 1.00 MiB" in caption and "% peak above 100" not in caption
    assert "cache peak 400 GB/s below 1.00 MiB" in relu.title
