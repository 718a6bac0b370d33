"""sparse_matmul on the CPU with numba.njit: stream only the rows of w whose activation is non-zero.

At batch 1 the product is bound by reading w, so skipping the rows of zero activations saves
their bytes: at sparsity s the ideal speed-up over a dense GEMV is 1 / (1 - s).

- `_nonzero_rows` lists the present activations of each row of a (k and value), in one pass.
- batch 1, `_gemv_splitk`: split-K. Each thread takes a share of the present rows and adds them,
  8 or 4 at a time (`ROWS`: measured on the machine per case class, sparse_method.py), into a
  private full-width partial (float32 accumulation for float32; thread 0's is y itself),
  streaming whole rows of w; the partials are then added into y. Split-K was
  measured against column blocks (parallel over blocks of output columns) and kept: see its
  docstring.
- batch > 1, one of three methods, whichever measured fastest on this machine for the case's class
  (kernels/backends/numba_cpu/sparse_method.py; each wholly inside the call):
  "sparse", `_gemm_columns`: parallel over blocks of output columns; for each k present in any
  row of the batch the slice of w is read once and added into the rows of the batch whose
  activation is non-zero (a zero activation contributes nothing, even beside an inf weight: the
  op's semantics);
  "blas", `_blas_product`: NumPy's BLAS on the whole of w, or "blas_gather": on the rows of w
  needed by some row of the batch (`_needed_columns`) gathered into a block (the copy is part of
  the call); then checked: BLAS multiplies the zero activations too, which gives the op's result
  exactly where those weights are finite, and a non-finite output wherever one of them is not
  (0 * inf is NaN, and any NaN or inf term leaves its sum non-finite). So a product whose output
  is all finite is the op's; any other is computed again by the sparse method.

Kernels compile on the first call per dtype (never at import) and are cached on disk. The launcher
is registered on the numba_cpu backend (the package's __init__.py declares it).
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from numba import get_num_threads, njit, prange

from kernels.backends.numba_cpu.sparse_method import MethodChoice
from kernels.backends.numba_cpu.sparse_method import key as method_key
from kernels.machine import last_level_cache_bytes
from kernels.ops import matmul_operands, matmul_result
from kernels.registry import register

_DEVICE = {"cache": True, "error_model": "numpy", "fastmath": {"contract"}}
_PARALLEL = dict(_DEVICE, parallel=True)

COLS = 1024            # output columns per block: a float32 block of y is 4 KiB, in L1
# present rows added per pass over a split-K partial, measured on the machine per case class
# (sparse_method.py): 8 read streams and the partial read and written once per 8 rows, or 4 streams
# (a machine whose prefetchers follow fewer streams); 16 measured slower (docs/sparse-matmul.md)
ROWS = {"rows8": 8, "rows4": 4}
SPLITK_MIN_ROWS = 64   # a split-K thread streams at least this many rows (else fewer threads)
SERIAL_SUM_BYTES = 128 * 1024  # split-K parts up to this size are added on the calling thread:
                               # reading them from the other cores' caches (a few us) costs about
                               # what waking the threads for a parallel sum does
ACC_BYTES = 512 * 1024 # the batched kernel's accumulator block: well inside a 1-2 MiB L2


@njit(**_DEVICE)
def _nonzero_rows(a, idx, val, count):
    """For each row b of a: idx[b, :count[b]] the k of its non-zero activations (NaN included),
    val[b, :count[b]] their values. Reads a once."""
    zero = a.dtype.type(0)
    for b in range(a.shape[0]):
        c = 0
        for k in range(a.shape[1]):
            v = a[b, k]
            if v != zero:
                idx[b, c] = k
                val[b, c] = v
                c += 1
        count[b] = c


@njit(**_DEVICE)
def _add_rows(y, w, idx, val, n, rows):
    """y += sum over j < n of val[j] * w[idx[j]]: `rows` (8 or 4) rows per pass over y, then 4, then
    1 (the tails). Indexes from 0 on slices, so that no index can be negative and the loops
    vectorise without numba's wraparound checks."""
    j = 0
    if rows == 8:
        while j + 8 <= n:
            r0, r1, r2, r3 = w[idx[j]], w[idx[j + 1]], w[idx[j + 2]], w[idx[j + 3]]
            r4, r5, r6, r7 = w[idx[j + 4]], w[idx[j + 5]], w[idx[j + 6]], w[idx[j + 7]]
            v0, v1, v2, v3 = val[j], val[j + 1], val[j + 2], val[j + 3]
            v4, v5, v6, v7 = val[j + 4], val[j + 5], val[j + 6], val[j + 7]
            for c in range(y.size):
                y[c] += ((v0 * r0[c] + v1 * r1[c]) + (v2 * r2[c] + v3 * r3[c])) \
                    + ((v4 * r4[c] + v5 * r5[c]) + (v6 * r6[c] + v7 * r7[c]))
            j += 8
    while j + 4 <= n:
        r0, r1, r2, r3 = w[idx[j]], w[idx[j + 1]], w[idx[j + 2]], w[idx[j + 3]]
        v0, v1, v2, v3 = val[j], val[j + 1], val[j + 2], val[j + 3]
        for c in range(y.size):
            y[c] += (v0 * r0[c] + v1 * r1[c]) + (v2 * r2[c] + v3 * r3[c])
        j += 4
    while j < n:
        r0, v0 = w[idx[j]], val[j]
        for c in range(y.size):
            y[c] += v0 * r0[c]
        j += 1


# reads 4 B per needed weight (rows of present activations) + a once, writes y once (float32);
# see bench/measure/roofline.py
@njit(**_PARALLEL)
def _gemv_splitk(idx, val, n, w, y, parts, rows):
    """Split-K: thread t adds its share of the present rows, whole rows of w (one contiguous stream
    per row, which the hardware prefetchers follow), into its own full-width partial: y itself for
    thread 0, parts[t - 1] for the others; then the parts are added into y. (Column blocks, the
    other way to share a GEMV, read a short slice of every present row per block: many short
    streams, which the prefetchers do not follow as well; split-K measured the faster.)
    The parts are added on the calling thread while they are small (SERIAL_SUM_BYTES), so that a
    call forks once (a second parallel region cost a few us, which shows at high sparsity); many
    threads' parts are added in parallel, by column blocks."""
    nparts = parts.shape[0] + 1
    ncols = y.size
    zero = y.dtype.type(0)
    for t in prange(nparts):
        p = y if t == 0 else parts[t - 1]
        for c in range(ncols):
            p[c] = zero
        j0 = n * t // nparts
        j1 = n * (t + 1) // nparts
        _add_rows(p, w, idx[j0:j1], val[j0:j1], j1 - j0, rows)
    if parts.shape[0] * ncols * y.itemsize <= SERIAL_SUM_BYTES:
        for t in range(nparts - 1):
            q = parts[t]
            for c in range(ncols):
                y[c] += q[c]
    else:
        nblocks = (ncols + COLS - 1) // COLS
        for blk in prange(nblocks):
            lo = blk * COLS
            hi = min(lo + COLS, ncols)
            yb = y[lo:hi]
            for t in range(nparts - 1):
                q = parts[t, lo:hi]
                for c in range(hi - lo):
                    yb[c] += q[c]


@njit(**_DEVICE)
def _present_by_k(a, idx, ptr, rows, vals):
    """a's non-zero activations grouped by k (CSR of a.T): idx[:n] the k present in any row of the
    batch, and for the j-th of them rows[ptr[j]:ptr[j + 1]] the batch rows where it is present and
    vals[...] their activations. Reads a once (column by column); returns n."""
    zero = a.dtype.type(0)
    n = 0
    e = 0
    ptr[0] = 0
    for k in range(a.shape[1]):
        start = e
        for b in range(a.shape[0]):
            v = a[b, k]
            if v != zero:
                rows[e] = b
                vals[e] = v
                e += 1
        if e > start:
            idx[n] = k
            n += 1
            ptr[n] = e
    return n


# reads 4 B per needed weight (rows present in any row of the batch) + a once, writes y once
# (float32); see bench/measure/roofline.py
@njit(**_PARALLEL)
def _gemm_columns(idx, ptr, rows, vals, n, w, y, cols):
    """y = a @ w for a batch. Parallel over blocks of output columns: per block, each needed slice
    of w is read once from memory and added, from L1, into the accumulator row of every batch row
    whose activation is present (absent ones are never touched: no 0 * inf). The accumulator
    (batch x cols) stays in L2."""
    batch, ncols = y.shape
    nblocks = (ncols + cols - 1) // cols
    for blk in prange(nblocks):
        lo = blk * cols
        hi = min(lo + cols, ncols)
        acc = np.zeros((batch, hi - lo), y.dtype)
        for j in range(n):
            wk = w[idx[j], lo:hi]
            for e in range(ptr[j], ptr[j + 1]):
                v = vals[e]
                ab = acc[rows[e]]
                for c in range(hi - lo):
                    ab[c] += v * wk[c]
        y[:, lo:hi] = acc


@njit(**_DEVICE)
def _needed_columns(a, idx):
    """idx[:n] the k whose activation is non-zero (NaN included) in any row of a; returns n and
    the count of non-zero activations. Reads a once."""
    zero = a.dtype.type(0)
    n = 0
    present = 0
    for k in range(a.shape[1]):
        hit = 0
        for b in range(a.shape[0]):
            if a[b, k] != zero:
                hit += 1
        if hit:
            idx[n] = k
            n += 1
            present += hit
    return n, present


def _blas_product(a2, w, y, idx, nk, gather: bool) -> bool:
    """y = a2 @ w by NumPy's BLAS, on all of w or (`gather`) on a2[:, needed] @ w[needed] (the
    gather is part of the call); True where y is all finite, which makes it the op's result (module
    docstring), False where the caller must compute it again.

    The needed rows are gathered a block at a time (`_gather_rows`: a quarter of the last-level
    cache) into one reused buffer, and each block's product added into y: gathered whole, a fresh
    copy of most of w cost a first touch of every page per call (the first probe call of a 256 MiB
    w took 1.1-2.1 s, the next ones 0.1-0.7 s against 0.07 s for BLAS on w), and it left the cache
    before BLAS read it."""
    with np.errstate(all="ignore"):                # a NaN or inf here is checked below
        if nk == a2.shape[1] or not gather:
            np.matmul(a2, w, out=y)
        elif nk == 0:
            y[...] = 0
        else:
            per = _gather_rows(w.shape[1], w.itemsize)
            block = _scratch("block", (min(per, nk), w.shape[1]), w.dtype)
            part = _scratch("part", y.shape, y.dtype) if nk > per else y
            for lo in range(0, nk, per):
                rows = idx[lo:min(lo + per, nk)]
                b = block[:rows.size]
                np.take(w, rows, axis=0, out=b)
                np.matmul(a2[:, rows], b, out=y if lo == 0 else part)
                if lo:
                    y += part
    return bool(np.isfinite(y).all())


GATHER_FRACTION = 4      # a gathered block of w is at most 1/4 of the last-level cache


def _gather_rows(n: int, itemsize: int) -> int:
    """Rows of w per gathered block: a quarter of the last-level cache, at least 8 rows."""
    return max(8, _llc_bytes() // GATHER_FRACTION // max(n * itemsize, 1))


_SCRATCH = threading.local()      # per thread: two threads' calls never share a buffer


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """A reused C-contiguous buffer of `shape` (the last one made of that name on this thread,
    grown when needed): the gather's block (a quarter of the LLC) and one batch of partial products
    stay allocated."""
    size = int(np.prod(shape))
    bufs = _SCRATCH.__dict__
    buf = bufs.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = bufs[name] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


METHOD = MethodChoice()   # read at every call, so tests can replace it


@register("sparse_matmul", "numba_cpu")
def sparse_matmul(a: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ w reading only the rows of w whose activation is non-zero. a: (batch, K) or (K,), w:
    (K, N), C-contiguous, of one float dtype (the registry has checked)."""
    a2, y = matmul_operands(a, w, out, np.empty)
    (batch, k), n = a2.shape, w.shape[1]
    if batch == 0 or n == 0:
        return matmul_result(a, y, out)
    if batch == 1:
        idx = np.empty((1, k), np.int64)
        val = np.empty((1, k), w.dtype)
        count = np.empty(1, np.int64)
        _nonzero_rows(a2, idx, val, count)
        nnz = int(count[0])
        parts = max(1, min(get_num_threads(), nnz // SPLITK_MIN_ROWS))
        args = (idx[0], val[0], nnz, w, y[0], np.empty((parts - 1, n), w.dtype))
        case = method_key(w.dtype, 1, k, n, nnz, nnz, w.itemsize, _llc_bytes())
        width = METHOD.known(case, ROWS)     # no callables built on the path of every call
        if width is None:
            width = METHOD.choose(case, {name: functools.partial(_gemv_splitk, *args, rows)
                                         for name, rows in ROWS.items()})
        _gemv_splitk(*args, ROWS[width])
    else:
        needed = np.empty(k, np.int64)
        nk, present = _needed_columns(a2, needed)

        def blas(gather: bool):
            if not _blas_product(a2, w, y, needed, nk, gather):
                _sparse_product(a2, w, y)

        run = {"sparse": lambda: _sparse_product(a2, w, y), "blas": lambda: blas(False),
               "blas_gather": lambda: blas(True)}
        case = method_key(w.dtype, batch, k, n, present, nk, w.itemsize, _llc_bytes())
        run[METHOD.choose(case, run)]()
    return matmul_result(a, y, out)


def _sparse_product(a2, w, y) -> None:
    """y = a2 @ w by the sparse method: `_present_by_k`, then `_gemm_columns`."""
    batch, k = a2.shape
    idx = np.empty(k, np.int64)
    ptr = np.empty(k + 1, np.int64)
    rows = np.empty(batch * k, np.int64)
    vals = np.empty(batch * k, w.dtype)
    nk = _present_by_k(a2, idx, ptr, rows, vals)
    _gemm_columns(idx, ptr, rows, vals, nk, w, y, _cols(y.shape[1], batch, w.itemsize))


_LLC: list[int] = []


def _llc_bytes() -> int:
    if not _LLC:
        _LLC.append(last_level_cache_bytes())
    return _LLC[0]


def _cols(n: int, batch: int, itemsize: int) -> int:
    """Column block of the batched kernel: at most COLS, its accumulator (batch x cols) within
    ACC_BYTES, and at least two blocks per thread where n allows."""
    threads = get_num_threads()
    cols = COLS
    while cols > 64 and (batch * cols * itemsize > ACC_BYTES or (n + cols - 1) // cols < 2 * threads):
        cols //= 2
    return cols
