"""sparse_matmul (y = a @ w skipping the rows of w of zero activations) on every backend this
machine can run, against the float64 oracle of kernels/ops/.

Here, without a GPU: the oracle's semantics and argument checks, the tolerance (it must reject a
kernel that drops or doubles one present row), the numba_cpu and scipy_csr kernels on awkward
sizes, the numba_cuda kernel on numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1), the CUDA C
kernels of kernels/cuda/sparse_matmul.cu run on the CPU through kernels/cuda/host_shim.h, and the
GPU launch plans (pure functions). Their NVRTC compile check (kernel names, 16-byte accesses, the
per-tile ballot) is tests/test_kernels_nvrtc.py's, with every other kernels/cuda source.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import kernels
from bench.measure.check import check_call
from kernels.cuda import build as cuda_build
from kernels.backends.cupy import sparse as cupy_sparse
from kernels.backends.numba_cuda import sparse as numba_cuda_sparse
from kernels.backends.numba_cpu import sparse as numba_sparse
from kernels.backends.numba_cpu import sparse_method
from kernels import registry
from kernels.backends.scipy import sparse as scipy_csr
from kernels import ops as R

from .conftest import SIMULATED_MAX

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
CUDA_DIR = cuda_build.CUDA_DIR
SOURCE = CUDA_DIR / "sparse_matmul.cu"


def activations(shape, sparsity, dtype, rng):
    """Normal values with a `sparsity` fraction set to exactly zero."""
    a = rng.standard_normal(shape).astype(dtype)
    a[rng.random(shape) < sparsity] = 0
    return a


def weights(shape, dtype, rng):
    return rng.standard_normal(shape).astype(dtype)


def assert_close(y, a, w):
    assert y.shape == R.sparse_matmul_layout(a, w)[0]
    assert str(y.dtype) == str(w.dtype)
    err = R.sparse_matmul_error(y, a, w)
    tol = R.sparse_matmul_tolerance(str(w.dtype), a.shape[-1])
    assert err <= tol, f"worst error {err:.3g} > tolerance {tol:.3g}"


CPU_KERNELS = {name: kernels.get("sparse_matmul", name) for name in ("numba_cpu", "scipy_csr")}
ALL = sorted(b for (op, b) in ((k.op, k.backend) for k in registry.kernels()) if op == "sparse_matmul")
DENSE = ("numpy", "torch", "cupy")      # IEEE a @ w: agree with the oracle on finite weights


def backend_param(name):
    be = registry.backend(name)
    return pytest.param(name, id=name, marks=[] if be.available else [pytest.mark.skip(reason=f"{name}: {be.reason}")])

# (batch or None for a K-vector, K, N): awkward sizes, tails of every block and vector width
SHAPES = [(None, 1, 1), (None, 127, 129), (1, 33, 1029), (3, 129, 127), (8, 255, 64), (65, 31, 7), (2, 1, 300)]
SPARSITIES = (0.0, 0.5, 0.9, 1.0)


# ================================================================================================
# the oracle, its checks and its tolerance
# ================================================================================================

def test_oracle_is_the_dense_product_without_zeros(rng):
    a, w = activations((5, 40), 0.0, np.float64, rng), weights((40, 9), np.float64, rng)
    np.testing.assert_allclose(R.sparse_matmul(a, w), a @ w, rtol=1e-13)
    np.testing.assert_allclose(R.sparse_matmul(a[0], w), a[0] @ w, rtol=1e-13)


def test_oracle_skips_rows_of_zero_activations(rng):
    a = activations((4, 16), 0.5, np.float32, rng)
    a[:, 3] = 0
    a[0, 5] = 1.0
    a[1:, 5] = 0
    w = weights((16, 6), np.float32, rng)
    w[3, :] = np.nan                       # never read: activation 3 is zero everywhere
    w[5, 0] = np.inf                       # read by row 0 only
    y = R.sparse_matmul(a, w)
    assert np.isfinite(y[1:]).all() and np.isfinite(y[0, 1:]).all()
    assert y[0, 0] == np.inf or np.isnan(y[0, 0])
    with np.errstate(invalid="ignore"):
        assert np.isnan((a.astype(np.float64) @ w)[1:, :]).all(), "IEEE a @ w differs exactly here"


def test_oracle_edge_shapes():
    assert R.sparse_matmul(np.zeros((0, 4), np.float32), np.ones((4, 3), np.float32)).shape == (0, 3)
    assert (R.sparse_matmul(np.zeros((2, 4), np.float32), np.ones((4, 3), np.float32)) == 0).all()
    assert R.sparse_matmul(np.zeros(0, np.float32), np.ones((0, 3), np.float32)).tolist() == [0, 0, 0]


@pytest.mark.parametrize("a, w, exc, match", [
    (np.ones((2, 3), np.float32), np.ones((4, 5), np.float32), ValueError, "K of a"),
    (np.ones(3, np.float32), np.ones((4, 5), np.float32), ValueError, "K of a"),
    (np.ones((2, 2, 3), np.float32), np.ones((3, 5), np.float32), ValueError, "a must be"),
    (np.ones((2, 3), np.float32), np.ones(3, np.float32), ValueError, "w must be"),
    (np.ones((2, 3), np.int32), np.ones((3, 5), np.int32), TypeError, "floating-point"),
    (np.ones((2, 3), bool), np.ones((3, 5), bool), TypeError, "floating-point"),
    (np.ones((2, 3), np.complex64), np.ones((3, 5), np.complex64), TypeError, "floating-point"),
    (np.ones((2, 3), np.float32), np.ones((3, 5), np.float64), TypeError, "same dtype"),
    (np.ones((2, 3), np.float64), np.ones((3, 5), np.int64), TypeError, "floating-point"),
])
def test_bad_arguments(a, w, exc, match):
    with pytest.raises(exc, match=match):
        R.sparse_matmul_layout(a, w)
    for name in ALL:
        be = registry.backend(name)
        if not be.available:
            continue
        with pytest.raises(exc, match=match):
            kernels.get("sparse_matmul", name)(be.to_native(a), be.to_native(w))


def test_the_layout_check_runs_once_per_call_with_out(monkeypatch):
    calls = []
    layout = R.sparse_matmul_layout
    monkeypatch.setattr(R.matmul, "sparse_matmul_layout", lambda a, w: (calls.append(1), layout(a, w))[1])
    a, w = np.ones((2, 3), np.float32), np.ones((3, 5), np.float32)
    fn = kernels.get("sparse_matmul", "numpy")
    y = fn(a, w)
    fn(a, w, out=y)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="out y must be"):
        fn(a, w, out=np.ones((2, 4), np.float32))


def test_every_backend_has_the_op():
    assert set(ALL) == {"numpy", "numba_cpu", "scipy_csr", "torch", "cupy", "cupyx_csr", "cupy_raw", "numba_cuda"}
    assert registry.backend("scipy_csr").device == "cpu" and registry.backend("cupyx_csr").default_device == "gpu"


@pytest.mark.parametrize("backend", [backend_param(b) for b in ALL])
def test_every_backend_through_the_gate(backend, rng):
    """The benchmark's gate (bench.measure.check.check_call: poisoned out=, then allocating, inputs
    untouched) on every backend that runs here, each dtype it supports, awkward sizes."""
    be = registry.backend(backend)
    small = be.simulated
    for dtype in be.dtypes:
        for batch, k, n in [(None, 37, 129), (1, 300, 65), (5, 64, 40), (0, 8, 8)] + ([] if small else [(64, 1031, 517)]):
            if small and (k * n > SIMULATED_MAX * 20):
                continue
            a = activations((k,) if batch is None else (batch, k), 0.6, dtype, rng)
            w = weights((k, n), dtype, rng)
            r = check_call("sparse_matmul", backend, (a, w))
            assert r.ok, f"{dtype} {(batch, k, n)}: {r.message}"


@pytest.mark.parametrize("backend", [backend_param(b) for b in ALL if b not in DENSE])
def test_sparse_aware_backends_skip_non_finite_rows(backend, rng):
    be = registry.backend(backend)
    a = activations((3, 64), 0.7, "float32", rng)
    w = weights((64, 40), "float32", rng)
    w[np.flatnonzero((a == 0).all(axis=0))[:2]] = np.nan
    y = be.to_numpy(kernels.get("sparse_matmul", backend)(be.to_native(a), be.to_native(w)))
    assert np.isfinite(y).all()
    assert_close(y, a, w)


def test_large_weights_are_checked_on_sampled_columns(rng):
    """Beyond 2**25 multiply-adds the gate samples columns, and still finds an unwritten output."""
    a = activations((8, 1024), 0.5, "float32", rng)
    w = weights((1024, 4099), "float32", rng)
    assert check_call("sparse_matmul", "numba_cpu", (a, w)).ok
    y = kernels.get("sparse_matmul", "numba_cpu")(a, w)
    y[1, 2000] = np.nan
    ok, message, _ = R.compare_sparse_matmul(y, a, w)
    assert not ok and "never written" in message


def test_tolerance_grows_with_sqrt_k():
    assert R.sparse_matmul_tolerance("float32", 10000) == pytest.approx(1e-3)
    assert R.sparse_matmul_tolerance("float32", 100) == pytest.approx(1e-4)
    assert R.sparse_matmul_tolerance("float16", 100) > 2.0 ** -11
    assert R.sparse_matmul_tolerance("float64", 10000) < 1e-11


@pytest.mark.parametrize("wrong", ["drop one row", "double one row", "dense IEEE on a NaN row", "zeros",
                                   "another input's result"])
def test_tolerance_rejects_wrong_kernels(wrong, rng):
    """Known-wrong kernels beside the right ones: the check must fail each of them."""
    k, n = 512, 256
    a, w = activations((2, k), 0.5, np.float32, rng), weights((k, n), np.float32, rng)
    nz = np.flatnonzero(a[0])
    if wrong == "drop one row":
        b = a.copy()
        b[0, nz[0]] = 0
        y = (b.astype(np.float64) @ w).astype(np.float32)
    elif wrong == "double one row":
        b = a.copy()
        b[0, nz[0]] *= 2
        y = (b.astype(np.float64) @ w).astype(np.float32)
    elif wrong == "dense IEEE on a NaN row":
        w[np.flatnonzero(a[0] == 0)[0], :] = np.nan
        with np.errstate(invalid="ignore"):
            y = a @ w
    elif wrong == "zeros":
        y = np.zeros((2, n), np.float32)
    else:
        other = activations((2, k), 0.5, np.float32, rng)
        y = (other.astype(np.float64) @ w).astype(np.float32)
    assert R.sparse_matmul_error(y, a, w) > R.sparse_matmul_tolerance("float32", k)
    right = (a.astype(np.float64) @ np.nan_to_num(w)).astype(np.float32)
    if wrong != "dense IEEE on a NaN row":
        assert R.sparse_matmul_error(right, a, w) <= R.sparse_matmul_tolerance("float32", k)


# ================================================================================================
# CPU kernels: numba_cpu, scipy_csr
# ================================================================================================

@pytest.mark.parametrize("backend", list(CPU_KERNELS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_cpu_kernels_match_the_oracle(backend, dtype, shape, sparsity, rng):
    batch, k, n = shape
    a = activations((k,) if batch is None else (batch, k), sparsity, dtype, rng)
    w = weights((k, n), dtype, rng)
    assert_close(CPU_KERNELS[backend](a, w), a, w)


@pytest.mark.parametrize("backend", list(CPU_KERNELS))
def test_cpu_kernels_edge_cases(backend, rng):
    call = CPU_KERNELS[backend]
    w = weights((64, 33), np.float32, rng)
    assert call(np.zeros((0, 64), np.float32), w).shape == (0, 33)
    y = call(np.zeros((3, 64), np.float32), w)
    assert y.shape == (3, 33) and (y == 0).all()
    a = activations((3, 64), 0.0, np.float32, rng)
    np.testing.assert_allclose(call(a, w), a @ w, rtol=1e-4, atol=1e-4)
    wt = np.asfortranarray(w)                            # non-contiguous layouts are handled
    assert_close(call(a, wt), a, w)
    wide = weights((64, 66), np.float32, rng)
    assert_close(call(a, wide[:, ::2]), a, wide[:, ::2])
    assert_close(call(a[:, ::1][::2], w), a[::2], w)


@pytest.mark.parametrize("backend", list(CPU_KERNELS))
def test_non_finite_weights_in_skipped_rows_do_not_poison(backend, rng):
    a = activations((4, 96), 0.7, np.float32, rng)
    w = weights((96, 40), np.float32, rng)
    zero_rows = np.flatnonzero((a == 0).all(axis=0))
    some_zero = np.flatnonzero((a == 0).any(axis=0) & (a != 0).any(axis=0))
    w[zero_rows[0]] = np.nan
    w[zero_rows[1]] = np.inf
    w[some_zero[0], ::3] = -np.inf                       # read by some rows of the batch only
    y = CPU_KERNELS[backend](a, w)
    assert_close(y, a, w)
    present = a[:, some_zero[0]] != 0
    assert np.isfinite(y[~present]).all()


def test_numba_cpu_inputs_unchanged_and_out(rng):
    a, w = activations((2, 100), 0.5, np.float32, rng), weights((100, 50), np.float32, rng)
    a0, w0 = a.copy(), w.copy()
    out = np.full((2, 50), np.nan, np.float32)
    y = kernels.get("sparse_matmul", "numba_cpu")(a, w, out=out)
    assert y is out or np.shares_memory(y, out)
    assert_close(out, a, w)
    assert np.array_equal(a, a0) and np.array_equal(w, w0)


def test_numba_cpu_split_k_on_many_rows(rng):
    """Enough present rows for every thread's share of split-K, and a column count off the blocks."""
    a, w = activations(4099, 0.2, np.float32, rng), weights((4099, 1031), np.float32, rng)
    assert_close(numba_sparse.sparse_matmul.__wrapped__(a, w), a, w)


def with_nnz(k, nnz, dtype, rng):
    """A K-vector with exactly `nnz` non-zero activations at random places."""
    a = np.zeros(k, dtype)
    v = rng.standard_normal(nnz).astype(dtype)
    v[v == 0] = 1                                       # a drawn exact zero stays present
    a[rng.choice(k, nnz, replace=False)] = v
    return a


# the batch-1 kernel's paths: 8 or 4 rows per pass (its two widths, ROWS), then passes of 4, then
# one row at a time, and split-K's threads from SPLITK_MIN_ROWS present rows per thread on
BATCH1_NNZ = sorted({0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 20, 21, 23,
                     numba_sparse.SPLITK_MIN_ROWS - 1, numba_sparse.SPLITK_MIN_ROWS,
                     2 * numba_sparse.SPLITK_MIN_ROWS - 1, 2 * numba_sparse.SPLITK_MIN_ROWS + 5,
                     4 * numba_sparse.SPLITK_MIN_ROWS + 3, 300})


@pytest.fixture(params=list(numba_sparse.ROWS) + ["measure"])
def width(request, monkeypatch):
    """Each width of the batch-1 kernel forced, and the choice measured on the call (saved in the
    tests' cache folder: conftest.py's ACTBENCH_CACHE_DIR)."""
    env = dict(os.environ, ACTBENCH_SPARSE_METHOD=request.param)
    monkeypatch.setattr(numba_sparse, "METHOD", sparse_method.MethodChoice(env=env))
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 15, 17, 1031])
def test_numba_cpu_batch1_every_row_count(dtype, n, rng, width):
    """Batch 1 (a K-vector and a 1 x K matrix) with every count of present rows that reaches a
    different tail of the ROWS / 4 / 1 passes and of the split-K shares, N off every vector width."""
    call = kernels.get("sparse_matmul", "numba_cpu")
    w = weights((300, n), dtype, rng)
    for nnz in BATCH1_NNZ:
        a = with_nnz(300, nnz, dtype, rng)
        y = call(a, w)
        assert_close(y, a, w)
        assert_close(call(a[None], w), a[None], w)
        if nnz == 0:
            assert (y == 0).all()


@pytest.mark.parametrize("nnz", [1, 5, 8, 12, 13, 21, 131, 300])
def test_numba_cpu_batch1_special_values(nnz, rng, width):
    """Batch 1: a zero activation beside an inf or NaN weight leaves the output finite (the op's
    sparse-aware semantics); a NaN activation makes its columns NaN; an inf weight under a present
    activation gives that column's infinity; wherever these rows fall in the passes and tails."""
    call = kernels.get("sparse_matmul", "numba_cpu")
    k, n = 301, 37
    for place in ("first", "middle", "last"):
        a = with_nnz(k, nnz, np.float32, rng)
        w = weights((k, n), np.float32, rng)
        absent = np.flatnonzero(a == 0)
        w[absent[:2]] = np.inf                         # skipped rows: never read
        w[absent[2:4]] = np.nan
        w[absent[4:6], ::2] = -np.inf
        y = call(a, w)
        assert np.isfinite(y).all()
        assert_close(y, a, w)
        present = np.flatnonzero(a)
        j = {"first": 0, "middle": len(present) // 2, "last": -1}[place]
        hot = present[j]
        w[hot, 3] = np.inf                             # a present row's inf weight
        y = call(a, w)
        assert_close(y, a, w)
        assert np.isinf(y[3]) and np.isfinite(np.delete(y, 3)).all()
        a[hot] = np.nan                                # a present NaN activation
        y = call(a, w)
        assert_close(y, a, w)
        assert np.isnan(y).all()
        a[hot] = np.inf
        w[hot] = np.abs(w[hot]) + 1                    # inf times positive weights: +inf everywhere
        assert_close(call(a, w), a, w)


@pytest.mark.parametrize("rows", sorted(numba_sparse.ROWS.values()))
@pytest.mark.parametrize("nparts", [1, 2, 4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_cpu_split_k_sums_its_parts(nparts, dtype, rng, rows):
    """`_gemv_splitk` with any number of partial sums (more than this machine's threads too): added on
    the calling thread while they are at most SERIAL_SUM_BYTES, in parallel by column blocks beyond
    (N chosen on both sides of that line and off the blocks)."""
    itemsize = np.dtype(dtype).itemsize
    beyond = numba_sparse.SERIAL_SUM_BYTES // (max(nparts - 1, 1) * itemsize) + 5
    for n in (33, beyond):
        k = 200
        a = with_nnz(k, 150, dtype, rng)
        w = weights((k, n), dtype, rng)
        idx = np.flatnonzero(a).astype(np.int64)
        y = np.full(n, np.nan, dtype)
        numba_sparse._gemv_splitk(idx, a[idx], idx.size, w, y, np.full((nparts - 1, n), np.nan, dtype), rows)
        assert_close(y, a, w)


def test_scipy_csr_steps(rng):
    a, w = activations((3, 50), 0.8, np.float32, rng), weights((50, 20), np.float32, rng)
    m = scipy_csr.to_csr(a)
    assert m.nnz == np.count_nonzero(a)
    assert_close(scipy_csr.csr_matmul(m, w), a, w)


# ================================================================================================
# numba_cuda on the simulator
# ================================================================================================

def test_numba_cuda_plan():
    assert numba_cuda_sparse.plan(1, 8192, 8192, threads=256, sm_count=132) == (32, 33, 249)
    ncol, splits, kchunk = numba_cuda_sparse.plan(64, 100, 10, threads=32, sm_count=1)
    assert (ncol, splits) == (1, 1) and kchunk == 100
    for batch, k, n in [(1, 1, 1), (3, 7, 100), (1, 0, 5)]:
        ncol, splits, kchunk = numba_cuda_sparse.plan(batch, k, n, threads=32, sm_count=4)
        assert ncol * 32 >= n and splits * kchunk >= k and (splits - 1) * kchunk < max(k, 1)


@pytest.mark.skipif(not SIMULATOR, reason="numba_cuda runs here only on the simulator (NUMBA_ENABLE_CUDASIM=1)")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(None, 33, 40), (1, 70, 31), (3, 5, 70), (0, 4, 4), (2, 0, 3)], ids=str)
def test_numba_cuda_on_the_simulator(dtype, shape, rng):
    from numba import cuda
    batch, k, n = shape
    a = activations((k,) if batch is None else (batch, k), 0.6, dtype, rng)
    w = weights((k, n), dtype, rng)
    if k > 2:
        w[np.flatnonzero((a.reshape(-1, k) == 0).all(axis=0))[:1]] = np.nan
    y = numba_cuda_sparse.sparse_matmul(cuda.to_device(a), cuda.to_device(w)).copy_to_host()
    assert_close(y, a, w)


@pytest.mark.skipif(not SIMULATOR, reason="numba_cuda runs here only on the simulator (NUMBA_ENABLE_CUDASIM=1)")
def test_numba_cuda_kernels_live_in_the_backends_runtime(rng):
    """Compiled once into kernels/backends/numba_cuda/elementwise.py's RUNTIME, so that closing it (a run scope's end)
    drops them and the next call compiles again."""
    from numba import cuda

    from kernels.backends.numba_cuda import elementwise as numba_gpu
    assert registry.backend("numba_cuda").available
    a, w = cuda.to_device(activations((2, 6), 0.5, "float32", rng)), cuda.to_device(weights((6, 3), "float32", rng))
    numba_cuda_sparse.sparse_matmul(a, w)
    kept = numba_gpu.RUNTIME.compiled(("sparse_matmul", ""), lambda _: pytest.fail("compiled again"))
    numba_gpu.RUNTIME.close()
    numba_cuda_sparse.sparse_matmul(a, w)
    assert numba_gpu.RUNTIME.compiled(("sparse_matmul", ""), lambda _: None) is not kept


# ================================================================================================
# CUDA C: the launch plans, then the kernels on the CPU through the host shim
# ================================================================================================

def test_launch_plan():
    p = cupy_sparse.launch_plan(1, 8192, 8192, 4, 132, 4)
    assert p.ntiles == 64 and p.kchunk % 32 == 0 and p.splits * p.kchunk >= 8192
    assert p.items * 32 <= p.grid * cupy_sparse.BLOCK < p.items * 32 + cupy_sparse.BLOCK
    assert p.grid <= 132 * 4 and p.items >= 132 * 4 * 8 * 0.9     # one wave, nearly full
    h = cupy_sparse.launch_plan(64, 4096, 11008, 2, 132, 2)   # float16: 256 columns per tile
    assert h.ntiles == 43 and h.ngroups == 16
    assert cupy_sparse.launch_plan(1, 0, 5, 4, 1, 1).splits == 1
    big = cupy_sparse.launch_plan(64, 8192, 8192, 4, 132, 4)
    assert big.splits < p.splits


@pytest.mark.parametrize("blocks_per_sm", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("shape", [(1, 8192, 8192), (64, 8192, 8192), (64, 4096, 11008), (16, 2048, 2048),
                                   (256, 8192, 8192), (7, 100, 129)])
@pytest.mark.parametrize("itemsize", [2, 4, 8])
def test_launch_plan_fits_one_wave(shape, itemsize, blocks_per_sm):
    """The grid fits one wave (SMs x resident blocks) whenever one split does, with as many slices
    as the wave holds: one more would not fit."""
    batch, k, n = shape
    p = cupy_sparse.launch_plan(batch, k, n, itemsize, 132, blocks_per_sm)
    wave_blocks = 132 * blocks_per_sm
    if p.ntiles * p.ngroups * 32 <= wave_blocks * cupy_sparse.BLOCK:
        assert p.grid <= wave_blocks, p
    windows, per_split = max(1, -(-k // 32)), p.kchunk // 32
    if per_split > 1:           # shorter slices would need more of them than one wave holds
        assert p.ntiles * p.ngroups * -(-windows // (per_split - 1)) > wave_blocks * (cupy_sparse.BLOCK // 32), p


def test_launch_plan_refuses_a_32_bit_warp_index_overflow():
    """The partial kernel's thread index is 32-bit: items * 32 >= 2**32 is refused, just below is not."""
    n = 2**27 * 32 * 4                 # float32: 2**27 column tiles of 128 columns, batch 1, K 32
    with pytest.raises(ValueError, match="too large for one launch"):
        cupy_sparse.launch_plan(1, 32, n, 4, 132, 4)
    ok = cupy_sparse.launch_plan(1, 32, n - 128, 4, 132, 4)
    assert ok.items == 2**27 - 1


def test_blocks_per_sm_from_the_register_report():
    """The occupancy of the partial kernels from ptxas's registers (NVRTC, CuPy's options): what the
    occupancy API answers, and with it the issue's case, batch 64 float16 on a 132-SM H100, in one
    wave where the old plan (32 warps per SM, rounded up) needed about two."""
    from kernels import nvrtc
    from kernels.nvrtc import resources
    assert cupy_sparse.blocks_per_sm_from_registers(64) == 4       # 2048 registers a warp: 4 blocks of 8
    assert cupy_sparse.blocks_per_sm_from_registers(102) == 2      # 3328 a warp
    assert cupy_sparse.blocks_per_sm_from_registers(32) == 8       # the 64-warp limit
    assert cupy_sparse.blocks_per_sm_from_registers(255) == 1
    target = next(t for t in resources.raw_targets() if t.label == cupy_sparse.SOURCE)
    r = nvrtc.compile_source(target.source, target.label, "sm_90", target.options)
    regs = r.kernels[cuda_build.raw_kernel_name("sparse_matmul_partial", "float16")].registers
    bps = cupy_sparse.blocks_per_sm_from_registers(regs)
    assert 1 <= bps <= 4, (regs, bps)
    p = cupy_sparse.launch_plan(64, 8192, 8192, 2, 132, bps)
    assert p.grid <= 132 * bps
    # the old plan: 32 warps per SM wanted, the split count rounded up
    per_tile = p.ntiles * p.ngroups
    windows = 8192 // 32
    old_per_split = -(-windows // min(-(-132 * 32 // per_tile), windows))
    old_grid = per_tile * -(-windows // old_per_split) * 32 // cupy_sparse.BLOCK
    assert old_grid > 1.5 * 132 * bps, (old_grid, 132 * bps)


CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
C_TYPES = {"float16": "__half", "float32": "float", "float64": "double"}
SFX = cuda_build.SUFFIX


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    """sparse_matmul.cu compiled for the CPU with host_shim.h, one host_ launcher per kernel."""
    if CXX is None:
        pytest.skip("no C++ compiler (g++) to run the CUDA kernels on the CPU")
    tmp = tmp_path_factory.mktemp("sparse_host")
    wrappers = []
    for dtype, sfx in SFX.items():
        t, c = C_TYPES[dtype], ("double" if dtype == "float64" else "float")
        wrappers.append(
            f'extern "C" void host_partial_{sfx}(unsigned grid, const {t}* a, const {t}* w, {c}* part, '
            f"long long batch, long long k, long long n, unsigned nt, unsigned s, unsigned ng, long long kc) "
            f"{{ act_host::launch(grid, ACT_BLOCK, [&] {{ "
            f"_sparse_matmul_partial_kernel_{sfx}(a, w, part, batch, k, n, nt, s, ng, kc); }}); }}\n"
            f'extern "C" void host_reduce_{sfx}(unsigned grid, const {c}* part, {t}* y, long long total, unsigned s) '
            f"{{ act_host::launch(grid, ACT_BLOCK, [&] {{ _sparse_matmul_reduce_kernel_{sfx}(part, y, total, s); }}); }}\n")
    src, lib = tmp / "sparse.cpp", tmp / "sparse.so"
    src.write_text(SOURCE.read_text() + "\n" + "".join(wrappers))
    cmd = [CXX, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-DACTBENCH_HOST_EMULATION",
           "-include", str(CUDA_DIR / "host_shim.h"), f"-I{CUDA_DIR}", str(src), "-o", str(lib)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return ctypes.CDLL(str(lib))


def run_host(lib, a, w, *, sm_count=2, y_offset=0):
    """The cupy_raw launcher's two launches, on the CPU. `y_offset` shifts y by that many elements
    (a misaligned output: the reduction's scalar path)."""
    dtype = str(w.dtype)
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    batch, k = a2.shape
    n = w.shape[1]
    plan = cupy_sparse.launch_plan(batch, k, n, w.itemsize, sm_count, blocks_per_sm=2)
    acc = np.float64 if dtype == "float64" else np.float32
    part = np.full((plan.splits, batch, n), np.nan, acc)
    buf = np.full(batch * n + y_offset + 8, np.nan, w.dtype)
    y = buf[y_offset:y_offset + batch * n]
    ptr = ctypes.c_void_p
    if batch and n:
        fn = getattr(lib, f"host_partial_{SFX[dtype]}")
        fn.argtypes = [ctypes.c_uint, ptr, ptr, ptr, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_longlong,
                       ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_longlong]
        fn(plan.grid, a2.ctypes.data, w.ctypes.data, part.ctypes.data, batch, k, n,
           plan.ntiles, plan.splits, plan.ngroups, plan.kchunk)
        red = getattr(lib, f"host_reduce_{SFX[dtype]}")
        red.argtypes = [ctypes.c_uint, ptr, ptr, ctypes.c_longlong, ctypes.c_uint]
        red(2, part.ctypes.data, y.ctypes.data, batch * n, plan.splits)
    guard = np.concatenate([buf[:y_offset], buf[y_offset + batch * n:]])
    assert np.isnan(guard.astype(np.float64)).all(), "a kernel wrote outside y"
    return y.reshape(*a.shape[:-1], n), plan


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("shape", [(None, 1, 1), (1, 33, 129), (None, 100, 256), (5, 70, 72), (9, 64, 40),
                                   (2, 300, 520)], ids=str)
@pytest.mark.parametrize("sparsity", [0.0, 0.6, 1.0])
def test_cuda_kernels_on_the_host(host_lib, dtype, shape, sparsity, rng):
    batch, k, n = shape
    a = activations((k,) if batch is None else (batch, k), sparsity, dtype, rng)
    w = weights((k, n), dtype, rng)
    y, _ = run_host(host_lib, a, w)
    assert_close(y, a, w)


def test_cuda_kernels_paths(host_lib, rng):
    """Split K in several slices, a misaligned w (the scalar loads), a misaligned y (the scalar
    reduction), and non-finite weights in skipped rows."""
    a = activations((6, 200), 0.7, np.float32, rng)
    w = weights((200, 64), np.float32, rng)
    w[np.flatnonzero((a == 0).all(axis=0))[:2]] = np.nan
    mixed = np.flatnonzero((a == 0).any(axis=0) & (a != 0).any(axis=0))[0]
    w[mixed, 5] = np.inf
    y, plan = run_host(host_lib, a, w, sm_count=8)
    assert plan.splits > 1
    assert_close(y, a, w)
    assert np.isfinite(y[a[:, mixed] == 0]).all()
    buf = np.empty(w.size + 1, np.float32)
    shifted = buf[1:].reshape(w.shape)
    shifted[...] = w
    y, _ = run_host(host_lib, a, shifted, y_offset=1)
    assert_close(y, a, w)


def test_every_kernel_module_imports_without_its_library():
    """Importing the GPU modules touches neither CuPy nor numba.cuda (they load on first use)."""
    code = ("import sys; import kernels.backends.cupy.sparse, kernels.backends.numba_cuda.sparse; "
            "sys.exit(('cupy' in sys.modules) or ('numba.cuda' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False,
                          cwd=str(CUDA_DIR.parents[1])).returncode == 0


def test_numba_cuda_kernel_compiles_to_ptx_for_a_real_gpu():
    """Outside the simulator the kernel compiles with numba-cuda's own compiler (libNVVM, no GPU
    needed) for sm_80, and the float32 kernel multiplies and adds in float32."""
    code = """
import os
from numba import cuda, types
from kernels.backends.numba_cuda import sparse as m
m.cuda = cuda
for dt in (types.float32, types.float64):
    arr = types.Array(dt, 2, "C")
    ptx, _ = cuda.compile_ptx(m._sparse_matmul_kernel, (arr, arr, arr, types.int64, types.int64, types.int64,
                                                         types.boolean), cc=(8, 0))
    print(dt, "fma.rn.f32" in ptx, ".f64" in ptx, "atom.global.add" in ptx)
"""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(CUDA_DIR.parents[1]), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:2] == ["float32 True False True", "float64 False True True"], proc.stdout


def test_dense_peers_write_a_vector_into_out_without_resizing(rng):
    """torch.matmul resizes a 1-D out= of a vector-matrix product (with a warning): the launcher
    must hand back the out it was given, of shape (N,)."""
    import warnings
    for name in ("numpy", "torch"):
        be = registry.backend(name)
        if not be.available:
            continue
        a, w = activations(300, 0.5, "float32", rng), weights((300, 70), "float32", rng)
        out = be.empty((70,), "float32")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = kernels.get("sparse_matmul", name)(be.to_native(a), be.to_native(w), out=out)
        assert y is out and tuple(out.shape) == (70,)
        assert_close(be.to_numpy(out), a, w)


def test_cupyx_csr_reads_w_in_place(monkeypatch, rng):
    """cupyx_csr hands cuSPARSE's SpMM w.T (w's own memory, Fortran order) with op(B) = transpose:
    no copy of the K x N weights in the timed call (csr_matrix @ w made one with asfortranarray).
    cuSPARSE needs a GPU: here cupyx's two entry points are stand-ins over NumPy arrays."""
    import types

    import cupyx
    import cupyx.scipy
    calls = []

    def spmm(m, b, c=None, alpha=1, beta=0, transa=False, transb=False):
        calls.append((b, transb))
        assert b.flags.f_contiguous and transb and not transa
        return np.asfortranarray(m @ (b.T if transb else b))

    fake_cusparse = types.ModuleType("cupyx.cusparse")
    fake_cusparse.spmm = spmm
    fake_sparse = types.ModuleType("cupyx.scipy.sparse")
    fake_sparse.csr_matrix = lambda dense: np.array(dense)
    monkeypatch.setitem(sys.modules, "cupyx.cusparse", fake_cusparse)
    monkeypatch.setitem(vars(cupyx), "cusparse", fake_cusparse)      # not setattr: cupyx's lazy __getattr__
    monkeypatch.setitem(sys.modules, "cupyx.scipy.sparse", fake_sparse)
    monkeypatch.setitem(vars(cupyx.scipy), "sparse", fake_sparse)
    a = np.where(rng.random((5, 64)) < 0.5, 0, rng.standard_normal((5, 64))).astype(np.float32)
    w = rng.standard_normal((64, 40)).astype(np.float32)
    out = np.full((5, 40), np.nan, np.float32)
    got = registry.kernel("sparse_matmul", "cupyx_csr").raw(a, w, out=out)
    assert got is out and np.allclose(out, a.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    (b, transb), = calls
    assert transb and np.shares_memory(b, w) and b.shape == (40, 64)
    convert, multiply = cupy_sparse.csr_steps(a, w)                  # the two timed parts, apart
    assert np.allclose(multiply(convert()), out)
