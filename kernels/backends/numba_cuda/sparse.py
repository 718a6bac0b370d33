"""sparse_matmul with numba.cuda (the numba_cuda backend): a row-skipping split-K kernel.

One thread per output column, one block per (column block, K slice, batch row). The block walks
its K slice; for each activation it reads a[b, k] (one address for the whole block: a broadcast),
and only when it is non-zero do the threads read their weights w[k, c], consecutive columns, so
each warp's read of a row is coalesced. The condition is the same for every thread of the block:
skipping a row costs no divergence, and a zero activation's row is never read (no 0 * inf). Each
thread accumulates in the dtype (float32 for float32), then adds its sum into y with an atomic
add (y zeroed first) when K is split, or stores it when it is not.

numba.cuda is imported on first use. The compiled kernels and the SM count are kept in
kernels/backends/numba_cuda/elementwise.py's RUNTIME (closing it drops them), which also says whether the backend runs on
numba-cuda's CPU simulator (NUMBA_ENABLE_CUDASIM=1: checked, never timed), with blocks of one warp.
"""

from __future__ import annotations

import math

from kernels.backends.numba_cuda.elementwise import RUNTIME
from kernels.ops import matmul_operands, matmul_result
from kernels.registry import register

THREADS = 256          # threads per block (columns per block) on a GPU
SIM_THREADS = 32       # on the simulator: one warp per block, each thread a Python thread
BLOCKS_PER_SM = 8      # blocks the split aims at per SM


def plan(batch: int, k: int, n: int, *, threads: int, sm_count: int) -> tuple[int, int, int]:
    """(column blocks, K slices, activations per slice) so that about BLOCKS_PER_SM blocks per SM
    have work, with as few slices as that needs."""
    ncol = max(1, math.ceil(n / threads))
    want = max(1, math.ceil(sm_count * BLOCKS_PER_SM / (ncol * max(batch, 1))))
    splits = max(1, min(want, k))
    kchunk = max(1, math.ceil(k / splits))
    return ncol, max(1, math.ceil(k / kchunk)), kchunk


cuda = None   # numba.cuda, bound on first use: kernels name it as a global, which the simulator swaps


# reads 4 B per weight of a present row (float32; 8 in float64) + a once per block, writes y once
# (atomic adds: once per K slice); see bench/measure/roofline.py
def _sparse_matmul_kernel(a, w, y, ncol, splits, kchunk, atomic):
    k, n = w.shape
    blk = cuda.blockIdx.x
    cb = blk % ncol
    rest = blk // ncol
    split = rest % splits
    b = rest // splits
    c = cb * cuda.blockDim.x + cuda.threadIdx.x
    k0 = split * kchunk
    k1 = min(k0 + kchunk, k)
    zero = w.dtype.type(0)
    acc = zero
    for kk in range(k0, k1):
        v = a[b, kk]
        if v != zero and c < n:              # v is the same for the whole block: no divergence
            acc += v * w[kk, c]
    if c < n:
        if atomic:
            cuda.atomic.add(y, (b, c), acc)
        else:
            y[b, c] = acc


def _zero_kernel(y):                         # y flat
    i = cuda.grid(1)
    if i < y.shape[0]:
        y[i] = 0


def _build(numba_cuda):
    """(sparse_matmul, zero) as numba.cuda kernels, compiled on first launch per dtype."""
    global cuda
    cuda = numba_cuda
    return cuda.jit(_sparse_matmul_kernel), cuda.jit(_zero_kernel)


@register("sparse_matmul", "numba_cuda")
def sparse_matmul(a, w, out=None):
    """a @ w on numba device arrays (C-contiguous, one float dtype); a is (batch, K) or (K,)."""
    a2, y = matmul_operands(a, w, out, RUNTIME.cuda.device_array)
    (batch, k), n = a2.shape, w.shape[1]
    if batch and n:
        sim = RUNTIME.simulated
        threads = SIM_THREADS if sim else THREADS
        sms = 1 if sim else RUNTIME.sm_count(RUNTIME.cuda.get_current_device().id)
        ncol, splits, kchunk = plan(batch, k, n, threads=threads, sm_count=sms)
        matmul, zero = RUNTIME.compiled(("sparse_matmul", ""), _build)
        atomic = splits > 1
        if atomic:
            zero[math.ceil(batch * n / threads), threads](y.reshape(batch * n))
        matmul[ncol * splits * batch, threads](a2, w, y, ncol, splits, kchunk, atomic)
    return matmul_result(a, y, out)
