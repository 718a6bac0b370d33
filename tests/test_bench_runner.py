"""One run's flow under memory pressure (bench/runner.py): an out-of-memory error in a case skips
that case with its reason and the run goes on; pooled memory goes back between sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench import cases, devices, runner
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
    prof, todo, _ = cases.build(ops="relu", backends="numpy,greedy", sizes="1024,4096,2048", budget=0.01)
    run = runner.run_cases(prof, todo)
    got = {(e.backend, e.size): e for e in run.results}
    assert len(got) == 6 and not run.interrupted
    skipped = got[("greedy", 4096)]
    assert skipped.status == "skipped" and skipped.median_s is None
    assert skipped.reason == "out of memory on the cpu: OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 GiB" \
        or skipped.reason.startswith("out of memory on the cpu: MemoryError: CUDA out of memory")
    assert all(e.status == "ok" for k, e in got.items() if k != ("greedy", 4096))


def test_pooled_memory_goes_back_between_sizes_and_after_out_of_memory(greedy):
    prof, todo, _ = cases.build(ops="relu", backends="numpy,greedy", sizes="1024,4096,2048", budget=0.01)
    runner.run_cases(prof, todo)
    # one adapter (the host's, made by the first case): released before sizes 2 and 3, and after the OOM
    assert greedy == ["release"] * 3


def test_a_kernel_bug_is_still_a_failure_not_a_skip(monkeypatch, greedy):
    @registry.register("relu", "greedy")
    def relu(x, out=None):
        raise RuntimeError("illegal memory access")
    prof, todo, _ = cases.build(ops="relu", backends="greedy", sizes="1024", budget=0.01)
    (e,) = runner.run_cases(prof, todo).results
    assert e.status == "failed" and "illegal memory access" in e.reason
