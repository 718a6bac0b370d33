"""make gpu-check's logic, without a GPU (bench/cli/gpu_check.py): the target table, the no-GPU path, the log
written as it goes, the marker selection, and the whole --dry-run without matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from bench.cli import gpu_check
from bench.model.results import CaseResult, Run, Status

ROOT = Path(__file__).resolve().parents[1]


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


def test_the_log_is_written_as_it_goes(tmp_path, monkeypatch):
    """A step that crashes leaves everything before it in the log (it used to be written at the end)."""
    from bench.report import listing

    def crash(console):
        raise RuntimeError("listing broke")

    monkeypatch.setattr(listing, "show", crash)
    with pytest.raises(RuntimeError, match="listing broke"):
        gpu_check.main(["--out", str(tmp_path)])
    log = (tmp_path / "gpu-check.log").read_text()
    assert "1. backends" in log and "gpu-check stopped: RuntimeError: listing broke" in log


def test_gpu_tests_are_selected_by_marker():
    """The GPU tests are chosen by marker, not by a -k expression (which matched module names and
    pulled in the CPU-only host-shim and PTX compiles)."""
    cmd = gpu_check.pytest_command()
    assert "-k" not in cmd and cmd[len(cmd) - 1 - cmd[::-1].index("-m") + 1] == "gpu"


def test_benchmark_runs_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check, "_have", lambda m: m != "matplotlib")
    assert "--no-plots" in gpu_check.bench_command(tmp_path, "2**20", 0.1, dry_run=False)


_NO_MATPLOTLIB = '''
import sys
class _NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _NoMatplotlib())
'''


def test_dry_run_without_gpu_or_matplotlib(tmp_path):
    """`python -m bench.cli.gpu_check --dry-run` on this machine (no GPU) with matplotlib made
    unimportable in every process it starts: runs every step to its end, exits 0, leaves its log
    under $OUT; the GPU tests it selects are the marked ones only."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(_NO_MATPLOTLIB)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": os.pathsep.join([str(block), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "bench.cli.gpu_check", "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    log = (out / "gpu-check.log").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for step in ("1. backends", "2. correctness suite", "3. quick benchmark", "4. targets", "5. NVBench"):
        assert step in log, step
    assert "gpu-check --dry-run passed" in log
    assert (out / "gpu.json").exists() and not (out / "gpu-plots").exists()
    collected = (out / "pytest.log").read_text()
    assert "test_raw_kernels_on_the_cpu" not in collected and "test_gpu_raw_misaligned_views" in collected
