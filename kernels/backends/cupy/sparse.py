"""sparse_matmul on the GPU with CuPy: cuSPARSE CSR (the cupyx_csr backend, declared here) and the
row-skipping RawKernels of kernels/cuda/sparse_matmul.cu (on the cupy_raw backend).

The dense cuBLAS peer is the cupy backend's sparse_matmul (kernels/backends/numpy/elementwise.py, xp = cupy).
- `csr(a, w)`: a converted to cupyx.scipy.sparse.csr_matrix at call time (the activations appear
  at run time: part of every timed call, with a count of non-zeros read back to the host), then
  cuSPARSE's SpMM reading w where it lies: C-ordered K x N w is w.T in Fortran order, which SpMM
  takes with op(B) = transpose. `csr_matrix @ w` copied all of w to Fortran order in every call
  (cupy.asfortranarray in cupyx's csrmm). float32 and float64. `csr_steps` splits a call into its
  conversion and its product, so that make gpu-check can say which part of the time is which.
- `raw(a, w)`: split-K, per-tile detection of the present rows, 16-byte loads of whole rows of w,
  accumulation in float32 (float16 and float32) or float64, then a reduction of the S partial
  sums. `launch_plan` sizes the split so that the grid fits one wave of the partial kernel: the SMs
  times the blocks one SM holds at once, which the occupancy API gives on a GPU
  (`_blocks_per_sm`) and `blocks_per_sm_from_registers` computes from ptxas's register report
  without one (the tests, with NVRTC). A pure function, tested without a GPU.

CuPy is imported on first use (never at import), so a machine without it imports this module fine;
the kernels compile on first use per device with the RawModules' options (kernels/cuda/build.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from kernels.backends.cupy import elementwise as cupy_gpu
from kernels.cuda.build import BLOCK, raw_kernel_name
from kernels.ops import as_rows, dtype_name, matmul_operands, matmul_result
from kernels.registry import Available, register

SOURCE = "sparse_matmul.cu"
GROUP = 4              # ACT_SM_GROUP of sparse_matmul.cu: batch rows per warp
# What bounds resident blocks on sm_80, sm_90 and sm_100 (CUDA's occupancy calculator): 64K
# registers per SM, allocated per warp in units of 256; 64 warps and 32 blocks per SM. The kernels
# use no shared memory, so registers decide.
REGISTERS_PER_SM = 65536
REGISTER_UNIT = 256
MAX_WARPS_PER_SM = 64
MAX_BLOCKS_PER_SM = 32


@dataclass(frozen=True)
class Plan:
    """How one call is split: column tiles x K slices x batch groups, one warp each."""

    ntiles: int
    splits: int
    ngroups: int
    kchunk: int           # activations per K slice, a multiple of 32
    grid: int             # blocks of BLOCK threads

    @property
    def items(self) -> int:
        return self.ntiles * self.splits * self.ngroups


def blocks_per_sm_from_registers(registers: int, block: int = BLOCK) -> int:
    """Blocks of `block` threads one SM holds at once for a kernel of `registers` registers per
    thread and no shared memory (what the occupancy API answers on sm_80 / sm_90 / sm_100)."""
    per_warp = math.ceil(registers * 32 / REGISTER_UNIT) * REGISTER_UNIT
    warps = block // 32
    return max(1, min(REGISTERS_PER_SM // (per_warp * warps), MAX_WARPS_PER_SM // warps, MAX_BLOCKS_PER_SM))


def launch_plan(batch: int, k: int, n: int, itemsize: int, sm_count: int, blocks_per_sm: int) -> Plan:
    """Split a (batch x K) @ (K x N) call into as many K slices as one wave of the partial kernel
    holds (sm_count x blocks_per_sm blocks, one work item per warp), rounded down so that the grid
    fits that wave: a second, partly empty wave would cost as much as the first. More slices than
    that only add S x batch x N partial sums to the traffic."""
    vec = 16 // itemsize
    ntiles = max(1, math.ceil(n / (32 * vec)))
    ngroups = max(1, math.ceil(batch / GROUP))
    windows = max(1, math.ceil(k / 32))                       # 32 activations per ballot
    wave = sm_count * blocks_per_sm * (BLOCK // 32)           # warps resident at once
    fit = max(1, wave // (ntiles * ngroups))                  # slices that one wave holds
    per_split = math.ceil(windows / min(fit, windows))
    splits = math.ceil(windows / per_split)
    items = ntiles * splits * ngroups
    # the kernel's warp index, (blockIdx.x * blockDim.x + threadIdx.x) >> 5, is 32-bit unsigned
    if items * 32 >= 2**32:
        raise ValueError(f"sparse_matmul: {batch} x {k} @ {k} x {n} is too large for one launch "
                         f"({items} warps; the kernel's 32-bit thread index holds {2**27 - 1})")
    return Plan(ntiles, splits, ngroups, per_split * 32, math.ceil(items * 32 / BLOCK))


# ---- CuPy (imported on first use, by kernels/backends/cupy/elementwise.py) ------------------------------------


@functools.cache
def _probe_cupy() -> str | None:
    why = cupy_gpu.import_cupy()
    if why:
        return why
    try:
        import cupyx.scipy.sparse  # noqa: F401
    except Exception as exc:  # a broken install says why
        return f"cupyx.scipy.sparse failed to import: {type(exc).__name__}: {exc}"
    return None


def _probe() -> Available | str:
    why = _probe_cupy()
    if why:
        return why
    return Available(description=f"CuPy {cupy_gpu.cupy.__version__} cuSPARSE SpMM: activations converted to "
                                 f"CSR in each call (timed), weights read in place on {cupy_gpu.device_name()}")


cupy_gpu.declare_cupy_backend("cupyx_csr", _probe, dtypes=("float32", "float64"))

@functools.cache
def _function(kind: str, dtype: str):
    """The partial or reduce kernel of sparse_matmul.cu for dtype, looked up once (cupy_gpu's
    RawModule cache: the RawModules' options, the headers' hash in CuPy's cache key)."""
    return cupy_gpu._module(SOURCE).get_function(raw_kernel_name(f"sparse_matmul_{kind}", dtype))


@functools.cache
def _blocks_per_sm(kind: str, dtype: str, device: int) -> int:
    """Blocks of BLOCK threads one SM holds at once for the partial or reduce kernel: CUDA's
    occupancy API on the kernel as loaded (registers as ptxas gave them for this device)."""
    fn = _function(kind, dtype)
    return max(1, cupy_gpu.cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(fn.kernel.ptr, BLOCK, 0))


@register("sparse_matmul", "cupy_raw")
def raw(a, w, out=None):
    """a @ w with the row-skipping kernels; a, w C-contiguous CuPy arrays of one float dtype."""
    import cupy as cp
    a2, y = matmul_operands(a, w, out, cp.empty)
    (batch, k), n = a2.shape, w.shape[1]
    if batch == 0 or n == 0:
        return matmul_result(a, y, out)
    dtype = dtype_name(w)
    device = cp.cuda.runtime.getDevice()
    sms = cupy_gpu._sm_count(device)
    plan = launch_plan(batch, k, n, w.dtype.itemsize, sms, _blocks_per_sm("partial", dtype, device))
    acc = cp.float64 if dtype == "float64" else cp.float32
    part = cp.empty((plan.splits, batch, n), acc)
    partial, reduce = _function("partial", dtype), _function("reduce", dtype)
    partial((plan.grid,), (BLOCK,), (a2, w, part, cp.int64(batch), cp.int64(k), cp.int64(n),
                                     cp.uint32(plan.ntiles), cp.uint32(plan.splits), cp.uint32(plan.ngroups),
                                     cp.int64(plan.kchunk)))
    total = batch * n
    rgrid = max(1, min(math.ceil(total / BLOCK), sms * _blocks_per_sm("reduce", dtype, device)))
    reduce((rgrid,), (BLOCK,), (part, y, cp.int64(total), cp.uint32(plan.splits)))
    return matmul_result(a, y, out)


def csr_steps(a2, w):
    """(convert, multiply): a2 (batch x K) to CSR, and CSR @ w through cuSPARSE's SpMM with w read
    in place (w.T is F-contiguous; op(B) = transpose), returning the F-ordered batch x N product."""
    from cupyx import cusparse
    from cupyx.scipy import sparse

    def convert():
        return sparse.csr_matrix(a2)

    def multiply(m):
        return cusparse.spmm(m, w.T, transb=True)
    return convert, multiply


@register("sparse_matmul", "cupyx_csr")
def csr(a, w, out=None):
    """a converted to CSR (cuSPARSE), then CSR @ dense w by cuSPARSE's SpMM on w as it lies."""
    import cupy as cp
    convert, multiply = csr_steps(as_rows(a), w)
    y = multiply(convert())                       # F-ordered batch x N: a C-ordered copy of the output only
    if out is not None:
        out[...] = y.reshape(out.shape)
        return out
    return matmul_result(a, cp.ascontiguousarray(y), out)
