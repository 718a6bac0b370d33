"""The make targets' faults (issue 17): `make bench-pytest-compare` with no or a corrupt saved run
says what to do in one line before a minute of measuring; `make gpu-check` where python3 lacks
rich names what is missing and how to get it; `make claims` writes under reports/results, never
over the committed reports/claims.* unless --committed asks for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main as cli
from bench.analysis import pytest_saved
from bench.claims import cli as claims_cli

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ bench-pytest-compare

def _saved(folder: Path, name: str, text: str) -> Path:
    d = folder / pytest_saved.machine_id()
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return d / name


GOOD = json.dumps({"benchmarks": [{"fullname": "tests/benchmarks/x.py::test_a", "stats": {"median": 1e-6}}]})


def test_no_saved_run_says_to_make_one(tmp_path, capsys):
    assert pytest_saved.main([str(tmp_path / ".benchmarks")]) == 2
    err = capsys.readouterr().err
    assert "make bench-pytest" in err and err.strip().count("\n") == 0


@pytest.mark.parametrize("text", ["{cut", "[]", '{"benchmarks": 5}', '{"benchmarks": [{"fullname": 1}]}',
                                  '{"benchmarks": [{"fullname": "a", "stats": {"median": "x"}}]}', "\xff"])
def test_a_corrupt_latest_run_names_the_file(tmp_path, capsys, text):
    _saved(tmp_path, "0001_good.json", GOOD)
    bad = _saved(tmp_path, "0002_bad.json", text)
    assert pytest_saved.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert bad.name in err and err.strip().count("\n") == 0 and "Traceback" not in err


def test_a_good_latest_run_passes(tmp_path, capsys):
    _saved(tmp_path, "0001_bad.json", "{cut")
    _saved(tmp_path, "0002_good.json", GOOD)
    assert pytest_saved.main([str(tmp_path)]) == 0


def test_the_make_target_checks_before_it_measures():
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("bench-pytest-compare: venv\n", 1)[1].split("\n\n", 1)[0]
    first, *rest = [line.strip() for line in recipe.splitlines()]
    assert "bench.analysis.pytest_saved" in first and any("--benchmark-compare" in r for r in rest)


# ------------------------------------------------------------------------------ gpu-check without rich

def test_gpu_check_without_rich_says_what_is_missing_and_how_to_get_it():
    code = ("import sys; sys.modules['rich'] = None; sys.argv = ['gpu_check']; import runpy; "
            "runpy.run_module('bench.cli.gpu_check', run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert "rich" in p.stderr and "pip install" in p.stderr


# ------------------------------------------------------------------------------ claims' output

def _claims_args(*argv):
    return cli._parser().parse_args(["claims", *argv])


def test_claims_write_under_reports_results_by_default():
    out = claims_cli.output_path(_claims_args("--quick"))
    assert out.parent == Path("reports/results") and out != Path("reports/claims.json")


def test_claims_write_the_committed_copy_only_when_asked():
    assert claims_cli.output_path(_claims_args("--quick", "--committed")) == Path("reports/claims.json")
    assert claims_cli.output_path(_claims_args("--out", "x/c.json")) == Path("x/c.json")


def test_committed_and_out_together_are_a_usage_error(capsys):
    assert cli.main(["claims", "--committed", "--out", "x.json"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_claims_check_the_environment_before_measuring(monkeypatch, capsys):
    monkeypatch.setenv("ACTBENCH_BLOCK", "0")
    from bench.claims import experiments

    class Never:
        def __getattr__(self, name):
            raise AssertionError("measured before the environment was checked")
    monkeypatch.setattr(experiments, "PROFILES", Never())
    assert cli.main(["claims", "--quick", "--only", "1", "--out", "/tmp/never/c.json"]) == 2
    err = capsys.readouterr().err
    assert "ACTBENCH_BLOCK" in err and err.strip().count("\n") == 0
