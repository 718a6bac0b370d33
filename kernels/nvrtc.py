"""Compile every CUDA C source of actbench with NVRTC, without a GPU, and read ptxas's resource report.

    python -m kernels.nvrtc                          # compile all for sm_80 and sm_90; exit 1 on any problem
    python -m kernels.nvrtc --report reports/kernels-resources.md

What is compiled (`targets()`):
- each kernels/cuda/*.cu file, exactly as the cupy_raw backend hands it to cupy.RawModule;
- each ElementwiseKernel of the cupy_elementwise backend (kernels/cupy_gpu.py), for each dtype,
  wrapped the way CuPy expands one: a typedef per type placeholder, the preamble, and a
  grid-stride loop that binds each non-raw parameter to a reference to its element i. CuPy's
  CArray and CIndexer are plain pointers and a flat index here (what they reduce to for the
  contiguous 1-D arrays the launchers pass) and CuPy's float16 class is a small stand-in with the
  same conversions to and from float, so register counts are close to CuPy's, not identical.

Each is compiled for sm_80 and sm_90 with `-Xptxas=-v` (and ptxas's --warn-on-spills): a
compile error, any warning in the log, or a kernel that spills is a failure. `parse_ptxas`
reads registers, shared memory, stack frame and spill bytes per kernel from the log.

NVRTC comes from PyPI (cuda-bindings and nvidia-cuda-nvrtc, the dev extra); it is imported on
first use, so importing this module never needs it. cuda_fp16.h is not built into NVRTC:
`fp16_include_dir` finds a copy (pip wheels, numba-cuda's, the CUDA toolkit); without one the
sources fall back to the stand-in in kernels/cuda/fp16.cuh.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

CUDA_DIR = Path(__file__).parent / "cuda"
ARCHS = ("sm_80", "sm_90")
# Options shared with the cupy_raw RawModules (kernels/cupy_gpu.py raw_options) ...
LANG_OPTIONS = ("--std=c++17", "--fmad=true")
# ... what CuPy adds to every compile (cupy/cuda/compiler.py): flush subnormal floats to zero ...
CUPY_OPTIONS = ("-ftz=true",)
# ... and the report: ptxas's resource usage, and spills as warnings.
PTXAS_OPTIONS = ("-Xptxas=-v", "-Xptxas=--warn-on-spills")
TYPE_NAMES = {"float16": "float16", "float32": "float", "float64": "double"}   # CuPy's C names
CUPY_SCALAR_TYPES = {"uint8": "unsigned char", "int32": "int", "int64": "long long",
                     "float32": "float", "float64": "double", "bool": "bool"}
COMPUTE_TYPE = {"float16": "float", "float32": "float", "float64": "double"}   # S in the specs


def reason() -> str | None:
    """Why NVRTC cannot be used here (None when it can)."""
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return "cuda-bindings is not installed (pip install -e '.[dev]': cuda-bindings and nvidia-cuda-nvrtc)"
    try:
        version()
    except Exception as exc:  # the bindings without the NVRTC library
        return (f"NVRTC cannot be loaded ({type(exc).__name__}: {exc}); "
                "pip install -e '.[dev]' installs nvidia-cuda-nvrtc")
    return None


def _nvrtc():
    from cuda.bindings import nvrtc
    return nvrtc


def _check(result, what: str):
    """Unpack a cuda.bindings call's (err, value...) tuple, raising on an NVRTC error."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"{what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def version() -> tuple[int, int]:
    major, minor = _check(_nvrtc().nvrtcVersion(), "nvrtcVersion")
    return int(major), int(minor)


# ---- cuda_fp16.h -----------------------------------------------------------------------------

def fp16_include_dir(major: int | None = None) -> tuple[Path, str] | None:
    """(folder holding cuda_fp16.h, short label) for NVRTC `major` (default: this NVRTC's), or None.

    Looked for in: pip wheels (nvidia/cu<major>/include, nvidia/cuda_runtime/include), numba-cuda's
    bundled copy (numba_cuda/numba/cuda/include/<major>), then $CUDA_HOME, $CUDA_PATH and
    /usr/local/cuda. The header of another major version is never picked from the first two.
    """
    if major is None:
        try:
            major = version()[0]
        except Exception:
            major = None
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


# ---- compiling -------------------------------------------------------------------------------

@dataclass
class Resources:
    """What ptxas reports for one kernel."""

    registers: int = 0
    shared_bytes: int = 0
    stack_bytes: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    barriers: int = 0

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0


@dataclass
class Compiled:
    """The outcome of compiling one source for one architecture."""

    label: str                       # what was compiled: "relu.cu", "elementwise relu float32"
    arch: str
    log: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kernels: dict[str, Resources] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Everything that fails the check: errors, warnings, spilling kernels."""
        out = [f"error: {e}" for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        out += [f"{k} spills {r.spill_stores} B stores / {r.spill_loads} B loads"
                for k, r in self.kernels.items() if r.spills]
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(.*)")


def parse_ptxas(log: str) -> dict[str, Resources]:
    """Registers, shared memory, stack frame and spills per entry function, from a -Xptxas=-v log.

    The lines look like (CUDA 12 / 13):
        ptxas info    : Compiling entry function '_relu_kernel_f32' for 'sm_90'
        ptxas info    : Function properties for _relu_kernel_f32
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 24 registers, used 0 barriers, 16 bytes smem, 376 bytes cmem[0]
    Properties of non-entry (device) functions are not kernels and are skipped.
    """
    kernels: dict[str, Resources] = {}
    entry = current = None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            entry = current = m.group(1)
            kernels.setdefault(entry, Resources())
        elif m := _PROPS.search(line):
            current = m.group(1)
        elif (m := _FRAME.search(line)) and current is not None and current == entry:
            r = kernels[entry]
            r.stack_bytes, r.spill_stores, r.spill_loads = (int(g) for g in m.groups())
        elif (m := _USED.search(line)) and entry is not None:
            r = kernels[entry]
            r.registers = int(m.group(1))
            for item in m.group(2).split(","):
                item = item.strip()
                if mm := re.fullmatch(r"used (\d+) barriers", item):
                    r.barriers = int(mm.group(1))
                elif mm := re.fullmatch(r"(\d+) bytes smem", item):
                    r.shared_bytes = int(mm.group(1))
    return kernels


def _log_problems(log: str) -> tuple[list[str], list[str]]:
    errors, warnings = [], []
    for line in log.splitlines():
        low = line.lower()
        if re.search(r"\berror\b", low) and "0 errors" not in low:
            errors.append(line.strip())
        elif "warning" in low:
            warnings.append(line.strip())
    return errors, warnings


def options(arch: str, *, fp16: bool = True, extra: tuple[str, ...] = ()) -> list[str]:
    """The NVRTC options of the check: the RawModules' language options, the -ftz=true CuPy adds,
    this folder and cuda_fp16.h's on the include path (unless fp16=False), the arch and ptxas's
    report."""
    opts = [f"--gpu-architecture={arch}", *LANG_OPTIONS, *CUPY_OPTIONS, f"-I{CUDA_DIR}"]
    found = fp16_include_dir() if fp16 else None
    if found is not None:
        opts.append(f"-I{found[0]}")
    if not fp16:
        opts.append("-DACTBENCH_NO_CUDA_FP16")
    return opts + list(PTXAS_OPTIONS) + list(extra)


def compile_source(source: str, label: str, arch: str, *, fp16: bool = True,
                   extra: tuple[str, ...] = (), want_ptx: bool = False) -> Compiled | tuple[Compiled, str]:
    """Compile CUDA C `source` for `arch` with NVRTC; the log checked and parsed. With want_ptx,
    also return the PTX (a second compile, for the virtual architecture)."""
    nv = _nvrtc()
    opts = options(arch, fp16=fp16, extra=extra)
    prog = _check(nv.nvrtcCreateProgram(source.encode(), label.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        (err,) = nv.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
        size = _check(nv.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        buf = b" " * size
        _check(nv.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
        log = buf.rstrip(b"\0 ").decode(errors="replace")
    finally:
        nv.nvrtcDestroyProgram(prog)
    errors, warnings = _log_problems(log)
    if int(err) != 0 and not errors:
        errors.append(f"{label}: {err}")
    kernels = parse_ptxas(log) if int(err) == 0 else {}
    order = {k: i for i, k in enumerate(kernel_names(source))}     # as the source defines them
    kernels = dict(sorted(kernels.items(), key=lambda kv: order.get(kv[0], len(order))))
    result = Compiled(label, arch, log, errors, warnings, kernels)
    if not want_ptx:
        return result
    return result, ptx_of(source, label, arch, fp16=fp16) if result.ok else ""


def ptx_of(source: str, label: str, arch: str, *, fp16: bool = True) -> str:
    """The PTX NVRTC makes of `source` for arch's virtual architecture (compute_XX)."""
    nv = _nvrtc()
    opts = [o for o in options(arch.replace("sm_", "compute_"), fp16=fp16) if not o.startswith("-Xptxas")]
    prog = _check(nv.nvrtcCreateProgram(source.encode(), label.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        _check(nv.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts]), f"compiling {label}")
        size = _check(nv.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
        buf = b" " * size
        _check(nv.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
    finally:
        nv.nvrtcDestroyProgram(prog)
    return buf.rstrip(b"\0").decode()


# ---- what is compiled ------------------------------------------------------------------------

def raw_sources() -> list[Path]:
    """Every kernels/cuda/*.cu file."""
    return sorted(CUDA_DIR.glob("*.cu"))


def kernel_names(source: str) -> list[str]:
    """The extern "C" __global__ kernels a CUDA C source defines."""
    return re.findall(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(', source)


# A stand-in for CuPy's float16 (cupy/_core/include/cupy/float16.cuh): __half storage, converts
# implicitly from float and to float, so that bodies written for CuPy compile the same way here.
_FLOAT16_STANDIN = r"""
#include "fp16.cuh"
class float16 {
    __half data_;
public:
    float16() = default;
    __device__ float16(float v) : data_(__float2half_rn(v)) {}
    __device__ explicit float16(double v) : data_(__float2half_rn(static_cast<float>(v))) {}
    __device__ operator float() const { return __half2float(data_); }
};
"""


def _params(spec: str) -> list[tuple[bool, str, str]]:
    """CuPy's 'raw T x, int64 n' -> [(raw, type, name), ...]."""
    out = []
    for part in spec.split(","):
        words = part.split()
        raw = words[0] == "raw"
        if raw:
            words = words[1:]
        if len(words) != 2:
            raise ValueError(f"cannot read ElementwiseKernel parameter {part!r}")
        out.append((raw, words[0], words[1]))
    return out


def elementwise_source(ew, dtype: str, preamble: str) -> str:
    """CUDA C of one cupy.ElementwiseKernel (a kernels.cupy_gpu.Elementwise) for `dtype`, wrapped
    the way CuPy expands it; the kernel is named <ew.name>_<f16|f32|f64>."""
    suffix = {"float16": "f16", "float32": "f32", "float64": "f64"}[dtype]
    placeholders = {"T": TYPE_NAMES[dtype], "S": COMPUTE_TYPE[dtype]}
    args, binds = [], []
    for is_out, spec in ((False, ew.in_params), (True, ew.out_params)):
        for raw, typ, name in _params(spec):
            ctype = typ if typ in placeholders else CUPY_SCALAR_TYPES[typ]
            const = "" if is_out else "const "
            if name in ew.scalars:
                args.append(f"const {ctype} {name}")
            elif raw:
                args.append(f"{const}{ctype}* __restrict__ {name}")
            else:
                args.append(f"{const}{ctype}* __restrict__ _raw_{name}")
                binds.append(f"{const}{ctype} &{name} = _raw_{name}[i];")
    typedefs = "".join(f"typedef {c} {p};\n" for p, c in placeholders.items())
    body = "\n".join("        " + line for line in (binds + ew.body.splitlines()))
    return (f"// cupy.ElementwiseKernel {ew.name!r} ({ew.in_params!r} -> {ew.out_params!r}) for {dtype},\n"
            f"// expanded as CuPy does (kernels/nvrtc.py elementwise_source).\n"
            f"{_FLOAT16_STANDIN}\n{typedefs}{preamble}\n"
            f"extern \"C\" __global__ void {ew.name}_{suffix}({', '.join(args + ['const long long _n'])}) {{\n"
            f"#pragma unroll 1\n"
            f"    for (ptrdiff_t i = static_cast<ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < _n;\n"
            f"         i += static_cast<ptrdiff_t>(blockDim.x) * gridDim.x) {{\n"
            f"{body}\n"
            f"    }}\n"
            f"}}\n")


@dataclass(frozen=True)
class Target:
    label: str
    source: str
    kind: str            # "raw" or "elementwise"


def targets() -> list[Target]:
    """Every CUDA C source to check: the .cu files, then each ElementwiseKernel x dtype."""
    from .cupy_gpu import DTYPES, ELEMENTWISE, ELEMENTWISE_PREAMBLE
    out = [Target(p.name, p.read_text(), "raw") for p in raw_sources()]
    for op, ew in ELEMENTWISE.items():
        for dtype in DTYPES:
            out.append(Target(f"elementwise {op} {dtype}", elementwise_source(ew, dtype, ELEMENTWISE_PREAMBLE),
                              "elementwise"))
    return out


def check_all(archs=ARCHS) -> list[Compiled]:
    """Compile every target for every arch."""
    return [compile_source(t.source, t.label, arch) for t in targets() for arch in archs]


# ---- the report ------------------------------------------------------------------------------

def markdown_report(results: list[Compiled], archs=ARCHS) -> str:
    """A Markdown table: one row per kernel, registers / shared memory / stack / spills per arch."""
    major, minor = version()
    try:
        from importlib.metadata import version as dist_version
        bindings = f"cuda-bindings {dist_version('cuda-bindings')}"
    except Exception:
        bindings = "cuda-bindings"
    found = fp16_include_dir()
    fp16 = found[1] if found else "kernels/cuda/fp16.cuh's stand-in (no cuda_fp16.h found)"
    opts = " ".join([*LANG_OPTIONS, *CUPY_OPTIONS, "-I kernels/cuda", *PTXAS_OPTIONS])
    rows: dict[tuple[str, str], dict[str, Resources]] = {}
    for r in results:
        for kernel, res in r.kernels.items():
            rows.setdefault((r.label, kernel), {})[r.arch] = res
    lines = [
        "# CUDA kernel resources",
        "",
        f"Generated by `python -m kernels.nvrtc --report` (`make resources`) with NVRTC {major}.{minor} "
        f"({bindings}), options `{opts}`, `--gpu-architecture` {', '.join(archs)}; cuda_fp16.h from "
        f"{fp16}. Figures are ptxas's (`-Xptxas=-v`). RawKernels are kernels/cuda/*.cu as cupy_raw "
        "compiles them; ElementwiseKernels are the cupy_elementwise bodies in a CuPy-like wrapper "
        "(kernels/nvrtc.py), so their figures approximate CuPy's own expansion.",
        "",
    ]
    header = "| source | kernel | " + " | ".join(f"{a} regs | {a} smem B | {a} stack B | {a} spill st/ld B"
                                                  for a in archs) + " |"
    lines += [header, "|" + "---|" * (2 + 4 * len(archs))]
    for (label, kernel), per_arch in rows.items():
        cells = []
        for a in archs:
            res = per_arch.get(a)
            cells += (["-"] * 4 if res is None else
                      [str(res.registers), str(res.shared_bytes), str(res.stack_bytes),
                       f"{res.spill_stores}/{res.spill_loads}"])
        lines.append(f"| {label} | `{kernel}` | " + " | ".join(cells) + " |")
    bad = [p for r in results for p in r.problems]
    lines += ["", f"{len(rows)} kernels, {len(results)} compilations; "
                  + ("no errors, warnings or spills." if not bad else f"{len(bad)} PROBLEMS:")]
    lines += [f"- {p}" for p in bad]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kernels.nvrtc", description=__doc__.split("\n")[0])
    ap.add_argument("--report", metavar="PATH", help="write the Markdown resource table to PATH")
    ap.add_argument("--arch", action="append", help=f"architecture(s) to compile for (default {', '.join(ARCHS)})")
    args = ap.parse_args(argv)
    why = reason()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    archs = tuple(args.arch) if args.arch else ARCHS
    results = check_all(archs)
    for r in results:
        for p in r.problems:
            print(f"{r.label} [{r.arch}]: {p}", file=sys.stderr)
    n_kernels = sum(len(r.kernels) for r in results)
    print(f"compiled {len(results)} sources x archs, {n_kernels} kernels: "
          + ("ok" if all(r.ok for r in results) else "FAILED"))
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(markdown_report(results, archs))
        print(f"wrote {args.report}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
