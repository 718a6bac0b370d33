"""The device adapters (bench/devices.py), driven with stand-ins for their libraries: which adapter
a backend gets, the L2 flush buffer, free memory counting the libraries' pools, giving pooled
memory back, and out-of-memory errors recognised in each library's words."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import devices
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
        self.n, self.zeroed = n, 0

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
    cp = SimpleNamespace(
        uint8="uint8", empty=empty, get_default_memory_pool=lambda: pool,
        cuda=SimpleNamespace(runtime=SimpleNamespace(memGetInfo=lambda: (free, 1000)),
                             Device=lambda: SimpleNamespace(attributes={"L2CacheSize": l2})))
    return cp, calls, buffers


def test_cupy_free_memory_counts_what_its_pool_holds_unused():
    cp, _, _ = fake_cupy(free=100, pool_total=60, pool_used=10)
    assert devices.CupyAdapter(cp).free_bytes() == 100 + 50


def test_cupy_release_and_close_empty_the_pool():
    cp, calls, _ = fake_cupy()
    a = devices.CupyAdapter(cp)
    a.release()
    a.close()
    assert calls == ["free_all_blocks", "free_all_blocks"]


def test_flush_buffer_is_made_once_at_twice_the_l2_and_dropped_on_close():
    cp, _, buffers = fake_cupy(l2=50 * 2**20)
    a = devices.CupyAdapter(cp)
    a.flush()
    a.flush()
    assert len(buffers) == 1 and buffers[0].n == 100 * 2**20 and buffers[0].zeroed == 2
    a.close()
    a.flush()
    assert len(buffers) == 2                        # a new run's flush makes its own buffer
    small, _, tiny = fake_cupy(l2=2**10)
    devices.CupyAdapter(small).flush()
    assert tiny[0].n == 2**25                       # never less than 32 MiB


def test_torch_free_memory_counts_its_caching_allocator_and_release_empties_it():
    calls = []
    cuda = SimpleNamespace(mem_get_info=lambda: (100, 1000), memory_reserved=lambda: 70,
                           memory_allocated=lambda: 30, empty_cache=lambda: calls.append("empty_cache"))
    a = devices.TorchAdapter(SimpleNamespace(cuda=cuda))
    assert a.free_bytes() == 100 + 40
    a.release()
    assert calls == ["empty_cache"]


def test_numba_release_runs_the_pending_deallocations():
    calls = []
    ctx = SimpleNamespace(deallocations=SimpleNamespace(clear=lambda: calls.append("clear")),
                          get_memory_info=lambda: (123, 1000))
    a = devices.NumbaAdapter(SimpleNamespace(current_context=lambda: ctx))
    assert a.free_bytes() == 123
    a.release()
    assert calls == ["clear"]


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


def test_numba_spin_kernel_compiles_to_ptx():
    """In a fresh process without the simulator: numba-cuda's real target resolves nanosleep."""
    import os
    import subprocess
    import sys
    code = ("from numba import cuda\nfrom bench.devices import NumbaAdapter\n"
            "ptx, _ = cuda.compile_ptx(NumbaAdapter(cuda).spin_kernel().py_func, 'void(int64)', cc=(8, 0))\n"
            "assert 'nanosleep' in ptx, ptx\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=False)
    if p.returncode and "NVVM" in p.stderr:
        pytest.skip(f"numba-cuda cannot find NVVM here: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr


def test_torch_spin_is_there():
    torch = pytest.importorskip("torch")
    assert callable(torch.cuda._sleep)
