"""numba.cuda backend ("numba_cuda"): hand-written numba.cuda.jit kernels for every elementwise op.

Each elementwise op is a small scalar function (`_relu`, `_sigmoid_grad`, ...) run by one
grid-stride driver per arity (`_map1_driver`, `_map2_driver`: a kernel factory), with one generic
launcher per op registered from the MAP1 / MAP2 tables; relu_mask and relu_grad_mask have kernels
of their own. A launcher allocates the output (unless out= is given), picks the grid
(`launch_config`, from CUDA's occupancy API) and launches on the default stream. Every thread loads UNROLL elements
before it computes and stores any of them, so that a real GPU has UNROLL independent reads in
flight per thread: numba cannot tell that inputs and outputs do not overlap, so a plain loop would
wait for each load in turn. relu_mask builds its packed mask with a warp ballot: one 32-bit word per
32 elements, written by lane 0 of the warp.

numba.cuda is imported by the probe, on first use, never at `import kernels`; kernels compile on
first use, once per (op, dtype). Under NUMBA_ENABLE_CUDASIM=1 the same kernels run on numba-cuda's
CPU simulator (a Python thread per CUDA thread: slow, small sizes only) with a grid of at most two
blocks of one warp; the backend is then marked simulated, so the benchmark checks it but never times
it. float16 is not offered: numba-cuda compiles half-precision math (exp, tanh) only where a GPU
driver is present, so neither a machine without a GPU nor CI could check it, and the simulator does
half-precision arithmetic in NumPy, not as a GPU would.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings

import numpy as np

from .reference import OPS
from .registry import Available, Backend, declare_backend, register

cuda = None              # numba.cuda, set by the probe (and by compile_ptx)
_ballot = None           # cuda.ballot_sync on a GPU, _simulated_ballot_sync on the simulator
_native_types: tuple = ()  # numba's device-array class(es): DeviceNDArray, or the simulator's FakeCUDAArray

WARP = 32                # threads per warp: bits per word of the relu_mask mask
FULL_MASK = 0xFFFFFFFF   # every lane of a warp takes part in each ballot
UNROLL = 4               # elements each thread loads before it stores any (reads in flight)
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


@functools.cache
def _resident_blocks(op: str, dtype: str, device_id: int) -> int:
    """Blocks of THREADS threads of op's kernel the whole device holds at once: numba-cuda's
    occupancy query (cuOccupancyMaxActiveBlocksPerMultiprocessor x SMs), read once per kernel and
    device, not per (timed) launch."""
    overload = next(iter(_kernel(op, dtype).overloads.values()))
    return int(overload.max_cooperative_grid_blocks(THREADS))


def _grid(op: str, dtype: str, n: int) -> tuple[int, int]:
    if _backend.simulated:
        return launch_config(n, simulated=True)
    resident = _resident_blocks(op, dtype, cuda.get_current_device().id)
    return launch_config(n, simulated=False, resident_blocks=resident)


def describe_device(dev) -> str:
    """'<name> (sm_XY, N SMs)' of a numba-cuda Device."""
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    cc = dev.compute_capability
    return f"{name} (sm_{cc[0]}{cc[1]}, {int(dev.MULTIPROCESSOR_COUNT)} SMs)"


# Device code. Arrays are 1-D and C-contiguous; typed constants (zero, one: x.dtype.type(0), ...)
# keep float32 arithmetic in float32 (a bare 1.0 is a float64 in numba and would promote the
# whole expression). The elementwise ops are written once each as a scalar function of the
# compute values and those constants, f(v, zero, one, p) or f(g, v, zero, one, p) with p the op's
# scalar parameter (slope; zero where it has none), and run by one driver per arity
# (`_map1_driver`, `_map2_driver`): each thread reads its UNROLL elements into a local array first
# (registers on a GPU), then computes and stores them; `if j < n` handles the tail of the last
# pass. What each kernel moves: bench/roofline.py.

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
    return g if v > zero else zero                  # 0 where x <= 0 or x is NaN


def _sigmoid_grad(g, v, zero, one, p):
    return (g * v) * (one - v)                      # dy * y * (1 - y), left to right


def _tanh_grad(g, v, zero, one, p):
    return g * (one - v * v)


def _leaky_relu_grad(g, v, zero, one, p):
    return g if v > zero else p * g


MAP1 = {"relu": _relu, "sigmoid": _sigmoid, "tanh": _tanh, "leaky_relu": _leaky_relu}
MAP2 = {"relu_grad": _relu_grad, "sigmoid_grad": _sigmoid_grad, "tanh_grad": _tanh_grad,
        "leaky_relu_grad": _leaky_relu_grad}


def _map1_driver(f):
    """y[j] = f(x[j], ...) over a grid-stride loop with UNROLL loads in flight per thread."""
    def kernel(x, y, p):
        n, step = x.shape[0], cuda.gridsize(1)
        zero, one = x.dtype.type(0), x.dtype.type(1)
        v = cuda.local.array(UNROLL, x.dtype)
        for i in range(cuda.grid(1), n, UNROLL * step):
            for k in range(UNROLL):
                j = i + k * step
                if j < n:
                    v[k] = x[j]
            for k in range(UNROLL):
                j = i + k * step
                if j < n:
                    y[j] = f(v[k], zero, one, p)
    return kernel


def _map2_driver(f):
    """dx[j] = f(dy[j], x[j], ...) over a grid-stride loop with 2 x UNROLL loads in flight."""
    def kernel(dy, x, dx, p):
        n, step = x.shape[0], cuda.gridsize(1)
        zero, one = x.dtype.type(0), x.dtype.type(1)
        g = cuda.local.array(UNROLL, dy.dtype)
        v = cuda.local.array(UNROLL, x.dtype)
        for i in range(cuda.grid(1), n, UNROLL * step):
            for k in range(UNROLL):
                j = i + k * step
                if j < n:
                    g[k] = dy[j]
                    v[k] = x[j]
            for k in range(UNROLL):
                j = i + k * step
                if j < n:
                    dx[j] = f(g[k], v[k], zero, one, p)
    return kernel


def _relu_mask_kernel(x, y, mask32, mask8, nfull):
    # Warp w of the grid handles words w, w + warps, ...: word w is elements 32w .. 32w + 31, one per
    # lane, and its 32 mask bits (little bit order: element 32w + k is bit k) come from one ballot.
    # The loop bound is the same for all 32 lanes, so every lane reaches every ballot.
    n = x.shape[0]
    words = (n + WARP - 1) // WARP
    warps = cuda.gridsize(1) // WARP
    lane = cuda.laneid
    zero = x.dtype.type(0)
    v = cuda.local.array(UNROLL, x.dtype)
    for w0 in range(cuda.grid(1) // WARP, words, UNROLL * warps):
        for k in range(UNROLL):
            j = (w0 + k * warps) * WARP + lane
            if j < n:
                v[k] = x[j]
        for k in range(UNROLL):
            w = w0 + k * warps
            if w < words:                                    # the same for every lane of the warp
                j = w * WARP + lane
                keep = False
                if j < n:
                    keep = v[k] > zero
                    y[j] = zero if v[k] < zero else v[k]
                bits = _ballot(FULL_MASK, keep)
                if lane == 0:
                    if w < nfull:
                        mask32[w] = bits                     # one 4-byte store per 32 elements
                    else:                                    # the last word, or an unaligned mask
                        for b in range(4):
                            if 4 * w + b < mask8.shape[0]:
                                mask8[4 * w + b] = (bits >> (8 * b)) & 0xFF


def _relu_grad_mask_kernel(dy, mask, dx):
    n, step = dy.shape[0], cuda.gridsize(1)
    zero = dy.dtype.type(0)
    g = cuda.local.array(UNROLL, dy.dtype)
    m = cuda.local.array(UNROLL, mask.dtype)
    for i in range(cuda.grid(1), n, UNROLL * step):
        for k in range(UNROLL):
            j = i + k * step
            if j < n:
                g[k] = dy[j]
                m[k] = mask[j >> 3]                          # 8 neighbouring threads share a byte
        for k in range(UNROLL):
            j = i + k * step
            if j < n:
                dx[j] = g[k] if (m[k] >> (j & 7)) & 1 else zero


_SIM_VOTES = ([False] * 1024, [False] * 1024)   # two rounds of one slot per thread of a block
_SIM_ROUND = [0] * 1024                          # which of the two each thread votes in next


def _simulated_ballot_sync(mask, predicate):
    """cuda.ballot_sync for numba-cuda's simulator, which has none.

    Each thread posts its vote, the block synchronises, and each thread gathers the votes of its
    own warp's lanes. Votes alternate between two sets of slots, so one barrier per ballot is
    enough: a thread cannot overwrite a slot until every thread has passed the next barrier, that
    is, finished reading this round. A block-wide barrier stands in for the warp-wide one; that is
    exact here because the simulator runs one block at a time, releases a barrier once every thread
    still running has reached it, and every warp of _relu_mask_kernel runs the same number of
    ballots on all its lanes."""
    t = cuda.threadIdx.x
    votes = _SIM_VOTES[_SIM_ROUND[t]]
    _SIM_ROUND[t] ^= 1
    votes[t] = bool(predicate)
    cuda.syncthreads()
    base = t - t % WARP
    word = 0
    for lane in range(WARP):
        if (mask >> lane) & 1 and votes[base + lane]:
            word |= 1 << lane
    return word


def _signature(op: str, dtype: str) -> tuple:
    """The argument types of op's kernel for dtype: flat C-contiguous arrays, then scalars."""
    t = cuda.types
    s = getattr(t, dtype)
    a = s[::1]
    if op in MAP1:
        return (a, a, s)
    if op in MAP2:
        return (a, a, a, s)
    return {"relu_mask": (a, a, t.uint32[::1], t.uint8[::1], t.int64),
            "relu_grad_mask": (a, t.uint8[::1], a)}[op]


def _python_kernel(op: str):
    """op's kernel as a Python function for numba.cuda.jit: a driver around the op's scalar
    function (compiled as a device function of the current target), or a kernel of its own."""
    if op in MAP1:
        return _map1_driver(cuda.jit(device=True)(MAP1[op]))
    if op in MAP2:
        return _map2_driver(cuda.jit(device=True)(MAP2[op]))
    return globals()[f"_{op}_kernel"]


@functools.cache
def _kernel(op: str, dtype: str):
    """op's kernel compiled for dtype, on first use (a few hundred ms on a GPU), then cached."""
    return cuda.jit(_signature(op, dtype))(_python_kernel(op))


def compile_ptx(op: str, dtype: str, cc: tuple[int, int] = (9, 0)) -> str:
    """The PTX of op's kernel for dtype and compute capability cc, as a real GPU would run it.

    Needs numba-cuda and libNVVM (a CUDA toolkit) but no GPU or driver, and the real CUDA target:
    it fails under NUMBA_ENABLE_CUDASIM=1. For tests and inspection (float32 kernels must not touch
    float64, no local memory, relu_mask must use vote.sync.ballot)."""
    from types import SimpleNamespace
    from unittest import mock

    from numba import cuda as _cuda
    if _simulator_enabled():
        raise RuntimeError("compile_ptx needs the real CUDA target; unset NUMBA_ENABLE_CUDASIM")
    from numba.cuda import dispatcher
    saved = cuda, _ballot, _native_types
    _bind(_cuda, simulated=False)         # the kernels' globals, for numba to resolve
    try:
        # numba-cuda compiles a device function for the current device's compute capability;
        # without a GPU that lookup is answered with the cc asked for
        with mock.patch.object(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=cc)):
            ptx, _ = _cuda.compile_ptx(_python_kernel(op), _signature(op, dtype), cc=cc)
    finally:
        _restore(*saved)
    return ptx


# ------------------------------------------------------------------------------------ backend

def _simulator_enabled() -> bool:
    try:
        from numba.cuda.core import config          # numba-cuda's own configuration
    except ImportError:
        from numba.core import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _bind(module, simulated: bool) -> None:
    """Point this module's globals at numba.cuda (the kernels read `cuda` and `_ballot`)."""
    global cuda, _ballot, _native_types
    cuda = module
    if simulated:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        _ballot, _native_types = _simulated_ballot_sync, (FakeCUDAArray,)
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        _ballot, _native_types = module.ballot_sync, (DeviceNDArray,)


def _restore(module, ballot, native_types) -> None:
    global cuda, _ballot, _native_types
    cuda, _ballot, _native_types = module, ballot, native_types


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
    from importlib.metadata import version
    simulated = _simulator_enabled()
    if not simulated and not _cuda.is_available():
        detail = " ".join(str(_cuda.cuda_error() or "").split())
        return ("no CUDA GPU found" + (f" ({detail})" if detail else "")
                + "; NUMBA_ENABLE_CUDASIM=1 runs these kernels on numba-cuda's CPU simulator")
    if not simulated:
        why = _probe_launch(_cuda)
        if why:
            return why
    _bind(_cuda, simulated)
    if simulated:
        return Available(simulated=True, description=f"numba-cuda {version('numba-cuda')} kernels on its "
                         "CPU simulator (NUMBA_ENABLE_CUDASIM=1): checked, never timed")
    return Available(description=f"numba-cuda {version('numba-cuda')} kernels on "
                                 f"{describe_device(_cuda.get_current_device())}")


def _is_native(a) -> bool:
    return isinstance(a, _native_types)


def _contiguous(a):
    """a itself when C-contiguous, else a C-contiguous copy made on the device.

    Slicing a device array gives a strided view on both targets (a[::2]); a.T is a view on the
    simulator but already a contiguous copy on a GPU (numba runs a transpose kernel). The copy is
    numba's own assignment kernel (dst[:] = src), which handles any strides."""
    if a.is_c_contiguous():
        return a
    c = cuda.device_array(a.shape, a.dtype)
    if a.size:
        c[:] = a
    return c


def _numba_cuda():
    """numba.cuda, probing first if nobody has yet (bench.check moves data before any kernel call)."""
    if cuda is None and not _backend.available:
        raise RuntimeError(f"backend 'numba_cuda' is not available here: {_backend.reason}")
    return cuda


_backend = declare_backend(Backend(
    name="numba_cuda",
    library="numba",
    default_device="gpu",
    probe=_probe,
    to_native=lambda a: _numba_cuda().to_device(np.array(a, order="C", copy=None)),
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
    blocks, threads = _grid(op, first.dtype.name, n)
    kernel = _kernel(op, first.dtype.name)[blocks, threads]
    if not _backend.simulated:
        kernel(*args)
        return
    with warnings.catch_warnings():
        # the simulator computes with NumPy scalars, which warn where IEEE arithmetic gives inf or
        # NaN (dy * y * (1 - y) at y = 1e38); a GPU gives the same values silently
        warnings.simplefilter("ignore", RuntimeWarning)
        kernel(*args)


def _elementwise(op: str, inputs: tuple, out, *scalars):
    first = inputs[0]
    out = cuda.device_array(first.shape, first.dtype) if out is None else out
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
    y = cuda.device_array(x.shape, x.dtype) if y is None else y
    mask = cuda.device_array((nbytes,), np.uint8) if mask is None else mask
    if x.size:
        # whole 32-bit words are stored as such when the mask is 4-byte aligned (always, unless out=
        # is an offset view); the last partial word, or every word of an unaligned mask, byte by byte
        nfull = nbytes // 4 if _address(mask) % 4 == 0 else 0
        mask32 = mask[:4 * nfull].view(np.uint32)
        _launch("relu_mask", x.size, x, _flat(x), _flat(y), mask32, mask, nfull)
    return y, mask


@register("relu_grad_mask", "numba_cuda")
def relu_grad_mask(dy, mask, out=None):
    return _elementwise("relu_grad_mask", (dy, mask), out)
