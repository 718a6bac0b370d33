"""compare's cases of one run only (issue 20): a few are named; many (a GPU run against a CPU run:
~100) are summarised per field in one line, and the Markdown keeps the whole list folded away."""

from __future__ import annotations

from bench.cli import main as cli
from bench.analysis import compare

from .test_bench_compare import base_cases, make_run, samples, save


def _key(op, backend, size, dtype="float32"):
    return (op, backend, "cpu", dtype, size, ())


def test_few_are_named_one_by_one():
    keys = [_key("relu", "numpy", 2**12), _key("tanh", "numba_cpu", 2**25)]
    assert compare.only_summary(keys) == "relu numpy float32 2^12 (4.10k), tanh numba_cpu float32 2^25 (33.6M)"


def test_many_are_counted_per_field_most_frequent_first():
    ops = ["relu", "sigmoid", "tanh", "relu_grad", "sigmoid_grad", "tanh_grad"]
    keys = [_key(op, be, n) for be in ("cupy", "cupy_raw") for op in ops for n in (2**12, 2**25)]
    keys.append(_key("relu", "torch", 2**12))
    line = compare.only_summary(keys)
    assert line == ("25 cases: backend cupy 12, cupy_raw 12, torch 1; op relu 5, relu_grad 4, sigmoid 4, "
                    "sigmoid_grad 4 and 2 more; dtype float32 (all); size 2^12 13, 2^25 12")
    assert "relu cupy float32" not in line


def test_the_report_summarises_and_the_markdown_keeps_every_case(tmp_path, capsys):
    a = base_cases(0)
    extra = {(op, "cupy", n): samples(1e-3, 0.02, seed=i)
             for i, (op, n) in enumerate((op, n) for op in ("relu", "sigmoid", "tanh", "relu_grad")
                                         for n in (2**12, 2**20))}
    md = tmp_path / "c.md"
    rc = cli.main(["compare", save(tmp_path, "a.json", make_run({**a, **extra})),
                   save(tmp_path, "b.json", make_run(base_cases(100))), "--markdown", str(md)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "only in the base run: 8 cases: backend cupy (all); op relu 2, relu_grad 2, sigmoid 2, tanh 2;" in out
    assert "only in the new run" not in out
    text = md.read_text()
    assert "Only in the base run: 8 cases" in text
    assert text.count("- relu_grad cupy float32") == 2 and "<details>" in text
