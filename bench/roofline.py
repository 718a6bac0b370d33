"""Bytes and flops per op, and the peak-bandwidth probes each run measures for itself.

Traffic is counted from the op's definition (kernels/reference.py): every input read once, every
output written once, a packed mask 1 bit per element. It is the one place of truth for the
"reads 4 B + writes 4 B per element" comments above the kernels. Write-allocate traffic and
temporaries are not counted: a kernel that needs them shows a lower % of peak, as it should.

The peak of a device is a copy, which moves exactly the bytes relu does, measured in the same run:
CPU: a multi-threaded copy of at least 8x the last-level cache, three ways, the fastest counts:
numba prange (LLVM makes it one memcpy per thread), NumPy copies on one thread per core, and
numba_cpu's streaming-store copy (`kernels.numba_cpu.stream_copy`: non-temporal stores, no read
for ownership of the destination; the same store instruction as the kernels' streaming path, so a
kernel's % of peak compares like with like). GPU: a device-to-device copy of at least 1 GiB, timed
with CUDA events.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kernels.machine import last_level_cache_bytes as llc_bytes
from kernels.reference import OPS, mask_nbytes

from . import timing

# Arithmetic per element from each definition, a transcendental (exp, tanh) counted as one.
FLOPS_PER_ELEMENT = {
    "relu": 1,              # max(x, 0)
    "relu_grad": 1,         # x > 0 ? dy : 0
    "sigmoid": 3,           # exp(-x), 1 + e, 1 / d
    "sigmoid_grad": 3,      # dy * y, 1 - y, product
    "tanh": 1,              # tanh(x)
    "tanh_grad": 3,         # y * y, 1 - y2, dy * t
    "leaky_relu": 2,        # slope * x, select
    "leaky_relu_grad": 2,   # slope * dy, select
    "relu_mask": 2,         # max(x, 0), x > 0
    "relu_grad_mask": 1,    # bit ? dy : 0
}


def traffic(op: str, n: int, dtype) -> int:
    """Bytes an ideal kernel moves for op on n elements: each input read once, each output
    written once (a packed mask is (n + 7) // 8 bytes)."""
    spec = OPS[op]
    item = np.dtype(dtype).itemsize
    arrays = list(spec.inputs) + list(spec.outputs)
    return sum(mask_nbytes(n) if a == "mask" else n * item for a in arrays)


def bytes_per_element(op: str, dtype) -> float:
    """The figure the kernel comments quote, e.g. relu float32: 8.0, relu_grad_mask: 8.125."""
    return traffic(op, 8 * 2**20, dtype) / (8 * 2**20)


def flops(op: str, n: int) -> int:
    return FLOPS_PER_ELEMENT[op] * n


def matmul_traffic(needed_rows: float, batch: int, k: int, n: int, dtype) -> int:
    """Bytes a sparse-aware sparse_matmul must move: the rows of w of activations present in any
    row of the batch (needed_rows x N), a once, y once. A dense kernel reads all K rows of w;
    measured against this count, its GB/s is that of the weights the product actually needed."""
    item = np.dtype(dtype).itemsize
    return int(needed_rows * n * item + batch * k * item + batch * n * item)


def matmul_flops(present: float, n: int) -> int:
    """Useful flops of sparse_matmul: a multiply and an add per present activation and column."""
    return int(2 * present * n)


# ---------------------------------------------------------------------------------------- peaks

_copy_kernel = None


def _numba_copy():
    """A parallel copy compiled once: the plain loop a numba user writes. LLVM's loop-idiom pass
    turns each thread's chunk into one memcpy call (no loop of its own, no index checks)."""
    global _copy_kernel
    if _copy_kernel is None:
        import numba

        @numba.njit(parallel=True, cache=True)
        def _copy_kernel_impl(src, dst):      # reads 4 B + writes 4 B per element (float32)
            for i in numba.prange(src.size):
                dst[i] = src[i]

        _copy_kernel = _copy_kernel_impl
    return _copy_kernel


class CopyPools:
    """The threads of the NumPy copy probe, kept for every probe of one run and shut down by `close()`."""

    def __init__(self):
        self._pools: dict[int, ThreadPoolExecutor] = {}

    def copy(self, threads: int):
        """A copy(src, dst) that splits the arrays over `threads` threads of NumPy's copyto."""
        if threads not in self._pools:
            self._pools[threads] = ThreadPoolExecutor(threads)
        pool = self._pools[threads]

        def copy(src, dst):
            bounds = np.linspace(0, src.size, threads + 1).astype(np.int64)
            parts = [(src[a:b], dst[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            for f in [pool.submit(np.copyto, d, s) for s, d in parts]:   # NumPy releases the GIL
                f.result()
        return copy

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown()
        self._pools.clear()


def _numba_threads() -> int:
    import numba
    return numba.get_num_threads()


def _streaming_copy():
    """numba_cpu's copy with streaming stores, on every numba thread (kernels/numba_cpu.py)."""
    from kernels.numba_cpu import stream_copy
    return stream_copy


def cpu_copy_peak(sampling: timing.Sampling, nbytes: int | None = None, threads: int | None = None,
                  pools: CopyPools | None = None) -> dict:
    """Copy bandwidth of this machine's memory, in GB/s (1e9 bytes), counting read + write.

    Three copies of an array >= 8x the last-level cache are timed (numba prange; numba with
    streaming stores; NumPy copyto on one thread per core) and the fastest is the peak. Returns
    the schema's `peaks.cpu` entry. `pools`: the run's threads (else made and shut down here)."""
    if pools is None:
        own = CopyPools()
        try:
            return cpu_copy_peak(sampling, nbytes, threads, own)
        finally:
            own.close()
    threads = threads or os.cpu_count() or 1
    nbytes = nbytes or max(8 * llc_bytes(), 256 * 2**20)
    n = nbytes // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros_like(src)
    methods = {f"numba prange copy, {threads} threads": _numba_copy(),
               f"numba streaming-store copy, {_numba_threads()} threads": _streaming_copy(),
               f"NumPy copyto on {threads} threads": pools.copy(threads)}
    measured = []
    for name, fn in methods.items():
        t = timing.time_cpu(fn, (src, dst), {}, sampling)
        med = float(np.median(t.samples_s))
        measured.append({"method": name, "median_s": med, "gbps": 2 * nbytes / med / 1e9,
                         "samples_s": t.samples_s})
    best = max(measured, key=lambda m: m["gbps"])
    return {"gbps": best["gbps"], "method": best["method"], "bytes": 2 * nbytes,
            "median_s": best["median_s"], "samples_s": best["samples_s"], "measured": measured}


def gpu_copy_peak(device, sampling: timing.Sampling, nbytes: int = 2**30) -> dict:
    """Device-to-device copy bandwidth in GB/s (read + write), >= 1 GiB, timed with CUDA events.
    `device` is the adapter (bench/devices.py) of the array library to allocate with."""
    src, dst, copy = device.device_copy(nbytes)
    t = timing.time_gpu(copy, (src, dst), {}, sampling, device=device, flush=False)
    med = float(np.median(t.samples_s))
    what = f"{device.library} device-to-device copy of {nbytes / 2**30:.0f} GiB"
    return {"gbps": 2 * nbytes / med / 1e9, "method": what, "bytes": 2 * nbytes, "median_s": med,
            "samples_s": t.samples_s, "measured": [{"method": device.library, "median_s": med,
                                                    "gbps": 2 * nbytes / med / 1e9}]}
