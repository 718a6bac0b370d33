"""One pytest-benchmark of the suite run for real in a child pytest: its saved JSON carries the bytes
one call moves and the GB/s of its median in extra_info (the numbers pytest-benchmark's own files
lack). Runs in `make test`: it uses no benchmark fixture itself, so --benchmark-skip leaves it in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import roofline

ROOT = Path(__file__).resolve().parents[2]


def test_saved_benchmark_has_bytes_and_gbps(tmp_path):
    out = tmp_path / "bench.json"
    node = "tests/benchmarks/test_kernels_bench.py::test_kernel[relu-numpy]"
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node, "--benchmark-only",
                          "--benchmark-max-time=0.05", "--benchmark-min-rounds=3", f"--benchmark-json={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    (b,) = json.loads(out.read_text())["benchmarks"]
    info = b["extra_info"]
    assert info["bytes"] == roofline.traffic("relu", info["size"], "float32") == 2**22 * 8
    assert info["gbps"] == pytest.approx(info["bytes"] / b["stats"]["median"] / 1e9)
