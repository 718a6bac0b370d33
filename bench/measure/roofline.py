"""Bytes and flops per op, and the peak-bandwidth probes each run measures for itself.

Traffic is counted from the op's definition (kernels/ops/): every input read once, every
output written once, a packed mask 1 bit per element. It is the one place of truth for the
"reads 4 B + writes 4 B per element" comments above the kernels. Write-allocate traffic and
temporaries are not counted: a kernel that needs them shows a lower % of peak, as it should.

The peaks of a device are copies, which move exactly the bytes relu does, measured in the same run.
CPU memory peak: a multi-threaded copy of two 1 GiB arrays (a fixed size, beyond the LLC share of
any VM whatever size the OS reports for the host's cache), four ways, the fastest counts: numba
prange (LLVM makes it one memcpy per thread), glibc's memcpy called on one block per numba thread,
NumPy copies on one thread per core, and numba_cpu's streaming-store copy
(`kernels.backends.numba_cpu.stream_copy`: the kernels' own streaming store instruction). CPU cache peak:
glibc's memcpy on blocks of half the per-core L2, repeated inside each thread; a measured sweep
of the same copy over growing working sets says up to which working set it applies
(`cpu_cache_peak`). GPU: a device-to-device copy of at least 1 GiB, timed with CUDA events (no
cache peak: its inputs are made cold before every sample).
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from kernels import machine
from kernels.backends.numba_cpu import stream_copy
from kernels.machine import cache_sizes
from kernels.ops import OPS, mask_nbytes

from bench.measure import devices, timing

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
    """Useful flops of op on n elements (its spec's flops_per_element: kernels/ops/)."""
    return OPS[op].flops_per_element * n


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

MEMORY_ARRAY_BYTES = 2**30     # each array of the memory probe: beyond any LLC share a VM can hold
MEMORY_ARRAY_MIN_BYTES = 2**28  # ... unless the memory free now cannot hold two of them
CACHE_BLOCK_FALLBACK = 2**20   # per-core L2 when sysfs does not say (1 MiB: most x86 cores since 2017)
CACHE_CALL_BYTES = 4 * 2**20   # a cache-probe call copies at least this much (repeats its block):
                               # short, so that some calls run with no thread descheduled on a busy machine
SWEEP_MAX_BYTES = 2**30        # the largest working set of the boundary sweep
MEMORY_LIKE = 1.5              # a working set whose copy is at most this x the memory peak is "memory"
SWEEP_SAMPLING = timing.Sampling(min_samples=10, max_samples=100, budget_s=0.2, rel_tol=0.05, warmup_s=0.005)

_copy_kernel = None
_block_kernel = None


def _numba_copy():
    """A parallel copy compiled once: the plain loop a numba user writes. LLVM's loop-idiom pass
    turns each thread's chunk into one memcpy call (no loop of its own, no index checks)."""
    global _copy_kernel
    if _copy_kernel is None:
        @numba.njit(parallel=True, cache=True)
        def _copy_kernel_impl(src, dst):      # reads 4 B + writes 4 B per element (float32)
            for i in numba.prange(src.size):
                dst[i] = src[i]

        _copy_kernel = _copy_kernel_impl
    return _copy_kernel


def _glibc_blocks():
    """copy(src, dst, blocks, reps): glibc's memcpy itself on every numba thread, one contiguous
    block per thread. With reps > 1 each block goes back and forth (src -> dst, dst -> src, ...)
    inside the thread, so a block that fits in the core's cache is timed there and not the
    fork-join of one parallel call. Not cached on disk: the memcpy address is baked into the code."""
    global _block_kernel
    if _block_kernel is None:
        memcpy = ctypes.CDLL(None).memcpy
        memcpy.argtypes = [ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t]   # addresses as integers
        memcpy.restype = ctypes.c_size_t

        @numba.njit(parallel=True)
        def _blocks(src, dst, blocks, reps):      # reads + writes src.nbytes per rep
            per = src.nbytes // blocks
            for b in numba.prange(blocks):
                a = src.ctypes.data + b * per
                d = dst.ctypes.data + b * per
                for r in range(reps):
                    if r % 2 == 0:
                        memcpy(d, a, per)
                    else:
                        memcpy(a, d, per)

        _block_kernel = _blocks
    return _block_kernel


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
    return numba.get_num_threads()


def _streaming_copy():
    """numba_cpu's copy with streaming stores, on every numba thread (kernels/numba_cpu)."""
    return stream_copy


def memory_array_bytes() -> int:
    """Bytes of each array of the memory probe: MEMORY_ARRAY_BYTES, less on a machine whose free
    memory cannot hold the two arrays four times over (never below MEMORY_ARRAY_MIN_BYTES)."""
    free = devices.HostAdapter().free_bytes()
    if free is None or free >= 8 * MEMORY_ARRAY_BYTES:
        return MEMORY_ARRAY_BYTES
    return max(MEMORY_ARRAY_MIN_BYTES, 2 ** int(np.log2(max(free // 8, 1))))


def _timed(name: str, fn, args, moved: int, sampling: timing.Sampling) -> dict:
    t = timing.time_cpu(fn, args, {}, sampling)
    med = float(np.median(t.samples_s))
    return {"method": name, "median_s": med, "gbps": moved / med / 1e9, "samples_s": t.samples_s}


def _fastest(measured: list[dict], moved: int) -> dict:
    """The peak entry: the method with the best median, and `fastest_gbps`, the best single sample
    of any method (what the boundary sweep, which keeps fastest samples, is compared with)."""
    best = max(measured, key=lambda m: m["gbps"])
    fastest = max(moved / min(m["samples_s"]) / 1e9 for m in measured)
    return {"gbps": best["gbps"], "method": best["method"], "bytes": moved, "median_s": best["median_s"],
            "samples_s": best["samples_s"], "fastest_gbps": fastest, "measured": measured}


def cpu_copy_peak(sampling: timing.Sampling, nbytes: int | None = None, threads: int | None = None,
                  pools: CopyPools | None = None) -> dict:
    """Copy bandwidth of this machine's memory, in GB/s (1e9 bytes), counting read + write.

    Four copies of two `nbytes` arrays (default `memory_array_bytes()`, 1 GiB each: a fixed size,
    never scaled by a cache size the OS reports) are timed: numba prange, glibc's memcpy on every
    numba thread, numba with streaming stores, NumPy copyto on one thread per core. The fastest
    is the peak. Returns the schema's `peaks.cpu` entry (without its `cache` part: `cpu_cache_peak`).
    `pools`: the run's threads (else made and shut down here)."""
    if pools is None:
        own = CopyPools()
        try:
            return cpu_copy_peak(sampling, nbytes, threads, own)
        finally:
            own.close()
    threads = threads or machine.cpu_count()       # the cores this process may use, not the host's
    nbytes = nbytes or memory_array_bytes()
    n = nbytes // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros_like(src)
    nt = _numba_threads()
    glibc = _glibc_blocks()
    methods = {f"numba prange copy, {threads} threads": (_numba_copy(), (src, dst)),
               f"glibc memcpy, one block per numba thread, {nt} threads": (glibc, (src, dst, nt, 1)),
               f"numba streaming-store copy, {nt} threads": (_streaming_copy(), (src, dst)),
               f"NumPy copyto on {threads} threads": (pools.copy(threads), (src, dst))}
    measured = [_timed(name, fn, args, 2 * nbytes, sampling) for name, (fn, args) in methods.items()]
    return _fastest(measured, 2 * nbytes)


def l2_per_core_bytes() -> int:
    """The per-core L2 the OS lists (a per-core cache: a VM is not shown its host's), else 1 MiB."""
    return cache_sizes().get("L2") or CACHE_BLOCK_FALLBACK


def _block_copy(total: int, threads: int, sampling: timing.Sampling) -> dict:
    """glibc memcpy of `total` working-set bytes (src + dst) split over `threads` blocks, repeated
    inside each thread until a call moves CACHE_CALL_BYTES."""
    per = max(64, total // 2 // threads // 64 * 64)
    src = np.ones(per * threads // 4, dtype=np.float32)
    dst = np.zeros_like(src)
    reps = max(1, CACHE_CALL_BYTES // (2 * src.nbytes))
    r = _timed("", _glibc_blocks(), (src, dst, threads, reps), 2 * src.nbytes * reps, sampling)
    return dict(r, working_set_bytes=2 * src.nbytes, reps=reps)


def cpu_cache_peak(sampling: timing.Sampling, memory_fastest_gbps: float, threads: int | None = None,
                   l2_bytes: int | None = None, sweep: bool = True) -> dict:
    """The cache-resident copy peak, and the working set below which it applies.

    Peak: glibc's memcpy on every numba thread, each thread copying a block of half its core's L2
    (source + destination fill the L2) back and forth many times per call, so that the copy, not
    the fork-join, is timed; its fastest sample counts (`median_gbps` keeps the median).
    Boundary: a measured sweep of the same copy over working sets that double from twice the
    probe's (up to SWEEP_MAX_BYTES, or two memory-like sizes in a row), timed as the kernels are
    (the same arrays again and again). The cache peak applies below the
    smallest working set from which every larger one copies at no more than MEMORY_LIKE x
    `memory_fastest_gbps` (the memory probe's fastest sample), the memory peak from there on: the
    boundary is where this machine's caches stop helping, whatever size the OS reports for them.
    The sweep's figures use each size's fastest sample (a busy moment of a shared machine only
    slows a sample down). Returns the schema's `peaks.cpu.cache` entry."""
    threads = threads or _numba_threads()
    l2 = l2_bytes or l2_per_core_bytes()
    probe = _block_copy(l2 // 2 * threads, threads, sampling)
    name = f"glibc memcpy of {probe['working_set_bytes'] // threads // 1024} KiB per thread " \
           f"(half of L2), {threads} threads, {probe['reps']} times per call"
    out = _fastest([dict(probe, method=name)], probe["working_set_bytes"] * probe["reps"])
    # the cache peak is the fastest sample, not the median: its calls last microseconds, and on a
    # shared machine most of them meet a descheduled thread, which times the scheduler, not the cache
    out.update(gbps=out["fastest_gbps"], median_gbps=out["gbps"])
    out["working_set_bytes"] = probe["working_set_bytes"]
    points = []
    if sweep:
        total, memory_like = 2 * probe["working_set_bytes"], 0
        while total <= SWEEP_MAX_BYTES and memory_like < 2:     # two memory-like sizes in a row end it
            p = _block_copy(total, threads, SWEEP_SAMPLING)
            fastest = p["working_set_bytes"] * p["reps"] / min(p["samples_s"]) / 1e9
            points.append({"working_set_bytes": p["working_set_bytes"], "gbps": fastest})
            memory_like = memory_like + 1 if fastest <= MEMORY_LIKE * memory_fastest_gbps else 0
            total *= 2
    out["sweep"] = points
    out["applies_below_bytes"] = cache_boundary(points, memory_fastest_gbps, probe["working_set_bytes"])
    return out


def cache_boundary(points: list[dict], memory_gbps: float, fits_bytes: int) -> int:
    """The working set (bytes) from which the memory peak applies: the smallest swept size from
    which every larger one copies at <= MEMORY_LIKE x memory_gbps; twice the largest swept size when
    none does; 2 * fits_bytes (just above the cache probe's working set) without a sweep."""
    if not points:
        return 2 * fits_bytes
    points = sorted(points, key=lambda p: p["working_set_bytes"])
    boundary = 2 * points[-1]["working_set_bytes"]
    for p in reversed(points):
        if p["gbps"] > MEMORY_LIKE * memory_gbps:
            break
        boundary = p["working_set_bytes"]
    return boundary


def gpu_copy_peak(device, sampling: timing.Sampling, nbytes: int = 2**30) -> dict:
    """Device-to-device copy bandwidth in GB/s (read + write), >= 1 GiB, timed with CUDA events.
    `device` is the adapter (bench/measure/devices.py) of the array library to allocate with."""
    src, dst, copy = device.device_copy(nbytes)
    t = timing.time_gpu(copy, (src, dst), {}, sampling, device=device, flush=False)
    med = float(np.median(t.samples_s))
    what = f"{device.library} device-to-device copy of {nbytes / 2**30:.0f} GiB"
    return {"gbps": 2 * nbytes / med / 1e9, "method": what, "bytes": 2 * nbytes, "median_s": med,
            "samples_s": t.samples_s, "measured": [{"method": device.library, "median_s": med,
                                                    "gbps": 2 * nbytes / med / 1e9}]}


# ---------------------------------------------------------------------------------- sound peaks

FAR_OFF = 2.0      # probes of one level more than this factor apart: one of them met a busy moment


def level_probes(peak: dict, level: str) -> list[float]:
    """The GB/s of each probe of one level of a peaks entry: the memory probes (the best method of
    each, by `probe` number) or the cache probes (`repeats`, else the one cache peak)."""
    if level == "cache":
        cache = peak.get("cache") or {}
        return list(cache.get("repeats") or ([cache["gbps"]] if cache.get("gbps") else []))
    best: dict[int, float] = {}
    for m in peak.get("measured") or []:
        n = m.get("probe", 0)
        best[n] = max(best.get(n, 0.0), m.get("gbps") or 0.0)
    return list(best.values()) or ([peak["gbps"]] if peak.get("gbps") else [])


def peak_faults(peak: dict) -> list[str]:
    """What contradicts physics in a CPU peaks entry: a cache peak at or below the memory peak
    (a copy within the caches cannot be slower than one through them to memory), or a level whose
    fastest probe (the one that counts) has no other probe within FAR_OFF of it (a probe far from
    its own repeats: one of them met a busy moment, or a fluke). [] when sound."""
    faults = []
    cache = peak.get("cache") or {}
    if cache.get("gbps") and peak.get("gbps") and cache["gbps"] <= peak["gbps"]:
        faults.append(f"cache peak {cache['gbps']:.3g} GB/s at or below the memory peak {peak['gbps']:.3g} GB/s")
    for level in ("memory", "cache"):
        probes = sorted(level_probes(peak, level), reverse=True)
        if len(probes) > 1 and probes[1] * FAR_OFF < probes[0]:
            faults.append(f"the fastest {level} probe has no repeat within {FAR_OFF:g}x of it: "
                          + ", ".join(f"{g:.3g}" for g in probes) + " GB/s")
    return faults


def with_cache_repeat(peak: dict, again: dict) -> dict:
    """The peaks entry with one more cache probe (a `cpu_cache_peak` result without sweep): its
    GB/s joins `repeats`, and the faster probe is the cache peak (the boundary stays the sweep's)."""
    cache = dict(peak["cache"])
    repeats = list(cache.get("repeats") or [cache["gbps"]]) + [again["gbps"]]
    if again["gbps"] > cache["gbps"]:
        keep = ("sweep", "applies_below_bytes")
        cache = dict({k: v for k, v in again.items() if k not in keep}, **{k: cache[k] for k in keep if k in cache})
    cache["repeats"] = repeats
    return dict(peak, cache=cache)


def without_cache_level(peak: dict, why: str) -> dict:
    """The peaks entry whose cache peak stayed below the memory peak after probing again: the memory
    peak (the sound level) judges every case; the refused cache figure is kept as `refused_gbps`,
    the boundary too (the runner still knows where the cache ends), with a note."""
    cache = {k: v for k, v in (peak.get("cache") or {}).items() if k != "gbps"}
    cache["refused_gbps"] = (peak.get("cache") or {}).get("gbps")
    note = f"{why} after probing again: the memory peak judges every case"
    return dict(peak, cache=cache, notes=list(peak.get("notes") or []) + [note])
