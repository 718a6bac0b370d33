"""make gpu-check's logic, without a GPU: the target table and the no-GPU path (bench/gpu_check.py)."""

from __future__ import annotations

from rich.console import Console

from dataclasses import replace

from bench import gpu_check
from bench.results import CaseResult, Run, Status


def _entry(op, backend, size, pct, status=Status.OK):
    e = CaseResult(op=op, backend=backend, device="gpu", dtype="float32", size=size, status=status)
    if status is Status.OK:
        e = replace(e, median_s=1.0, gbps=pct * 40.0, pct_peak=pct)
    return e


def _render(table) -> str:
    c = Console(record=True, width=200)
    c.print(table)
    return c.export_text()


def test_targets_table_judges_only_large_gpu_cases():
    run = Run(env={}, results=[_entry("relu", "cupy_raw", 2**26, 93.0), _entry("sigmoid", "cupy", 2**27, 71.0),
                               _entry("relu", "cupy_raw", 2**20, 10.0)])
    table, ok = gpu_check.targets_table(run)
    text = _render(table)
    assert ok
    assert "93.0" in text and "71.0" in text and "10.0" not in text     # 2**20 is below the target size
    assert "yes" in text and "no" in text


def test_a_failed_gpu_case_fails_the_check():
    run = Run(env={}, results=[_entry("relu", "numba_cuda", 2**26, 0, status=Status.FAILED),
                               _entry("relu", "cupy", 2**26, 0, status=Status.SKIPPED)])
    table, ok = gpu_check.targets_table(run)
    assert not ok and "failed" in _render(table)


def test_without_a_gpu_it_says_so_and_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "_gpu_backends", lambda: [])
    assert gpu_check.main(["--out", str(tmp_path)]) == 1
    assert "no GPU backend is available here" in (tmp_path / "gpu-check.log").read_text()
