"""A run's caches belong to the run (bench/measure/scope.py): opened by runner.run_cases, closed at its end,
Ctrl-C included; nothing is left in the process between runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kernels.ops import OPS
from kernels import registry
from bench.kinds import elementwise
from bench.run import plan, runner
from bench.measure import check, roofline, scope
from bench.measure.inputs import random_inputs
from tests.fakes import patch_peaks


def test_scratch_reuses_large_poison_buffers_and_close_drops_them():
    s = check.Scratch()
    be = registry.backend("numpy")
    spec = OPS["relu"]
    big = np.zeros(2**20, dtype=np.float32)
    (first,) = s.poison(be, spec, big)
    (again,) = s.poison(be, spec, big)
    assert first is again and np.isnan(again).all()
    (small,) = s.poison(be, spec, big[:10])
    assert small is not s.poison(be, spec, big[:10])[0]      # small outputs are made afresh
    snap = s.snapshot(big)
    assert s.snapshot(big) is snap
    s.close()
    assert s.poison(be, spec, big)[0] is not first and s.snapshot(big) is not snap


def test_a_check_without_a_scratch_keeps_nothing(rng):
    args = random_inputs("relu", (2**20,), "float32", rng)
    def held():
        return {k: len(v) for k, v in vars(check).items() if isinstance(v, (dict, list, set)) and k != "RTOL"}
    before = held()
    assert check.check_call("relu", "numpy", args).ok
    assert held() == before


def test_copy_pools_shut_their_threads_down():
    pools = roofline.CopyPools()
    src, dst = np.arange(1000, dtype=np.float32), np.zeros(1000, dtype=np.float32)
    pools.copy(2)(src, dst)
    assert np.array_equal(src, dst)
    pool = pools._pools[2]
    pools.close()
    with pytest.raises(RuntimeError):                  # a shut-down executor takes no more work
        pool.submit(int)


@pytest.fixture
def closes(monkeypatch):
    closed = []
    real = scope.RunScope.close

    def close(self):
        closed.append(self)
        real(self)
    monkeypatch.setattr(scope.RunScope, "close", close)
    patch_peaks(monkeypatch, gbps=1.0, cache_gbps=10.0)
    return closed


def test_a_run_closes_its_scope(closes):
    prof, todo, _ = plan.build(ops="relu", backends="numpy", sizes="64")
    run = runner.run_cases(prof, todo)
    assert run.results[0].status == "ok" and len(closes) == 1


def test_an_interrupted_run_closes_its_scope_too(closes, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(elementwise, "_run_case", interrupt)
    prof, todo, _ = plan.build(ops="relu", backends="numpy", sizes="64")
    run = runner.run_cases(prof, todo)
    assert run.interrupted and len(closes) == 1


def test_closing_a_scope_drops_the_numba_cuda_kernels(monkeypatch):
    from kernels.backends.numba_cuda import elementwise as numba_gpu
    monkeypatch.setitem(numba_gpu.RUNTIME._kernels, ("relu", "float32"), object())
    monkeypatch.setitem(numba_gpu.RUNTIME._resident, ("relu", "float32", 0), 1)
    scope.RunScope().close()
    assert not numba_gpu.RUNTIME._kernels and not numba_gpu.RUNTIME._resident


def test_closing_a_scope_imports_no_numba_cuda():
    """Where numba-cuda is absent (or never probed), closing its runtime must not import it."""
    code = ("import sys; from bench.measure import scope; scope.RunScope().close(); "
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
