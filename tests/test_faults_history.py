"""Faults of the CI gate (bench/analysis/history.py, issue 17): Ctrl-C while a slower case is measured again
must not rewrite the baseline, and no Ctrl-C is a traceback; a history.jsonl with a cut last line or
bad rows is read robustly and never appended onto a fragment; files keep 0644-like permissions;
bad options (--alpha, --run-args, an unusable --baselines path) are one line and exit 2 before
anything is measured."""

from __future__ import annotations

import json
import os
import stat

import pytest

from bench.cli import check as check_cmd
from bench.analysis import history
from bench.model import results
from bench.run import runner
from tests.test_bench_compare import _fake_check_runs, base_cases, make_run, samples

SLOW_KEY = ("relu", "numba_cpu", 2**25)


def _slower_second_run():
    cases = base_cases(100)
    cases[SLOW_KEY] = samples(3e-3 * 3, 0.02, seed=11)
    return make_run(cases)


def _check_argv(tmp_path, *more):
    return ["check", "--baselines", str(tmp_path / "b"), "--history", str(tmp_path / "h.jsonl"),
            "--plots", str(tmp_path / "p"), "--markdown", str(tmp_path / "c.md"), *more]


def _one_line_no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, err


def test_ctrl_c_while_measuring_again_leaves_the_baseline_and_history_alone(tmp_path, monkeypatch, capsys):
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), _slower_second_run())
    assert check_cmd.main(_check_argv(tmp_path, "--out", str(tmp_path / "r0.json"), "--update-baseline")) == 0
    base_file = next((tmp_path / "b").glob("*.json"))
    before = base_file.read_bytes()
    rows_before = (tmp_path / "h.jsonl").read_text()
    # the runner turns Ctrl-C into a run marked interrupted with what it had: nothing here
    monkeypatch.setattr(runner, "run_cases", lambda prof, todo, seed=0, interleave=True:
                        results.Run(env=make_run({}).env, interrupted=True))
    capsys.readouterr()
    rc = check_cmd.main(_check_argv(tmp_path, "--out", str(tmp_path / "r1.json"), "--update-baseline"))
    assert rc == 130
    assert base_file.read_bytes() == before
    assert (tmp_path / "h.jsonl").read_text() == rows_before
    err = capsys.readouterr().err
    _one_line_no_traceback(err)
    assert "interrupted" in err


def test_ctrl_c_after_the_run_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    _fake_check_runs(monkeypatch, make_run(base_cases(0)))

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(history, "plot", ctrl_c)
    assert check_cmd.main(_check_argv(tmp_path, "--out", str(tmp_path / "r0.json"))) == 130
    _one_line_no_traceback(capsys.readouterr().err)


def test_a_cut_last_line_is_not_the_start_of_the_next_row(tmp_path):
    path = tmp_path / "h.jsonl"
    run = make_run(base_cases(0))
    history.append(run, path)
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[0][:40])          # a writer killed mid-line
    n = history.append(run, path)
    got = history.read(path)
    assert len(got) == 2 * n                                      # the fragment alone is lost
    assert path.read_text().endswith("\n")


@pytest.mark.parametrize("bad", [
    b'\xff\xfe garbage\n',
    b'{"op": "relu", "median_s": "fast", "date": "x", "machine": "m"}\n',
    b'{"op": 5, "median_s": 1.0, "date": "x", "machine": "m"}\n',
    b'{"op": "relu", "median_s": 1.0, "date": 17, "machine": "m"}\n',
    b'{"op": "relu", "median_s": 1.0}\n',
    b'[1, 2, 3]\n',
    b'{"op": "relu", "median_s": -1.0, "date": "x", "machine": "m"}\n',
])
def test_bad_bytes_and_malformed_rows_are_skipped_with_a_note(tmp_path, bad, capsys):
    path = tmp_path / "h.jsonl"
    run = make_run(base_cases(0))
    n = history.append(run, path)
    with path.open("ab") as f:
        f.write(bad)
    history.append(run, path)
    notes = []
    got = history.read(path, notes=notes.append)
    assert len(got) == 2 * n
    assert notes and "skipped" in notes[0]
    assert check_cmd.main(["plot", "--history", str(path), "--plots", str(tmp_path / "p")]) == 0
    assert len(list((tmp_path / "p").rglob("*.png"))) == 2
    assert "skipped" in capsys.readouterr().out


def test_written_files_follow_the_umask_and_an_updated_file_keeps_its_mode(tmp_path):
    old = os.umask(0o022)
    try:
        p = results.save(make_run({}), tmp_path / "new.json")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        p.chmod(0o640)
        results.save(make_run({}), p)
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_an_updated_baseline_keeps_its_mode(tmp_path, monkeypatch):
    second = base_cases(1)
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), make_run(second))
    kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p", confirm_attempts=0,
              update_baseline=True)
    assert check_cmd.check(out=tmp_path / "r0.json", **kw) == 0
    base_file = next((tmp_path / "b").glob("*.json"))
    base_file.chmod(0o644)
    check_cmd.check(out=tmp_path / "r1.json", **kw)
    assert stat.S_IMODE(base_file.stat().st_mode) == 0o644


@pytest.mark.parametrize("more,message", [
    (["--alpha", "0"], "--alpha"),
    (["--alpha", "5"], "--alpha"),
    (["--alpha", "nan"], "--alpha"),
    (["--run-args", "--ops 'relu"], "--run-args"),
    (["--confirm", "-1"], "--confirm"),
    (["--threshold", "abc"], "threshold"),
    (["--profile", "huge"], "profile"),
])
def test_bad_options_are_one_line_exit_2_before_measuring(tmp_path, monkeypatch, capsys, more, message):
    def measured(*a, **k):
        raise AssertionError("measured before the options were checked")
    monkeypatch.setattr(check_cmd, "_run", measured)
    assert check_cmd.main(_check_argv(tmp_path, *more)) == 2
    err = capsys.readouterr().err
    _one_line_no_traceback(err)
    assert message in err


def test_a_baselines_path_that_is_a_file_or_read_only_is_a_usage_error(tmp_path, monkeypatch, capsys):
    def measured(*a, **k):
        raise AssertionError("measured before the paths were checked")
    monkeypatch.setattr(check_cmd, "_run", measured)
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for argv in (_check_argv(tmp_path, "--baselines", str(a_file)),
                 _check_argv(tmp_path, "--baselines", str(a_file / "sub")),
                 ["baseline", "--baselines", str(a_file)],
                 _check_argv(tmp_path, "--history", str(a_file / "h.jsonl"))):
        assert check_cmd.main(argv) == 2, argv
        _one_line_no_traceback(capsys.readouterr().err)
    if os.geteuid() != 0:                  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert check_cmd.main(_check_argv(tmp_path, "--baselines", str(ro))) == 2
            _one_line_no_traceback(capsys.readouterr().err)
        finally:
            ro.chmod(0o755)


def test_plot_on_a_history_that_is_a_folder_is_a_usage_error(tmp_path, capsys):
    assert check_cmd.main(["plot", "--history", str(tmp_path), "--plots", str(tmp_path / "p")]) == 2
    _one_line_no_traceback(capsys.readouterr().err)


def test_history_rows_are_json_lines(tmp_path):
    path = tmp_path / "h.jsonl"
    history.append(make_run(base_cases(0)), path)
    assert all(isinstance(json.loads(line), dict) for line in path.read_text().splitlines())
