"""CuPy backends, three ways a GPU user runs these ops: CuPy's ufuncs, ElementwiseKernels, RawKernels.

- `cupy`: CuPy's own ufuncs, the way a GPU user writes them (`cupy.maximum(x, 0)`,
  `1 / (1 + cupy.exp(-x))`): the GPU peer. It is the NumPy baseline's code itself
  (kernels/numpy_cpu.py, `ArrayModuleOps`) run with `xp = cupy`.
- `cupy_elementwise`: one `cupy.ElementwiseKernel` per op. Each body is a module-level string
  (`*_BODY`, gathered in `ELEMENTWISE`) so that kernels/nvrtc.py compiles them without a GPU.
- `cupy_raw`: `cupy.RawModule` over kernels/cuda/*.cu (grid-stride loops, 16-byte vectors, a
  scalar tail; see kernels/cuda/common.cuh), launched with 256 threads per block and a grid of
  the device's SMs x the blocks each SM holds at once, never more blocks than there is work.

CuPy is imported by the probe, on first use, never at `import kernels`; ElementwiseKernels and
RawModules are built on first use and cached. Every launcher writes into `out` when given and
returns it; all launch on the current stream. Bytes moved per call: see bench/roofline.py.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .numpy_cpu import ArrayModuleOps, register_all
from .registry import Available, Backend, declare_backend, register

cupy = None

DTYPES = ("float16", "float32", "float64")
CUDA_DIR = Path(__file__).parent / "cuda"
BLOCK = 256                                  # threads per block; ACT_BLOCK in kernels/cuda/common.cuh
RAW_SOURCES = {                              # op -> the .cu file that holds its RawKernels
    "relu": "relu.cu", "relu_grad": "relu.cu", "leaky_relu": "relu.cu", "leaky_relu_grad": "relu.cu",
    "relu_mask": "relu.cu", "relu_grad_mask": "relu.cu",
    "sigmoid": "sigmoid.cu", "sigmoid_grad": "sigmoid.cu",
    "tanh": "tanh.cu", "tanh_grad": "tanh.cu",
}
SUFFIX = {"float16": "f16", "float32": "f32", "float64": "f64"}
COMPUTE = {"float16": np.float32, "float32": np.float32, "float64": np.float64}   # scalar args (slope)


def raw_kernel_name(op: str, dtype: str) -> str:
    """The extern "C" name of op's RawKernel for dtype: _relu_kernel_f32."""
    return f"_{op}_kernel_{SUFFIX[dtype]}"


@functools.cache
def _probe_cupy() -> str | None:
    global cupy
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed (pip install -e '.[cuda12]' or '.[cuda13]')"
    try:
        import cupy as _cupy
    except Exception as exc:  # a broken install (e.g. CUDA libraries missing) says why
        return f"cupy failed to import: {type(exc).__name__}: {exc}"
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no CUDA GPU: cupy.cuda.runtime.getDeviceCount() failed: {type(exc).__name__}: {exc}"
    if count == 0:
        return "no CUDA GPU (cupy.cuda.runtime.getDeviceCount() is 0)"
    cupy = _cupy
    return None


def _describe() -> str:
    dev = cupy.cuda.Device()
    name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return f"CuPy {cupy.__version__} on {name} (sm_{dev.compute_capability})"


def _declare(name: str, what: str) -> Backend:
    def probe() -> Available | str:
        return _probe_cupy() or Available(description=f"{what}; {_describe()}")

    return declare_backend(Backend(
        name=name,
        library="cupy",
        default_device="gpu",
        probe=probe,
        to_native=lambda a: cupy.array(a, copy=True),
        to_numpy=lambda a: cupy.asnumpy(a),
        is_native=lambda a: cupy is not None and isinstance(a, cupy.ndarray),
        empty=lambda shape, dtype: cupy.empty(shape, dtype),
        dtypes=DTYPES,
        synchronize=lambda: cupy.cuda.get_current_stream().synchronize(),
        contiguous=lambda a: cupy.ascontiguousarray(a),
    ))


_declare("cupy", "CuPy's own ufuncs, as a GPU user would write them")
_declare("cupy_elementwise", "cupy.ElementwiseKernel per op (kernels/cupy_gpu.py)")
_declare("cupy_raw", "cupy.RawModule over kernels/cuda/*.cu: grid-stride, 16-byte vectors")


def _out(out, like):
    return cupy.empty_like(like) if out is None else out


def _outs(out, x):
    y, mask = (None, None) if out is None else out
    n = x.size
    return _out(y, x), (cupy.empty(((n + 7) // 8,), cupy.uint8) if mask is None else mask)


# ================================================================================================
# cupy: CuPy's ufuncs, the very code of the NumPy baseline with xp = cupy
# ================================================================================================

register_all("cupy", ArrayModuleOps(lambda: cupy))


# ================================================================================================
# cupy_elementwise: one ElementwiseKernel per op
# ================================================================================================
# CuPy expands an ElementwiseKernel into a typedef per type placeholder (T: the array dtype, S:
# the scalar's, float for float16 and float32), this preamble, and a grid-stride loop whose body
# binds each non-raw parameter to a reference to its element i, then runs the body. Arithmetic is
# in C: float for float16 (CuPy's float16 class converts to and from float), T otherwise.

ELEMENTWISE_PREAMBLE = r"""
template <typename E> struct act_compute { typedef E type; };      // arithmetic type of an element type
template <> struct act_compute<float16> { typedef float type; };   // CuPy's float16: compute in float
__device__ __forceinline__ float act_exp(float v) { return expf(v); }
__device__ __forceinline__ double act_exp(double v) { return exp(v); }
__device__ __forceinline__ float act_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double act_tanh(double v) { return tanh(v); }
// 1 / d for d in [1, 2]: within 2 ulp in float without the IEEE division's slow-path call.
__device__ __forceinline__ float act_recip_1_2(float d) { return __fdividef(1.0f, d); }
__device__ __forceinline__ double act_recip_1_2(double d) { return 1.0 / d; }
"""

_C = "typedef act_compute<T>::type C;\n"

# relu: NaN < 0 is false, so NaN passes through (fmax(x, 0) would give 0).
RELU_BODY = _C + "const C v = x;\ny = v < C(0) ? C(0) : v;"
# relu_grad: dy where x > 0, else 0 (also where x is NaN).
RELU_GRAD_BODY = _C + "dx = C(x) > C(0) ? C(dy) : C(0);"
# sigmoid without overflow: exp of -|x| only; exactly 0 and 1 at -inf and +inf; NaN stays NaN.
SIGMOID_BODY = _C + (
    "const C v = x;\n"
    "const C e = act_exp(-fabs(v));\n"
    "const C r = act_recip_1_2(C(1) + e);\n"
    "y = v >= C(0) ? r : e * r;")
# sigmoid_grad from the forward output, left to right: (dy * y) * (1 - y).
SIGMOID_GRAD_BODY = _C + "const C v = y;\ndx = (C(dy) * v) * (C(1) - v);"
TANH_BODY = _C + "y = act_tanh(C(x));"
# tanh_grad: dy * (1 - y * y); 1 - y * y may become one FMA (NVRTC's default --fmad=true).
TANH_GRAD_BODY = _C + "const C v = y;\ndx = C(dy) * (C(1) - v * v);"
LEAKY_RELU_BODY = _C + "const C v = x;\ny = v > C(0) ? v : slope * v;"
LEAKY_RELU_GRAD_BODY = _C + "const C d = dy;\ndx = C(x) > C(0) ? d : slope * d;"
# relu_mask runs over the mask's bytes: byte i packs x[8i .. 8i+7] > 0 (little bit order) and
# writes the same eight elements of y.
RELU_MASK_BODY = _C + (
    "const long long first = (long long)i * 8;\n"
    "unsigned int bits = 0;\n"
    "for (int j = 0; j < 8; ++j) {\n"
    "    const long long e = first + j;\n"
    "    if (e < n) {\n"
    "        const C v = x[e];\n"
    "        y[e] = v < C(0) ? C(0) : v;\n"
    "        bits |= (unsigned int)(v > C(0)) << j;\n"
    "    }\n"
    "}\n"
    "mask = (unsigned char)bits;")
RELU_GRAD_MASK_BODY = _C + (
    "const bool keep = (mask[i >> 3] >> (i & 7)) & 1;\n"
    "dx = keep ? C(dy) : C(0);")


@dataclass(frozen=True)
class Elementwise:
    """The arguments of one cupy.ElementwiseKernel, in CuPy's syntax."""

    op: str
    in_params: str
    out_params: str
    body: str
    scalars: tuple[str, ...] = ()     # parameters passed as scalars, not arrays

    @property
    def name(self) -> str:
        return f"_{self.op}_kernel"


ELEMENTWISE = {e.op: e for e in (
    Elementwise("relu", "T x", "T y", RELU_BODY),
    Elementwise("relu_grad", "T dy, T x", "T dx", RELU_GRAD_BODY),
    Elementwise("sigmoid", "T x", "T y", SIGMOID_BODY),
    Elementwise("sigmoid_grad", "T dy, T y", "T dx", SIGMOID_GRAD_BODY),
    Elementwise("tanh", "T x", "T y", TANH_BODY),
    Elementwise("tanh_grad", "T dy, T y", "T dx", TANH_GRAD_BODY),
    Elementwise("leaky_relu", "T x, S slope", "T y", LEAKY_RELU_BODY, scalars=("slope",)),
    Elementwise("leaky_relu_grad", "T dy, T x, S slope", "T dx", LEAKY_RELU_GRAD_BODY, scalars=("slope",)),
    Elementwise("relu_mask", "raw T x, int64 n", "raw T y, uint8 mask", RELU_MASK_BODY, scalars=("n",)),
    Elementwise("relu_grad_mask", "T dy, raw uint8 mask", "T dx", RELU_GRAD_MASK_BODY),
)}


@functools.cache
def _elementwise(op: str):
    e = ELEMENTWISE[op]
    return cupy.ElementwiseKernel(e.in_params, e.out_params, e.body, e.name, preamble=ELEMENTWISE_PREAMBLE)


def _slope(x, slope):
    return COMPUTE[str(x.dtype)](slope)


@register("relu", "cupy_elementwise")
def relu_ew(x, out=None):
    return _elementwise("relu")(x, _out(out, x))


@register("relu_grad", "cupy_elementwise")
def relu_grad_ew(dy, x, out=None):
    return _elementwise("relu_grad")(dy, x, _out(out, dy))


@register("sigmoid", "cupy_elementwise")
def sigmoid_ew(x, out=None):
    return _elementwise("sigmoid")(x, _out(out, x))


@register("sigmoid_grad", "cupy_elementwise")
def sigmoid_grad_ew(dy, y, out=None):
    return _elementwise("sigmoid_grad")(dy, y, _out(out, dy))


@register("tanh", "cupy_elementwise")
def tanh_ew(x, out=None):
    return _elementwise("tanh")(x, _out(out, x))


@register("tanh_grad", "cupy_elementwise")
def tanh_grad_ew(dy, y, out=None):
    return _elementwise("tanh_grad")(dy, y, _out(out, dy))


@register("leaky_relu", "cupy_elementwise")
def leaky_relu_ew(x, out=None, slope=0.01):
    return _elementwise("leaky_relu")(x, _slope(x, slope), _out(out, x))


@register("leaky_relu_grad", "cupy_elementwise")
def leaky_relu_grad_ew(dy, x, out=None, slope=0.01):
    return _elementwise("leaky_relu_grad")(dy, x, _slope(dy, slope), _out(out, dy))


@register("relu_mask", "cupy_elementwise")
def relu_mask_ew(x, out=None):
    y, mask = _outs(out, x)
    if mask.size:                         # the kernel's size is the mask's: ceil(n / 8) bytes
        _elementwise("relu_mask")(x.reshape(-1), np.int64(x.size), y.reshape(-1), mask)
    return y, mask


@register("relu_grad_mask", "cupy_elementwise")
def relu_grad_mask_ew(dy, mask, out=None):
    out = _out(out, dy)
    _elementwise("relu_grad_mask")(dy.reshape(-1), mask, out.reshape(-1))
    return out


# ================================================================================================
# cupy_raw: RawModule over kernels/cuda/*.cu
# ================================================================================================

def raw_options(nvrtc_major: int | None = None) -> tuple[str, ...]:
    """NVRTC options of the RawModules (the architecture is CuPy's to add): C++17, NVRTC's default
    FMA contraction spelled out, kernels/cuda on the include path, and cuda_fp16.h's folder when
    one matching NVRTC's major version is found (else kernels/cuda/fp16.cuh's stand-in is used).
    CuPy itself adds -ftz=true and the -arch of the current device."""
    from .nvrtc import fp16_include_dir
    opts = ["--std=c++17", "--fmad=true", f"-I{CUDA_DIR}"]
    found = fp16_include_dir(nvrtc_major)
    if found is not None:
        opts.append(f"-I{found[0]}")
    return tuple(opts)


@functools.cache
def _module(filename: str):
    major = cupy.cuda.nvrtc.getVersion()[0]
    code = (CUDA_DIR / filename).read_text()
    return cupy.RawModule(code=code, options=raw_options(major))


@functools.cache
def _raw_function(op: str, dtype: str):
    return _module(RAW_SOURCES[op]).get_function(raw_kernel_name(op, dtype))


@functools.cache
def _attributes(device: int) -> dict:
    """The device's attributes (cudaDevAttr* names without the prefix), read once."""
    return cupy.cuda.Device(device).attributes


@functools.cache
def _resident_blocks(op: str, dtype: str, device: int) -> int:
    """Blocks of BLOCK threads one SM holds at once for this kernel (its registers permitting)."""
    fn = _raw_function(op, dtype)
    try:
        return max(1, cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(fn.kernel.ptr, BLOCK, 0))
    except Exception:  # older CuPy: from the register count and the SM's limits
        attrs = _attributes(device)
        by_threads = attrs.get("MaxThreadsPerMultiProcessor", 2048) // BLOCK
        by_regs = attrs.get("MaxRegistersPerMultiprocessor", 65536) // max(1, fn.num_regs * BLOCK)
        return max(1, min(by_threads, by_regs))


def _launch(op: str, x, args: tuple) -> None:
    """Launch op's RawKernel for x's dtype over n = x.size elements on the current stream: a grid
    of SMs x resident blocks, fewer when n needs fewer threads (one per 16-byte vector)."""
    n = x.size
    if n == 0:
        return
    dtype = str(x.dtype)
    device = cupy.cuda.runtime.getDevice()
    per_thread = 16 // x.dtype.itemsize
    wanted = -(-n // (per_thread * BLOCK))
    grid = min(_attributes(device)["MultiProcessorCount"] * _resident_blocks(op, dtype, device), wanted)
    _raw_function(op, dtype)((max(1, grid),), (BLOCK,), args)


@register("relu", "cupy_raw")
def relu_raw(x, out=None):
    out = _out(out, x)
    _launch("relu", x, (x, out, np.int64(x.size)))
    return out


@register("relu_grad", "cupy_raw")
def relu_grad_raw(dy, x, out=None):
    out = _out(out, dy)
    _launch("relu_grad", dy, (dy, x, out, np.int64(dy.size)))
    return out


@register("sigmoid", "cupy_raw")
def sigmoid_raw(x, out=None):
    out = _out(out, x)
    _launch("sigmoid", x, (x, out, np.int64(x.size)))
    return out


@register("sigmoid_grad", "cupy_raw")
def sigmoid_grad_raw(dy, y, out=None):
    out = _out(out, dy)
    _launch("sigmoid_grad", dy, (dy, y, out, np.int64(dy.size)))
    return out


@register("tanh", "cupy_raw")
def tanh_raw(x, out=None):
    out = _out(out, x)
    _launch("tanh", x, (x, out, np.int64(x.size)))
    return out


@register("tanh_grad", "cupy_raw")
def tanh_grad_raw(dy, y, out=None):
    out = _out(out, dy)
    _launch("tanh_grad", dy, (dy, y, out, np.int64(dy.size)))
    return out


@register("leaky_relu", "cupy_raw")
def leaky_relu_raw(x, out=None, slope=0.01):
    out = _out(out, x)
    _launch("leaky_relu", x, (x, out, np.int64(x.size), _slope(x, slope)))
    return out


@register("leaky_relu_grad", "cupy_raw")
def leaky_relu_grad_raw(dy, x, out=None, slope=0.01):
    out = _out(out, dy)
    _launch("leaky_relu_grad", dy, (dy, x, out, np.int64(dy.size), _slope(dy, slope)))
    return out


@register("relu_mask", "cupy_raw")
def relu_mask_raw(x, out=None):
    y, mask = _outs(out, x)
    _launch("relu_mask", x, (x, y, mask, np.int64(x.size)))
    return y, mask


@register("relu_grad_mask", "cupy_raw")
def relu_grad_mask_raw(dy, mask, out=None):
    out = _out(out, dy)
    _launch("relu_grad_mask", dy, (dy, mask, out, np.int64(dy.size)))
    return out
