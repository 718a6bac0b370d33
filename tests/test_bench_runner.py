"""One run's flow (bench/run/runner.py): under memory pressure an out-of-memory error in a case skips
that case with its reason and the run goes on, pooled memory goes back between sizes; an
interleaved case's samples come out in round order beside the copy probe's (fake members)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.model import cases as model_cases
from bench.run import plan, runner
from bench.measure import devices
from kernels import registry
from tests.fakes import patch_peaks


class FakeAdapter(devices.HostAdapter):
    """The host adapter, counting how often the run gives pooled memory back."""

    def __init__(self, log):
        self.log = log

    def release(self):
        self.log.append("release")


@pytest.fixture
def greedy(monkeypatch):
    """A CPU backend 'greedy' whose relu runs out of memory from 4096 elements on, in the words of
    a GPU library (torch's OutOfMemoryError when torch is here, else MemoryError)."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    registry.declare_backend(dataclasses.replace(registry.backend("numpy"), name="greedy"))
    try:
        import torch
        oom = torch.cuda.OutOfMemoryError
    except ImportError:
        oom = MemoryError

    @registry.register("relu", "greedy")
    def relu(x, out=None):
        if x.size >= 4096:
            raise oom("CUDA out of memory. Tried to allocate 64.00 GiB\nmore lines the table need not show")
        return np.maximum(x, 0, out=np.empty_like(x) if out is None else out)

    log = []
    monkeypatch.setattr(devices, "adapter_for", lambda be: FakeAdapter(log))
    patch_peaks(monkeypatch, gbps=1.0, cache_gbps=10.0)
    yield log
    registry.forget_states("greedy")


def test_out_of_memory_skips_the_case_and_the_run_goes_on(greedy):
    prof, todo, _ = plan.build(ops="relu", backends="numpy,greedy", sizes="1024,4096,2048", budget=0.01)
    run = runner.run_cases(prof, todo)
    got = {(e.backend, e.size): e for e in run.results}
    assert len(got) == 6 and not run.interrupted
    skipped = got[("greedy", 4096)]
    assert skipped.status == "skipped" and skipped.median_s is None
    assert skipped.reason == "out of memory on the cpu: OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 GiB" \
        or skipped.reason.startswith("out of memory on the cpu: MemoryError: CUDA out of memory")
    assert all(e.status == "ok" for k, e in got.items() if k != ("greedy", 4096))


def test_a_run_records_the_settings_of_each_backend_it_timed(monkeypatch, greedy):
    """Backend.settings (what a backend chose on this machine) goes into env.settings by backend,
    read after the cases ran; a backend with none, or not timed, is left out."""
    calls = []
    tuned = dataclasses.replace(registry.backend("greedy"), settings=lambda: calls.append(1) or {"block": 64})
    monkeypatch.setitem(registry._BACKENDS, "greedy", tuned)
    prof, todo, _ = plan.build(ops="relu", backends="numpy,greedy", sizes="1024", budget=0.01)
    run = runner.run_cases(prof, todo)
    assert run.env["settings"] == {"greedy": {"block": 64}} and calls == [1]
    prof, todo, _ = plan.build(ops="relu", backends="numpy", sizes="1024", budget=0.01)
    assert runner.run_cases(prof, todo).env["settings"] == {}


def test_a_backend_whose_settings_hook_fails_is_recorded_not_a_lost_run(monkeypatch, greedy):
    def broken():
        raise RuntimeError("my plugin's\nsettings")
    monkeypatch.setitem(registry._BACKENDS, "greedy", dataclasses.replace(registry.backend("greedy"), settings=broken))
    prof, todo, _ = plan.build(ops="relu", backends="numpy,greedy", sizes="1024", budget=0.01)
    run = runner.run_cases(prof, todo)
    assert run.env["settings"] == {"greedy": {"error": "RuntimeError: my plugin's settings"}}
    assert not run.interrupted and all(e.status == "ok" for e in run.results)


def test_pooled_memory_goes_back_between_sizes_and_after_out_of_memory(greedy):
    prof, todo, _ = plan.build(ops="relu", backends="numpy,greedy", sizes="1024,4096,2048", budget=0.01)
    runner.run_cases(prof, todo)
    # one adapter (the host's, made by the first case): released before sizes 2 and 3, and after the OOM
    assert greedy == ["release"] * 3


def test_a_kernel_bug_is_still_a_failure_not_a_skip(monkeypatch, greedy):
    @registry.register("relu", "greedy")
    def relu(x, out=None):
        raise RuntimeError("illegal memory access")
    prof, todo, _ = plan.build(ops="relu", backends="greedy", sizes="1024", budget=0.01)
    (e,) = runner.run_cases(prof, todo).results
    assert e.status == "failed" and "illegal memory access" in e.reason


@pytest.fixture
def all_cores(monkeypatch):
    """A CPU backend 'allcores': NumPy's kernels declared as using every core (no one-thread ops),
    so that an interleaved run pairs its samples with the copy probe's, as it does numba_cpu's."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    registry.declare_backend(dataclasses.replace(registry.backend("numpy"), name="allcores",
                                                 one_thread_ops=frozenset()))

    @registry.register("relu", "allcores")
    def relu(x, out=None):
        return np.maximum(x, 0, out=np.empty_like(x) if out is None else out)

    patch_peaks(monkeypatch, gbps=1.0, cache_gbps=10.0, applies_below=2**14)
    yield
    registry.forget_states("allcores")


def test_each_sample_keeps_the_probe_sample_of_its_own_round(all_cores, monkeypatch):
    """bench compare divides each sample by the probe's of the same round: the run must hand them
    over in round order, not sorted. Fake members (nothing is timed): round r's case sample is
    SHAPE[r] ms and the probe's SHAPE[r] / 2 ms, SHAPE neither increasing nor decreasing, so any
    reordering of one list against the other breaks the exact ratio 2."""
    from bench.measure import interleave
    shape = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5, 3.5, 8.0, 7.0]

    def member(name, value):
        rounds = iter(range(len(shape)))
        return interleave.Member(name, lambda: value * shape[next(rounds)] * 1e-3, "fake")

    monkeypatch.setattr(interleave, "cpu_member", lambda name, fn, args, kwargs, sampling: member(name, 1.0))
    monkeypatch.setattr(interleave.CopyProbe, "member",
                        lambda self, dtype, size, sampling: (member(interleave.PROBE, 0.5), 2 * 4 * size))
    prof, todo, _ = plan.build(ops="relu", backends="allcores", sizes="4096", budget=0.01)
    prof = dataclasses.replace(prof, sampling=dataclasses.replace(prof.sampling, min_samples=len(shape),
                                                                  max_samples=len(shape)))
    (e,) = runner.run_cases(prof, todo, interleave=True).results      # 32 KiB moved: beyond the fake cache
    assert e.status == "ok" and e.n == len(shape)
    assert list(e.samples_s) == [s * 1e-3 for s in shape]
    assert list(e.probe_samples_s) == [s * 0.5e-3 for s in shape]


def test_the_probe_joins_the_cases_whose_bytes_pass_the_cache_boundary():
    # relu float32 on 2^17 elements moves 2^20 bytes: beyond a 2^19-byte boundary, though its element
    # count is below it
    peak = {"gbps": 10.0, "cache": {"gbps": 100.0, "applies_below_bytes": 2**19}}
    assert runner._beyond_cache(model_cases.Case("relu", "numba_cpu", "cpu", "float32", 2**17), peak)
    assert not runner._beyond_cache(model_cases.Case("relu", "numba_cpu", "cpu", "float32", 2**15), peak)
    assert not runner._beyond_cache(model_cases.Case("relu", "numba_cpu", "cpu", "float32", 2**17), {"gbps": 10.0})
