"""numba.cuda backend ("numba_cuda"): hand-written numba.cuda.jit kernels for every elementwise op.

Each elementwise op is a small scalar function (`_relu`, `_sigmoid_grad`, ...) run by one
grid-stride driver for both arities (a kernel factory in kernels/backends/numba_cuda/device.py, which holds
all the device code), with one generic launcher per op registered from the MAP1 / MAP2 tables; relu_mask
has a kernel of its own, which builds its packed mask with a warp ballot: one 32-bit word per 32
elements, written by lane 0 of the warp. A launcher allocates the output (unless out= is given),
picks the grid (`launch_config`, from CUDA's occupancy API) and launches on the default stream.
What the backend keeps (numba.cuda as probed, the compiled kernels, their occupancy) is one
`Runtime`, RUNTIME, which `close()` empties.

numba.cuda is imported by the probe, on first use, never at `import kernels`; kernels compile on
first use, once per (op, dtype) until RUNTIME is closed. Under NUMBA_ENABLE_CUDASIM=1 the same kernels run on numba-cuda's
CPU simulator (a Python thread per CUDA thread: slow, small sizes only) with a grid of at most two
blocks of one warp; the backend is then marked simulated, so the benchmark checks it but never times
it. float16 is not offered: numba-cuda compiles half-precision math (exp, tanh) only where a GPU
driver is present, so neither a machine without a GPU nor CI could check it, and the simulator does
half-precision arithmetic in NumPy, not as a GPU would.
"""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
from numba.extending import register_jitable

from kernels.ops import OPS, dtype_name
from kernels.ops.elementwise import GELU_C1, GELU_C2
from kernels.registry import Available, Backend, declare_backend, register
from kernels.backends.numba_cuda.geometry import FULL_MASK, UNROLL, WARP  # noqa: F401  (the kernels' too)
from types import SimpleNamespace
from unittest import mock
from importlib.metadata import version

THREADS = 256            # threads per block on a real GPU
SIM_THREADS = 32         # threads per block on the simulator: one warp (each is a Python thread)
SIM_BLOCKS = 2           # blocks at most on the simulator: enough to exercise the grid stride


# ------------------------------------------------------------------------------ launch geometry

def launch_config(n: int, *, simulated: bool, resident_blocks: int = 1,
                  per_thread: int = UNROLL) -> tuple[int, int]:
    """(blocks, threads per block) for a grid-stride kernel over n >= 1 elements, each thread
    handling `per_thread` elements per pass of its loop.

    Real GPU: THREADS-thread blocks, as many as the device holds at once for this kernel
    (`resident_blocks`: CUDA's occupancy API times the SMs), fewer when n needs fewer; the
    grid-stride loop covers the rest. Simulator: at most SIM_BLOCKS blocks of SIM_THREADS, so that
    tests stay fast and still run the loop's stride and tails.
    """
    if n < 1:
        raise ValueError(f"launch_config needs n >= 1 elements, got {n} (an empty array launches nothing)")
    if simulated:
        threads, most = SIM_THREADS, SIM_BLOCKS
    else:
        threads, most = THREADS, max(1, resident_blocks)
    needed = -(-n // (threads * per_thread))
    return min(needed, most), threads


def describe_device(dev) -> str:
    """'<name> (sm_XY, N SMs)' of a numba-cuda Device."""
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    cc = dev.compute_capability
    return f"{name} (sm_{cc[0]}{cc[1]}, {int(dev.MULTIPROCESSOR_COUNT)} SMs)"


# The elementwise ops, each written once as a scalar function of the compute values and typed
# constants, f(v, zero, one, p) or f(g, v, zero, one, p) with p the op's scalar parameter (slope;
# zero where it has none), run by one driver (kernels/backends/numba_cuda/device.py's map_driver). In
# relu_grad_mask, v is the element's mask bit.

def _relu(v, zero, one, p):
    return zero if v < zero else v                  # NaN < 0 is false: NaN stays NaN


def _sigmoid(v, zero, one, p):
    e = math.exp(-abs(v))                           # in [0, 1]: never overflows; NaN stays NaN
    return one / (one + e) if v >= zero else e / (one + e)


def _tanh(v, zero, one, p):
    return math.tanh(v)


def _leaky_relu(v, zero, one, p):
    return v if v > zero else p * v                 # NaN: slope * NaN is NaN


def _relu_grad(g, v, zero, one, p):
    return zero if v <= zero else g                 # torch's threshold_backward: a NaN x passes dy


def _sigmoid_grad(g, v, zero, one, p):
    return (g * v) * (one - v)                      # dy * y * (1 - y), left to right


def _tanh_grad(g, v, zero, one, p):
    return g * (one - v * v)


def _leaky_relu_grad(g, v, zero, one, p):
    return g if v > zero else p * g


def _relu_grad_mask(g, bit, zero, one, p):
    return g if bit else zero


# SiLU and GELU: x * sigmoid(z), the sigmoid from exp(-|z|) only (no overflow; exp's subnormal
# results kept: x * sigmoid(x) at x = -89 is a normal -2e-37), 1 - sigmoid(z) without cancellation.

@register_jitable
def _sigmoid_parts(z, zero, one):
    e = math.exp(-abs(z))
    r = one / (one + e)
    return (r, e * r) if z >= zero else (e * r, r)


def _silu(v, zero, one, p):
    return v * _sigmoid_parts(v, zero, one)[0]          # NaN at -inf (-inf * 0), as PyTorch's


def _silu_grad(g, v, zero, one, p):
    s, c = _sigmoid_parts(v, zero, one)
    return g * (s * (one + v * c))                      # aten's silu_backward; NaN at x = +-inf


def _gelu_for(dtype: str):
    """gelu and gelu_grad for dtype: GELU's 1 + tanh(u) is 2 sigmoid(z), z = 2u = x (C1 + C2 x^2),
    z from float64 rounded once to dtype (gelu(x) ~ x exp(z) carries z's relative error times |z|,
    up to 87 in float32, which float32's own roundings took past the gate near x = -9.5)."""
    narrow = getattr(np, dtype)

    @register_jitable
    def z_of(v):
        w = np.float64(v)
        w2 = w * w
        return narrow(w2), narrow(w * (GELU_C1 + GELU_C2 * w2))

    def gelu(v, zero, one, p):
        return v * _sigmoid_parts(z_of(v)[1], zero, one)[0]

    def gelu_grad(g, v, zero, one, p):
        v2, z = z_of(v)
        s, c = _sigmoid_parts(z, zero, one)
        # (x * c) * z': 0 * inf = NaN where x * x overflows, as PyTorch's gelu_backward
        return g * (s * (one + (v * c) * (narrow(GELU_C1) + narrow(3.0 * GELU_C2) * v2)))

    return gelu, gelu_grad


MAP1 = {"relu": _relu, "sigmoid": _sigmoid, "tanh": _tanh, "leaky_relu": _leaky_relu, "silu": _silu,
        "gelu": lambda dtype: _gelu_for(dtype)[0]}
MAP2 = {"relu_grad": _relu_grad, "sigmoid_grad": _sigmoid_grad, "tanh_grad": _tanh_grad,
        "leaky_relu_grad": _leaky_relu_grad, "relu_grad_mask": _relu_grad_mask, "silu_grad": _silu_grad,
        "gelu_grad": lambda dtype: _gelu_for(dtype)[1]}
BY_DTYPE = ("gelu", "gelu_grad")     # their MAP entry takes the dtype and gives the scalar function


def _signature(cuda, op: str, dtype: str) -> tuple:
    """The argument types of op's kernel for dtype: flat C-contiguous arrays, then scalars."""
    t = cuda.types
    s = getattr(t, dtype)
    a = s[::1]
    if op in MAP1:
        return (a, a, a, s)                                        # x twice: one driver for both arities
    if op in MAP2:
        return (a, t.uint8[::1] if OPS[op].mask_input else a, a, s)
    return (a, a, t.uint32[::1], t.uint8[::1], t.int64)          # relu_mask


def _python_kernel(cuda, op: str, ballot, dtype: str):
    """op's kernel as a Python function for numba.cuda.jit: a driver around the op's scalar
    function (compiled as a device function of the current target); relu_mask's with `ballot`."""
    from kernels.backends.numba_cuda import device as device
    if op in MAP1 or op in MAP2:
        load = device.mask_bit if OPS[op].mask_input else device.element
        f = MAP1.get(op) or MAP2[op]
        f = f(dtype) if op in BY_DTYPE else f
        return device.map_driver(cuda.jit(device=True)(f), cuda.jit(device=True)(load), op in MAP2)
    return device.relu_mask_driver(ballot)


class Runtime:
    """numba.cuda as the probe found it (a GPU, or the simulator), and what the backend built on it:
    the kernels compiled so far (sparse_matmul's too) and their occupancy, the devices' SM counts.
    The one place this backend keeps state; the probe binds it, `close()` drops the compiled kernels
    and device facts (a later launch compiles again), and unbinds nothing else."""

    def __init__(self):
        self.cuda = None                 # numba.cuda, once bound
        self.simulated = False
        self.native_types: tuple = ()    # numba's device-array class(es): DeviceNDArray, or FakeCUDAArray
        self._ballot = None              # relu_mask's warp vote: cuda.ballot_sync, or the simulator's
        self._kernels: dict[tuple[str, str], object] = {}
        self._resident: dict[tuple[str, str, int], int] = {}
        self._grids: dict[tuple[str, str, int], tuple[int, int]] = {}
        self._sm_counts: dict[int, int] = {}

    def bind(self, module, simulated: bool) -> None:
        from kernels.backends.numba_cuda import device as device
        self.close()
        self.cuda, self.simulated = module, simulated
        if simulated:
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
            self.native_types, self._ballot = (FakeCUDAArray,), device.simulated_ballot()
        else:
            from numba.cuda.cudadrv.devicearray import DeviceNDArray
            self.native_types, self._ballot = (DeviceNDArray,), module.jit(device=True)(device.gpu_ballot)

    def kernel(self, op: str, dtype: str):
        """op's kernel compiled for dtype, on first use (a few hundred ms on a GPU), then kept."""
        key = (op, dtype)
        if key not in self._kernels:
            cuda = self.cuda
            self._kernels[key] = cuda.jit(_signature(cuda, op, dtype))(_python_kernel(cuda, op, self._ballot, dtype))
        return self._kernels[key]

    def compiled(self, key: tuple[str, str], build):
        """The kernel(s) another module of the backend builds with build(numba.cuda) (e.g. the
        sparse_matmul op's), built on first use and kept beside the elementwise ones until close()."""
        if key not in self._kernels:
            self._kernels[key] = build(self.cuda)
        return self._kernels[key]

    def sm_count(self, device_id: int) -> int:
        """The multiprocessors of the current device (`device_id`), read once per device."""
        if device_id not in self._sm_counts:
            self._sm_counts[device_id] = int(self.cuda.get_current_device().MULTIPROCESSOR_COUNT)
        return self._sm_counts[device_id]

    def resident_blocks(self, op: str, dtype: str, device_id: int) -> int:
        """Blocks of THREADS threads of op's kernel the whole device holds at once: numba-cuda's
        occupancy query (cuOccupancyMaxActiveBlocksPerMultiprocessor x SMs), read once per kernel
        and device, not per (timed) launch."""
        key = (op, dtype, device_id)
        if key not in self._resident:
            overload = next(iter(self.kernel(op, dtype).overloads.values()))
            self._resident[key] = int(overload.max_cooperative_grid_blocks(THREADS))
        return self._resident[key]

    def grid(self, op: str, dtype: str, n: int) -> tuple[int, int]:
        """(blocks, threads) of a launch on n elements, worked out once per (op, dtype, n) and then
        a dict lookup: launches are inside timed regions. The kernels are grid-stride loops, so a
        grid kept across a device switch is still correct, only sized for the first device."""
        key = (op, dtype, n)
        got = self._grids.get(key)
        if got is None:
            if self.simulated:
                got = launch_config(n, simulated=True)
            else:
                resident = self.resident_blocks(op, dtype, self.cuda.get_current_device().id)
                got = launch_config(n, simulated=False, resident_blocks=resident)
            self._grids[key] = got
        return got

    def close(self) -> None:
        self._kernels.clear()
        self._resident.clear()
        self._grids.clear()
        self._sm_counts.clear()


RUNTIME = Runtime()


def compile_ptx(op: str, dtype: str, cc: tuple[int, int] = (9, 0)) -> str:
    """The PTX of op's kernel for dtype and compute capability cc, as a real GPU would run it.

    Needs numba-cuda and libNVVM (a CUDA toolkit) but no GPU or driver, and the real CUDA target:
    it fails under NUMBA_ENABLE_CUDASIM=1. For tests and inspection (float32 kernels must not touch
    float64, no local memory, relu_mask must use vote.sync.ballot). Leaves RUNTIME as it is."""

    from numba import cuda
    if _simulator_enabled():
        raise RuntimeError("compile_ptx needs the real CUDA target; unset NUMBA_ENABLE_CUDASIM")
    from numba.cuda import dispatcher

    from kernels.backends.numba_cuda import device as device
    # numba-cuda compiles a device function for the current device's compute capability;
    # without a GPU that lookup is answered with the cc asked for
    with mock.patch.object(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=cc)):
        kernel = _python_kernel(cuda, op, cuda.jit(device=True)(device.gpu_ballot), dtype)
        ptx, _ = cuda.compile_ptx(kernel, _signature(cuda, op, dtype), cc=cc)
    return ptx


# ------------------------------------------------------------------------------------ backend

def _simulator_enabled() -> bool:
    try:
        from numba.cuda.core import config          # numba-cuda's own configuration
    except ImportError:
        from numba.core import config  # noqa: PLC0415  (numba-cuda's settings live in numba before 0.30)
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _probe_kernel(a):
    a[0] = 1.0


def _probe_launch(numba_cuda) -> str | None:
    """Compile (libNVVM, the CUDA headers) and launch a trivial kernel: a device count alone does not
    show that kernels can be built here."""
    try:
        a = numba_cuda.to_device(np.zeros(1, np.float32))
        numba_cuda.jit("void(float32[::1])")(_probe_kernel)[1, 1](a)
        if a.copy_to_host()[0] != 1.0:
            return "numba-cuda's probe kernel gave a wrong value"
    except Exception as exc:
        return (f"numba-cuda cannot compile and launch a kernel here (libNVVM or the CUDA headers?): "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    return None


def _probe() -> Available | str:
    if importlib.util.find_spec("numba") is None or importlib.util.find_spec("numba_cuda") is None:
        return ("numba-cuda is not installed (pip install -e '.[cuda12]' or '.[cuda13]' with a GPU, "
                "'.[dev]' for its CPU simulator)")
    try:
        from numba import cuda as _cuda
    except ImportError as exc:
        return f"numba.cuda cannot be imported: {exc}"
    simulated = _simulator_enabled()
    if not simulated and not _cuda.is_available():
        detail = " ".join(str(_cuda.cuda_error() or "").split())
        return ("no CUDA GPU found" + (f" ({detail})" if detail else "")
                + "; NUMBA_ENABLE_CUDASIM=1 runs these kernels on numba-cuda's CPU simulator")
    if not simulated:
        why = _probe_launch(_cuda)
        if why:
            return why
    RUNTIME.bind(_cuda, simulated)
    if simulated:
        return Available(simulated=True, description=f"numba-cuda {version('numba-cuda')} kernels on its "
                         "CPU simulator (NUMBA_ENABLE_CUDASIM=1): checked, never timed")
    return Available(description=f"numba-cuda {version('numba-cuda')} kernels on "
                                 f"{describe_device(_cuda.get_current_device())}")


def _is_native(a) -> bool:
    return isinstance(a, RUNTIME.native_types)


def _contiguous(a):
    """a itself when C-contiguous, else a C-contiguous copy made on the device.

    Slicing a device array gives a strided view on both targets (a[::2]); a.T is a view on the
    simulator but already a contiguous copy on a GPU (numba runs a transpose kernel). The copy is
    numba's own assignment kernel (dst[:] = src), which handles any strides."""
    if a.is_c_contiguous():
        return a
    c = RUNTIME.cuda.device_array(a.shape, a.dtype)
    if a.size:
        c[:] = a
    return c


def _c_order(a: np.ndarray) -> np.ndarray:
    """a, or a C-ordered copy where it is not C-contiguous. Not np.array(a, copy=None): NumPy 1.x
    rejects copy=None, and the system python3 make gpu-check runs may ship NumPy 1.x."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def _numba_cuda():
    """numba.cuda, probing first if nobody has yet (bench.measure.check moves data before any kernel call)."""
    if RUNTIME.cuda is None and not _backend.available:
        raise RuntimeError(f"backend 'numba_cuda' is not available here: {_backend.reason}")
    return RUNTIME.cuda


_backend = declare_backend(Backend(
    name="numba_cuda",
    library="numba",
    default_device="gpu",
    probe=_probe,
    to_native=lambda a: _numba_cuda().to_device(_c_order(a)),
    to_numpy=lambda a: a.copy_to_host(),
    is_native=_is_native,
    empty=lambda shape, dtype: _numba_cuda().device_array(shape, np.dtype(dtype)),
    dtypes=("float32", "float64"),
    synchronize=lambda: _numba_cuda().synchronize(),
    contiguous=_contiguous,
))


# ----------------------------------------------------------------------------------- launchers

def _flat(a):
    return a.reshape(a.size)


def _launch(op: str, n: int, first, *args) -> None:
    dtype = dtype_name(first)             # not first.dtype.name: NumPy computes that in Python (1.5 us)
    blocks, threads = RUNTIME.grid(op, dtype, n)
    kernel = RUNTIME.kernel(op, dtype)[blocks, threads]
    if not RUNTIME.simulated:
        kernel(*args)
        return
    with warnings.catch_warnings():
        # the simulator computes with NumPy scalars, which warn where IEEE arithmetic gives inf or
        # NaN (dy * y * (1 - y) at y = 1e38); a GPU gives the same values silently
        warnings.simplefilter("ignore", RuntimeWarning)
        kernel(*args)


def _elementwise(op: str, inputs: tuple, out, *scalars):
    first = inputs[0]
    if len(inputs) == 1:
        inputs = (first, first)            # the driver's second input, never read by a unary op
    out = RUNTIME.cuda.device_array(first.shape, first.dtype) if out is None else out
    if first.size:
        _launch(op, first.size, first, *(_flat(a) for a in inputs), _flat(out), *scalars)
    return out


def _map_launcher(op: str):
    """The launcher of a MAP1 / MAP2 op: its inputs, a new or given output, and its scalar
    parameter (slope) typed as the arrays, zero when it has none."""
    spec = OPS[op]

    def launch(*inputs, out=None, **params):
        first = inputs[0]
        p = first.dtype.type(params[next(iter(spec.params))] if spec.params else 0)
        return _elementwise(op, inputs, out, p)

    launch.__name__ = launch.__qualname__ = op
    return launch


for _op in (*MAP1, *MAP2):
    register(_op, "numba_cuda")(_map_launcher(_op))


def _address(a) -> int:
    """Where a's data starts (the simulator's arrays are NumPy arrays inside)."""
    iface = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
    return int(iface["data"][0])


@register("relu_mask", "numba_cuda")
def relu_mask(x, out=None):
    y, mask = (None, None) if out is None else out
    nbytes = (x.size + 7) // 8
    y = RUNTIME.cuda.device_array(x.shape, x.dtype) if y is None else y
    mask = RUNTIME.cuda.device_array((nbytes,), np.uint8) if mask is None else mask
    if x.size:
        # whole 32-bit words are stored as such when the mask is 4-byte aligned (always, unless out=
        # is an offset view); the last partial word, or every word of an unaligned mask, byte by byte
        nfull = nbytes // 4 if _address(mask) % 4 == 0 else 0
        mask32 = mask[:4 * nfull].view(np.uint32)
        _launch("relu_mask", x.size, x, _flat(x), _flat(y), mask32, mask, nfull)
    return y, mask
