"""Tests of bench/render.py on hand-built results dicts: tables, side-by-side runs, summary, Markdown.

The fixture builder below writes runs by hand (no measuring code): each case's GB/s, % of peak and
speed-up follow from its median, so a test can say which cell must be the fastest.
"""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from bench import render

PEAK = 20.0   # GB/s, the fixture's CPU copy peak


def case(op, backend, size, median=None, status="ok", reason=None, dtype="float32", device="cpu",
         stable=True, speedup=None, n=25):
    """One results entry; ok cases get bytes, GB/s and % of peak from their median."""
    e = dict(op=op, backend=backend, device=device, dtype=dtype, size=size, status=status,
             reason=reason, median_s=None, iqr_s=None, min_s=None, n=None, samples_s=None,
             stable=None, timer=None, bytes=8 * size, flops=size, gbps=None, pct_peak=None,
             speedup_vs_numpy=None, check_worst=None)
    if status == "ok":
        gbps = 8 * size / median / 1e9
        e.update(median_s=median, iqr_s=median * 0.02, min_s=median * 0.97, n=n,
                 samples_s=[median] * n, stable=stable, timer="perf_counter_ns", gbps=gbps,
                 pct_peak=100 * gbps / PEAK, speedup_vs_numpy=speedup)
    return e


def with_speedups(results):
    """Fill speedup_vs_numpy = numpy median / this median where numpy has an ok case, else None."""
    base = {(e["op"], e["dtype"], e["size"]): e["median_s"] for e in results
            if e["backend"] == "numpy" and e["status"] == "ok"}
    for e in results:
        ref = base.get((e["op"], e["dtype"], e["size"]))
        e["speedup_vs_numpy"] = ref / e["median_s"] if ref and e["status"] == "ok" else None
    return results


def make_run(results, host="box", commit="abc1234def5678", peak=PEAK):
    """A run dict around results, with a full environment and a CPU peak of `peak` GB/s."""
    env = {"host": host, "platform": "Linux-6.1-x86_64", "python": "3.11.9", "command": "bench run",
           "profile": "quick", "seed": 0,
           "cpu": {"model": "Test CPU 9000", "cores": 2, "llc_bytes": 32 * 2**20},
           "numpy": {"version": "2.3.0", "blas": [
               {"user_api": "blas", "internal_api": "openblas", "num_threads": 2,
                "version": "0.3.31", "architecture": "Haswell"}]},
           "numba": {"version": "0.62.0", "threads": 2, "threading_layer": "omp"},
           "gpu": None, "packages": {}, "git": {"commit": commit, "dirty": True}}
    for e in results:
        if e["gbps"] is not None:
            e["pct_peak"] = 100 * e["gbps"] / peak      # % of this run's own peak
    return {"schema": "actbench.results/1", "created": "2026-11-28T12:00:00+00:00",
            "interrupted": False, "env": env,
            "peaks": {"cpu": {"gbps": peak, "method": "2-thread copy", "bytes": 2**28}},
            "results": results}


SIZES = (2**10, 2**20, 2**25)


def sample_run():
    """relu and sigmoid on numpy / numba_cpu / torch; numba_cpu fastest except at 2**10 (torch);
    a failed and a skipped case, an unstable one, and a numpy failure (so null speed-ups)."""
    res = []
    for op, slow in (("sigmoid", 4.0), ("relu", 1.0)):      # sigmoid first: order must come from OPS
        for size in SIZES:
            t = size * 1e-9
            res.append(case(op, "numpy", size, t * 2 * slow))
            res.append(case(op, "numba_cpu", size, t * (3 if size == 2**10 else 1)))
            res.append(case(op, "torch", size, t * (1.8 if size == 2**10 else 1.5)))
    res.append(case("tanh", "numpy", 2**20, status="failed", reason="max error 3.1e-02 at index 7"))
    res.append(case("tanh", "numba_cpu", 2**20, 1e-3, stable=False))
    res.append(case("tanh", "torch", 2**20, status="skipped", reason="torch is not installed"))
    return make_run(with_speedups(res))


@pytest.fixture
def run():
    return sample_run()


def text_of(*renderables, width=200) -> str:
    console = Console(record=True, width=width)
    for r in renderables:
        console.print(r)
    return console.export_text()


def table_rows(text: str) -> list[list[str]]:
    """Lines of a rendered table split on its vertical rules into stripped cells."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.count("│") > 2]


def compact_grid(table) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a compact (one line per cell) table, from its rendered text."""
    lines = [line for line in text_of(table).splitlines() if line.strip()]
    header = next(line for line in lines if line.split()[:2] == ["dtype", "size"])
    body = [line for line in lines if line.split()[:1] in (["float32"], ["float64"])]
    # a cell's parts are one space apart, cells at least two
    return header.split(), [re.split(r"\s{2,}", line.strip()) for line in body]


# ------------------------------------------------------------------------------------ formats

@pytest.mark.parametrize("seconds, text", [
    (1.234e-3, "1.23 ms"), (1.2e-3, "1.20 ms"), (12.34e-6, "12.3 us"), (999.96e-6, "1.00 ms"),
    (5e-9, "5.00 ns"), (2.5, "2.50 s"), (123.4e-9, "123 ns"), (None, "-")])
def test_fmt_time(seconds, text):
    assert render.fmt_time(seconds) == text


@pytest.mark.parametrize("n, text", [(2**25, "2^25 (33.6M)"), (2**10, "2^10 (1.02k)"), (1000, "1000"),
                                     (3_000_000, "3.00M"), (1, "2^0 (1)")])
def test_fmt_size(n, text):
    assert render.fmt_size(n) == text


def test_op_order_follows_reference_and_unknown_ops_come_last():
    assert render.op_order(["sparse_matmul", "sigmoid", "relu_grad", "relu"]) == \
        ["relu", "relu_grad", "sigmoid", "sparse_matmul"]


def test_backend_order_puts_numpy_first_then_appearance():
    entries = [{"backend": b} for b in ("torch", "numba_cpu", "numpy", "torch")]
    assert render.backend_order(entries) == ["numpy", "torch", "numba_cpu"]


# ------------------------------------------------------------------------------------ op tables

def test_one_table_per_op_in_reference_order_with_title(run):
    tables = render.op_tables(run)
    titles = [t.title for t in tables]
    assert [t.split(" · ")[0] for t in titles] == ["relu", "sigmoid", "tanh"]
    assert titles[0] == "relu · float32 · cpu peak 20.0 GB/s (2-thread copy)"
    assert [c.header for c in tables[0].columns] == ["dtype", "size", "numpy", "numba_cpu", "torch"]


def test_every_op_backend_and_size_appears(run):
    text = text_of(*render.op_tables(run))
    for op in ("relu", "sigmoid", "tanh"):
        assert f"{op} · float32" in text
    for b in ("numpy", "numba_cpu", "torch"):
        assert b in text
    for s in ("2^10 (1.02k)", "2^20 (1.05M)", "2^25 (33.6M)"):
        assert s in text


def test_cell_has_time_bandwidth_pct_and_speedup(run):
    relu = render.op_tables(run)[0]
    text = text_of(relu)
    # numba_cpu relu at 2**25: t = 2**25 ns = 33.6 ms, 8 B/element -> 8.00 GB/s = 40.0 % of 20 GB/s
    assert "33.6 ms ±2.0%" in text and "8.00 GB/s" in text and "40.0% peak" in text
    assert "x 2.00" in text and "x 1.00" in text


def test_best_per_row_is_the_one_marked(run):
    header, body = compact_grid(render.op_tables(run, compact=True)[0])
    assert len(body) == 3
    expected = {"2^10": "torch", "2^20": "numba_cpu", "2^25": "numba_cpu"}
    for row in body:
        marked = [b for b, cell in zip(header[2:], row[-3:]) if render.BEST in cell]
        assert marked == [expected[row[1].split()[0]]], row
    body = [c for r in table_rows(text_of(render.op_tables(run)[0])) for c in r]
    assert sum(c.count(render.BEST) for c in body) == 3


def test_best_cell_is_bold_green(run):
    table = render.op_tables(run)[0]
    styles = [str(cell.style) for col in table.columns for cell in col._cells if render.BEST in str(cell)]
    assert styles == ["bold green"] * 3


def test_failed_and_skipped_show_reasons_and_never_a_time(run):
    for e in run["results"]:
        if e["op"] == "tanh" and e["status"] != "ok":
            e["median_s"] = 1e-9                  # a stray time must neither show nor win the row
    tanh = render.op_tables(run)[2]
    text = text_of(tanh)
    assert "FAILED [1]" in text and "skipped [2]" in text
    assert "[1] failed: max error 3.1e-02 at index 7" in text
    assert "[2] skipped: torch is not installed" in text
    row = [r for r in table_rows(text) if r[1].startswith("2^20")][0]
    numpy_cell, torch_cell = row[2], row[4]
    assert numpy_cell == "FAILED [1]" and torch_cell == "skipped [2]"
    assert row[3].startswith(render.BEST)
    failed = [c for c in tanh.columns[2]._cells]
    assert any("bold red" in str(span.style) for c in failed for span in c.spans)


def test_null_speedup_renders_as_dash(run):
    header, body = compact_grid(render.op_tables(run, compact=True)[2])
    numba = body[0][3]
    assert numba.endswith(" -") and "x " not in numba


def test_unstable_case_is_marked_and_explained(run):
    tanh, relu = render.op_tables(run)[2], render.op_tables(run)[0]
    assert "~1.00 ms" in text_of(tanh)
    assert "did not stabilise" in str(tanh.caption)
    assert "did not stabilise" not in str(relu.caption)


def test_missing_cell_and_missing_peak_are_graceful():
    run = make_run([case("relu", "numpy", 2**20, 1e-3), case("relu", "numba_cpu", 2**10, 1e-6)])
    run["peaks"] = {}
    run["results"][0].update(gbps=None, pct_peak=None, iqr_s=None)
    table = render.op_tables(run)[0]
    assert table.title == "relu · float32 · cpu peak not measured"
    text = text_of(table)
    assert "- GB/s" in text and "- % peak" in text
    rows = table_rows(text)
    assert any(r[1].startswith("2^20") and r[3] == "-" for r in rows)


def test_empty_run_gives_no_tables():
    assert render.op_tables(make_run([])) == []


# ------------------------------------------------------------------------------------ side by side

def two_runs():
    a = make_run(with_speedups([case("relu", "numpy", 2**20, 2e-3), case("relu", "numba_cpu", 2**20, 1e-3),
                                case("relu", "numba_cpu", 2**25, 40e-3),
                                case("sigmoid", "numpy", 2**20, status="failed", reason="bad")]),
                 host="a", commit="1111111aaaa")
    b = make_run(with_speedups([case("relu", "numpy", 2**20, 1.86e-3), case("relu", "numba_cpu", 2**20, 1.5e-3),
                                case("relu", "torch", 2**20, 1e-3),
                                case("sigmoid", "numpy", 2**20, 5e-3)]),
                 host="b", commit="2222222bbbb", peak=10.0)
    return a, b


def test_side_by_side_ratios_and_missing_cases():
    a, b = two_runs()
    tables = render.side_by_side([a, b], ["before", "after"])
    assert [t.title.split(" · ")[0] for t in tables] == ["relu", "sigmoid"]
    relu = tables[0]
    headers = [c.header for c in relu.columns]
    assert headers[2:] == ["numpy\nbefore", "numpy\nafter", "numba_cpu\nbefore", "numba_cpu\nafter",
                           "torch\nbefore", "torch\nafter"]
    cells = {h: [str(c) for c in col._cells] for h, col in zip(headers, relu.columns)}
    assert cells["numpy\nafter"][0].endswith("0.93x")            # 1.86 / 2.00
    assert cells["numba_cpu\nafter"][0].endswith("1.50x")        # 1.5 / 1.0
    assert cells["numba_cpu\nafter"][1] == "-"                  # 2**25 missing from the later run
    assert cells["numba_cpu\nbefore"][1].startswith("40.0 ms")
    assert cells["torch\nbefore"][0] == "-"                     # torch missing from the first run
    assert cells["torch\nafter"][0].endswith("\n-")             # no first-run case: no ratio
    # % of each run's own peak: 8 * 2**20 B / 1.0 ms = 8.39 GB/s = 41.9 % of 20; / 1.5 ms = 55.9 % of 10
    assert "41.9% peak" in cells["numba_cpu\nbefore"][0] and "55.9% peak" in cells["numba_cpu\nafter"][0]
    text = text_of(*tables)
    assert "before: cpu peak 20.0 GB/s" in text and "after: cpu peak 10.0 GB/s" in text


def test_side_by_side_failed_first_run_has_no_ratio():
    a, b = two_runs()
    sigmoid = render.side_by_side([a, b], ["before", "after"])[1]
    cells = [str(col._cells[0]) for col in sigmoid.columns[2:]]
    assert cells[0].startswith("FAILED") and cells[1].endswith("\n-")
    assert "failed: bad" in text_of(sigmoid)
    assert render.BEST not in text_of(sigmoid)                        # no "fastest" across runs


def test_side_by_side_default_labels_name_host_and_commit():
    a, b = two_runs()
    table = render.side_by_side([a, b])[0]
    assert table.columns[2].header == "numpy\na 1111111"


def test_ratio():
    first, later = case("relu", "numpy", 2**20, 2e-3), case("relu", "numpy", 2**20, 1e-3)
    assert render.ratio(later, first) == pytest.approx(0.5)
    assert render.ratio(later, None) is None
    assert render.ratio(case("relu", "numpy", 2**20, status="failed"), first) is None


# ------------------------------------------------------------------------------------ summary

def test_summary_names_environment_and_peaks(run):
    text = text_of(render.summary(run))
    for needle in ("box", "Test CPU 9000, 2 cores", "openblas 0.3.31", "2 threads", "Haswell",
                   "numba", "no GPU", "abc1234def (dirty)", "quick", "cpu peak 20.0 GB/s (2-thread copy)"):
        assert needle in text, needle


def test_summary_copes_with_missing_fields_and_a_gpu():
    run = {"env": {"gpu": {"name": "NVIDIA H200", "memory_bytes": 141 * 2**30, "driver": "570.1",
                           "cuda_runtime": "12.8", "compute_capability": "9.0"}},
           "peaks": {"gpu": {"gbps": 4100.0, "method": "1 GiB d2d copy"}}, "results": [], "interrupted": True}
    text = text_of(render.summary(run))
    assert "NVIDIA H200, 141 GiB, cc 9.0, driver 570.1, CUDA 12.8" in text
    assert "gpu peak 4100 GB/s (1 GiB d2d copy)" in text and "INTERRUPTED" in text
    assert "git" in text and "unknown" in text


def test_print_run_prints_summary_then_tables(run):
    console = Console(record=True, width=200)
    render.print_run(run, console)
    text = console.export_text()
    assert text.index("actbench run") < text.index("relu · float32") < text.index("sigmoid · float32")


# ------------------------------------------------------------------------------------ markdown

def md_tables(md: str) -> dict[str, list[str]]:
    """op -> the lines of its Markdown table (header first)."""
    out, op = {}, None
    for line in md.splitlines():
        if line.startswith("### "):
            op = line[4:].split(" · ")[0]
            out[op] = []
        elif op and line.startswith("|"):
            out[op].append(line)
    return out


def test_markdown_one_table_per_op_with_header_columns(run):
    md = render.markdown(run)
    tables = md_tables(md)
    assert list(tables) == ["relu", "sigmoid", "tanh"]
    for lines in tables.values():
        assert lines[0] == "| dtype | size | numpy | numba_cpu | torch |"
        assert lines[1] == "|---|---|---:|---:|---:|"
    assert len(tables["relu"]) == 2 + 3 and len(tables["tanh"]) == 2 + 1
    assert md.count("\n| dtype |") == 3


def test_markdown_best_in_bold_failures_as_footnotes(run):
    md = render.markdown(run)
    tables = md_tables(md)
    for line in tables["relu"][2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        bold = [i for i, c in enumerate(cells) if c.startswith("**")]
        assert len(bold) == 1
        expected = 4 if cells[1].startswith("2^10") else 3       # torch at 2**10, numba_cpu above
        assert bold == [expected] and render.BEST in cells[expected]
    tanh = [c.strip() for c in tables["tanh"][2].strip("|").split("|")]
    assert tanh[2] == "**FAILED**[^1]" and tanh[4] == "skipped[^2]"
    assert "[^1]: failed: max error 3.1e-02 at index 7" in md
    assert "[^2]: skipped: torch is not installed" in md
    assert tanh[3].strip("*").endswith("<br>-")                      # null speed-up
    assert "\\~1.00 ms" in tanh[3]   # escaped: not a GitHub strikethrough


def test_markdown_has_environment_how_to_read_and_images(run, tmp_path):
    md = render.markdown(run, plots=["relu-float32.png", tmp_path / "tanh-float32.png", "other.png"])
    head = md.split("### ")[0]
    assert "Test CPU 9000" in head and "cpu peak 20.0 GB/s" in head and "no GPU" in head
    assert "median of 25 samples" in head and "numpy median / this median" in head
    assert "absolute times do not" in head
    assert "![relu-float32](relu-float32.png)" in md
    assert "![tanh-float32](tanh-float32.png)" in md                 # absolute path -> file name
    assert md.index("![relu-float32]") < md.index("### sigmoid")    # under its own table
    assert "![other](other.png)" in md
