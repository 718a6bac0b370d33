"""Every (op kind, backend, dtype) that the quick and full profiles hold, sent through the
interleaved path beyond the cache (the copy probe beside it), with the cache boundary set small so
that it runs in seconds: a path that only a long run's large sizes reach (`make bench-full`'s first
float16 case beyond the cache died in the probe) is exercised here. And a run that dies of an
exception keeps what it measured, marked interrupted, with one line saying what failed and where."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bench.kinds import elementwise
from bench.cli import main as cli
from bench.run import plan as _cases
from bench.measure import interleave, timing
from bench.run import runner
from bench.model.results import Status
from tests.fakes import patch_peaks

SMALL = 2**12           # elements of every elementwise case: beyond the fake boundary below
MATMUL_SHAPE = (96, 80)


@pytest.fixture(autouse=True)
def small_cache(monkeypatch):
    patch_peaks(monkeypatch, applies_below=2**10)       # every case here is judged by the memory peak


def _combinations(profile: str) -> list[_cases.Case]:
    """One case per (op, backend, dtype, batch) of the profile on the backends that run here, at a
    small size (elementwise) or a small shape (matmul)."""
    _, todo, _ = _cases.build(profile)
    seen, small = set(), []
    for c in todo:
        axes = dict(c.axes)
        key = (c.op, c.backend, c.dtype, axes.get("batch"))
        if key in seen:
            continue
        seen.add(key)
        if not axes:
            small.append(dataclasses.replace(c, size=SMALL))
        else:
            axes["shape"] = f"{MATMUL_SHAPE[0]}x{MATMUL_SHAPE[1]}"
            small.append(dataclasses.replace(c, axes=tuple(axes.items()), size=MATMUL_SHAPE[0] * MATMUL_SHAPE[1]))
    return small


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_profile_combination_runs_interleaved_beyond_the_cache(profile):
    todo = _combinations(profile)
    assert {bool(c.axes) for c in todo} == {True, False}     # both op kinds are in the profile
    assert {c.dtype for c in todo} == set(_cases.PROFILES[profile].dtypes)
    prof = dataclasses.replace(_cases.PROFILES[profile],
                               sampling=timing.Sampling(budget_s=0.001, rel_tol=0.5, min_samples=3))
    run = runner.run_cases(prof, todo, interleave=True)
    assert run.error is None and not run.interrupted
    assert len(run.results) == len(todo)
    for e in run.results:
        # a backend that does not support a dtype is skipped with its reason; nothing fails
        assert e.status is not Status.FAILED, (e.op, e.backend, e.dtype, e.reason)
        if e.status is Status.SKIPPED:
            assert "does not support" in e.reason, (e.op, e.backend, e.dtype, e.reason)
    ok = [e for e in run.results if e.status is Status.OK]
    assert {e.dtype for e in ok} == set(prof.dtypes)       # float16 included, where the profile has it
    from kernels import registry
    for e in ok:
        if not e.axes:           # an elementwise case's % of peak is of the probe beside it
            assert e.peak_level == "memory" and e.peak_gbps > 0, (e.op, e.backend, e.dtype)
        elif e.op not in registry.backend(e.backend).one_thread_ops:     # a matmul's samples pair with it
            assert len(e.probe_samples_s) == e.n, (e.op, e.backend, e.dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_the_probe_copies_the_cases_bytes_in_a_dtype_it_is_compiled_for(dtype):
    for size in (1, 7, 2**12, 2**12 + 1):
        n, probe_dtype = interleave.stand_in(dtype, size)
        assert probe_dtype in interleave.PROBE_DTYPES
        got = n * np.dtype(probe_dtype).itemsize
        want = size * np.dtype(dtype).itemsize
        assert want <= got < want + 4
    member, moved = interleave.CopyProbe().member(dtype, 1001, timing.Sampling(min_samples=3))
    assert member.measure() > 0
    assert moved == 2 * interleave.stand_in(dtype, 1001)[0] * np.dtype(interleave.stand_in(dtype, 1001)[1]).itemsize


def test_a_run_that_dies_of_an_exception_keeps_what_it_measured(tmp_path, monkeypatch, capsys):
    real, calls = elementwise._run_group, []

    def third_fails(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise NotImplementedError("float16")
        return real(*a, **k)
    monkeypatch.setattr(elementwise, "_run_group", third_fails)
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu", "--backends", "numpy,numba_cpu", "--sizes", "100,200,300",
                   "--budget", "0.01", "--out", str(out), "--no-plots"])
    assert rc == cli.EXIT_ERROR
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and len(doc["results"]) == 4       # two groups of two backends
    assert doc["error"].startswith("relu float32 300 group: NotImplementedError: float16")
    assert "tests/test_bench_profile_paths.py" in doc["error"]            # the innermost frame of ours
    printed = " ".join(capsys.readouterr().out.split())
    assert "error: the run stopped at relu float32 300 group" in printed
    assert f"saved in {out}" in printed and "Traceback" not in printed


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path, monkeypatch):
    import os
    import signal

    real, calls = elementwise._run_group, []

    def terminated_at_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)       # delivered to the handler the run installed
        return real(*a, **k)
    monkeypatch.setattr(elementwise, "_run_group", terminated_at_second)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu", "--backends", "numpy", "--sizes", "100,200,300",
                   "--budget", "0.01", "--out", str(out), "--no-plots"])
    assert rc == cli.EXIT_INTERRUPTED
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and len(doc["results"]) == 1 and doc["error"] is None
    assert signal.getsignal(signal.SIGTERM) is before                  # restored after the run
