"""The device adapters (bench/measure/devices.py), driven with stand-ins for their libraries: which adapter
a backend gets, the L2 flush (a read pass over a buffer zeroed once, or a memset), free memory
counting the libraries' pools and asked after every library gave its pool back, giving pooled
memory back (numba through its memory manager's queue), and out-of-memory errors recognised in
each library's words."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.measure import devices
from kernels import registry


def test_a_host_backend_gets_the_host_adapter_whatever_its_library():
    assert type(devices.adapter_for(registry.backend("numpy"))) is devices.HostAdapter
    torch_on_cpu = SimpleNamespace(name="torch", library="torch", device="cpu")
    assert type(devices.adapter_for(torch_on_cpu)) is devices.HostAdapter
    assert devices.HostAdapter().free_bytes() > 0


def test_a_gpu_backend_gets_its_library_adapter():
    pytest.importorskip("torch")
    a = devices.adapter_for(SimpleNamespace(name="torch", library="torch", device="gpu"))
    assert isinstance(a, devices.TorchAdapter) and a.device == "gpu"
    with pytest.raises(LookupError, match="no GPU adapter for array library 'jax'"):
        devices.adapter_for(SimpleNamespace(name="jaxy", library="jax", device="gpu"))


def test_every_gpu_library_of_the_registry_has_an_adapter():
    gpu_libraries = {b.library for b in registry.all_backends() if b.default_device == "gpu" or b.device == "gpu"}
    assert gpu_libraries and gpu_libraries <= set(devices.GPU_ADAPTERS)


class FakeBuffer:
    def __init__(self, n):
        self.n, self.nbytes, self.zeroed, self.read = n, n, 0, 0

    def fill(self, value):
        assert value == 0
        self.zeroed += 1


def fake_cupy(free=100, pool_total=60, pool_used=10, l2=2**20):
    calls = []
    pool = SimpleNamespace(total_bytes=lambda: pool_total, used_bytes=lambda: pool_used,
                           free_all_blocks=lambda: calls.append("free_all_blocks"))
    buffers = []

    def empty(n, dtype):
        buffers.append(FakeBuffer(n))
        return buffers[-1]

    def raw_kernel(code, name):
        assert code == devices.READ_CODE and name == "_l2_read_kernel"

        def launch(grid, block, args):
            buf, words, _sink = args
            assert words == buf.nbytes // 16
            buf.read += 1
        return launch
    cp = SimpleNamespace(
        uint8="uint8", uint32="uint32", empty=empty, get_default_memory_pool=lambda: pool, RawKernel=raw_kernel,
        cuda=SimpleNamespace(runtime=SimpleNamespace(memGetInfo=lambda: (free, 1000)),
                             Device=lambda: SimpleNamespace(attributes={"L2CacheSize": l2}),
                             get_current_stream=lambda: SimpleNamespace(synchronize=lambda: None)))
    return cp, calls, buffers


def test_cupy_free_memory_counts_what_its_pool_holds_unused():
    cp, calls, _ = fake_cupy(free=100, pool_total=60, pool_used=10)
    a = devices.CupyAdapter(cp)
    assert a.device_free_bytes() == 100 + 50
    assert a.free_bytes() == 100 + 50 and calls == ["free_all_blocks"]     # the pool given back first
    a.close()


def test_cupy_release_and_close_empty_the_pool():
    cp, calls, _ = fake_cupy()
    a = devices.CupyAdapter(cp)
    a.release()
    a.close()
    assert calls == ["free_all_blocks", "free_all_blocks"]


def test_flush_reads_a_buffer_zeroed_once_at_twice_the_l2_and_dropped_on_close():
    """The default flush: one memset when the buffer is made (outside any timed region), then a
    read pass per flush, so L2 holds clean lines."""
    cp, _, buffers = fake_cupy(l2=50 * 2**20)
    a = devices.CupyAdapter(cp)
    assert a.flush_mode == "read"
    a.flush()
    a.flush()
    assert len(buffers) == 2                        # the flush buffer and the read pass's sink
    buf = buffers[0]
    assert buf.n == 100 * 2**20 and buf.zeroed == 1 and buf.read == 2
    a.close()
    a.flush()
    assert len(buffers) == 4                        # a new run's flush makes its own buffer
    small, _, tiny = fake_cupy(l2=2**10)
    devices.CupyAdapter(small).flush()
    assert tiny[0].n == 2**25                       # never less than 32 MiB


def test_memset_flush_is_an_option(monkeypatch):
    cp, _, buffers = fake_cupy(l2=2**20)
    a = devices.CupyAdapter(cp, flush_mode="memset")
    a.flush()
    a.flush()
    assert len(buffers) == 1 and buffers[0].zeroed == 3 and buffers[0].read == 0
    monkeypatch.setenv(devices.FLUSH_ENV, "memset")
    assert devices.CupyAdapter(cp).flush_mode == "memset"
    monkeypatch.setenv(devices.FLUSH_ENV, "dirty")
    with pytest.raises(ValueError, match="ACTBENCH_L2_FLUSH='dirty'"):
        devices.CupyAdapter(cp)
    with pytest.raises(ValueError, match="flush_mode 'x'"):
        devices.CupyAdapter(cp, flush_mode="x")


def test_read_pass_kernel_compiles_with_nvrtc():
    from kernels import nvrtc
    assert not nvrtc.reason(), nvrtc.reason()
    for arch in ("sm_80", "sm_90"):
        r = nvrtc.compile_source(devices.READ_CODE, "read", arch)
        assert r.ok and "_l2_read_kernel" in r.kernels, r.log
        ptx = nvrtc.ptx_of(devices.READ_CODE, "read", arch)
        assert "ld.global" in ptx and ".v4" in ptx        # 16-byte loads


def fake_numba_context(calls, free=123):
    """numba-cuda's Context as 0.30 has it: device arrays' frees queue on memory_manager.deallocations,
    streams', events' and modules' on the context's own deallocations."""
    return SimpleNamespace(
        deallocations=SimpleNamespace(clear=lambda: calls.append("context queue")),
        memory_manager=SimpleNamespace(deallocations=SimpleNamespace(clear=lambda: calls.append("memory queue"))),
        get_memory_info=lambda: (free, 1000))


def test_numba_release_runs_the_pending_frees_of_device_arrays():
    calls = []
    a = devices.NumbaAdapter(SimpleNamespace(current_context=lambda: fake_numba_context(calls)))
    assert a.device_free_bytes() == 123
    a.release()
    assert "memory queue" in calls and "context queue" in calls
    calls.clear()
    assert a.free_bytes() == 123 and "memory queue" in calls          # freed before the query
    a.close()
    # an external memory manager (EMM plugin) may keep no queue of its own
    emm = SimpleNamespace(deallocations=SimpleNamespace(clear=lambda: None), memory_manager=SimpleNamespace(),
                          get_memory_info=lambda: (1, 2))
    b = devices.NumbaAdapter(SimpleNamespace(current_context=lambda: emm))
    b.release()
    b.close()


def test_free_memory_of_one_library_is_asked_after_every_library_gave_its_pool_back():
    """numba's (or torch's) free memory does not count CuPy's pooled blocks: before a GPU case's
    skip decision every open adapter releases its pool, so no "needs X GiB" skip is false."""
    cp, cupy_calls, _ = fake_cupy()
    numba_calls = []
    torch_calls = []
    torch_cuda = SimpleNamespace(mem_get_info=lambda: (100, 1000), memory_reserved=lambda: 0,
                                 memory_allocated=lambda: 0, empty_cache=lambda: torch_calls.append("empty_cache"))
    adapters = [devices.CupyAdapter(cp), devices.TorchAdapter(SimpleNamespace(cuda=torch_cuda)),
                devices.NumbaAdapter(SimpleNamespace(current_context=lambda: fake_numba_context(numba_calls)))]
    adapters[2].free_bytes()
    assert cupy_calls == ["free_all_blocks"] and torch_calls == ["empty_cache"] and "memory queue" in numba_calls
    adapters[0].close()                                   # a closed adapter is left alone
    cupy_calls.clear()
    adapters[1].free_bytes()
    assert cupy_calls == [] and torch_calls == ["empty_cache"] * 2
    for a in adapters[1:]:
        a.close()


def test_out_of_memory_in_each_library_s_words():
    assert devices.is_out_of_memory(MemoryError("host"))
    assert not devices.is_out_of_memory(RuntimeError("a kernel bug"))
    assert not devices.is_out_of_memory(ValueError("CUDA_ERROR_OUT_OF_MEMORY"))   # words alone are not enough
    torch = pytest.importorskip("torch")
    assert devices.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))


def test_numba_out_of_memory_is_its_driver_error_with_that_code():
    from numba.cuda.cudadrv import driver
    assert devices.is_out_of_memory(driver.CudaAPIError(2, "Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY"))
    assert not devices.is_out_of_memory(driver.CudaAPIError(700, "Call to cuMemcpy results in CUDA_ERROR_ILLEGAL_ADDRESS"))


def test_cupy_out_of_memory():
    import cupy       # the dev extra installs it (it imports without a GPU): a missing one fails
    assert devices.is_out_of_memory(cupy.cuda.memory.OutOfMemoryError(2**31, 2**30))


# The spin kernels compile with each library's own compiler, no GPU needed (a GPU runs them in
# make gpu-check): CUDA C through NVRTC as CuPy would, numba's through numba-cuda's NVVM.

def test_cupy_spin_kernel_compiles_with_nvrtc():
    from kernels import nvrtc
    assert not nvrtc.reason(), nvrtc.reason()     # the dev extra installs NVRTC: fail, not skip
    for arch in ("sm_80", "sm_90"):
        r = nvrtc.compile_source(devices.SPIN_CODE, "spin", arch)
        assert r.ok and not r.warnings and "_spin_kernel" in r.kernels, r.log


def test_numba_spin_and_read_kernels_compile_to_ptx():
    """In a fresh process without the simulator: numba-cuda's real target resolves nanosleep, and
    the read pass loads the flush buffer."""
    import os
    import subprocess
    import sys
    code = ("from numba import cuda\nfrom bench.measure.devices import NumbaAdapter\n"
            "a = NumbaAdapter(cuda)\n"
            "ptx, _ = cuda.compile_ptx(a.spin_kernel().py_func, 'void(int64)', cc=(8, 0))\n"
            "assert 'nanosleep' in ptx, ptx\n"
            "ptx, _ = cuda.compile_ptx(a.read_kernel().py_func, 'void(uint64[::1], uint64[::1])', cc=(8, 0))\n"
            "assert 'ld.global' in ptx, ptx\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=False)
    if p.returncode and "NVVM" in p.stderr:
        pytest.skip(f"numba-cuda cannot find NVVM here: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr


def test_torch_spin_is_there():
    torch = pytest.importorskip("torch")
    assert callable(torch.cuda._sleep)
