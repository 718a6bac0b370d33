"""Whether an environment variable forces the BLAS behind the dense baselines onto a kernel older
than the CPU supports, and the command that measures BLAS at its best.

A dense baseline (numpy's a @ w) is only as good as the kernel its BLAS dispatches to. OpenBLAS,
MKL and BLIS pick the kernel for the CPU at load time, unless a variable forces one:
OPENBLAS_CORETYPE (OpenBLAS, DYNAMIC_ARCH builds), MKL_ENABLE_INSTRUCTIONS, MKL_CBWR and the
undocumented MKL_DEBUG_CPU_TYPE (MKL), BLIS_ARCH_TYPE and AOCL_ENABLE_INSTRUCTIONS (BLIS, AMD's
AOCL-BLAS). OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU runs the AVX2 kernel where SkylakeX's
would run: every speed-up over that baseline is then flattered.

`forced_kernels(env, info, flags)` is a pure function: the environment (os.environ-like),
threadpoolctl's `threadpool_info()` and the CPU's flags go in (tests fake all three); one
`Forced` record per BLAS library comes out whose kernel a variable holds below the CPU's vector
extension. The kernel judged is the one the library reports running (threadpoolctl's
`architecture`, OpenBLAS and BLIS) where it reports one, else the variable's value (MKL).

What is compared is the vector extension that decides float32/float64 GEMM speed (SSE2 ... AVX2,
AVX-512 on x86; NEON, SVE on ARM): a forced Haswell kernel on a Zen 3 (AVX2, where OpenBLAS's own
choice, Zen, uses the same AVX2 kernels) is no loss and no warning. The project never sets or
changes these variables itself: it says which ones to unset, for one command only.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy  # noqa: F401  (loads the BLAS threadpoolctl reports)

from kernels import machine

# the vector extensions, oldest first, per instruction-set family
X86 = ("sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "avx512")
ARM = ("neon", "sve")

# the variables that force a kernel, per threadpoolctl internal_api; and the variables that tune
# the forced kernel (unset with it in the command at its best: OPENBLAS_L2_SIZE sizes OpenBLAS's
# blocking, which its own detection sets otherwise)
VARIABLES = {
    "openblas": ("OPENBLAS_CORETYPE",),
    "mkl": ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE"),
    "blis": ("BLIS_ARCH_TYPE", "AOCL_ENABLE_INSTRUCTIONS"),
}
COMPANIONS = {"openblas": ("OPENBLAS_L2_SIZE",)}

# kernel names (lower case) -> vector extension. OpenBLAS's core names (TargetList.txt, DYNAMIC_ARCH)
_OPENBLAS = {
    **dict.fromkeys(("katmai", "coppermine", "northwood", "banias", "opteron", "athlon"), "sse2"),
    **dict.fromkeys(("prescott", "opteron_sse3", "barcelona", "bobcat", "nano"), "sse3"),
    **dict.fromkeys(("core2", "atom"), "ssse3"),
    **dict.fromkeys(("penryn", "dunnington"), "sse4_1"),
    "nehalem": "sse4_2",
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller"), "avx"),
    **dict.fromkeys(("haswell", "zen", "excavator"), "avx2"),
    **dict.fromkeys(("skylakex", "cooperlake", "sapphirerapids"), "avx512"),
    **dict.fromkeys(("armv8", "cortexa53", "cortexa55", "cortexa57", "cortexa72", "cortexa73",
                     "cortexa76", "neoversen1", "thunderx", "thunderx2t99", "thunderx3t110",
                     "falkor", "tsv110", "emag8180", "ft2000", "vortex"), "neon"),
    **dict.fromkeys(("armv8sve", "neoversev1", "neoversen2", "neoversev2", "a64fx", "armv9sme"), "sve"),
}
# BLIS's sub-configurations (config_registry) and AOCL-BLAS's code-path names and aliases
_BLIS = {
    "generic": None,                       # the reference kernels: below any vector extension
    "penryn": "sse4_1",
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller", "excavator", "avx"), "avx"),
    **dict.fromkeys(("haswell", "zen", "zen2", "zen3", "avx2"), "avx2"),
    **dict.fromkeys(("skx", "knl", "zen4", "zen5", "avx512"), "avx512"),
    **dict.fromkeys(("sse2", "sse3", "ssse3", "sse4_1", "sse4_2"), None),   # AOCL: the generic path
    **dict.fromkeys(("armv8a", "cortexa53", "cortexa57", "thunderx2", "firestorm", "altra",
                     "altramax"), "neon"),
    **dict.fromkeys(("armsve", "a64fx"), "sve"),
}
# MKL's ISA names (MKL_ENABLE_INSTRUCTIONS, MKL_CBWR branches); MKL_DEBUG_CPU_TYPE=5 is AVX2
_MKL = {
    "compatible": "sse2", "sse2": "sse2", "sse3": "sse2", "ssse3": "ssse3", "sse4_1": "sse4_1",
    "sse4_2": "sse4_2", "avx": "avx", "avx2": "avx2", "avx2_e1": "avx2",
    "avx512_mic": "avx2", "avx512_mic_e1": "avx2",        # deprecated: equivalent to AVX2 (MKL_CBWR)
    **dict.fromkeys(("avx512", "avx512_e1", "avx512_e2", "avx512_e3", "avx512_e4", "avx512_e5",
                     "avx10"), "avx512"),
}
_MKL_DEBUG_CPU_TYPE = {"5": "avx2"}

# what each library runs at its best on a CPU of each extension (said in the warning)
_BEST = {
    "openblas": {"avx512": "SkylakeX (Cooperlake, SapphireRapids)", "avx2": "Haswell or Zen",
                 "avx": "Sandybridge", "sve": "NeoverseV1 class (SVE)", "neon": "ARMV8 class (NEON)"},
    "mkl": {"avx512": "its AVX-512 code path", "avx2": "its AVX2 code path", "avx": "its AVX code path"},
    "blis": {"avx512": "skx / zen4 / zen5", "avx2": "haswell / zen3", "avx": "sandybridge",
             "sve": "armsve", "neon": "armv8a"},
}


@dataclass(frozen=True)
class Forced:
    """One BLAS library held below the CPU by environment variables."""

    library: str                    # threadpoolctl's internal_api: openblas, mkl, blis
    variables: dict[str, str]       # the forcing variables that are set, with their values
    forced: str                     # the kernel it runs (threadpoolctl's architecture, or the value)
    forced_isa: str | None          # that kernel's vector extension (None: below any, e.g. generic)
    cpu_isa: str                    # the CPU's widest vector extension
    best: str                       # what the library would run without the variables
    unset: tuple[str, ...]          # the variables the command at its best unsets
    command: str                    # that command: the variables unset for it alone
    filepath: str | None = None     # the library's file, as threadpoolctl reports it

    def as_dict(self) -> dict:
        d = asdict(self)
        d["unset"] = list(self.unset)
        return d

    @property
    def message(self) -> str:
        return warning_text(self.as_dict())


def cpu_isa(flags: Iterable[str]) -> str | None:
    """The widest vector extension that GEMM uses among the CPU's flags (Linux's /proc/cpuinfo
    names, or py-cpuinfo's): avx512 needs avx512f, avx2 needs fma too; None when the flags say
    nothing (an unknown CPU: nothing is judged)."""
    f = {x.lower() for x in flags}
    if not f:
        return None
    if "sve" in f:
        return "sve"
    if "asimd" in f or "neon" in f:
        return "neon"
    for isa, need in (("avx512", {"avx512f"}), ("avx2", {"avx2", "fma"}), ("avx", {"avx"}),
                      ("sse4_2", {"sse4_2"}), ("sse4_1", {"sse4_1"}), ("ssse3", {"ssse3"}),
                      ("sse3", {"pni"}), ("sse3", {"sse3"}), ("sse2", {"sse2"})):
        if need <= f:
            return isa
    return None


def _rank(isa: str | None, family: Sequence[str]) -> int:
    """Position of isa in the family, -1 for None (below any vector extension)."""
    return -1 if isa is None else family.index(isa)


def _family(isa: str) -> Sequence[str]:
    return X86 if isa in X86 else ARM


def _mkl_value(name: str, value: str) -> str | None | bool:
    """The extension an MKL variable's value caps dispatch at; False when it caps nothing (AUTO,
    an unknown value)."""
    v = value.strip().lower()
    if name == "MKL_DEBUG_CPU_TYPE":
        return _MKL_DEBUG_CPU_TYPE.get(v, False)
    if name == "MKL_CBWR":                         # "AVX2", "BRANCH=AVX2,STRICT", "AUTO,STRICT"
        v = v.split(",")[0].removeprefix("branch=").strip()
    return _MKL.get(v, False)


def _kernel(library: str, variables: Mapping[str, str], entry: Mapping) -> tuple[str, str | None] | None:
    """(kernel name, its extension) the library runs under the variables, or None where it
    cannot be told (an unknown name)."""
    arch = entry.get("architecture")
    table = _OPENBLAS if library == "openblas" else _BLIS
    if library in ("openblas", "blis"):
        name = arch if arch else next(iter(variables.values()))
        key = str(name).strip().lower()
        return (str(name), table[key]) if key in table else None
    capped = [(f"{k}={v}", _mkl_value(k, v)) for k, v in variables.items()]
    capped = [(n, isa) for n, isa in capped if isa is not False]
    if not capped:
        return None
    return min(capped, key=lambda c: _rank(c[1], X86))


def unset_command(names: Iterable[str], command: str = "make bench") -> str:
    """`env -u A -u B <command>`: the variables unset for that one command, nowhere else."""
    return " ".join(["env", *(f"-u {shlex.quote(n)}" for n in names), command])


def forced_kernels(env: Mapping[str, str], info: Sequence[Mapping], flags: Iterable[str],
                   command: str = "make bench") -> list[Forced]:
    """A `Forced` record for each BLAS library in threadpoolctl's `info` whose kernel a variable
    of `env` holds below the CPU's widest vector extension (`flags`); [] when none does, when no
    variable is set, or when the CPU or the kernel cannot be told (nothing to judge)."""
    isa = cpu_isa(flags)
    if isa is None:
        return []
    out = []
    seen = set()
    for entry in info:
        library = str(entry.get("internal_api") or "").lower()
        if library not in VARIABLES or library in seen:
            continue
        seen.add(library)
        variables = {k: env[k] for k in VARIABLES[library] if env.get(k, "").strip()}
        if not variables:
            continue
        kernel = _kernel(library, variables, entry)
        if kernel is None:
            continue
        name, kernel_isa = kernel
        family = _family(isa)
        if kernel_isa is not None and kernel_isa not in family:
            continue                                # another family's name: nothing to judge
        if _rank(kernel_isa, family) >= _rank(isa, family):
            continue
        unset = tuple(variables) + tuple(k for k in COMPANIONS.get(library, ()) if k in env)
        out.append(Forced(library=library, variables=variables, forced=name, forced_isa=kernel_isa,
                          cpu_isa=isa, best=_BEST[library].get(isa, f"its {isa.upper()} kernels"),
                          unset=unset, command=unset_command(unset, command),
                          filepath=entry.get("filepath")))
    return out


def detect(command: str = "make bench") -> list[dict]:
    """`forced_kernels` on this process: os.environ, threadpoolctl's view of the BLAS numpy loaded,
    the CPU's flags (/proc/cpuinfo); JSON-ready. [] where threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info   # gpu-check's machines lack it
    except ImportError:
        return []
    return [f.as_dict() for f in forced_kernels(os.environ, threadpool_info(), machine.cpu_flags(), command)]


def numpy_own(libraries: Iterable[Mapping]) -> list[Mapping]:
    """The BLAS libraries of threadpoolctl's list that numpy's dense products run on: scipy loads an
    OpenBLAS of its own beside numpy's and the list holds both, so the ones in numpy's folders
    where the paths tell, else every BLAS listed."""
    libs = [b for b in libraries if b.get("user_api", "blas") == "blas"]
    own = [b for b in libs if re.search(r"[/\\]numpy(\.libs)?[/\\]", str(b.get("filepath") or ""))]
    return own or libs


def warning_text(record: Mapping) -> str:
    """The warning a `Forced` record (or its JSON) gives: the variables, the kernel they force,
    what the CPU has and the library would run, and the command that measures BLAS at its best."""
    names = ", ".join(f"{k}={v}" for k, v in (record.get("variables") or {}).items())
    return (f"{names} forces {record.get('library')}'s {record.get('forced')} kernel "
            f"({(record.get('forced_isa') or 'generic').upper()}) on a CPU with "
            f"{str(record.get('cpu_isa')).upper()}, where it would run {record.get('best')}: the "
            f"dense baselines are slower than they can be here. BLAS at its best: {record.get('command')}")


def warnings(env: Mapping) -> list[str]:
    """The warnings of a run's recorded environment (its "blas_forced" key), one per library, for
    the run's header and under every table whose figures rest on a dense baseline."""
    return ["WARNING: " + warning_text(f) for f in env.get("blas_forced") or []]
