"""bench/report/formatting.py: numbers with 3 significant digits, cell lines, labels and the environment."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.report import formatting as fmt
from bench.model.results import Run


@pytest.mark.parametrize("seconds, text", [
    (1.234e-3, "1.23 ms"), (1.2e-3, "1.20 ms"), (12.34e-6, "12.3 us"), (999.96e-6, "1.00 ms"),
    (5e-9, "5.00 ns"), (2.5, "2.50 s"), (123.4e-9, "123 ns"), (None, "-")])
def test_fmt_time(seconds, text):
    assert fmt.fmt_time(seconds) == text


@pytest.mark.parametrize("n, text", [(2**25, "2^25 (33.6M)"), (2**10, "2^10 (1.02k)"), (1000, "1000"),
                                     (3_000_000, "3.00M"), (1, "2^0 (1)")])
def test_fmt_size(n, text):
    assert fmt.fmt_size(n) == text


@pytest.mark.parametrize("x, text", [(None, "-"), (1.0, "x 1.00"), (9.994, "x 9.99"), (12.34, "x 12.3")])
def test_fmt_speedup(x, text):
    assert fmt.fmt_speedup(x) == text


def test_ok_lines_of_a_recorded_case(example_run):
    e = example_run.results[0]                      # relu, numpy, 2**12
    assert fmt.ok_lines(e, best=False) == ["6.22 us ±14%", "5.26 GB/s", "13.6% peak", "x 1.00"]
    unstable = replace(e, stable=False, iqr_s=None, gbps=None, pct_peak=None, speedup_vs_numpy=None)
    assert fmt.ok_lines(unstable, best=True) == [f"{fmt.BEST} {fmt.UNSTABLE}6.22 us", "- GB/s", "- % peak", "-"]


def test_notes_number_each_distinct_reason_once(example_run):
    e = example_run.results[0]
    notes = fmt.Notes()
    a = notes.ref(replace(e, status="failed", reason="max  error\n3"))
    b = notes.ref(replace(e, status="skipped", reason=None))
    assert (a, b, notes.ref(replace(e, status="failed", reason="max error 3"))) == (1, 2, 1)
    assert notes.lines() == ["[1] failed: max error 3", "[2] skipped: no reason given"]


def test_env_lines_of_the_example(example_run):
    lines = dict(fmt.env_lines(example_run))
    assert lines["cpu"] == "AMD EPYC, 2 cores, LLC 32 MiB"
    assert lines["gpu"] == "no GPU" and lines["git"] == "b6d8a4b741"
    assert lines["peak"] == "cpu peak 38.7 GB/s (numba streaming-store copy, 2 threads)"
    assert fmt.run_label(example_run) == "vm b6d8a4b"


def test_env_lines_cope_with_missing_fields_and_a_gpu():
    run = Run(env={"gpu": {"name": "NVIDIA H200", "memory_bytes": 141 * 2**30, "driver": "570.1",
                           "cuda_runtime": "12.8", "compute_capability": "9.0"}},
              peaks={"gpu": {"gbps": 4100.0, "method": "1 GiB d2d copy"}}, interrupted=True)
    lines = fmt.env_lines(run)
    assert ("gpu", "NVIDIA H200, 141 GiB, cc 9.0, driver 570.1, CUDA 12.8") in lines
    assert ("peak", "gpu peak 4100 GB/s (1 GiB d2d copy)") in lines and ("git", "unknown") in lines
    assert "INTERRUPTED" in dict(lines)["profile"]
    assert fmt.peak_label(run, "cpu") == "cpu peak not measured"
    assert fmt.run_label(run, 1) == "run 2"


def test_env_lines_show_the_store_strategy_a_run_used():
    stores = {"key": "k", "min_bytes": 32 * 2**20, "probe_bytes": 64 * 2**20,
              "choices": {"exp/float32": {"stream": False, "block": 16384, "source": "measured", "speedup": 0.71},
                          "memory/float32": {"stream": True, "block": 65536, "source": "inconclusive",
                                             "speedup": None}}}
    line = dict(fmt.env_lines(Run(env={"numba_cpu_stores": stores})))["stores"]
    assert line == ("numba_cpu beyond 32.0 MiB: exp/float32 ordinary, block 16384 (measured, x0.71); "
                    "memory/float32 streaming, block 65536 (inconclusive)")
    assert "stores" not in dict(fmt.env_lines(Run(env={})))
    stores["serial_max"] = {"relu/float32": {"serial_max": 2**17, "source": "measured"},
                            "tanh/float32": {"serial_max": 2**15, "source": "cached"}}
    line = dict(fmt.env_lines(Run(env={"numba_cpu_stores": stores})))["threads"]
    assert line == ("numba_cpu on one thread below: relu/float32 2^17 (131k) (measured); "
                    "tanh/float32 2^15 (32.8k) (cached)")
    assert "threads" not in dict(fmt.env_lines(Run(env={"numba_cpu_stores": {"choices": {}}})))
    # runs since 2026-12 keep each backend's settings under env.settings (the old key above still reads)
    methods = {"key": "k", "choices": {"float32/b64/p1/r1/memory": {"method": "blas", "source": "measured"},
                                       "float32/b8/p0.5/r1/memory": {"method": "sparse", "source": "inconclusive"}}}
    lines = dict(fmt.env_lines(Run(env={"settings": {"numba_cpu": {"stores": stores, "sparse_method": methods}}})))
    assert lines["stores"].startswith("numba_cpu beyond 32.0 MiB: exp/float32 ordinary")
    assert lines["sparse"] == ("numba_cpu sparse_matmul batches: float32/b64/p1/r1/memory blas (measured); "
                               "float32/b8/p0.5/r1/memory sparse (inconclusive)")
