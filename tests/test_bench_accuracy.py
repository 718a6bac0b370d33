"""bench/analysis/accuracy.py: ULP counting checked on exact cases, the input sweeps, and a fast subset of
`make accuracy` that holds numba_cpu's sigmoid and tanh to their bounds (bench.analysis.accuracy.BOUNDS):
every 4096th float32 bit pattern plus every float32 around the inputs where the error peaks."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from bench.analysis import accuracy as A


def test_ulp_errors_counts_units_of_the_rounded_result():
    ref = np.array([1.0, 1.0, 0.75, 2.0**-126, 3.0])
    y = np.array([1.0, np.nextafter(np.float32(1), np.float32(2)), 0.75, 2.0**-126, 3.0], np.float32)
    y[4] = np.float32(3.0) + 4 * np.spacing(np.float32(3.0))
    np.testing.assert_allclose(A.ulp_errors(y, ref), [0, 1, 0, 0, 4])
    # half an ulp off the reference: the correctly rounded result is itself half an ulp away
    half = 1.0 + 2.0**-24
    assert A.ulp_errors(np.array([1.0], np.float32), np.array([half]))[0] == pytest.approx(0.5)


def test_float32_inputs_are_every_step_th_finite_pattern():
    xs = np.concatenate(list(A.float32_inputs(step=1 << 20, chunk=1000)))
    assert xs.dtype == np.float32 and np.isfinite(xs).all()
    # 4096 patterns, of which those with an all-ones exponent (inf/NaN) are left out
    assert xs.size == 4096 - 2 * 8
    assert np.array_equal(xs.view(np.uint32) % (1 << 20), np.zeros(xs.size, np.uint32))


def test_float64_inputs_are_symmetric_and_bounded():
    xs = np.concatenate(list(A.float64_inputs(samples=1 << 12, limit=800.0, chunk=100)))
    assert np.abs(xs).max() <= 800.0 and (xs > 0).sum() == (xs < 0).sum()
    assert 1 << 11 <= xs.size <= 1 << 13
    assert ((np.abs(xs) > 1) & (np.abs(xs) < 2)).any()          # every binade has its share


def _around(points, dtype, count):
    """`count` consecutive floats of dtype on either side of each point."""
    ity = np.uint32 if dtype == np.float32 else np.uint64
    out = []
    for p in np.asarray(points, dtype):
        base = np.array([abs(p)], dtype).view(ity)[0]
        bits = np.arange(int(base) - count, int(base) + count, dtype=np.int64).astype(ity)
        out.append(np.copysign(bits.view(dtype), p))
    return np.concatenate(out)


# where each error peaked in a full sweep, and where the formulas switch
_HOT = {"sigmoid": [-16.64, -17.33, -12.48, -36.08, -87.3, -1.0, 0.0, 16.6],
        "tanh": [0.0602, 0.1245, 0.1728, 0.1882, 0.2020, 0.3466, 0.5102, 0.5112, 0.5197, 0.5493, 0.5672,
                 3.112, 9.0],
        # silu and gelu: where a sweep peaked, and where x * sigmoid(z) turns to its scaled form
        "silu": [-7.622, -8.743, -1.0, 0.0, -64.5, -87.3, -89.0, -91.38, 16.6],
        "gelu": [-3.884, -3.212, -2.15, -8.9, -9.47, -10.09, -1.0, 0.0, 3.0]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", A.OPS)
def test_numba_cpu_within_its_ulp_bound(op, dtype):
    dt = np.dtype(dtype).type
    sweep = A.float32_inputs(step=4096) if dtype == "float32" else A.float64_inputs(samples=1 << 18)
    hot = _around(_HOT[op] + [-p for p in _HOT[op]], dt, 1 << 12)
    worst = A.sweep(op, ["numba_cpu"], [*sweep, hot])["numba_cpu"]
    assert worst.count > 1 << 18
    assert worst.ulp <= A.BOUNDS[(op, dtype)], f"{worst.ulp:.2f} ulp at x = {worst.x!r}"


def _degraded_sigmoid(monkeypatch, lo: float, hi: float, ulps: int) -> None:
    """kernels.get gives, for numba_cpu's sigmoid, the real kernel with its outputs moved `ulps`
    ulps up wherever lo <= x < hi: what the sweep and `make accuracy` then run."""
    real_get = kernels.get

    def get(op, backend):
        fn = real_get(op, backend)
        if (op, backend) != ("sigmoid", "numba_cpu"):
            return fn

        def worse(x):
            y = fn(x)
            hit = (x >= lo) & (x < hi)
            y[hit] += ulps * np.spacing(y[hit])
            return y
        return worse
    monkeypatch.setattr(kernels, "get", get)


def test_a_kernel_a_few_ulp_off_is_caught(monkeypatch, capsys):
    """The sweep and the bound check of `make accuracy` see a sigmoid 4 ulp off on [2, 2.25) alone
    (1/64 of one binade), say where, and fail it; the same run on the real kernel passes."""
    bound = A.BOUNDS[("sigmoid", "float32")]
    argv = ["--ops", "sigmoid", "--dtypes", "float32", "--backends", "numba_cpu", "--step", str(1 << 14)]
    assert A.main(argv) == 0
    _degraded_sigmoid(monkeypatch, 2.0, 2.25, 4)
    worst = A.sweep("sigmoid", ["numba_cpu"], A.float32_inputs(step=1 << 14))["numba_cpu"]
    assert worst.ulp > bound and 2.0 <= worst.x < 2.25
    capsys.readouterr()
    assert A.main(argv) == 1
    assert "@ 2." in capsys.readouterr().out


def test_main_prints_a_table_and_passes(capsys):
    assert A.main(["--ops", "tanh", "--dtypes", "float32", "--backends", "numba_cpu", "--step", "65536"]) == 0
    out = capsys.readouterr().out
    assert "tanh" in out and "numba_cpu" in out and "ULP" in out
