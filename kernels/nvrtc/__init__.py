"""Compile CUDA C with NVRTC, without a GPU, and read ptxas's resource report: the engine behind
the compile tests (tests/test_kernels_nvrtc.py) and `make resources` (kernels/nvrtc/resources.py).

The options are CuPy's own (kernels/backends/cupy/expand.py's `options`, which calls CuPy's
`assemble_cupy_compiler_options`): a source is checked as cupy.RawModule, RawKernel or
ElementwiseKernel compiles it on a GPU, never with an option set of our own. Each compile adds
`-Xptxas=-v` (and ptxas's --warn-on-spills): a compile error, any warning in the log, or a kernel
that spills is a problem (`Compiled.problems`).
`parse_ptxas` reads registers, shared memory, stack frame and spill bytes per kernel from the log.

NVRTC comes from PyPI (cuda-bindings and nvidia-cuda-nvrtc, the dev extra); it is imported on
first use, so importing this module never needs it. No runtime module imports this one.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from kernels.backends.cupy.expand import options as cupys

ARCHS = ("sm_80", "sm_90")
# the report: ptxas's resource usage, and spills as warnings
PTXAS_OPTIONS = ("-Xptxas=-v", "-Xptxas=--warn-on-spills")


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


# ---- compiling -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resources:
    """What ptxas reports for one kernel: registers per thread, and bytes of static shared memory,
    stack frame and spill stores / loads per thread (barriers: named barriers used). A figure the
    log leaves out is 0."""

    registers: int
    shared_bytes: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int
    barriers: int

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0


@dataclass(frozen=True)
class Compiled:
    """The outcome of compiling one source for one architecture."""

    label: str                       # what was compiled: "relu.cu", "elementwise relu float32"
    arch: str
    log: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kernels: dict[str, Resources] = field(default_factory=dict)
    entries: tuple[str, ...] = ()   # the kernels the compiled module defines (its PTX's .entry), in order

    @property
    def problems(self) -> list[str]:
        """Everything that fails the check: errors, warnings, spilling kernels, and a kernel the
        module defines that ptxas did not report on."""
        out = [f"error: {e}" for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        out += [f"{k} spills {r.spill_stores} B stores / {r.spill_loads} B loads"
                for k, r in self.kernels.items() if r.spills]
        out += [f"{k}: no ptxas report" for k in self.entries if k not in self.kernels]
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
    found: dict[str, dict[str, int]] = {}
    entry = current = None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            entry = current = m.group(1)
            found.setdefault(entry, {})
        elif m := _PROPS.search(line):
            current = m.group(1)
        elif (m := _FRAME.search(line)) and current is not None and current == entry:
            found[entry].update(zip(("stack_bytes", "spill_stores", "spill_loads"), map(int, m.groups())))
        elif (m := _USED.search(line)) and entry is not None:
            found[entry]["registers"] = int(m.group(1))
            for item in m.group(2).split(","):
                if mm := re.fullmatch(r"used (\d+) barriers", item.strip()):
                    found[entry]["barriers"] = int(mm.group(1))
                elif mm := re.fullmatch(r"(\d+) bytes smem", item.strip()):
                    found[entry]["shared_bytes"] = int(mm.group(1))
    zero = dict.fromkeys(Resources.__dataclass_fields__, 0)
    return {name: Resources(**{**zero, **fields}) for name, fields in found.items()}


def _log_problems(log: str) -> tuple[list[str], list[str]]:
    errors, warnings = [], []
    for line in log.splitlines():
        low = line.lower()
        if re.search(r"\berror\b", low) and "0 errors" not in low:
            errors.append(line.strip())
        elif "warning" in low:
            warnings.append(line.strip())
    return errors, warnings


def cupy_options(options: tuple[str, ...] | None) -> tuple[str, ...]:
    """`options` as given (already CuPy's, e.g. a `resources.Target`'s), or None: what CuPy compiles a
    RawKernel / RawModule with when it is given no options (`cupy.RawKernel(code, name)`)."""
    if options is not None:
        return options
    return cupys()


# kernels/cuda/fp16.cuh's switch to its own __half in place of cuda_fp16.h. CuPy puts its CUDA
# headers' folder (cuda_fp16.h's) on every compile's path, or raises without one: under CuPy's
# options only this define reaches that branch, so the tests add it to compile the branch at all.
NO_CUDA_FP16 = "-DACTBENCH_NO_CUDA_FP16"


def compile_source(source: str, label: str, arch: str, options: tuple[str, ...] | None = None, *,
                   fp16: bool = True) -> Compiled:
    """Compile CUDA C `source` for `arch` with NVRTC and CuPy's `options` (`cupy_options`);
    fp16=False adds NO_CUDA_FP16. The log checked and parsed."""
    nv = _nvrtc()
    opts = [*cupy_options(options), *(() if fp16 else (NO_CUDA_FP16,)), f"--gpu-architecture={arch}", *PTXAS_OPTIONS]
    prog = _check(nv.nvrtcCreateProgram(source.encode(), label.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        (err,) = nv.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
        log = _text(nv, prog, nv.nvrtcGetProgramLogSize, nv.nvrtcGetProgramLog)
        # the PTX is kept beside the binary: its .entry lines name the kernels as defined, macros expanded
        entries = tuple(entry_names(_text(nv, prog, nv.nvrtcGetPTXSize, nv.nvrtcGetPTX))) if int(err) == 0 else ()
    finally:
        nv.nvrtcDestroyProgram(prog)
    errors, warnings = _log_problems(log)
    if int(err) != 0 and not errors:
        errors.append(f"{label}: {err}")
    kernels = parse_ptxas(log) if int(err) == 0 else {}
    order = {k: i for i, k in enumerate(entries)}                 # as the source defines them
    kernels = dict(sorted(kernels.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Compiled(label, arch, log, errors, warnings, kernels, entries)


def _text(nv, prog, get_size, get) -> str:
    """A program's log or PTX (NVRTC's size-then-copy calls)."""
    buf = b" " * _check(get_size(prog), get_size.__name__)
    _check(get(prog, buf), get.__name__)
    return buf.rstrip(b"\0 ").decode(errors="replace")


def ptx_of(source: str, label: str, arch: str, options: tuple[str, ...] | None = None) -> str:
    """The PTX NVRTC makes of `source` for arch's virtual architecture (compute_XX), with CuPy's
    `options` (`cupy_options`)."""
    nv = _nvrtc()
    opts = [*cupy_options(options), f"--gpu-architecture={arch.replace('sm_', 'compute_')}"]
    prog = _check(nv.nvrtcCreateProgram(source.encode(), label.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        _check(nv.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts]), f"compiling {label}")
        return _text(nv, prog, nv.nvrtcGetPTXSize, nv.nvrtcGetPTX)
    finally:
        nv.nvrtcDestroyProgram(prog)


def entry_names(ptx: str) -> list[str]:
    """The kernels (.entry) of a PTX module, in order."""
    return re.findall(r"\.entry\s+(\w+)\s*\(", ptx)
