"""CuPy backends, three ways a GPU user runs these ops: CuPy's ufuncs, ElementwiseKernels, RawKernels.

- `cupy`: CuPy's own ufuncs, the way a GPU user writes them (`cupy.maximum(x, 0)`,
  `1 / (1 + cupy.exp(-x))`): the GPU peer. It is the NumPy baseline's code itself
  (kernels/backends/numpy/elementwise.py, `ArrayModuleOps`) run with `xp = cupy`.
- `cupy_elementwise`: one `cupy.ElementwiseKernel` per op, declared in `ELEMENTWISE` (parameters
  in CuPy's syntax and a body), so that kernels/backends/cupy/expand.py can run CuPy's own type resolution
  and code generation on them without a GPU.
- `cupy_raw`: `cupy.RawModule` over kernels/cuda/*.cu (grid-stride loops, 16-byte vectors, a
  scalar tail; see kernels/cuda/common.cuh), launched with BLOCK threads per block and a grid of
  the device's SMs x the blocks each SM holds at once (CUDA's occupancy API), never more blocks
  than there is work.

Both kernel families are launched by one generic launcher each, registered for every op of the
OPS table (kernels/ops/): the arguments follow the op's inputs, outputs and parameters.
CuPy is imported by the probe, on first use, never at `import kernels`; the probes compile and
launch a trivial kernel, so missing CUDA headers are a reason, not a failure in every case.
ElementwiseKernels and RawModules are built on first use and cached. Every launcher writes into
`out` when given and returns it; all launch on the current stream.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.cuda.build import BLOCK, CUDA_DIR, DTYPES, raw_kernel_name, raw_options
from kernels.backends.numpy.elementwise import ArrayModuleOps, register_all
from kernels.ops import OPS, dtype_name
from kernels.registry import Available, Backend, declare_backend, output_layout, register

cupy = None



def _raw_sources() -> dict[str, str]:
    """op -> the .cu file of kernels/cuda/ that holds its RawKernels, read from the sources: the file
    whose ACT_*_KERNELS(<op>, ...) declares them (common.cuh's macros; a file can also spell a
    kernel's name, `raw_kernel_name`). A new op's kernels need no entry here."""
    out = {}
    for path in sorted(CUDA_DIR.glob("*.cu")):
        text = path.read_text()
        declared = set(re.findall(r"\bACT_\w+_KERNELS\(\s*(\w+)\s*,", text))
        for op, spec in OPS.items():
            if spec.kind == "elementwise" and (op in declared or f"{raw_kernel_name(op, 'float32')}(" in text):
                out.setdefault(op, path.name)
    return out


RAW_SOURCES = _raw_sources()
COMPUTE = {"float16": np.float32, "float32": np.float32, "float64": np.float64}   # RawKernels' scalar args

_PROBE_RAW = r"""#include "common.cuh"
extern "C" __global__ void _actbench_probe(__half* y) { y[0] = act::from_c<__half>(1.0f); }
"""


@functools.cache
def import_cupy() -> str | None:
    """Import CuPy and find a GPU, binding this module's `cupy` (which every CuPy backend's array
    functions use, kernels/backends/cupy/sparse.py's too): None, or why not."""
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


def _probe_launch(launch, wrong: str, failed: str) -> str | None:
    """Run a probe kernel: launch() returns a float16 array whose first element it set to 1.
    None when it did; else why not (wrong: it ran but gave another value; failed: it raised)."""
    try:
        y = launch()
        cupy.cuda.get_current_stream().synchronize()
        if float(y[0]) != 1.0:
            return wrong
    except Exception as exc:
        return f"{failed}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return None


@functools.cache
def _probe_cupy() -> str | None:
    # CuPy's headers, NVRTC and a launch: what every ElementwiseKernel needs
    return import_cupy() or _probe_launch(
        lambda: cupy.ElementwiseKernel("T x", "T y", "y = x", "_actbench_probe")(cupy.ones(1, cupy.float16)),
        "CuPy's probe kernel gave a wrong value", "CuPy cannot compile and launch a kernel")


@functools.cache
def _probe_raw() -> str | None:
    def launch():       # kernels/cuda's headers (cuda_fp16.h through CuPy's include path) and a launch
        y = cupy.zeros(1, cupy.float16)
        cupy.RawModule(code=_PROBE_RAW, options=raw_options()).get_function("_actbench_probe")((1,), (1,), (y,))
        return y

    return _probe_cupy() or _probe_launch(launch, "the RawModule probe kernel gave a wrong value",
                                          "CuPy cannot compile kernels/cuda's headers")


def device_name() -> str:
    """The current device's name (after `import_cupy`)."""
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else name


def _describe() -> str:
    return f"CuPy {cupy.__version__} on {device_name()} (sm_{cupy.cuda.Device().compute_capability})"


def declare_cupy_backend(name: str, probe: Callable[[], Available | str],
                         dtypes: tuple[str, ...] = DTYPES, flushes_subnormals: tuple[str, ...] = ()) -> Backend:
    """Declare a backend on CuPy arrays (current device and stream). Its probe must call
    `import_cupy` first: the array functions use the module it binds."""
    return declare_backend(Backend(
        flushes_subnormals=flushes_subnormals,
        name=name,
        library="cupy",
        default_device="gpu",
        probe=probe,
        to_native=lambda a: cupy.array(a, copy=True),
        to_numpy=lambda a: cupy.asnumpy(a),
        is_native=lambda a: cupy is not None and isinstance(a, cupy.ndarray),
        empty=lambda shape, dtype: cupy.empty(shape, dtype),
        dtypes=dtypes,
        synchronize=lambda: cupy.cuda.get_current_stream().synchronize(),
        contiguous=lambda a: cupy.ascontiguousarray(a),
    ))


def _declare(name: str, what: str, probe_fn, flushes_subnormals: tuple[str, ...] = ()) -> Backend:
    def probe() -> Available | str:
        return probe_fn() or Available(description=f"{what}; {_describe()}")

    return declare_cupy_backend(name, probe, flushes_subnormals=flushes_subnormals)


# CuPy compiles its ufuncs with -ftz=true: a float32 compare or product reads a subnormal operand as
# 0 (relu_grad(dy, 1e-40) is 0). That is what a CuPy user gets, so the peer is measured as it is and
# declares it; our own kernels decide on the bits (kernels/cuda/sign.cuh) and declare nothing.
# (float16 ufuncs compute in float32, where every float16 subnormal is a normal number.)
_declare("cupy", "CuPy's own ufuncs, as a GPU user would write them", _probe_cupy, flushes_subnormals=("float32",))
_declare("cupy_elementwise", "cupy.ElementwiseKernel per op (kernels/backends/cupy/elementwise.py)", _probe_cupy)
_declare("cupy_raw", "cupy.RawModule over kernels/cuda/*.cu: grid-stride, 16-byte vectors", _probe_raw)


def _outputs(op: str, first, out) -> tuple:
    """The op's output arrays: out= as given (a tuple for several), else new ones like `first`."""
    if out is not None:
        return out if isinstance(out, tuple) else (out,)
    return tuple(cupy.empty(shape, dt) for shape, dt in output_layout(OPS[op], first))


def _returned(outs: tuple):
    return outs if len(outs) > 1 else outs[0]


# ================================================================================================
# cupy: CuPy's ufuncs, the very code of the NumPy baseline with xp = cupy
# ================================================================================================

register_all("cupy", ArrayModuleOps(lambda: cupy))


# ================================================================================================
# cupy_elementwise: one ElementwiseKernel per op
# ================================================================================================
# CuPy expands an ElementwiseKernel into a typedef per type placeholder that an array argument
# binds (T here; a placeholder only a scalar uses is never bound), this preamble, and a
# grid-stride loop whose body binds each non-raw parameter to a reference to its element, then
# runs the body. Arithmetic is in C: float for float16 (CuPy's float16 converts to and from
# float), T otherwise.

# sign.cuh: the ReLU family's sign tests on x's bits (CuPy's -ftz=true would read a subnormal x as 0
# in a float compare), the same definitions as the RawKernels'; its #pragma once left out (in the
# main file NVRTC warns about it)
SIGN_TESTS = "".join(line for line in (CUDA_DIR / "sign.cuh").read_text().splitlines(keepends=True)
                     if not line.startswith("#pragma once"))

# logistic.cuh: SiLU's and GELU's sigmoid pieces, the same as the RawKernels' (its #pragma once left out)
LOGISTIC = "".join(line for line in (CUDA_DIR / "logistic.cuh").read_text().splitlines(keepends=True)
                   if not line.startswith("#pragma once"))

ELEMENTWISE_PREAMBLE = SIGN_TESTS + LOGISTIC + r"""
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

# The ReLU family decides on x's sign with sign.cuh's act::gt_zero / lt_zero / le_zero (its bits),
# never a float compare, which CuPy's -ftz=true makes read a subnormal x as 0.
# relu: NaN < 0 is false, so NaN passes through (fmax(x, 0) would give 0).
RELU_BODY = _C + "const C v = x;\ny = act::lt_zero(v) ? C(0) : v;"
# relu_grad: dy unless x <= 0, as torch's threshold_backward (a NaN x passes dy).
RELU_GRAD_BODY = _C + "dx = act::le_zero(C(x)) ? C(0) : C(dy);"
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
# leaky_relu(_grad): the slope comes as a float64 scalar (a placeholder only a scalar uses is never
# bound by CuPy) and is rounded to C once, as the RawKernels' slope argument is.
LEAKY_RELU_BODY = _C + "const C v = x;\ny = act::gt_zero(v) ? v : C(slope) * v;"
LEAKY_RELU_GRAD_BODY = _C + "const C d = dy;\ndx = act::gt_zero(C(x)) ? d : C(slope) * d;"
# SiLU and GELU with logistic.cuh's pieces, as silu.cu and gelu.cu: x * sigmoid(z) (z = x, or
# GELU's 2u), and the gradients dy s (1 + x (1 - s) z') (z' = 1 for SiLU); NaN at +-inf as PyTorch's.
SILU_BODY = _C + "const C v = x;\ny = act::x_sigmoid(v, v);"
SILU_GRAD_BODY = _C + (
    "const C v = x;\n"
    "C s, c;\n"
    "act::sigmoid_parts(v, s, c);\n"
    "dx = C(dy) * (s * (C(1) + v * c));")
GELU_BODY = _C + "const C v = x;\ny = act::x_sigmoid(v, act::gelu_z(v));"
GELU_GRAD_BODY = _C + (
    "const C v = x;\n"
    "C s, c;\n"
    "act::sigmoid_parts(act::gelu_z(v), s, c);\n"
    "const C v2 = v * v;\n"
    "dx = C(dy) * (s * (C(1) + (v * c) * (C(ACT_GELU_C1) + C(3.0 * ACT_GELU_C2) * v2)));")
# relu_mask runs over the mask's bytes: byte i packs x[8i .. 8i+7] > 0 (little bit order) and
# writes the same eight elements of y.
RELU_MASK_BODY = _C + (
    "const long long first = (long long)i * 8;\n"
    "unsigned int bits = 0;\n"
    "for (int j = 0; j < 8; ++j) {\n"
    "    const long long e = first + j;\n"
    "    if (e < n) {\n"
    "        const C v = x[e];\n"
    "        y[e] = act::lt_zero(v) ? C(0) : v;\n"
    "        bits |= (unsigned int)act::gt_zero(v) << j;\n"
    "    }\n"
    "}\n"
    "mask = (unsigned char)bits;")
RELU_GRAD_MASK_BODY = _C + (
    "const bool keep = (mask[i >> 3] >> (i & 7)) & 1;\n"
    "dx = keep ? C(dy) : C(0);")


def _param_words(spec: str) -> list[tuple[str, str]]:
    """CuPy's 'raw T x, int64 n' -> [('T', 'x'), ('int64', 'n')]."""
    return [(words[-2], words[-1]) for words in (part.split() for part in spec.split(","))]


@dataclass(frozen=True)
class Elementwise:
    """The arguments of one cupy.ElementwiseKernel, in CuPy's syntax. Parameters named as the op's
    inputs and outputs are its arrays (flattened); a parameter named as one of the op's params
    (slope) is that scalar, and `n` the element count, each of its declared dtype."""

    op: str
    in_params: str
    out_params: str
    body: str

    @property
    def name(self) -> str:
        return f"_{self.op}_kernel"

    def build(self, cp):
        """The cupy.ElementwiseKernel (building one needs no device; compiling does)."""
        return cp.ElementwiseKernel(self.in_params, self.out_params, self.body, self.name,
                                    preamble=ELEMENTWISE_PREAMBLE)

    def arguments(self, arrays, outs, params: dict) -> list:
        """What the launcher passes to the kernel: the in_params' values, then the outputs."""
        spec = OPS[self.op]
        named = dict(zip(spec.inputs, arrays))
        args = []
        for typ, name in _param_words(self.in_params):
            if name in named:
                args.append(named[name].reshape(-1))
            elif name == "n":
                args.append(np.int64(arrays[0].size))
            else:
                args.append(np.dtype(typ).type(params[name]))
        return args + [o.reshape(-1) for o in outs]


ELEMENTWISE = {e.op: e for e in (
    Elementwise("relu", "T x", "T y", RELU_BODY),
    Elementwise("relu_grad", "T dy, T x", "T dx", RELU_GRAD_BODY),
    Elementwise("sigmoid", "T x", "T y", SIGMOID_BODY),
    Elementwise("sigmoid_grad", "T dy, T y", "T dx", SIGMOID_GRAD_BODY),
    Elementwise("tanh", "T x", "T y", TANH_BODY),
    Elementwise("tanh_grad", "T dy, T y", "T dx", TANH_GRAD_BODY),
    Elementwise("leaky_relu", "T x, float64 slope", "T y", LEAKY_RELU_BODY),
    Elementwise("leaky_relu_grad", "T dy, T x, float64 slope", "T dx", LEAKY_RELU_GRAD_BODY),
    Elementwise("silu", "T x", "T y", SILU_BODY),
    Elementwise("silu_grad", "T dy, T x", "T dx", SILU_GRAD_BODY),
    Elementwise("gelu", "T x", "T y", GELU_BODY),
    Elementwise("gelu_grad", "T dy, T x", "T dx", GELU_GRAD_BODY),
    Elementwise("relu_mask", "raw T x, int64 n", "raw T y, uint8 mask", RELU_MASK_BODY),
    Elementwise("relu_grad_mask", "T dy, raw uint8 mask", "T dx", RELU_GRAD_MASK_BODY),
)}


@functools.cache
def _elementwise(op: str):
    return ELEMENTWISE[op].build(cupy)


def _elementwise_launcher(op: str):
    ew = ELEMENTWISE[op]

    def launch(*arrays, out=None, **params):
        outs = _outputs(op, arrays[0], out)
        _elementwise(op)(*ew.arguments(arrays, outs, params))
        return _returned(outs)

    launch.__name__ = launch.__qualname__ = f"{op}_elementwise"
    return launch


for _op in ELEMENTWISE:
    register(_op, "cupy_elementwise")(_elementwise_launcher(_op))


# ================================================================================================
# cupy_raw: RawModule over kernels/cuda/*.cu
# ================================================================================================

@functools.cache
def _module(filename: str):
    return cupy.RawModule(code=(CUDA_DIR / filename).read_text(), options=raw_options())


@functools.cache
def _raw_function(op: str, dtype: str):
    return _module(RAW_SOURCES[op]).get_function(raw_kernel_name(op, dtype))


@functools.cache
def _sm_count(device: int) -> int:
    return int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])


@functools.cache
def _resident_blocks(op: str, dtype: str, device: int) -> int:
    """Blocks of BLOCK threads one SM holds at once for this kernel (CUDA's occupancy API)."""
    fn = _raw_function(op, dtype)
    return max(1, cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(fn.kernel.ptr, BLOCK, 0))


def _raw_launcher(op: str):
    spec = OPS[op]

    def launch(*arrays, out=None, **params):
        """op's RawKernel over n = x.size elements on the current stream: a grid of SMs x resident
        blocks, fewer when n needs fewer threads (one per 16-byte vector). The arguments are the
        .cu kernel's: inputs, outputs, n, then the op's scalars in the compute type."""
        first = arrays[0]
        outs = _outputs(op, first, out)
        n = first.size
        if n:
            dtype = dtype_name(first)             # cached: str(dtype) runs Python code in NumPy
            device = cupy.cuda.runtime.getDevice()
            wanted = -(-n // ((16 // first.dtype.itemsize) * BLOCK))
            grid = max(1, min(_sm_count(device) * _resident_blocks(op, dtype, device), wanted))
            scalars = tuple(COMPUTE[dtype](params[p]) for p in spec.params)
            _raw_function(op, dtype)((grid,), (BLOCK,), (*arrays, *outs, np.int64(n), *scalars))
        return _returned(outs)

    launch.__name__ = launch.__qualname__ = f"{op}_raw"
    return launch


for _op in RAW_SOURCES:
    register(_op, "cupy_raw")(_raw_launcher(_op))
