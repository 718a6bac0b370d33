"""Bytes and flops per op, from each op's definition (bench/roofline.py), and the CPU peak probe."""

from __future__ import annotations

import pytest

from bench import roofline, timing
from kernels.reference import ELEMENTWISE_OPS

# (op, bytes per element in float32): inputs read once + outputs written once
EXPECTED_F32 = {
    "relu": 8, "sigmoid": 8, "tanh": 8, "leaky_relu": 8,
    "relu_grad": 12, "sigmoid_grad": 12, "tanh_grad": 12, "leaky_relu_grad": 12,
    "relu_mask": 8.125, "relu_grad_mask": 8.125,
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
    assert set(roofline.FLOPS_PER_ELEMENT) == set(ELEMENTWISE_OPS)
    assert roofline.flops("sigmoid", 10) == 30


def test_cpu_peak_probe_reports_read_plus_write():
    p = roofline.cpu_copy_peak(timing.Sampling(min_samples=3, budget_s=0.05), nbytes=2**22, threads=2)
    assert p["bytes"] == 2 * 2**22
    assert p["gbps"] == pytest.approx(p["bytes"] / p["median_s"] / 1e9)
    assert len(p["measured"]) == 3 and p["gbps"] == max(m["gbps"] for m in p["measured"])
    assert p["gbps"] > 0.1                      # any machine copies faster than 100 MB/s


def test_cpu_peak_has_three_measured_methods():
    """numba prange, numba with streaming stores (the kernels' own store instruction) and
    threaded NumPy: each timed, each with a positive bandwidth, the fastest reported."""
    p = roofline.cpu_copy_peak(timing.Sampling(min_samples=3, budget_s=0.05), nbytes=2**22, threads=2)
    names = [m["method"] for m in p["measured"]]
    assert len(names) == 3 and len(set(names)) == 3
    assert any(n.startswith("numba prange copy") for n in names)
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
