"""Faults of `bench run`, `report` and `compare` (issue 17): a full disk while saving, two runs on
one --out, an --out that cannot be written, sizes no machine holds or this one cannot, and results
files of the wrong shape are each one line and a non-zero exit, with nothing lost or mislabelled:
a partial file on disk always says it is partial."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys

import pytest

from bench.kinds import elementwise
from bench.cli import main as cli
from bench.model import results
from bench.run import runner
from bench.model.results import Status
from tests.fakes import patch_peaks


@pytest.fixture(autouse=True)
def no_peak_probe(monkeypatch):
    patch_peaks(monkeypatch)


def _one_line(err: str) -> None:
    assert "Traceback" not in err
    assert err.strip() and err.strip().count("\n") == 0, err


def _not_measured(monkeypatch):
    def measured(*a, **k):
        raise AssertionError("measured before the input was checked")
    monkeypatch.setattr(runner, "run_cases", measured)


RELU = ["run", "--ops", "relu", "--backends", "numpy", "--no-plots", "--no-interleave"]


# ------------------------------------------------------------------------------ item 2: partial saves

def test_every_save_while_measuring_says_the_run_is_partial(tmp_path, monkeypatch):
    saved = []
    real = results.write_json
    monkeypatch.setattr(results, "write_json", lambda doc, path: saved.append(doc["interrupted"]) or real(doc, path))
    assert cli.main([*RELU, "--sizes", "100,200,300", "--out", str(tmp_path / "r.json")]) == 0
    assert saved[:-1] == [True] * 3 and saved[-1] is False      # a killed run's file is never "whole"
    assert results.load(tmp_path / "r.json").interrupted is False


def test_a_full_disk_while_saving_is_one_line_and_the_file_stays_marked(tmp_path, monkeypatch, capsys):
    real, calls = results.write_json, []

    def fills_up(doc, path):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(doc, path)
    monkeypatch.setattr(results, "write_json", fills_up)
    out = tmp_path / "r.json"
    rc = cli.main([*RELU, "--sizes", "100,200,300", "--out", str(out)])
    assert rc not in (0, 1, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "No space left" in captured.err and captured.err.strip().count("\n") == 0
    run = results.load(out)             # the last save that got through: one case, marked partial
    assert run.interrupted is True and len(run.results) == 1


def test_a_full_disk_writing_the_markdown_is_one_line(tmp_path, monkeypatch, capsys):
    from pathlib import Path
    real = Path.write_text

    def full(self, *a, **k):
        if self.suffix == ".md":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *a, **k)
    monkeypatch.setattr(Path, "write_text", full)
    rc = cli.main([*RELU, "--sizes", "100", "--out", str(tmp_path / "r.json")])
    assert rc not in (0, 1, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err and "No space left" in captured.err


# ------------------------------------------------------------------------------ item 4: one --out, one run

def test_a_second_run_on_the_same_out_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    lock = tmp_path / "r.json.lock"
    lock.write_text(f"{os.getpid()}\n")          # a live process is writing it
    _not_measured(monkeypatch)
    assert cli.main([*RELU, "--sizes", "100", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "being written" in err and str(os.getpid()) in err
    assert lock.exists()                         # not ours to remove


def test_a_stale_lock_is_taken_over_and_the_lock_goes_when_done(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    lock = tmp_path / "r.json.lock"
    lock.write_text(f"{dead}\n")
    assert cli.main([*RELU, "--sizes", "100", "--out", str(tmp_path / "r.json")]) == 0
    assert not lock.exists()


def test_out_under_a_file_is_a_usage_error_before_measuring(tmp_path, monkeypatch, capsys):
    (tmp_path / "f").write_text("x")
    _not_measured(monkeypatch)
    assert cli.main([*RELU, "--sizes", "100", "--out", str(tmp_path / "f" / "r.json")]) == 2
    _one_line(capsys.readouterr().err)


def test_an_out_that_cannot_be_written_is_a_usage_error_before_measuring(tmp_path, monkeypatch, capsys):
    _not_measured(monkeypatch)
    real = os.open

    def denied(path, flags, *a, **k):
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, flags, *a, **k)
    monkeypatch.setattr(os, "open", denied)     # a read-only folder (tests run as root here)
    assert cli.main([*RELU, "--sizes", "100", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "Permission denied" in err


# ------------------------------------------------------------------------------ sizes

@pytest.mark.parametrize("size", ["2**99", "2^64", "99999999999999999999999"])
def test_a_size_no_machine_holds_is_a_usage_error(size, capsys):
    assert cli.main([*RELU, "--sizes", size]) == 2
    _one_line(capsys.readouterr().err)


def test_a_size_this_machine_cannot_hold_is_skipped_with_its_reason_before_inputs_are_built(tmp_path, monkeypatch):
    built = []
    real = elementwise.Inputs
    monkeypatch.setattr(elementwise, "Inputs", lambda dtype, size, seed: built.append(size) or real(dtype, size, seed))
    out = tmp_path / "r.json"
    assert cli.main([*RELU, "--sizes", "100,2**40", "--out", str(out)]) == 0
    big = [e for e in results.load(out).results if e.size == 2**40]
    assert big and all(e.status is Status.SKIPPED and "GiB" in e.reason for e in big)
    assert built == [100]


# ------------------------------------------------------------------------------ results files

def _doc() -> dict:
    return json.loads((__import__("tests.conftest", fromlist=["EXAMPLE_RUN"]).EXAMPLE_RUN).read_text())


def _first_ok(doc) -> dict:
    return next(e for e in doc["results"] if e["status"] == "ok")


def _bad(change):
    def make(tmp_path):
        doc = _doc()
        change(doc)
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(doc))
        return p
    return make


BAD_FILES = {
    "results is a number": (_bad(lambda d: d.update(results=5)), "results"),
    "a case is a number": (_bad(lambda d: d["results"].__setitem__(0, 7)), "case 0"),
    "env is a list": (_bad(lambda d: d.update(env=[1, 2])), "env"),
    "peaks is a string": (_bad(lambda d: d.update(peaks="fast")), "peaks"),
    "a peak is a string": (_bad(lambda d: d["peaks"].update(cpu="fast")), "peaks"),
    "median NaN": (_bad(lambda d: _first_ok(d).update(median_s=math.nan)), "median_s"),
    "median negative": (_bad(lambda d: _first_ok(d).update(median_s=-1e-6)), "median_s"),
    "median zero": (_bad(lambda d: _first_ok(d).update(median_s=0.0)), "median_s"),
    "median a string": (_bad(lambda d: _first_ok(d).update(median_s="fast")), "case"),
    "status unknown": (_bad(lambda d: _first_ok(d).update(status="great")), "case"),
    "a folder": (lambda tmp_path: tmp_path, "folder"),
    "schema 99": (_bad(lambda d: d.update(schema="actbench.results/99")), "newer actbench"),
    "the top is a list": (lambda tmp_path: (tmp_path / "l.json").write_text("[1]") and tmp_path / "l.json",
                          "not an actbench results file"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
@pytest.mark.parametrize("command", ["report", "compare"])
def test_results_files_of_the_wrong_shape_are_one_line_and_exit_2(tmp_path, capsys, name, command):
    make, message = BAD_FILES[name]
    bad = make(tmp_path)
    argv = ["report", str(bad)] if command == "report" else \
        ["compare", str(__import__("tests.conftest", fromlist=["x"]).EXAMPLE_RUN), str(bad)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert message in err


def test_the_example_run_still_loads():
    from tests.conftest import EXAMPLE_RUN
    run = results.load(EXAMPLE_RUN)
    assert any(e.timed for e in run.results)


# ------------------------------------------------------------------------------ found beyond the list

@pytest.mark.parametrize("more,message", [
    (["--seed", "-1"], "--seed"),              # NumPy refuses negative seeds: the run died after the peaks
    (["--dtypes", ""], "dtype"),               # was silently the profile's dtypes
])
def test_more_bad_run_options_are_usage_errors_before_measuring(tmp_path, monkeypatch, capsys, more, message):
    _not_measured(monkeypatch)
    assert cli.main([*RELU, "--sizes", "100", "--out", str(tmp_path / "r.json"), *more]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert message in err


def test_an_out_that_is_not_a_regular_file_is_refused(tmp_path, monkeypatch, capsys):
    # a results file renamed over /dev/null (as root) would replace the device
    _not_measured(monkeypatch)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert cli.main([*RELU, "--sizes", "100", "--out", str(fifo)]) == 2
    _one_line(capsys.readouterr().err)


def test_report_markdown_into_a_missing_or_unwritable_place_is_one_line(tmp_path, capsys):
    from tests.conftest import EXAMPLE_RUN
    (tmp_path / "f").write_text("x")
    assert cli.main(["report", str(EXAMPLE_RUN), "--markdown", str(tmp_path / "f" / "r.md")]) == 2
    _one_line(capsys.readouterr().err)
