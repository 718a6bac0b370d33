"""What is specific to the numba_cpu kernels: their own exp and expm1, the sigmoid and tanh where
their fast paths switch, the parallel blocks (results independent of the thread count and equal to
the serial kernel's), the packed-mask tails, and that sigmoid and tanh compile to vector code
without a call to libm's exp.

The common correctness suite (test_kernels_correctness.py) already runs these kernels through the
reference at awkward sizes, shapes, views and special values; the bounds here are tighter than the
tolerance table, so that a degraded polynomial fails here first. No timing.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit
from numba.core.caching import IndexDataCacheFile

import kernels
import kernels.backends.numba_cpu as K
from kernels.backends.numba_cpu import kernels as ops_module
from kernels.backends.numba_cpu import math as M
from kernels.backends.numba_cpu import streaming as S
from kernels.backends.numba_cpu import jit
from kernels.backends.numba_cpu import strategy
from kernels.backends.numba_cpu.jit import X86_64
from kernels.backends.numba_cpu.strategy import StoreStrategy
from bench.measure.check import check_call, compare
from bench.measure.inputs import random_array, special_array
from kernels.ops import ELEMENTWISE_OPS, OPS, pack_mask, reference

_TEST_JIT = dict(error_model="numpy", fastmath={"contract"})   # the kernels' options, uncached


@njit(**_TEST_JIT)
def _exp_array(t, out):
    for i in range(t.size):
        out[i] = M.exp(t[i])


@njit(**_TEST_JIT)
def _expm1_m2_array(a, out):
    """exp(-2a) - 1 from `exp_m2_parts`: -((S - 1/2) + c) / S, S - 1/2 exact, the sum rounded
    once, the division by S (a power of two) exact; near a = 0 (j = 0) only c rounds."""
    for i in range(a.size):
        s, c = M.exp_m2_parts(a[i])
        out[i] = -((s - M.like(a[i], 0.5)) + c) / s


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


# --- leaky_relu's two forms ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("slope", [0.01, 0.5, 1.0, 1e-30, 0.0, -0.3, 1.5, np.nan])
def test_leaky_relu_is_the_select_at_every_slope(slope, dtype):
    """max(x, slope*x) for 0 < slope <= 1, the select elsewhere: bit for bit the reference's
    `x if x > 0 else slope*x`, NaN, +-inf, +-0 and subnormals included (at slope 0, -inf must
    give 0 * -inf = NaN, which the max form would not), serially and in parallel."""
    dt = np.dtype(dtype).type
    x = np.concatenate([special_array(dtype), random_array((5000,), dtype, np.random.default_rng(8))])
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        want = np.where(x > 0, x, dt(slope) * x)
    bits = np.uint32 if dtype == "float32" else np.uint64
    fam = K.FAMILIES["leaky_relu"]
    for run in (fam.kernel, lambda *a: fam.parallel(False, 1024, *a)):
        y = np.empty_like(x)
        run(x, None, slope, y)
        np.testing.assert_array_equal(y.view(bits), want.view(bits))


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
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
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
    for op in ELEMENTWISE_OPS:
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

@pytest.mark.parametrize("op", ["sigmoid", "tanh", "silu", "silu_grad", "gelu", "gelu_grad"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_tanh_are_vector_code_without_libm_exp(op, dtype):
    """The loop compiles to LLVM vector instructions and calls no exp: the point of writing our own."""
    fresh = njit(**_TEST_JIT)(K.FAMILIES[op].kernel.py_func)   # uncached: inspect_llvm needs that
    x = np.linspace(-5, 5, 100).astype(dtype)
    fresh(*((x, x) if OPS[op].grad else (x, None)), 0.0, np.empty_like(x))
    llvm = fresh.inspect_llvm(fresh.signatures[0])
    scalar = "float" if dtype == "float32" else "double"
    assert re.search(rf"fdiv[^\n]*<\d+ x {scalar}>", llvm), "the division did not vectorise"
    assert not re.search(r'call[^\n]*@"?[\w.$]*exp[\w.$]*"?\(', llvm, flags=re.IGNORECASE), "calls an exp"


# --- streaming (non-temporal) stores ------------------------------------------------------------
#
# The threshold is lowered so that small arrays take the streaming path; the ordinary path (no
# threshold) on the same inputs is the reference, bit for bit. Outputs are views offset by 0..15
# elements into a poisoned buffer, so every head length occurs, and the poison around them must
# survive.

_STREAM_TEST_BYTES = 4096


def _fixed_strategy(stores, min_bytes):
    """A store strategy that streams (or not) every output of at least min_bytes, unmeasured."""
    return StoreStrategy(env={"ACTBENCH_STORES": stores}, llc_bytes=min_bytes, key="test")


def _poisoned_views(like, offset):
    """(view, buffer) pairs: a view like each of `like`'s arrays, `offset` elements into a buffer
    of poison (0x5A bytes) 16 elements longer."""
    pairs = []
    for a in like:
        buf = np.empty(a.size + 16, a.dtype)
        buf.view(np.uint8)[:] = 0x5A
        pairs.append((buf[offset:offset + a.size].reshape(a.shape), buf))
    return pairs


def _poison_intact(view, buf, offset):
    raw = buf.view(np.uint8)
    lo = offset * buf.itemsize
    return bool((raw[:lo] == 0x5A).all() and (raw[lo + view.nbytes:] == 0x5A).all())


def _spy_on_driver(op, monkeypatch):
    """Record the `stream` flag of every call of op's parallel driver."""
    family = K.FAMILIES[op]
    flags = []

    def spy(*args):
        flags.append(args[0])                                   # (stream, block, ...)
        return family.parallel(*args)
    monkeypatch.setitem(K.FAMILIES, op, S.Family(family.kernel, spy))
    return flags


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_streaming_path_is_bit_identical_to_ordinary(op, dtype, monkeypatch):
    """Just below, at and above the (lowered) threshold, and over several blocks: the same bits
    as the ordinary path whatever the output's offset, the inputs untouched, nothing written
    outside the output, and the streaming driver taken exactly from the threshold up."""
    f = kernels.get(op, "numba_cpu")
    item = np.dtype(dtype).itemsize
    at = _STREAM_TEST_BYTES // item
    flags = _spy_on_driver(op, monkeypatch)
    monkeypatch.setattr(K, "SERIAL_MAX", 1 << 30)             # the ordinary path: serial
    rng = np.random.default_rng(17)
    for n in (at - 1, at, at + 1, at + 63, 2 * K.BLOCK + 37):
        inputs = _inputs(op, n, dtype, rng)
        before = _bits(inputs)
        monkeypatch.setattr(K, "STRATEGY", _fixed_strategy("ordinary", 1 << 62))
        ref = _as_tuple(f(*inputs))
        monkeypatch.setattr(K, "STRATEGY", _fixed_strategy("stream", _STREAM_TEST_BYTES))
        for offset in range(16):
            pairs = _poisoned_views(ref, offset)
            outs = [v for v, _ in pairs]
            flags.clear()
            got = f(*inputs, out=tuple(outs) if len(outs) > 1 else outs[0])
            assert flags == ([True] if n * item >= _STREAM_TEST_BYTES else []), f"n={n}: {flags}"
            for a, b in zip(_bits(ref), _bits(_as_tuple(got))):
                np.testing.assert_array_equal(a, b, err_msg=f"n={n}, offset {offset}")
            for v, buf in pairs:
                assert _poison_intact(v, buf, offset), f"n={n}, offset {offset}: wrote outside"
        for a, b in zip(before, _bits(inputs)):
            np.testing.assert_array_equal(a, b, err_msg="an input changed")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stream_split_aligns_the_body(dtype):
    """Head up to the first 32-byte boundary, a body of whole 64-element groups, the rest tail;
    the three cover the block; a view not aligned to its element size gets no body."""
    @njit
    def split(y, lo, hi):
        h, b, t = S.stream_split(y, slice(lo, hi))
        return h.start, h.stop, b.start, b.stop, t.start, t.stop

    item = np.dtype(dtype).itemsize
    buf = np.zeros(4096 + 64, dtype)
    for offset in range(16):
        y = buf[offset:offset + 4096]
        for lo, hi in [(0, 4096), (8, 4096), (64, 200), (0, 70), (5, 9), (100, 100)]:
            h0, h1, b0, b1, t0, t1 = split(y, lo, hi)
            assert (h0, h1, b1, t1) == (lo, b0, t0, hi) and lo <= b0 <= b1 <= hi
            if b1 > b0:
                assert (y.ctypes.data + b0 * item) % S._STREAM_ALIGN == 0 and (b1 - b0) % 64 == 0
                assert b0 - lo < S._STREAM_ALIGN // item          # the head is under one line
            assert hi - t0 < 64
    raw = np.zeros(4096 * item + 1, np.uint8)
    unaligned = raw[1:].view(dtype)
    assert split(unaligned, 0, 4096)[2:4] == (4096, 4096)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stream_copy_copies_exactly(dtype):
    """The CPU peak probe's copy: every size and offset, nothing written outside."""
    rng = np.random.default_rng(4)
    for n in (0, 1, 63, 64, 65, 1000, K.BLOCK + 3):
        src = random_array((n,), dtype, rng)
        for offset in range(16):
            [(dst, buf)] = _poisoned_views((src,), offset)
            K.stream_copy(src, dst)
            np.testing.assert_array_equal(dst.view(np.uint8), src.view(np.uint8))
            assert _poison_intact(dst, buf, offset)


def _asm(dispatcher):
    return dispatcher.inspect_asm(dispatcher.signatures[0])


def _streamed_and_ordinary_asm(op, dtype):
    """Assembly of op's serial kernel compiled afresh (uncached) twice: writing a streamed output,
    and an ordinary one. The mask ops have kernels of their own for the streaming path."""
    jit = njit(**_TEST_JIT)
    n = 512
    x = np.linspace(-3, 3, n).astype(dtype)
    y = np.empty(n + 16, dtype)
    y = y[(-y.ctypes.data // y.itemsize) % (64 // y.itemsize):][:n]        # 64-byte aligned
    if op in ("relu_mask", "relu_grad_mask"):
        streamed = jit(getattr(ops_module, f"_{op}_streamed_kernel"))
        ordinary = jit(getattr(ops_module, f"_{op}_kernel"))
        args = (x, pack_mask(x), y)
    else:
        kernel = jit(K.FAMILIES[op].kernel.py_func)
        streamed = jit(lambda a, b, p, o: kernel(a, b, p, S.streamed(o)))
        ordinary = jit(lambda a, b, p, o: kernel(a, b, p, o))
        args = (x, x if OPS[op].n_inputs == 2 else None, 0.01, y)
    streamed(*args)
    ordinary(*args)
    return _asm(streamed), _asm(ordinary)


_NT_VECTOR_STORE = re.compile(r"\bvmovnt(ps|pd|dq)\s+%[xyz]mm\d+, ")


@pytest.mark.skipif(not X86_64, reason="the instructions checked are x86-64's")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_streaming_kernel_stores_non_temporal_vectors(op, dtype):
    """The streamed kernel's loop stores with a non-temporal vector store (vmovntps/pd/dq); the
    ordinary kernel has none."""
    streamed, ordinary = _streamed_and_ordinary_asm(op, dtype)
    assert _NT_VECTOR_STORE.search(streamed), "no non-temporal vector store in the streaming kernel"
    assert not re.search(r"\bv?movnt", ordinary), "a non-temporal store in the ordinary kernel"


# A masked vector load from memory: a packed AVX-512 instruction with a memory source and a mask
# register (the zero-masking `vmovups mem, %zmm {%k}{z}` among them), or AVX2's vmaskmov. Such a
# load waits for its mask, so a kernel at the memory limit fetches its input late: relu_grad's was
# 5-36 % slower than leaky_relu_grad's for this alone. (Masked scalar loads of a constant, in a
# remainder loop, are not the kernels' inputs.)
_MASKED_LOAD = re.compile(r"^\s*(v\w*(p[sd]|dqu\d*|dqa\d*)\s+[^,\n]*\([^)\n]*\),[^\n]*\{%k\d\}"
                          r"|vmaskmovp[sd]\s+[^,\n]*\()", re.M)


@pytest.mark.skipif(not X86_64, reason="the instructions checked are x86-64's")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_kernels_load_without_masks(op, dtype):
    """No kernel, streamed or not, reads an input with a masked load: every load is issued before
    the values that select the result are known."""
    for asm in _streamed_and_ordinary_asm(op, dtype):
        found = _MASKED_LOAD.search(asm)
        assert found is None, f"a masked load: {found.group(0).strip()}"


@pytest.mark.skipif(not X86_64, reason="the instruction checked is x86-64's")
def test_store_fence_is_sfence():
    @njit(**_TEST_JIT)
    def fenced(y):
        y[0] = 1.0
        S.store_fence()

    fenced(np.zeros(1))
    assert re.search(r"\bsfence\b", _asm(fenced))


# --- the disk cache -----------------------------------------------------------------------------

_CLOSURE_DIGESTS = """
import hashlib, sys
from numba.core.serialize import dumps
from kernels.backends.numba_cpu import FAMILIES
for op, family in FAMILIES.items():
    for f in family:
        cells = tuple(c.cell_contents for c in f.py_func.__closure__ or ())
        print(op, hashlib.sha256(dumps(cells)).hexdigest())
"""


def test_cache_keys_are_the_same_in_every_process():
    """numba keys a cached closure by its pickled cells: a key that changed from one process to
    the next (a dispatcher's fresh id in a cell) would recompile every kernel in every run."""
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", _CLOSURE_DIGESTS], cwd=root, capture_output=True,
                           text=True, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].splitlines()) == 2 * len(K.FAMILIES)


def test_cache_stamp_covers_every_file_of_the_package(tmp_path, monkeypatch):
    """An edit to any file of the package (math.py, say) makes every cached kernel stale, and
    the store strategy's measurements too (they are keyed by the same stamp)."""
    from kernels.backends.numba_cpu.strategy import machine_key

    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(f"# {name}\n")
    monkeypatch.setattr(jit, "_HERE", tmp_path)
    locator = jit._PackageStamp.__new__(jit._PackageStamp)
    before, key = locator.get_source_stamp(), machine_key()
    (tmp_path / "b.py").write_text("# b.py, edited\n")
    assert locator.get_source_stamp() != before
    assert machine_key() != key and machine_key().startswith(key.rsplit("kernels ", 1)[0])   # measured anew


# ------------------------------------------------------------------------------- the disk cache

def _cache_file(folder):
    return IndexDataCacheFile(cache_path=str(folder), filename_base="streaming._family.locals.kernel-211.py311",
                              source_stamp="stamp")


@pytest.mark.parametrize("locked", [True, False])
def test_two_processes_saving_one_index_at_once_keep_each_entry_its_own_code(tmp_path, monkeypatch, locked):
    """numba's save reads the index, takes a free data number and writes: two writers at once took
    the same number, and one kernel's code loaded for another (kernels/backends/numba_cpu/jit.py).
    Here writer A stops between reading the index and writing anything, until writer B has saved or
    0.5 s passed: under the lock B waits, so each key keeps its own data. With the lock taken out
    (`locked=False`) the same interleaving loses an entry: the test can tell."""
    folder = tmp_path / "kernels/backends/numba_cpu/__pycache__"
    folder.mkdir(parents=True)
    assert jit._ours(str(folder)) and not jit._ours(str(tmp_path / "other/__pycache__"))
    if not locked:
        monkeypatch.setattr(jit, "locked", lambda path: contextlib.nullcontext())
    a, b = _cache_file(folder), _cache_file(folder)
    inside, b_done = threading.Event(), threading.Event()
    load = type(a)._load_index

    def slow_load(self):
        got = load(self)
        if self is a:
            inside.set()
            b_done.wait(0.5)
        return got

    monkeypatch.setattr(type(a), "_load_index", slow_load)
    ta = threading.Thread(target=a.save, args=("key-a", "code of a"))
    ta.start()
    assert inside.wait(5)
    tb = threading.Thread(target=lambda: (b.save("key-b", "code of b"), b_done.set()))
    tb.start()
    ta.join(5)
    tb.join(5)
    reader = _cache_file(folder)
    got = (reader.load("key-a"), reader.load("key-b"))
    if locked:
        assert got == ("code of a", "code of b")
    else:
        assert got != ("code of a", "code of b")      # the race the lock prevents


@pytest.mark.parametrize("locked", [True, False])
def test_two_processes_adding_to_one_choice_cache_keep_both_entries(tmp_path, monkeypatch, locked):
    """The store strategy's and the sparse method's per-machine files are read, added to and written
    whole: writer A stops between its read and its write until B has written (or 0.5 s passed).
    Under the file's lock B waits and both entries stay; with the lock taken out B's entry is lost."""
    path = tmp_path / "choices.json"
    if not locked:
        monkeypatch.setattr(strategy, "locked", lambda path: contextlib.nullcontext())
    inside, b_done = threading.Event(), threading.Event()
    load = strategy.load_cache

    def slow_load(p, schema):
        got = load(p, schema)
        if threading.current_thread().name == "A":
            inside.set()
            b_done.wait(0.5)
        return got

    monkeypatch.setattr(strategy, "load_cache", slow_load)
    ta = threading.Thread(target=strategy.write_cache_entry, args=(path, 1, "m", "a", {"v": 1}), name="A")
    ta.start()
    assert inside.wait(5)
    tb = threading.Thread(target=lambda: (strategy.write_cache_entry(path, 1, "m", "b", {"v": 2}), b_done.set()))
    tb.start()
    ta.join(5)
    tb.join(5)
    got = load(path, 1)["machines"]["m"]
    if locked:
        assert got == {"a": {"v": 1}, "b": {"v": 2}}
    else:
        assert got != {"a": {"v": 1}, "b": {"v": 2}}      # the lost entry the lock prevents


_ONE_PROCESS = """
import itertools, sys
import numpy as np
from numba.core import bytecode
import kernels
from kernels.ops import reference
if sys.argv[1] == "counter-from-a-million":
    bytecode.FunctionIdentity._unique_ids = itertools.count(10**6)
x = np.linspace(-3, 3, 101).astype(np.float32)
for op in sys.argv[2:]:
    y = kernels.get(op, "numba_cpu")(x)
    print(op, float(np.max(np.abs(y - reference(op)(x.astype(np.float64))))))
"""


def test_two_ops_cached_by_two_processes_keep_their_own_code_in_a_third(tmp_path):
    """numba names a compiled function's symbol by its qualified name, argument types and a number
    from a per-process counter. Two processes whose counters stand at the same number compile
    leaky_relu and tanh (forced here by starting both counters at one million; it happened by
    chance after two test runs). A third process loads both from the disk cache: with one factory
    closure name for every op the two symbols met and tanh ran leaky_relu's loop (max error 2.0);
    each op's functions now carry the op's name (streaming._own_name)."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args):
        out = subprocess.run([sys.executable, "-c", _ONE_PROCESS, *args], cwd=root, env=env,
                             capture_output=True, text=True, check=True).stdout
        return {op: float(err) for op, err in (line.split() for line in out.splitlines())}

    run("counter-from-a-million", "leaky_relu")
    run("counter-from-a-million", "tanh")
    assert list((tmp_path / "cache").rglob("*.nbi")), "the two processes cached their kernels"
    errors = run("ordinary", "leaky_relu", "tanh")
    assert errors["leaky_relu"] < 1e-6 and errors["tanh"] < 1e-6, errors


def test_every_function_a_factory_makes_is_named_for_its_op():
    """The structural side of the test above: no two compiled entry points, and no two of the
    block functions they close over, share a qualified name, and none is a bare `<locals>` name."""
    made = {}                                     # by identity: kernel and parallel share a block function
    for family in K.FAMILIES.values():
        for entry in family:
            made[id(entry)] = entry.py_func.__qualname__
            made.update((id(c.cell_contents), c.cell_contents.__qualname__) for c in entry.py_func.__closure__ or ()
                        if callable(c.cell_contents) and c.cell_contents.__module__ == S.__name__
                        and c.cell_contents.__qualname__.startswith(("elementwise.", "masked.")))
    names = list(made.values())
    assert len(names) == 4 * len(K.FAMILIES)      # kernel, parallel and two block functions each
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    assert not any("<locals>" in n for n in names)


def test_a_choice_file_that_cannot_be_written_is_no_error_and_leaves_no_part_behind(tmp_path, monkeypatch):
    """A full disk (the write or the rename fails): the choice is measured again next time, and no
    half-written temporary file stays beside the cache."""
    path = tmp_path / "choices.json"

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)
    strategy.write_cache_entry(path, 1, "m", "a", {"v": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["choices.json.lock"]
