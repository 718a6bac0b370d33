"""What is specific to the numba_cpu kernels: their own exp and expm1, the sigmoid and tanh where
their fast paths switch, the parallel blocks (results independent of the thread count and equal to
the serial kernel's), the packed-mask tails, and that sigmoid and tanh compile to vector code
without a call to libm's exp.

The common correctness suite (test_kernels_correctness.py) already runs these kernels through the
reference at awkward sizes, shapes, views and special values; the bounds here are tighter than the
tolerance table, so that a degraded polynomial fails here first. No timing.
"""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest
from numba import njit

import kernels
import kernels.numba_cpu as K
from bench.check import check_call, compare
from bench.inputs import random_array, special_array
from kernels.reference import OPS, pack_mask, reference

_TEST_JIT = dict(error_model="numpy", fastmath={"contract"})   # the kernels' options, uncached


@njit(**_TEST_JIT)
def _exp_array(t, out):
    for i in range(t.size):
        out[i] = K._exp(t[i])


@njit(**_TEST_JIT)
def _expm1_m2_array(a, out):
    for i in range(a.size):
        out[i] = K._expm1_m2(a[i])


def _rel_err(out, ref):
    return np.abs(out.astype(np.float64) - ref) / np.abs(ref)


# --- exp ----------------------------------------------------------------------------------------

def test_exp_float32_dense_sweep():
    """Every 2**-8 over [-104, 89] and 3 million random points: within 6e-7 (about 10 ulp) where
    exp is a normal float32, within 2**-125 absolute below that (the flush), inf exactly where
    the float32 result overflows."""
    rng = np.random.default_rng(20240601)
    t = np.concatenate([np.arange(-104 * 256, 89 * 256 + 1) / 256,
                        rng.uniform(-104, 89, 3_000_000)]).astype(np.float32)
    out = np.empty_like(t)
    _exp_array(t, out)
    ref = np.exp(t.astype(np.float64))
    with np.errstate(over="ignore"):
        overflows = np.isinf(ref.astype(np.float32))
    np.testing.assert_array_equal(np.isinf(out), overflows)
    normal = (ref >= 2.0**-125) & ~overflows
    assert _rel_err(out[normal], ref[normal]).max() <= 6e-7
    assert np.abs(out[~normal & ~overflows] - ref[~normal & ~overflows]).max() <= 2.0**-125


def test_exp_float64_dense_sweep():
    rng = np.random.default_rng(7)
    t = np.concatenate([np.linspace(-745.0, 709.7, 2_000_001), rng.uniform(-30, 30, 1_000_000)])
    out = np.empty_like(t)
    _exp_array(t, out)
    ref = np.exp(t)
    normal = ref >= 2.0**-1021
    assert _rel_err(out[normal], ref[normal]).max() <= 5e-16
    assert np.abs(out[~normal] - ref[~normal]).max() <= 2.0**-1021


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_special_values(dtype):
    t = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300 if dtype == "float64" else 1e38,
                  -1e38, 1000.0, -1000.0], dtype=dtype)
    out = np.empty_like(t)
    _exp_array(t, out)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], np.array([np.inf, 0, 1, 1, np.inf, 0, np.inf, 0], dtype))


@pytest.mark.parametrize("dtype,bound", [("float32", 8e-7), ("float64", 5e-16)])
def test_expm1_m2_keeps_its_digits_near_zero(dtype, bound):
    """exp(-2a) - 1 over [0, 20] and down to 1e-30 (where 1 - exp(-2a) would be all rounding)."""
    rng = np.random.default_rng(3)
    a = np.concatenate([np.arange(0, 20 * 4096 + 1) / 4096, np.geomspace(1e-30, 1, 200_000),
                        rng.uniform(0, 20, 1_000_000)]).astype(dtype)
    out = np.empty_like(a)
    _expm1_m2_array(a, out)
    ref = np.expm1(-2 * a.astype(np.float64))
    assert out[a == 0].tolist() == [0.0]
    nz = a > 0
    assert _rel_err(out[nz], ref[nz]).max() <= bound
    nan = np.array([np.nan], dtype)
    _expm1_m2_array(nan, out[:1])
    assert np.isnan(out[0])


# --- sigmoid and tanh where the fast paths switch -----------------------------------------------

def _around(points, dtype, ulps=3):
    """Each point and its neighbours up to `ulps` floats away on either side, in dtype."""
    out = []
    for p in np.asarray(points, dtype=dtype):
        lo = hi = p
        out.append(p)
        for _ in range(ulps):
            lo = np.nextafter(lo, dtype(-np.inf))
            hi = np.nextafter(hi, dtype(np.inf))
            out += [lo, hi]
    return np.array(out, dtype=dtype)


_LN2 = np.log(2.0)


def _sigmoid_switches(dtype):
    f32 = dtype == np.float32
    k = np.arange(-127, 129) if f32 else np.arange(-1022, 1025, 7)
    return np.concatenate([
        -(k + 0.5) * _LN2,                         # exp(-x): k = round(-x/ln2) changes
        [-89.0, 87.6, -88.72283935546875, 86.99, 87.68, 16.63, 17.0, 36.7]   # clamps, overflow,
        if f32 else [-710.0, 708.5, -709.782712893384, 708.0, 36.7, 37.5],   # flush, 1 + e == 1
        [0.0, 1e-30, -1e-30, 1e-40, -1e-40],
    ])


def _tanh_switches(dtype):
    j = np.arange(0, 59)
    return np.concatenate([
        (j + 0.5) * _LN2 / 2,                      # exp(-2a): k = round(-2a/ln2) changes
        -(j + 0.5) * _LN2 / 2,
        [20.0, -20.0, 9.01, 19.06, 1e-3, 1e-8, 1e-20, -1e-20, 1e-40, 0.0],
    ])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,switches,bound32,bound64", [
    ("sigmoid", _sigmoid_switches, 7e-7, 1e-15),
    ("tanh", _tanh_switches, 1e-6, 1e-15),
], ids=["sigmoid", "tanh"])
def test_sigmoid_tanh_at_switch_points(op, switches, bound32, bound64, dtype):
    """At and a few floats around every point where the range reduction, a clamp, the overflow or
    the flush changes path: inside the tolerance table, and inside a tighter relative bound
    wherever the answer is a normal number."""
    x = _around(switches(dtype), dtype)
    y = kernels.get(op, "numba_cpu")(x)
    r = compare(op, (x,), y)
    assert r.ok, r.message
    ref = reference(op)(x)
    normal = np.abs(ref) >= np.finfo(dtype).tiny
    assert _rel_err(y[normal], ref[normal]).max() <= (bound32 if dtype == np.float32 else bound64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_tanh_exact_limits(dtype):
    big = np.finfo(dtype).max
    x = np.array([-np.inf, np.inf, -big, big, -1000.0, 1000.0, 0.0, -0.0, np.nan], dtype=dtype)
    s = kernels.get("sigmoid", "numba_cpu")(x)
    np.testing.assert_array_equal(s[:8], np.array([0, 1, 0, 1, 0, 1, 0.5, 0.5], dtype))
    assert np.isnan(s[8])
    t = kernels.get("tanh", "numba_cpu")(x)
    np.testing.assert_array_equal(t[:6], np.array([-1, 1, -1, 1, -1, 1], dtype))
    assert t[6] == 0 and not np.signbit(t[6]) and t[7] == 0 and np.signbit(t[7])
    assert np.isnan(t[8])


# --- parallel blocks ----------------------------------------------------------------------------

def _inputs(op, n, dtype, rng):
    x = random_array((n,), dtype, rng, 10.0)
    every = np.arange(0, n, 97)
    x[every] = np.resize(special_array(dtype), every.size)     # NaN, +-inf, +-0, ... throughout
    spec = OPS[op]
    if not spec.grad:
        return (x,)
    dy = random_array((n,), dtype, rng)
    if spec.mask_input:
        return dy, pack_mask(x)
    if spec.grad_of_output:
        with np.errstate(all="ignore"):
            return dy, reference(spec.forward)(x).astype(dtype)
    return dy, x


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _bits(arrays):
    return [np.ascontiguousarray(a).view(np.uint8).copy() for a in arrays]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", kernels.ops())
def test_results_independent_of_thread_count(op, dtype, monkeypatch):
    """3 blocks and a partial one: the same bits with 1 thread, with every thread, and from the
    serial kernel over the whole array (so a block seam cannot change a value)."""
    n = 3 * K.BLOCK + 37
    inputs = _inputs(op, n, dtype, np.random.default_rng(11))
    monkeypatch.setattr(K, "SERIAL_MAX", 0)                     # the parallel path, whatever n
    f = kernels.get(op, "numba_cpu")
    threads = numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _bits(_as_tuple(f(*inputs)))
        numba.set_num_threads(threads)
        many = _bits(_as_tuple(f(*inputs)))
    finally:
        numba.set_num_threads(before)
    monkeypatch.setattr(K, "SERIAL_MAX", n + 1)
    serial = _bits(_as_tuple(f(*inputs)))
    for a, b, c in zip(one, many, serial):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    r = compare(op, inputs, f(*inputs))
    assert r.ok, r.message


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_dimensional_arrays_keep_their_shape(dtype):
    """A 0-d input gives 0-d outputs (np.ascontiguousarray alone would make it shape (1,))."""
    rng = np.random.default_rng(2)
    for op in kernels.ops():
        inputs = tuple(a if a.dtype == np.uint8 else a.reshape(()) for a in _inputs(op, 1, dtype, rng))
        r = check_call(op, "numba_cpu", inputs)
        assert r.ok, f"{op}: {r.message}"
        outs = _as_tuple(kernels.get(op, "numba_cpu")(*inputs))
        assert outs[0].shape == ()


# --- the packed mask ----------------------------------------------------------------------------

@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mask_every_tail_length(dtype, parallel, monkeypatch):
    """Sizes 1..70 (every tail length 0..7, several whole bytes), with +-0, NaN and +-inf among
    the values; on the serial path and forced through the parallel one."""
    if parallel:
        monkeypatch.setattr(K, "SERIAL_MAX", 0)
    rng = np.random.default_rng(5)
    specials = special_array(dtype)
    for n in range(1, 71):
        x = random_array((n,), dtype, rng)
        x[rng.integers(0, n, size=max(1, n // 4))] = rng.choice(specials, size=max(1, n // 4))
        r = check_call("relu_mask", "numba_cpu", (x,))
        assert r.ok, f"n={n}: {r.message}"
        y, mask = kernels.get("relu_mask", "numba_cpu")(x)
        np.testing.assert_array_equal(mask, np.packbits(x.ravel() > 0, bitorder="little"))
        dy = random_array((n,), dtype, rng, 10.0)
        r = check_call("relu_grad_mask", "numba_cpu", (dy, mask))
        assert r.ok, f"n={n}: {r.message}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mask_across_block_seams(dtype, monkeypatch):
    """Two and three blocks plus every tail length: blocks start on whole bytes of the mask."""
    monkeypatch.setattr(K, "SERIAL_MAX", 0)
    rng = np.random.default_rng(9)
    for n in [2 * K.BLOCK + t for t in range(9)] + [3 * K.BLOCK - 1]:
        x = random_array((n,), dtype, rng)
        r = check_call("relu_mask", "numba_cpu", (x,))
        assert r.ok, f"n={n}: {r.message}"
        r = check_call("relu_grad_mask", "numba_cpu", (random_array((n,), dtype, rng), pack_mask(x)))
        assert r.ok, f"n={n}: {r.message}"


# --- compiled code ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["_sigmoid_kernel", "_tanh_kernel"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_tanh_are_vector_code_without_libm_exp(name, dtype):
    """The loop compiles to LLVM vector instructions and calls no exp: the point of writing our own."""
    fresh = njit(**_TEST_JIT)(getattr(K, name).py_func)      # uncached: inspect_llvm needs that
    x = np.linspace(-5, 5, 100).astype(dtype)
    fresh(x, np.empty_like(x))
    llvm = fresh.inspect_llvm(fresh.signatures[0])
    scalar = "float" if dtype == "float32" else "double"
    assert re.search(rf"fdiv[^\n]*<\d+ x {scalar}>", llvm), "the division did not vectorise"
    assert not re.search(r"call[^\n]*@[^\n(]*exp", llvm, flags=re.IGNORECASE), "calls an exp"
