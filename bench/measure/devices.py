"""One adapter per array library: everything the harness does differently on NumPy, CuPy, numba and torch.

Timing a GPU kernel needs events, an L2 flush, a short spin, a synchronisation; a run needs the
free memory, the device's description, a device-to-device copy for the peak, and a way to give
pooled memory back between sizes. Each library spells these differently; its adapter holds the
spelling, and nothing else in bench/ branches on a library's name. `adapter_for(backend)` picks one
by the Backend record's `library` (a backend running on the host gets the host adapter, whatever
its library). The shape follows the device interface Triton's `do_bench` works through (events,
synchronize, an empty cache buffer to clear), one class per library instead of one per driver.

An adapter imports its library on first use, never at import, and keeps what it allocates (the
flush buffer, the spin kernel) until `close()`: a run holds its adapters in its RunScope.

The L2 flush (`flush_mode`): "read" (the default) zeroes a buffer of 2x L2 once, then each flush
reads it whole, so the kernel timed next finds L2 full of clean lines of another buffer: nothing of
its inputs, and nothing to write back. "memset" writes the buffer at each flush, as NVBench and
Triton's do_bench do: up to 2x L2 of dirty lines, written back to memory while the next kernel runs
and charged to it. ACTBENCH_L2_FLUSH=memset selects it, to show the difference on a GPU.

Pools: a library's free memory does not count what another library keeps pooled (CuPy's memory
pool, torch's caching allocator, numba's pending frees), so `free_bytes` first gives back the pools
of every open GPU adapter: each GPU case's skip decision sees what an allocation can get.
"""

from __future__ import annotations

import os
import sys
import weakref

import numpy as np

SPIN_CODE = r"""
extern "C" __global__ void _spin_kernel(unsigned long long ns) {
    // keeps the stream busy for ns nanoseconds of the global timer, touching no memory
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}
"""


# Reads a buffer of n 16-byte words and writes nothing (the store is never taken: the buffer is
# zeros), so every line it leaves in L2 is clean.
READ_CODE = r"""
extern "C" __global__ void _l2_read_kernel(const uint4* __restrict__ p, long long n, unsigned* sink) {
    unsigned acc = 0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const uint4 v = p[i];
        acc |= v.x | v.y | v.z | v.w;
    }
    if (acc == 0xffffffffu) sink[0] = acc;
}
"""
READ_GRID, READ_BLOCK = 1024, 256     # a grid-stride pass: enough blocks to fill any GPU's SMs
FLUSH_MODES = ("read", "memset")
FLUSH_ENV = "ACTBENCH_L2_FLUSH"

_OPEN: weakref.WeakSet = weakref.WeakSet()     # the GPU adapters not closed yet, every library's


def release_pools() -> None:
    """Give back what every open GPU adapter's library keeps pooled."""
    for adapter in list(_OPEN):
        adapter.release()


def flush_mode_from_env() -> str:
    mode = os.environ.get(FLUSH_ENV, "read") or "read"
    if mode not in FLUSH_MODES:
        raise ValueError(f"{FLUSH_ENV}={mode!r}: expected one of {', '.join(FLUSH_MODES)}")
    return mode


class HostAdapter:
    """The host: NumPy arrays (and torch on the CPU). No events: CPU timing uses the host clock."""

    library = "numpy"
    device = "cpu"

    def synchronize(self) -> None:
        pass

    def free_bytes(self) -> int | None:
        """Memory the run can still allocate, in bytes (None when unknown)."""
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):    # no sysconf (Windows) or no such name
            return None

    def release(self) -> None:
        """Give memory the library keeps pooled back to the device (between sizes)."""

    def device_info(self) -> dict | None:
        return None

    @staticmethod
    def is_out_of_memory(exc: BaseException) -> bool:
        return isinstance(exc, MemoryError)

    def close(self) -> None:
        pass


class GpuAdapter(HostAdapter):
    """What every CUDA library shares: the L2 flush buffer, kept until close(). A subclass spells
    events, allocation, memset, the spin and the device queries in its library's words."""

    device = "gpu"

    def __init__(self, lib=None, flush_mode: str | None = None):
        self.lib = self.load() if lib is None else lib     # the library module (a stand-in in tests)
        self.flush_mode = flush_mode or flush_mode_from_env()
        if self.flush_mode not in FLUSH_MODES:
            raise ValueError(f"flush_mode {self.flush_mode!r}: expected one of {', '.join(FLUSH_MODES)}")
        self._flush_buf = None
        self._spin = None                                  # the spin kernel, built on first use
        self._read = None                                  # the read-pass kernel, built on first use
        self._sink = None                                  # where it would write (it never does)
        _OPEN.add(self)

    # ---- spelled by each library
    @staticmethod
    def load():
        """Import the library (on first use of the adapter, never at import)."""
        raise NotImplementedError

    def events(self) -> tuple:
        """A (start, end) pair of timing events."""
        raise NotImplementedError

    def record(self, event) -> None:
        """Record `event` on the stream the kernels launch on."""
        raise NotImplementedError

    def elapsed_s(self, start, end) -> float:
        """Seconds between two recorded events, once `end` has completed."""
        raise NotImplementedError

    def spin(self, seconds: float) -> None:
        """Keep the stream busy for about `seconds` without touching memory (NVBench's blocking
        kernel): the host prepares the next launch while the GPU is still busy."""
        raise NotImplementedError

    def l2_bytes(self) -> int:
        raise NotImplementedError

    def empty_bytes(self, n: int):
        """An uninitialised device buffer of n bytes."""
        raise NotImplementedError

    def zero(self, buf) -> None:
        """Write zeros over buf, on the launching stream."""
        raise NotImplementedError

    def device_copy(self, nbytes: int) -> tuple:
        """(src, dst, copy): two device buffers of nbytes and copy(src, dst), device to device."""
        raise NotImplementedError

    def read_pass(self, buf) -> None:
        """Read all of buf (a multiple of 16 bytes) on the launching stream, writing nothing."""
        raise NotImplementedError

    def device_free_bytes(self) -> int:
        """Free device memory as this library sees it, its own pool's unused part included."""
        raise NotImplementedError

    # ---- shared
    def flush(self) -> None:
        """Fill L2 with 2x its size of another buffer on the launching stream, so the next kernel
        starts cold: read (clean lines; the buffer zeroed once, when made) or memset (dirty lines)."""
        if self._flush_buf is None:
            self._flush_buf = self.empty_bytes(max(2 * self.l2_bytes(), 2**25))
            self.zero(self._flush_buf)
            if self.flush_mode == "read":
                self.synchronize()                 # the zeros written back before any timing
        if self.flush_mode == "read":
            self.read_pass(self._flush_buf)
        else:
            self.zero(self._flush_buf)

    def free_bytes(self) -> int:
        """Free device memory, after every open GPU adapter's library gave its pool back (another
        library's pooled blocks are not free to this one)."""
        release_pools()
        return self.device_free_bytes()

    def close(self) -> None:
        self._flush_buf = self._spin = self._read = self._sink = None
        self.release()
        _OPEN.discard(self)


class CupyAdapter(GpuAdapter):
    library = "cupy"

    @staticmethod
    def load():
        import cupy
        return cupy

    def events(self):
        return self.lib.cuda.Event(), self.lib.cuda.Event()

    def record(self, event):
        event.record()

    def elapsed_s(self, start, end):
        end.synchronize()
        return self.lib.cuda.get_elapsed_time(start, end) / 1e3

    def spin(self, seconds):
        if self._spin is None:
            self._spin = self.lib.RawKernel(SPIN_CODE, "_spin_kernel")
        self._spin((1,), (1,), (np.uint64(seconds * 1e9),))

    def synchronize(self):
        self.lib.cuda.get_current_stream().synchronize()

    def l2_bytes(self):
        return int(self.lib.cuda.Device().attributes["L2CacheSize"])

    def empty_bytes(self, n):
        return self.lib.empty(n, dtype=self.lib.uint8)

    def zero(self, buf):
        buf.fill(0)

    def device_copy(self, nbytes):
        src, dst = self.lib.ones(nbytes, dtype=self.lib.uint8), self.lib.empty(nbytes, dtype=self.lib.uint8)
        return src, dst, lambda s, d: d.data.copy_from_device_async(s.data, s.nbytes)

    def read_pass(self, buf):
        if self._read is None:
            self._read = self.lib.RawKernel(READ_CODE, "_l2_read_kernel")
            self._sink = self.lib.empty(1, dtype=self.lib.uint32)
        self._read((READ_GRID,), (READ_BLOCK,), (buf, np.int64(buf.nbytes // 16), self._sink))

    def device_free_bytes(self):
        """Free device memory plus what CuPy's pool holds unused (the pool hands it out first)."""
        pool = self.lib.get_default_memory_pool()
        return int(self.lib.cuda.runtime.memGetInfo()[0]) + int(pool.total_bytes() - pool.used_bytes())

    def release(self):
        self.lib.get_default_memory_pool().free_all_blocks()

    def device_info(self):
        rt = self.lib.cuda.runtime
        props = rt.getDeviceProperties(self.lib.cuda.Device().id)
        name = props["name"]
        return {"name": name.decode() if isinstance(name, bytes) else name,
                "memory_bytes": int(props["totalGlobalMem"]), "driver": rt.driverGetVersion(),
                "cuda_runtime": rt.runtimeGetVersion(), "compute_capability": f"{props['major']}.{props['minor']}",
                "l2_bytes": int(props["l2CacheSize"]), "sm_count": int(props["multiProcessorCount"])}

    @staticmethod
    def is_out_of_memory(exc):
        cupy = sys.modules.get("cupy")           # never import a library just to ask
        return cupy is not None and isinstance(exc, cupy.cuda.memory.OutOfMemoryError)


class NumbaAdapter(GpuAdapter):
    library = "numba"
    SPIN_STEP_NS = 1000                          # one nanosleep; the hardware sleeps 0 to 2x this

    @staticmethod
    def load():
        from numba import cuda
        return cuda

    def events(self):
        return self.lib.event(timing=True), self.lib.event(timing=True)

    def record(self, event):
        event.record(stream=0)

    def elapsed_s(self, start, end):
        end.synchronize()
        return self.lib.event_elapsed_time(start, end) / 1e3

    def spin_kernel(self):
        """A one-thread kernel that sleeps `steps` times SPIN_STEP_NS (numba has no global timer)."""
        if self._spin is None:
            cuda, step = self.lib, self.SPIN_STEP_NS

            @cuda.jit
            def _spin_kernel(steps):
                for _ in range(steps):
                    cuda.nanosleep(step)
            self._spin = _spin_kernel
        return self._spin

    def spin(self, seconds):
        self.spin_kernel()[1, 1](max(1, int(seconds * 1e9 / self.SPIN_STEP_NS)))

    def synchronize(self):
        self.lib.synchronize()

    def l2_bytes(self):
        return int(self.lib.get_current_device().L2_CACHE_SIZE)

    def empty_bytes(self, n):
        return self.lib.device_array(n, dtype=np.uint8)

    def zero(self, buf):
        from numba.cuda.cudadrv import driver
        driver.device_memset(buf, 0, buf.nbytes, stream=0)

    def device_copy(self, nbytes):
        src, dst = self.lib.device_array(nbytes, dtype=np.uint8), self.lib.device_array(nbytes, dtype=np.uint8)
        return src, dst, lambda s, d: d.copy_to_device(s)

    def read_kernel(self):
        """READ_CODE's pass in numba: a grid-stride read of 8-byte words, a store never taken."""
        if self._read is None:
            cuda = self.lib

            @cuda.jit
            def _l2_read_kernel(words, sink):
                acc = np.uint64(0)
                for i in range(cuda.grid(1), words.size, cuda.gridsize(1)):
                    acc |= words[i]
                if acc == np.uint64(0xFFFFFFFFFFFFFFFF):
                    sink[0] = acc
            self._read = _l2_read_kernel
        return self._read

    def read_pass(self, buf):
        if self._sink is None:
            self._sink = self.lib.device_array(1, dtype=np.uint64)
        self.read_kernel()[READ_GRID, READ_BLOCK](buf.view(np.uint64), self._sink)

    def device_free_bytes(self):
        return int(self.lib.current_context().get_memory_info()[0])

    def release(self):
        """numba frees lazily: run the pending frees now. Device arrays queue theirs on the memory
        manager's queue (ctx.memory_manager.deallocations); the context's own queue holds streams,
        events and modules. An external memory manager (EMM plugin) may keep no queue, and the
        simulator's context keeps neither."""
        ctx = self.lib.current_context()
        for pending in (getattr(getattr(ctx, "memory_manager", None), "deallocations", None),
                        getattr(ctx, "deallocations", None)):
            if pending is not None:
                pending.clear()

    def device_info(self):
        dev = self.lib.get_current_device()
        return {"name": dev.name.decode() if isinstance(dev.name, bytes) else dev.name,
                "memory_bytes": int(self.lib.current_context().get_memory_info()[1]),
                "driver": self.lib.cudadrv.driver.driver.get_version(),
                "cuda_runtime": None, "compute_capability": "%d.%d" % dev.compute_capability,
                "l2_bytes": int(dev.L2_CACHE_SIZE), "sm_count": int(dev.MULTIPROCESSOR_COUNT)}

    @staticmethod
    def is_out_of_memory(exc):
        driver = sys.modules.get("numba.cuda.cudadrv.driver")
        return (driver is not None and isinstance(exc, driver.CudaAPIError)
                and "OUT_OF_MEMORY" in str(exc).upper())


class TorchAdapter(GpuAdapter):
    library = "torch"
    SPIN_CYCLES_PER_NS = 2.0                     # torch.cuda._sleep counts cycles: assume <= 2 GHz

    @staticmethod
    def load():
        import torch
        return torch

    def events(self):
        ev = self.lib.cuda.Event
        return ev(enable_timing=True), ev(enable_timing=True)

    def record(self, event):
        event.record()

    def elapsed_s(self, start, end):
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def spin(self, seconds):
        self.lib.cuda._sleep(int(seconds * 1e9 * self.SPIN_CYCLES_PER_NS))

    def synchronize(self):
        self.lib.cuda.synchronize()

    def l2_bytes(self):
        return int(self.lib.cuda.get_device_properties(0).L2_cache_size)

    def empty_bytes(self, n):
        return self.lib.empty(n, dtype=self.lib.uint8, device="cuda")

    def zero(self, buf):
        buf.zero_()

    def device_copy(self, nbytes):
        src = self.lib.ones(nbytes, dtype=self.lib.uint8, device="cuda")
        return src, self.lib.empty_like(src), lambda s, d: d.copy_(s)

    def read_pass(self, buf):
        """torch's own max reduction over the buffer as 8-byte words: reads it all, writes one word."""
        if self._sink is None:
            self._sink = self.lib.empty((), dtype=self.lib.int64, device="cuda")
        self.lib.amax(buf.view(self.lib.int64), dim=0, out=self._sink)

    def device_free_bytes(self):
        """Free device memory plus what torch's caching allocator holds unused."""
        cuda = self.lib.cuda
        return int(cuda.mem_get_info()[0]) + int(cuda.memory_reserved() - cuda.memory_allocated())

    def release(self):
        self.lib.cuda.empty_cache()

    def device_info(self):
        p = self.lib.cuda.get_device_properties(0)
        return {"name": p.name, "memory_bytes": int(p.total_memory), "driver": None,
                "cuda_runtime": self.lib.version.cuda, "compute_capability": f"{p.major}.{p.minor}",
                "l2_bytes": int(p.L2_cache_size), "sm_count": int(p.multi_processor_count)}

    @staticmethod
    def is_out_of_memory(exc):
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


GPU_ADAPTERS: dict[str, type[GpuAdapter]] = {a.library: a for a in (CupyAdapter, NumbaAdapter, TorchAdapter)}


def adapter_for(backend) -> HostAdapter:
    """A new adapter for `backend` (a kernels.registry.Backend): the host's when it runs on the
    CPU, else its library's."""
    if backend.device == "cpu":
        return HostAdapter()
    if backend.library not in GPU_ADAPTERS:
        raise LookupError(f"no GPU adapter for array library {backend.library!r} (backend {backend.name}); "
                          f"known: {', '.join(GPU_ADAPTERS)}")
    return GPU_ADAPTERS[backend.library]()


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether exc is an out-of-memory error, in the words of any array library already imported."""
    return HostAdapter.is_out_of_memory(exc) or any(a.is_out_of_memory(exc) for a in GPU_ADAPTERS.values())
