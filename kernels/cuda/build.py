"""How actbench's CUDA C is built: the facts kernels/backends/cupy/elementwise.py (the runtime) and kernels/nvrtc/__init__.py
(the compile check and resource report) share. A leaf module: it imports nothing of kernels.

- where the sources are (kernels/cuda), the dtypes they are written for and the kernel suffixes;
- the threads per block every launcher uses (ACT_BLOCK in kernels/cuda/common.cuh);
- the NVRTC language options and a hash of the included headers, which goes into the options
  because CuPy's kernel cache keys on the source and the options only, never on #include'd files.
CuPy adds the rest (its include folders and its CUDA headers' folder, which holds cuda_fp16.h):
kernels/backends/cupy/expand.py's `options` is that whole set, used by every compile check.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

CUDA_DIR = Path(__file__).parent      # the sources live beside their build
DTYPES = ("float16", "float32", "float64")
SUFFIX = {"float16": "f16", "float32": "f32", "float64": "f64"}     # _relu_kernel_f32
BLOCK = 256                              # threads per block; ACT_BLOCK in kernels/cuda/common.cuh
LANG_OPTIONS = ("--std=c++17", "--fmad=true")     # NVRTC's default contraction, spelled out
HOST_ONLY = ("host_shim.h",)             # runs the kernels on the CPU in tests; never sent to NVRTC


def raw_kernel_name(op: str, dtype: str) -> str:
    """The extern "C" name of op's RawKernel for dtype: _relu_kernel_f32."""
    return f"_{op}_kernel_{SUFFIX[dtype]}"


def headers() -> list[Path]:
    """The headers the .cu files include (common.cuh, fp16.cuh, ...)."""
    return sorted(p for p in CUDA_DIR.iterdir() if p.suffix in (".cuh", ".h") and p.name not in HOST_ONLY)


@functools.cache
def headers_hash() -> str:
    """16 hex digits of the headers' contents: an edited header gives new compile options, so CuPy
    recompiles instead of reusing a binary built from the old one."""
    h = hashlib.sha256()
    for path in headers():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def raw_options() -> tuple[str, ...]:
    """The options the RawModules are compiled with (CuPy adds its own: -arch, -ftz=true, its
    include folders, the CUDA headers'): the language, this folder, and the headers' hash."""
    return (*LANG_OPTIONS, f"-I{CUDA_DIR}", f"-DACTBENCH_HEADERS={headers_hash()}")
