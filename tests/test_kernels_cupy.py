"""The CuPy backends: what can be checked here, without a GPU, and what only a GPU can check.

Here (no GPU; CuPy imports without one):
- the cupy* backends say why they cannot run, and importing kernels never imports cupy;
- the RawKernels of kernels/cuda/*.cu, and the ElementwiseKernels as CuPy's own code generation
  writes them (kernels/backends/cupy/expand.py, with CuPy's headers), run on the CPU, compiled as C++ with
  kernels/cuda/host_shim.h (each warp is 32 threads; ballots and shuffles meet at a barrier):
  every op and dtype, sizes around the vector width and the grid, arrays 16-byte aligned, all
  shifted by one element (the scalar head, then vectors) and shifted differently (scalar all the
  way), guard bytes around every output, checked against kernels/ops/. float16 and
  float32 kernels run twice: in IEEE mode, and in the float mode CuPy compiles them in
  (-ftz=true: the lanes run with x86 MXCSR's FTZ and DAZ set), where the old compare-based ReLU
  kernels fail on subnormal x and the bit tests of kernels/cuda/sign.cuh pass.

On a GPU (marked `gpu`, skipped with the reason where there is none): cupy_raw on misaligned
views, sizes around multiples of the vector width and of the launch grid, on a non-default
stream, and beyond 2**31 elements where memory allows. The generic correctness suite
(test_kernels_correctness.py) runs every available backend, the CuPy ones included.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import kernels
from bench.measure import roofline
from bench.measure.check import compare
from bench.measure.inputs import random_inputs, special_inputs
from kernels.cuda import build as cuda_build
from kernels.nvrtc import resources
from kernels.backends.cupy import expand as cupy_expand, elementwise as cupy_gpu
from kernels import registry
from kernels.ops import OPS, mask_nbytes

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = cuda_build.CUDA_DIR
GPU_BACKENDS = ("cupy", "cupy_elementwise", "cupy_raw")
ELEMENTWISE_OPS = list(cupy_gpu.ELEMENTWISE)
DTYPES = list(cuda_build.DTYPES)


# ================================================================================================
# Without a GPU: reasons, lazy import
# ================================================================================================

@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_backend_record(name):
    be = registry.backend(name)
    assert be.device == "gpu"
    assert be.dtypes == ("float16", "float32", "float64")
    for op in cupy_gpu.RAW_SOURCES:
        assert registry.kernel(op, name).supports_out


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_unavailable_backend_says_why(name):
    be = registry.backend(name)
    if be.available:
        pytest.skip(f"{name} is available here")
    assert ("cupy is not installed (pip install -e '.[cuda12]' or '.[cuda13]')" in be.reason
            or "GPU" in be.reason or "cupy failed to import" in be.reason), be.reason
    with pytest.raises(RuntimeError, match=re.escape(be.reason)):
        kernels.get("relu", name)


# ================================================================================================
# Without a GPU: CuPy's own type resolution and code generation of the launchers' calls
# ================================================================================================

if cupy_expand.reason():   # the dev extra installs CuPy: missing, it is a failure, not a skip
    pytest.fail(f"CuPy is needed by these tests: {cupy_expand.reason()}", pytrace=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_cupy_resolves_the_launchers_call(op, dtype):
    """CuPy's own _decide_params_type on the arguments the launcher passes: every placeholder
    bound (a placeholder only a scalar uses is a KeyError on every call on a GPU), arrays of dtype."""
    ew = cupy_gpu.ELEMENTWISE[op]
    in_types, out_types, type_map = cupy_expand.resolve(ew, dtype)
    assert "T" in str(type_map) and np.dtype(dtype) in (*in_types, *out_types)


@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_cupy_generates_the_kernel(op):
    """CuPy's own code generation: the kernel by its name, the body inside CuPy's loop."""
    e = cupy_expand.expand(cupy_gpu.ELEMENTWISE[op], "float32")
    assert f'extern "C" __global__ void {e.name}(' in e.source and "CUPY_FOR" in e.source
    assert cupy_gpu.ELEMENTWISE[op].body.splitlines()[-1] in e.source


def test_importing_kernels_does_not_import_cupy():
    code = "import sys, kernels; kernels.all_backends(); sys.exit('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# ================================================================================================
# Without a GPU: the kernels on the CPU (kernels/cuda/host_shim.h)
# ================================================================================================

CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
_SIGNATURE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(([^)]*)\)')
_CTYPES = {"long long": ctypes.c_longlong, "float": ctypes.c_float, "double": ctypes.c_double}
LAUNCHES = ((2, 64), (1, 32))        # (blocks, threads): small grids, so grid-stride loops go round
SIZES = (0, 1, 7, 33, 255, 257, 1029, 4099)


class HostKernels:
    """A shared library of host-compiled kernels, each callable by name with NumPy arrays and
    scalars: in the kernel's argument order, or (`by_name`) by its parameter names."""

    def __init__(self, lib: ctypes.CDLL, signatures: dict[str, list[tuple[str, str]]], by_name: bool):
        self.lib, self.signatures, self.by_name = lib, signatures, by_name

    def flush_to_zero(self, on: bool) -> None:
        """The lanes' float mode for the next launches (host_shim.h): FTZ + DAZ, or IEEE."""
        if not self.lib.act_host_flush_to_zero(int(on)):
            pytest.skip("flush-to-zero needs x86 MXCSR (kernels/cuda/host_shim.h)")

    def __call__(self, name: str, grid: int, block: int, values: list, ftz: bool = False):
        self.flush_to_zero(ftz)
        params = self.signatures[name]
        assert len(values) == len(params), f"{name} takes {len(params)} arguments, got {len(values)}"
        args = [ctypes.c_void_p(v.ctypes.data) if ctype == "ptr" else _CTYPES[ctype](v)
                for (ctype, _), v in zip(params, values)]
        fn = getattr(self.lib, f"host_{name}")
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [ctypes.c_void_p if c == "ptr" else _CTYPES[c] for c, _ in params]
        fn.restype = None
        fn(grid, block, *args)


def _wrappers(source: str) -> tuple[str, dict]:
    """extern "C" host_<kernel>(grid, block, params...) launchers for each kernel in source (to be
    placed after it, in the same namespace)."""
    code, sigs = [], {}
    for name, plist in _SIGNATURE.findall(source):
        params = []
        for p in plist.split(","):
            p = " ".join(p.split())
            pname = p.split()[-1]
            if "*" in p:
                ctype = "ptr"
            else:
                ctype = " ".join(w for w in p.split()[:-1] if w != "const")
            params.append((ctype, pname))
        sigs[name] = params
        call = f"{name}({', '.join(n for _, n in params)})"
        code.append(f'extern "C" void host_{name}(unsigned grid, unsigned block, {plist}) '
                    f"{{ act_host::launch(grid, block, [&] {{ {call}; }}); }}")
    return "\n".join(code), sigs


def _preprocessed(path: Path) -> str:
    """A .cu file with its macros expanded (the elementwise kernels are written as common.cuh's
    ACT_*_KERNELS lines): the extern "C" signatures the host launchers are made from."""
    cmd = [CXX, "-E", "-P", "-x", "c++", "-std=c++20", "-DACTBENCH_HOST_EMULATION", f"-I{CUDA_DIR}", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return proc.stdout


def _build(tmp: Path, name: str, body: str, sigs: dict, by_name: bool, extra: list[str] = ()) -> HostKernels:
    src, lib = tmp / f"{name}.cpp", tmp / f"{name}.so"
    src.write_text(body)
    cmd = [CXX, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-DACTBENCH_HOST_EMULATION",
           "-include", str(CUDA_DIR / "host_shim.h"), f"-I{CUDA_DIR}", *extra, str(src), "-o", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return HostKernels(ctypes.CDLL(str(lib)), sigs, by_name)


@functools.cache
def _cxx_reason() -> str | None:
    """Why the kernels cannot run on the CPU here: no C++ compiler, or one without _Float16 (the
    host shim's __half; g++ has it from 12 on x86-64)."""
    if CXX is None:
        return "no C++ compiler (g++) to run the kernels on the CPU"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f16.cpp"
        src.write_text("_Float16 h = 1.5f;\nfloat f() { return static_cast<float>(h); }\n")
        proc = subprocess.run([CXX, "-std=c++20", "-c", str(src), "-o", str(Path(tmp) / "f16.o")],
                              capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return f"{CXX} has no _Float16 (needed by kernels/cuda/host_shim.h): {proc.stderr.strip()[:200]}"
    return None


def _need_cxx():
    reason = _cxx_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def raw_host(tmp_path_factory) -> HostKernels:
    """kernels/cuda/*.cu compiled for the CPU."""
    _need_cxx()
    body, sigs = [], {}
    for path in resources.raw_sources():
        body.append(f'#include "{path.name}"')
        code, s = _wrappers(_preprocessed(path))
        body.append(code)
        sigs.update(s)
    return _build(tmp_path_factory.mktemp("raw"), "raw", "\n".join(body) + "\n", sigs, by_name=False)


# CuPy's own headers (carray.cuh, float16.cuh, atomics.cuh) name CUDA intrinsics that host_shim.h
# does not give (it has the float <-> int bit casts): the host versions here, in front of them.
# float16.cuh takes cuda_fp16.h's half only under a CUDA compiler; elsewhere its own `half` keeps
# raw bits, converted by the shim's conversions.
_CUPY_HOST_PRELUDE = r"""
#include <bit>
inline int __popc(unsigned int x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline double __longlong_as_double(long long v) { return std::bit_cast<double>(v); }
inline long long __double_as_longlong(double v) { return std::bit_cast<long long>(v); }
template <class T> inline T atomicCAS(T* p, T expected, T desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
struct half;
template <class H> inline unsigned short __half_as_ushort(H h) { unsigned short v; std::memcpy(&v, &h, 2); return v; }
template <class H = half> inline H __ushort_as_half(unsigned short v) { H h; std::memcpy(&h, &v, 2); return h; }
inline unsigned short act_host_f2h(float v) { return __float2half_rn(v).x; }
inline float act_host_h2f(unsigned short h) { return __half2float(__half{h}); }
#define __float2half_rn(v) act_host_f2h(v)
#define __half2float(h) act_host_h2f(h)
"""
_INCLUDE = re.compile(r"^\s*#include\s*[<\"][^>\"]+[>\"]\s*$", re.M)
_CARRAY = re.compile(r"(?:const\s+)?CArray<\s*([^,>]+?)\s*,[^>]*>\s+(\w+)")
_CINDEXER = re.compile(r"CIndexer<[^>]*>\s+(\w+)")


def _split_params(plist: str) -> list[str]:
    """A parameter list split at its top-level commas (CArray<float, 1, 1, 1> has its own)."""
    parts, depth, cur = [], 0, ""
    for ch in plist:
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()] if cur.strip() else parts


def _cupy_host_wrapper(name: str, plist: str) -> tuple[str, list[tuple[str, str]]]:
    """extern "C" host_<name>(grid, block, ...) for a kernel CuPy generated: each CArray passed as
    (pointer, size) and built as CuPy builds it for a contiguous array, the CIndexer from its size,
    scalars as they are. Returns the code and the host parameters as (ctype, name)."""
    host, build, call, sig = [], [], [], []
    for p in _split_params(plist):
        if m := _CARRAY.fullmatch(p):
            elem, pname = m.groups()
            ctype = p[:m.start(2)].strip().removeprefix("const").strip()
            host += [f"void* {pname}", f"long long {pname}_size"]
            build.append(f"{ctype} {pname}_a(static_cast<{elem}*>({pname}), &{pname}_size);")
            call.append(f"{pname}_a")
            sig += [("ptr", pname), ("long long", f"{pname}.size")]
        elif m := _CINDEXER.fullmatch(p):
            pname = m.group(1)
            host.append(f"long long {pname}_size")
            build.append(f"{p.rsplit(' ', 1)[0]} {pname}_i(&{pname}_size);")
            call.append(f"{pname}_i")
            sig.append(("long long", pname))
        else:                                     # a scalar: const double slope, const long long n
            words = p.replace("const ", "").split()
            host.append(" ".join(words))
            call.append(words[-1])
            sig.append((" ".join(words[:-1]), words[-1]))
    code = (f'extern "C" void host_{name}(unsigned grid, unsigned block, {", ".join(host)}) {{\n    '
            + "\n    ".join(build) + f"\n    act_host::launch(grid, block, [&] {{ {name}({', '.join(call)}); }});\n}}\n")
    return code, sig


@pytest.fixture(scope="module")
def elementwise_host(tmp_path_factory) -> HostKernels:
    """Each ElementwiseKernel x dtype for the CPU as CuPy expands the launcher's call
    (kernels/backends/cupy/expand.py): CuPy's generated source, with CuPy's headers (its CArray, CIndexer,
    CUPY_FOR and float16) from CuPy's include folders, the kernel renamed <name>_<f16|f32|f64> (one
    library holds every dtype; each expansion in its own namespace, CuPy's headers once)."""
    _need_cxx()
    return _build_elementwise(tmp_path_factory.mktemp("ew"), "ew", cupy_expand.expand_all())


def _build_elementwise(tmp: Path, label: str, expansions: list) -> HostKernels:
    expanded = [(e, f"{e.name}_{cuda_build.SUFFIX[e.dtype]}") for e in expansions]
    includes = list(dict.fromkeys(m.group(0).strip() for e, _ in expanded for m in _INCLUDE.finditer(e.source)))
    body, sigs = [_CUPY_HOST_PRELUDE, *includes], {}
    for e, name in expanded:
        plist = dict(_SIGNATURE.findall(e.source))[e.name]
        code, sigs[name] = _cupy_host_wrapper(name, plist)
        body.append(f"#define {e.name} {name}\nnamespace ew_{name} {{\n{e.source}\n}}\n#undef {e.name}\n"
                    f"namespace ew_{name} {{\n{code}}}")
    # CuPy's own include folders from its options; not the CUDA headers' (their vector types and
    # dim3 would clash with host_shim.h's, and float16.cuh takes cuda_fp16.h only under nvcc/NVRTC)
    import cupy
    own = f"-I{Path(cupy.__file__).parent}"
    folders = list(dict.fromkeys(o for e, _ in expanded for o in e.options if o.startswith(own)))
    return _build(tmp, label, "\n".join(body) + "\n", sigs, by_name=True, extra=folders)


def _placed(a: np.ndarray, shift: int, guard: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A copy of a, `shift` elements past a 64-byte boundary inside a buffer of 0x5A guard bytes;
    returns (view, whole buffer)."""
    item = a.dtype.itemsize
    buf = np.full(a.nbytes + 2 * guard + 64, 0x5A, np.uint8)
    start = (-buf.ctypes.data) % 64 + guard + shift * item
    view = buf[start:start + a.nbytes].view(a.dtype)
    view[...] = a.ravel()
    return view, buf


def _run_host(hk: HostKernels, name: str, op: str, inputs, grid: int, block: int, in_shift: int, out_shift: int,
              params: dict | None = None, ftz: bool = False):
    """Run one host kernel on inputs placed at in_shift elements and outputs (poisoned) at
    out_shift, in IEEE mode or (ftz) CuPy's flush-to-zero mode; check guard bytes, inputs
    untouched, and the outputs against the reference."""
    spec = OPS[op]
    params = {**spec.params, **(params or {})}
    n = inputs[0].size
    args = {}
    for pname, a in zip(spec.inputs, inputs):
        args[pname] = _placed(a, in_shift if pname != "mask" else 0)[0]
    outs = []
    for pname in spec.outputs:
        poison = (np.full(mask_nbytes(n), 0xA5, np.uint8) if pname == "mask"
                  else np.full(n, np.nan, inputs[0].dtype))
        view, buf = _placed(poison, out_shift)
        args[pname] = view
        outs.append((view, buf))
    args["n"] = n
    if hk.by_name:                 # CuPy's ElementwiseKernel: its parameters are the op's names
        args["slope"] = params.get("slope", 0.0)
        # its CIndexer's size: CuPy loops over the non-raw arrays (_raw_<name>), all of one size here
        loop_over = [p.removeprefix("_raw_") for c, p in hk.signatures[name] if p.startswith("_raw_") and c == "ptr"]
        args["_ind"] = args[loop_over[0]].size if loop_over else n
        hk(name, grid, block, [args[p.removeprefix("_raw_").removesuffix(".size")].size if p.endswith(".size")
                               else args[p.removeprefix("_raw_")] for _, p in hk.signatures[name]], ftz=ftz)
    else:                          # a RawKernel: the cupy_raw launcher's order
        hk(name, grid, block, [*(args[p] for p in (*spec.inputs, *spec.outputs, "n")), *(params[p] for p in spec.params)],
           ftz=ftz)
    where = (f"{name} n={n} grid={grid}x{block} shift in/out={in_shift}/{out_shift}"
             f"{' flush-to-zero' if ftz else ''}")
    for (view, buf), pname in zip(outs, spec.outputs):
        start = view.ctypes.data - buf.ctypes.data
        assert (buf[:start] == 0x5A).all() and (buf[start + view.nbytes:] == 0x5A).all(), \
            f"{where}: {pname} written outside its {view.nbytes} bytes"
    for pname, a in zip(spec.inputs, inputs):
        assert np.array_equal(args[pname].view(np.uint8), np.ascontiguousarray(a).ravel().view(np.uint8)), \
            f"{where}: input {pname} modified"
    got = tuple(v.reshape(inputs[0].shape) if p != "mask" else v for (v, _), p in zip(outs, spec.outputs))
    r = compare(op, tuple(inputs), got if len(got) > 1 else got[0], params)
    assert r.ok, f"{where}: {r.message}"


# The float modes a dtype's kernels run in here: IEEE (numba-cuda compiles without ftz; and the
# logic alone), and flush-to-zero where CuPy's -ftz=true changes float arithmetic on the GPU (float,
# which float16 kernels compute in). Not float64: the GPU never flushes double, x86's DAZ would.
FLOAT_MODES = [(dtype, mode) for dtype in DTYPES
               for mode in (("ieee",) if dtype == "float64" else ("ieee", "ftz"))]


@pytest.mark.parametrize("dtype, mode", FLOAT_MODES)
@pytest.mark.parametrize("op", list(cupy_gpu.RAW_SOURCES))
def test_raw_kernels_on_the_cpu(raw_host, op, dtype, mode, rng):
    """RawKernels: awkward sizes; aligned, shifted together (head + vectors + tail) and shifted
    apart (scalar only); small grids; then the special values (+-1e-40 among them)."""
    name, ftz = cuda_build.raw_kernel_name(op, dtype), mode == "ftz"
    for n in SIZES:
        inputs = random_inputs(op, (n,), dtype, rng, 10.0)
        for in_shift, out_shift in ((0, 0), (1, 1), (1, 0), (3, 2)):
            grid, block = LAUNCHES[n % 2]
            _run_host(raw_host, name, op, inputs, grid, block, in_shift, out_shift, ftz=ftz)
    for _label, inputs in special_inputs(op, dtype, rng):
        _run_host(raw_host, name, op, inputs, 2, 64, 0, 0, ftz=ftz)
        _run_host(raw_host, name, op, inputs, 1, 32, 1, 1, ftz=ftz)
    if "slope" in OPS[op].params:
        _run_host(raw_host, name, op, random_inputs(op, (1029,), dtype, rng), 2, 64, 0, 0, {"slope": 0.3}, ftz=ftz)


@pytest.mark.parametrize("dtype, mode", FLOAT_MODES)
@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
def test_elementwise_bodies_on_the_cpu(elementwise_host, op, dtype, mode, rng):
    """ElementwiseKernels as CuPy generates them: sizes and special values, in both float modes."""
    name, ftz = f"{cupy_gpu.ELEMENTWISE[op].name}_{cuda_build.SUFFIX[dtype]}", mode == "ftz"
    for n in (0, 1, 7, 33, 1029):
        _run_host(elementwise_host, name, op, random_inputs(op, (n,), dtype, rng, 10.0), 2, 64, 0, 0, ftz=ftz)
    for _label, inputs in special_inputs(op, dtype, rng):
        _run_host(elementwise_host, name, op, inputs, 1, 32, 0, 0, ftz=ftz)


# The ReLU family as it was written before sign.cuh: float compares on x, which CuPy's -ftz=true
# turns into setp.*.ftz.f32 (a subnormal x read as 0). Known-wrong kernels, kept to show that the
# flush-to-zero host run catches them and the IEEE run cannot.
COMPARE_RELU_CU = r"""#include "common.cuh"
struct CompareReluGrad {
    template <typename C> C operator()(C dy, C x) const { return x <= C(0) ? C(0) : dy; }
};
template <typename C> struct CompareLeakyReluGrad {
    C slope;
    C operator()(C dy, C x) const { return x > C(0) ? dy : slope * dy; }
};
ACT_MAP2_KERNELS(relu_grad_compare, CompareReluGrad)
ACT_MAP2_SCALAR_KERNELS(leaky_relu_grad_compare, CompareLeakyReluGrad)
"""
COMPARE_ELEMENTWISE = {
    "relu_grad": "typedef act_compute<T>::type C;\ndx = C(x) <= C(0) ? C(0) : C(dy);",
    "leaky_relu_grad": "typedef act_compute<T>::type C;\nconst C d = dy;\ndx = C(x) > C(0) ? d : C(slope) * d;",
}


def _subnormal_x(op: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(dy, x) with x = +-1e-40 (float32 subnormals) and dy = 1."""
    x = np.array([1e-40, -1e-40, 1e-40, 2.0], dtype)
    return np.ones_like(x), x


@pytest.mark.parametrize("op", ["relu_grad", "leaky_relu_grad"])
def test_flush_to_zero_run_fails_compare_based_raw_kernels(op, tmp_path):
    """The old RawKernels pass in IEEE mode and fail in CuPy's float mode on a subnormal x."""
    _need_cxx()
    src = tmp_path / "compare.cu"
    src.write_text(COMPARE_RELU_CU)
    code, sigs = _wrappers(_preprocessed(src))
    hk = _build(tmp_path, "compare", f'#include "{src}"\n{code}\n', sigs, by_name=False)
    name = cuda_build.raw_kernel_name(f"{op}_compare", "float32")
    inputs = _subnormal_x(op, "float32")
    _run_host(hk, name, op, inputs, 1, 32, 0, 0)
    with pytest.raises(AssertionError, match="flush-to-zero: dx: .* wrong; first at flat index 0"):
        _run_host(hk, name, op, inputs, 1, 32, 0, 0, ftz=True)


@pytest.mark.parametrize("op", ["relu_grad", "leaky_relu_grad"])
def test_flush_to_zero_run_fails_compare_based_elementwise_kernels(op, tmp_path):
    """And the old ElementwiseKernel bodies, as CuPy generates them."""
    _need_cxx()
    ew = cupy_gpu.ELEMENTWISE[op]
    old = cupy_gpu.Elementwise(op, ew.in_params, ew.out_params, COMPARE_ELEMENTWISE[op])
    hk = _build_elementwise(tmp_path, "compare_ew", [cupy_expand.expand(old, "float32")])
    name = f"{old.name}_f32"
    inputs = _subnormal_x(op, "float32")
    _run_host(hk, name, op, inputs, 1, 32, 0, 0)
    with pytest.raises(AssertionError, match="flush-to-zero: dx: .* wrong; first at flat index 0"):
        _run_host(hk, name, op, inputs, 1, 32, 0, 0, ftz=True)


def test_flush_to_zero_mode_flushes(raw_host):
    """The mode is real: leaky_relu's slope * x for x = -1e-38 is a subnormal in IEEE mode and
    0 under FTZ, and the mode is per launch (IEEE again after)."""
    x = np.array([-1e-38] * 4, np.float32)
    y = np.full(4, np.nan, np.float32)
    raw_host("_leaky_relu_kernel_f32", 1, 32, [x, y, 4, 0.01])
    assert y[0] != 0 and abs(y[0]) < np.finfo(np.float32).tiny
    raw_host("_leaky_relu_kernel_f32", 1, 32, [x, y, 4, 0.01], ftz=True)
    assert y[0] == 0
    raw_host("_leaky_relu_kernel_f32", 1, 32, [x, y, 4, 0.01])
    assert y[0] != 0


def test_host_harness_catches_a_wrong_kernel(raw_host, rng):
    """The harness must fail a wrong answer: tanh's kernel run as if it were sigmoid's."""
    inputs = random_inputs("sigmoid", (257,), "float32", rng, 10.0)
    with pytest.raises(AssertionError, match="_tanh_kernel_f32 n=257"):
        _run_host(raw_host, "_tanh_kernel_f32", "sigmoid", inputs, 2, 64, 0, 0)


def test_host_harness_catches_a_wrong_elementwise_kernel(elementwise_host, rng):
    """And a wrong ElementwiseKernel: CuPy's tanh kernel run as if it were sigmoid's."""
    inputs = random_inputs("sigmoid", (257,), "float16", rng, 10.0)
    with pytest.raises(AssertionError, match="_tanh_kernel_f16 n=257"):
        _run_host(elementwise_host, "_tanh_kernel_f16", "sigmoid", inputs, 2, 64, 0, 0)


_ELEMENT_BYTES = {"__half": 2, "float": 4, "double": 8, "unsigned char": 1 / 8}   # a mask: 1 bit per element
_C_TYPE = {"float16": "__half", "float32": "float", "float64": "double"}
_COMPUTE = {"float16": "float", "float32": "float", "float64": "double"}     # the scalars' type


def test_raw_kernel_arguments_are_what_roofline_counts():
    """Each RawKernel's arguments, as its signature declares them once common.cuh's macros are
    expanded: the op's inputs (const arrays of the dtype, or the packed mask), then its outputs,
    then n and the op's scalars in the compute type, the order the cupy_raw launcher passes them;
    and those arrays move per element exactly the bytes bench/measure/roofline.py's traffic counts."""
    _need_cxx()
    decls: dict[str, str] = {}
    for filename in set(cupy_gpu.RAW_SOURCES.values()):
        decls.update(_SIGNATURE.findall(_preprocessed(CUDA_DIR / filename)))
    checked = 0
    for op, spec in ((op, OPS[op]) for op in cupy_gpu.RAW_SOURCES):
        for dtype in DTYPES:
            name = cuda_build.raw_kernel_name(op, dtype)
            params = [" ".join(p.replace("__restrict__", "").split()) for p in decls[name].split(",")]
            arrays = [p.rsplit("*", 1)[0].strip() for p in params if "*" in p]
            want = ["const " + ("unsigned char" if a == "mask" else _C_TYPE[dtype]) for a in spec.inputs]
            want += ["unsigned char" if a == "mask" else _C_TYPE[dtype] for a in spec.outputs]
            assert arrays == want, f"{name}: arrays {arrays}, the op's {spec.inputs} -> {spec.outputs}"
            scalars = [p.rsplit(" ", 1)[0] for p in params[len(arrays):]]
            assert scalars == ["long long"] + [_COMPUTE[dtype]] * len(spec.params), f"{name}: {scalars}"
            moved = sum(_ELEMENT_BYTES[a.removeprefix("const ")] for a in arrays)
            assert moved == roofline.bytes_per_element(op, dtype), f"{name}: {moved} B per element"
            checked += 1
    assert checked == 3 * len(cupy_gpu.RAW_SOURCES)


# ================================================================================================
# On a GPU
# ================================================================================================

def _cupy_or_skip():
    be = registry.backend("cupy_raw")
    if not be.available:
        pytest.skip(f"needs a GPU with CuPy: {be.reason}")
    import cupy
    return cupy


def _grid_elements(cp, dtype: str) -> int:
    """Elements one full grid of cupy_raw covers per grid-stride step (for the relu kernel)."""
    dev = cp.cuda.runtime.getDevice()
    sms = cp.cuda.Device(dev).attributes["MultiProcessorCount"]
    blocks = cupy_gpu._resident_blocks("relu", dtype, dev)
    return sms * blocks * cuda_build.BLOCK * (16 // np.dtype(dtype).itemsize)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(cupy_gpu.RAW_SOURCES))
def test_gpu_raw_misaligned_views(op, dtype, rng):
    """Inputs and outputs one element past an aligned address: the head and tail paths, and
    (outputs aligned) the scalar path."""
    cp = _cupy_or_skip()
    spec = OPS[op]
    fn = kernels.get(op, "cupy_raw")
    for n in (1, 7, 31, 1029, 2**16 + 3):
        inputs = random_inputs(op, (n,), dtype, rng, 10.0)
        for in_shift, out_shift in ((1, 1), (1, 0), (0, 1)):
            dev_in = []
            for name, a in zip(spec.inputs, inputs):
                s = 0 if name == "mask" else in_shift
                buf = cp.empty(a.size + 1, a.dtype)
                buf[s:s + a.size] = cp.asarray(a)
                dev_in.append(buf[s:s + a.size])
            outs = []
            for name in spec.outputs:
                if name == "mask":
                    outs.append(cp.empty(mask_nbytes(n) + 1, cp.uint8)[out_shift:out_shift + mask_nbytes(n)])
                else:
                    outs.append(cp.empty(n + 1, dtype)[out_shift:out_shift + n])
            for o in outs:
                o.fill(0xA5 if o.dtype == cp.uint8 else np.nan)
            res = fn(*dev_in, out=tuple(outs) if len(outs) > 1 else outs[0])
            got = tuple(cp.asnumpy(r) for r in (res if isinstance(res, tuple) else (res,)))
            r = compare(op, inputs, got if len(got) > 1 else got[0])
            assert r.ok, f"n={n} shift in/out={in_shift}/{out_shift}: {r.message}"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(cupy_gpu.RAW_SOURCES))
def test_gpu_raw_sizes_around_vector_and_grid(op, dtype, rng):
    """Sizes a few elements either side of multiples of the vector width and of the whole grid's
    elements per grid-stride step, launched on a non-default stream."""
    cp = _cupy_or_skip()
    per_grid = _grid_elements(cp, dtype)
    vec = 16 // np.dtype(dtype).itemsize
    sizes = sorted({max(0, k + d) for k in (vec, 8 * vec, 32 * vec, per_grid, 2 * per_grid) for d in (-1, 0, 1)})
    fn = kernels.get(op, "cupy_raw")
    stream = cp.cuda.Stream(non_blocking=True)
    for n in sizes:
        inputs = random_inputs(op, (n,), dtype, rng, 10.0)
        with stream:
            dev = tuple(cp.asarray(a) for a in inputs)
            res = fn(*dev)
            stream.synchronize()
            got = tuple(cp.asnumpy(r) for r in (res if isinstance(res, tuple) else (res,)))
        r = compare(op, inputs, got if len(got) > 1 else got[0])
        assert r.ok, f"n={n} (grid step {per_grid}): {r.message}"


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("op", ["relu", "relu_mask"])
def test_gpu_raw_beyond_2_31_elements(op):
    """64-bit indexing: float16 arrays of 2**31 + 4099 elements (4 GiB each), checked on the GPU
    against CuPy's ufuncs, if the device has the memory."""
    cp = _cupy_or_skip()
    n = 2**31 + 4099
    free, _ = cp.cuda.runtime.memGetInfo()
    if free < 6 * 2 * n:
        pytest.skip(f"needs ~{6 * 2 * n / 2**30:.0f} GiB of free GPU memory, {free / 2**30:.0f} GiB free")
    x = cp.empty(n, cp.float16)
    step = 2**28
    for i in range(0, n, step):               # random values, made in slices to bound temporaries
        m = min(step, n - i)
        x[i:i + m] = cp.random.standard_normal(m, dtype=cp.float32).astype(cp.float16)
    x[-5:] = cp.asarray([1, -1, 0, np.nan, 2], cp.float16)
    res = kernels.get(op, "cupy_raw")(x)
    y = res[0] if op == "relu_mask" else res
    want = cp.maximum(x, 0)
    assert bool(cp.array_equal(y, want, equal_nan=True)), "relu beyond 2**31 elements"
    if op == "relu_mask":
        mask = res[1]
        assert mask.size == mask_nbytes(n)
        for start, bits in packed_mask_chunks(cp, x):
            assert bool(cp.array_equal(mask[start:start + bits.size], bits)), f"mask bytes from {start}"


PACKBITS_CHUNK = 2**30      # elements per packbits call: CuPy's packbits takes its size as int32


def packed_mask_chunks(xp, x, chunk: int = PACKBITS_CHUNK):
    """(first byte, packed x > 0) of x in chunks of `chunk` elements (a multiple of 8): the
    reference mask without handing packbits 2**31 elements or more."""
    assert chunk % 8 == 0
    for i in range(0, x.size, chunk):
        yield i // 8, xp.packbits(xp.greater(x[i:i + chunk], 0), bitorder="little")


def test_mask_reference_stays_below_int32():
    """The >2**31 test's reference, with NumPy standing in for CuPy and a packbits that refuses 2**31
    elements (as CuPy's overflows): no call gets that many, and the chunks cover every byte. The
    2**31 + 4099 elements are a broadcast view and the comparison a stand-in: nothing is allocated."""
    n = 2**31 + 4099
    calls = []

    class Spy:
        @staticmethod
        def greater(a, b):
            return np.broadcast_to(np.True_, a.shape)

        @staticmethod
        def packbits(a, bitorder):
            calls.append(a.size)
            assert a.size < 2**31, f"packbits of {a.size} elements overflows CuPy's int32 size"
            return np.broadcast_to(np.uint8(255), ((a.size + 7) // 8,))

    x = np.broadcast_to(np.float16(1), (n,))
    starts = [start for start, _ in packed_mask_chunks(Spy, x)]
    assert sum(calls) == n and starts[-1] * 8 + calls[-1] == n
    # and the chunked reference is the whole one where both can run
    small = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    got = np.concatenate([b for _, b in packed_mask_chunks(np, small, chunk=64)])
    assert np.array_equal(got, np.packbits(small > 0, bitorder="little"))


# ================================================================================================
# The CuPy-ufunc peer flushes float32 subnormals (CuPy's -ftz=true): declared, listed, gated
# ================================================================================================

def test_only_the_cupy_ufunc_peer_declares_it_flushes_subnormals():
    """CuPy's ufuncs are measured as a CuPy user gets them (flushed); our kernels decide on bits."""
    assert registry.backend("cupy").flushes_subnormals == ("float32",)
    flushing = {b.name for b in registry.all_backends() if b.flushes_subnormals}
    assert flushing == {"cupy"}


def _flushed_relu_grad():
    """relu_grad(dy, x) as -ftz code computes it: x = +-1e-40 read as 0, so dx = 0 there."""
    x = np.array([1e-40, -1e-40, 2.0, -3.0, 1e-40], np.float32)
    dy = np.array([1.0, 1.0, 1.0, 1.0, 1e-40], np.float32)
    return (dy, x), np.array([0.0, 0.0, 1.0, 0.0, 0.0], np.float32)


def test_the_gate_accepts_a_flushed_answer_only_where_declared_and_only_at_subnormal_inputs():
    inputs, flushed = _flushed_relu_grad()
    assert not compare("relu_grad", inputs, flushed).ok                     # not declared: FAILED
    assert compare("relu_grad", inputs, flushed, flushes_subnormals=("float32",)).ok
    assert compare("relu_grad", inputs, np.array([1.0, 0.0, 1.0, 0.0, 1e-40], np.float32),
                   flushes_subnormals=("float32",)).ok                      # the exact answer still passes
    wrong = flushed.copy()
    wrong[2] = 0.0                                                           # x = 2: no subnormal input
    r = compare("relu_grad", inputs, wrong, flushes_subnormals=("float32",))
    assert not r.ok and "first at flat index 2" in r.message
    assert not compare("relu_grad", tuple(a.astype(np.float64) for a in inputs), flushed.astype(np.float64),
                       flushes_subnormals=("float32",)).ok                  # float64 is not flushed
    # leaky_relu_grad: slope * dy where the flushed x reads 0
    x = np.array([1e-40, 5.0], np.float32)
    dy = np.ones(2, np.float32)
    assert compare("leaky_relu_grad", (dy, x), np.array([0.01, 1.0], np.float32), flushes_subnormals=("float32",)).ok
    assert not compare("leaky_relu_grad", (dy, x), np.array([0.01, 1.0], np.float32)).ok


def test_the_gate_accepts_a_flushed_mask_bit_only_at_subnormal_inputs():
    x = np.array([1e-40, 2.0, -1e-40, 3.0, 0.0, 1e-40, 4.0, -1.0, 1e-40], np.float32)
    y = np.maximum(x, 0)
    exact = np.packbits(x > 0, bitorder="little")
    flushed = np.packbits(np.array([0, 1, 0, 1, 0, 0, 1, 0, 0], bool), bitorder="little")
    assert compare("relu_mask", (x,), (y, exact), flushes_subnormals=("float32",)).ok
    assert compare("relu_mask", (x,), (y, flushed), flushes_subnormals=("float32",)).ok
    assert not compare("relu_mask", (x,), (y, flushed)).ok
    wrong = flushed.copy()
    wrong[0] &= ~np.uint8(2)                                                 # x = 2.0's bit cleared
    assert not compare("relu_mask", (x,), (y, wrong), flushes_subnormals=("float32",)).ok


def test_bench_list_says_which_backend_flushes_subnormals():
    from rich.console import Console

    from bench.report import listing
    d = listing.as_dict()
    assert {b["name"]: b["flushes_subnormals"] for b in d["backends"]}["cupy"] == ["float32"]
    console = Console(record=True, width=300)
    listing.show(console)
    assert "cupy reads float32 subnormals as zero (compiled with -ftz=true" in console.export_text()
