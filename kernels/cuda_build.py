"""How actbench's CUDA C is built: the facts kernels/cupy_gpu.py (the runtime) and kernels/nvrtc.py
(the compile check and resource report) share. A leaf module: it imports nothing of kernels.

- where the sources are (kernels/cuda), the dtypes they are written for and the kernel suffixes;
- the threads per block every launcher uses (ACT_BLOCK in kernels/cuda/common.cuh);
- the NVRTC language options and a hash of the included headers, which goes into the options
  because CuPy's kernel cache keys on the source and the options only, never on #include'd files;
- where a cuda_fp16.h matching an NVRTC major version lies, for compiling outside CuPy (CuPy adds
  its own CUDA include folder, so the RawModules get no folder from us).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

CUDA_DIR = Path(__file__).parent / "cuda"
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


def fp16_include_dir(major: int | None) -> tuple[Path, str] | None:
    """(folder holding cuda_fp16.h, short label) for NVRTC `major`, or None.

    Looked for in: pip wheels (nvidia/cu<major>/include, nvidia/cuda_runtime/include), numba-cuda's
    bundled copy (numba_cuda/numba/cuda/include/<major>), then $CUDA_HOME, $CUDA_PATH and
    /usr/local/cuda. The header of another major version is never picked from the first two.
    """
    candidates: list[tuple[Path, str]] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        root = Path(entry)
        if major is not None:
            candidates.append((root / "nvidia" / f"cu{major}" / "include", f"pip wheel nvidia/cu{major}/include"))
            candidates.append((root / "numba_cuda" / "numba" / "cuda" / "include" / str(major),
                               f"numba-cuda's bundled include/{major}"))
        candidates.append((root / "nvidia" / "cuda_runtime" / "include", "pip wheel nvidia/cuda_runtime/include"))
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append((Path(os.environ[var]) / "include", f"${var}/include"))
    candidates.append((Path("/usr/local/cuda/include"), "/usr/local/cuda/include"))
    for folder, label in candidates:
        if (folder / "cuda_fp16.h").is_file():
            return folder, label
    return None
