"""Bytes and flops per op, from each op's definition (bench/measure/roofline.py), the CPU peak probes, and the
GPU copy peak on a fake device."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure import devices, roofline, timing
from kernels.ops import ELEMENTWISE_OPS, OPS

# (op, bytes per element in float32): inputs read once + outputs written once
EXPECTED_F32 = {
    "relu": 8, "sigmoid": 8, "tanh": 8, "leaky_relu": 8,
    "relu_grad": 12, "sigmoid_grad": 12, "tanh_grad": 12, "leaky_relu_grad": 12,
    "relu_mask": 8.125, "relu_grad_mask": 8.125,
    "silu": 8, "silu_grad": 12, "gelu": 8, "gelu_grad": 12,
}


@pytest.mark.parametrize("op", list(ELEMENTWISE_OPS))
def test_bytes_per_element(op):
    assert roofline.bytes_per_element(op, "float32") == EXPECTED_F32[op]
    assert roofline.bytes_per_element(op, "float64") == EXPECTED_F32[op] * 2 - (0.125 if "mask" in op else 0)


def test_mask_bytes_round_up():
    assert roofline.traffic("relu_mask", 1, "float32") == 4 + 4 + 1
    assert roofline.traffic("relu_mask", 9, "float32") == 36 + 36 + 2
    assert roofline.traffic("relu_grad_mask", 0, "float32") == 0
    assert roofline.traffic("relu_grad", 3, "float16") == 18


def test_flops_cover_every_op():
    """Every elementwise op's spec counts its flops (a spec that forgot them would report 0)."""
    assert all(OPS[op].flops_per_element >= 1 for op in ELEMENTWISE_OPS)
    assert roofline.flops("sigmoid", 10) == 30 and roofline.flops("relu", 10) == 10


def test_cpu_peak_probe_reports_read_plus_write():
    p = roofline.cpu_copy_peak(timing.Sampling(min_samples=3, budget_s=0.05), nbytes=2**22, threads=2)
    assert p["bytes"] == 2 * 2**22
    assert p["gbps"] == pytest.approx(p["bytes"] / p["median_s"] / 1e9)
    assert len(p["measured"]) == 4 and p["gbps"] == max(m["gbps"] for m in p["measured"])
    assert p["fastest_gbps"] >= p["gbps"]
    assert p["gbps"] > 0.1                      # any machine copies faster than 100 MB/s


def test_cpu_peak_has_four_measured_methods():
    """numba prange, glibc's memcpy per numba thread, numba with streaming stores (the kernels' own
    store instruction) and threaded NumPy: each timed, each with a positive bandwidth, the fastest
    reported."""
    p = roofline.cpu_copy_peak(timing.Sampling(min_samples=3, budget_s=0.05), nbytes=2**22, threads=2)
    names = [m["method"] for m in p["measured"]]
    assert len(names) == 4 and len(set(names)) == 4
    assert any(n.startswith("numba prange copy") for n in names)
    assert any(n.startswith("glibc memcpy") for n in names)
    assert any(n.startswith("numba streaming-store copy") for n in names)
    assert any(n.startswith("NumPy copyto") for n in names)
    for m in p["measured"]:
        assert len(m["samples_s"]) >= 3
        assert m["gbps"] == pytest.approx(p["bytes"] / m["median_s"] / 1e9)
    assert p["method"] == max(p["measured"], key=lambda m: m["gbps"])["method"]


def test_sparse_matmul_traffic_counts_the_needed_rows():
    # 100 of K = 1000 rows needed, N = 50, batch 2, float32: rows + a + y
    assert roofline.matmul_traffic(100, 2, 1000, 50, "float32") == 100 * 50 * 4 + 2 * 1000 * 4 + 2 * 50 * 4
    assert roofline.matmul_flops(30, 50) == 3000


def test_memory_probe_size_is_fixed_not_a_cache_size(monkeypatch):
    """1 GiB arrays whatever the OS says of its caches; less only when free memory is short."""
    monkeypatch.setattr(devices.HostAdapter, "free_bytes", lambda self: 64 * 2**30)
    assert roofline.memory_array_bytes() == 2**30
    monkeypatch.setattr(devices.HostAdapter, "free_bytes", lambda self: 3 * 2**30)
    assert roofline.memory_array_bytes() == 2**28
    monkeypatch.setattr(devices.HostAdapter, "free_bytes", lambda self: None)
    assert roofline.memory_array_bytes() == 2**30


def _sweep(*gbps, start=2**22):
    return [{"working_set_bytes": start * 2**i, "gbps": g} for i, g in enumerate(gbps)]


@pytest.mark.parametrize("gbps,boundary", [
    ((300, 250, 200, 60, 40, 38), 2**22 * 2**3),     # memory-like (<= 1.5 x 40) from the 4th size on
    ((300, 50, 200, 60, 40, 38), 2**22 * 2**3),      # a slow moment inside the cache does not move it
    ((300, 250, 200, 150, 100, 90), 2**22 * 2**6),   # never memory-like: twice the largest swept size
    ((50, 40), 2**22),                               # memory-like from the first
])
def test_cache_boundary_from_a_fake_sweep(gbps, boundary):
    assert roofline.cache_boundary(_sweep(*gbps), memory_gbps=40.0, fits_bytes=2**21) == boundary


def test_cache_boundary_without_a_sweep_is_just_above_the_probe():
    assert roofline.cache_boundary([], memory_gbps=40.0, fits_bytes=2**21) == 2**22


def test_cpu_cache_peak_entry(monkeypatch):
    monkeypatch.setattr(roofline, "SWEEP_MAX_BYTES", 2**20)
    monkeypatch.setattr(roofline, "CACHE_CALL_BYTES", 2**20)
    c = roofline.cpu_cache_peak(timing.Sampling(min_samples=3, budget_s=0.05), memory_fastest_gbps=1e9,
                                threads=2, l2_bytes=2**17)
    assert c["working_set_bytes"] == 2**17                  # half of each core's L2 per thread, src + dst
    assert c["gbps"] == pytest.approx(c["bytes"] / min(c["samples_s"]) / 1e9)     # the fastest sample
    assert c["median_gbps"] == pytest.approx(c["bytes"] / c["median_s"] / 1e9)
    assert c["median_gbps"] <= c["gbps"]
    assert c["method"].startswith("glibc memcpy of 64 KiB per thread")
    assert [p["working_set_bytes"] for p in c["sweep"]] == [2**18, 2**19]   # stopped at two memory-like
    assert c["applies_below_bytes"] == 2**18                # memory-like from the first (fake huge memory peak)


def test_gpu_copy_peak_counts_read_plus_write_on_a_fake_device():
    """A fake GPU (the scripted stream of test_bench_timing) whose device-to-device copy streams
    2 x nbytes (read + write) at 2 TB/s: the peak is 2000 GB/s, not the 1000 of the bytes read."""
    from tests.test_bench_timing import FakeGpu

    class CopyingGpu(FakeGpu):
        def __init__(self):
            super().__init__()
            self.sizes = []

        def device_copy(self, nbytes):
            self.sizes.append(nbytes)

            def copy(src, dst):
                self.enqueue("copy", 2 * nbytes / 2e12)
            return "src", "dst", copy

    gpu = CopyingGpu()
    p = roofline.gpu_copy_peak(gpu, timing.Sampling(min_samples=10, budget_s=1.0))
    assert gpu.sizes == [2**30]                              # at least 1 GiB, by default
    assert "flush" not in gpu.log                            # a 1 GiB copy is its own cold start
    assert p["bytes"] == 2**31 and p["median_s"] == pytest.approx(2**30 / 1e12)
    assert p["gbps"] == pytest.approx(2000.0) and p["measured"][0]["gbps"] == pytest.approx(2000.0)
    assert p["method"] == "fake device-to-device copy of 1 GiB"
    med = p["median_s"]                                      # every figure exactly, no tolerance
    assert p == {"gbps": 2**31 / med / 1e9, "method": "fake device-to-device copy of 1 GiB", "bytes": 2**31,
                 "median_s": med, "samples_s": p["samples_s"],
                 "measured": [{"method": "fake", "median_s": med, "gbps": 2**31 / med / 1e9}]}
    assert len(p["samples_s"]) >= 10 and med == float(np.median(p["samples_s"]))


def test_fastest_takes_the_best_median_and_the_best_single_sample_of_any_method():
    # made-up measurements (no copy timed): method "b" has the best median, "a" the fastest sample
    a = {"method": "a", "median_s": 4e-3, "gbps": 2.0, "samples_s": [1e-3, 4e-3, 5e-3]}
    b = {"method": "b", "median_s": 2e-3, "gbps": 4.0, "samples_s": [2e-3, 2e-3, 3e-3]}
    c = {"method": "c", "median_s": 8e-3, "gbps": 1.0, "samples_s": [8e-3]}
    assert roofline._fastest([a, b, c], 8_000_000) == {
        "gbps": 4.0, "method": "b", "bytes": 8_000_000, "median_s": 2e-3, "samples_s": [2e-3, 2e-3, 3e-3],
        "fastest_gbps": 8_000_000 / 1e-3 / 1e9, "measured": [a, b, c]}
