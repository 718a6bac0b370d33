"""bench/report/markdown.py: the committed example report is what the recorded run renders to, and the
footnotes, bold best cells and image links of cases made from it."""

from __future__ import annotations


from bench.report import markdown
from bench.report.formatting import BEST
from bench.model.results import Status
from tests.conftest import EXAMPLE_RUN, edited

EXAMPLE_MD = EXAMPLE_RUN.with_suffix(".md")
PLOTS = EXAMPLE_RUN.with_name(EXAMPLE_RUN.stem + "-plots")


def md_tables(md: str) -> dict[str, list[list[str]]]:
    """op -> the cells of each line of its Markdown table (header first)."""
    out, op = {}, None
    for line in md.splitlines():
        if line.startswith("### "):
            op = line[4:].split(" · ")[0]
            out[op] = []
        elif op and line.startswith("|"):
            out[op].append([c.strip() for c in line.strip("|").split("|")])
    return out


def test_the_example_renders_to_the_committed_report(example_run):
    plots = [p.relative_to(EXAMPLE_RUN.parent) for p in sorted(PLOTS.glob("*.png"))]
    assert len(plots) == 10
    assert markdown.markdown(example_run, plots=plots) == EXAMPLE_MD.read_text()


def test_one_table_per_op_with_the_best_in_bold(example_run):
    tables = md_tables(markdown.markdown(example_run))
    assert list(tables)[:3] == ["relu", "relu_grad", "sigmoid"] and len(tables) == 10
    relu = tables["relu"]
    assert relu[0] == ["dtype", "size", "numpy", "numba_cpu", "torch"] and relu[1] == ["---", "---", "---:", "---:", "---:"]
    bold = [[i for i, c in enumerate(row) if c.startswith("**")] for row in relu[2:]]
    assert bold == [[3], [4], [3]]                     # numba_cpu, torch at 2**18, numba_cpu
    assert all(BEST in row[i] for row, (i,) in zip(relu[2:], bold))
    assert "\\~27.6 ms" in relu[4][2]                  # escaped: not a GitHub strikethrough


def test_failures_and_skips_are_footnotes_numbered_across_the_document(example_run):
    run = edited(example_run, {
        ("relu", "torch", 4096): {"status": Status.SKIPPED, "reason": "torch | is not installed"},
        ("tanh", "numpy", 2**18): {"status": Status.FAILED, "reason": "max error 3.1e-02 at index 7"}})
    md = markdown.markdown(run)
    tables = md_tables(md)
    assert tables["relu"][2][4] == "skipped[^1]" and tables["tanh"][3][2] == "**FAILED**[^2]"
    assert "[^1]: skipped: torch \\| is not installed" in md
    assert "[^2]: failed: max error 3.1e-02 at index 7" in md
    assert tables["tanh"][3][3].strip("*").endswith("<br>-")      # no numpy time: no speed-up


def test_environment_how_to_read_and_images(example_run, tmp_path):
    md = markdown.markdown(example_run, plots=["relu-float32.png", tmp_path / "tanh-float32.png", "other.png"])
    head = md.split("### ")[0]
    assert head.startswith("# actbench: vm b6d8a4b\n")
    assert "AMD EPYC" in head and "cpu peak 38.7 GB/s" in head and "no GPU" in head
    assert "median of 10-171 samples" in head and "absolute times do not" in head
    assert "![relu-float32](relu-float32.png)" in md
    assert "![tanh-float32](tanh-float32.png)" in md                 # absolute path -> file name
    assert md.index("![relu-float32]") < md.index("### relu_grad")  # under its own table
    assert md.rstrip().endswith("![other](other.png)")
