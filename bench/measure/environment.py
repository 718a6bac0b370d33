"""Where and how a run happens, as recorded in its results: host, CPU (model, the cores this process
may use, its instruction-set flags), BLAS and its threads, numba, package versions and the git
commit. (The GPU is described by the runner, from the backend in use.)
Capturing the environment never ends a run: what cannot be read is recorded as unknown.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

import numba
from kernels import machine

from bench.measure import blas

PACKAGES = ("numpy", "numba", "llvmlite", "scipy", "rich", "matplotlib", "threadpoolctl", "torch",
            "cupy-cuda12x", "cupy-cuda13x", "numba-cuda", "cuda-bindings", "nvidia-cuda-nvrtc")


def _git() -> dict:
    def run(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        commit = run("rev-parse", "HEAD")
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _packages() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def environment(command: str | None = None, **extra) -> dict:
    """Where and how this run happens: CPU, BLAS and its threads, GPU when present, versions, git."""
    env = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "command": command if command is not None else " ".join(sys.argv),
        "cpu": _cpu(),
        "numpy": {"version": np.__version__, "blas": _blas()},
        "numba": _numba_info(),
        "gpu": None,
        "packages": _packages(),
        "git": _git(),
    }
    env["blas_forced"] = blas.detect(env["command"])     # a variable holding BLAS below the CPU (bench/blas.py)
    env.update(extra)
    return env


def _cpu() -> dict:
    """`cores` is what the run can use (the affinity mask, kernels/machine.py): a baseline's name
    and the copy peak's threads follow it; `logical_cpus` is what the host has. `flags` let a
    reader check what a figure rests on (AVX-512, streaming stores) without the machine."""
    flags, source = _cpu_flags()
    return {"model": machine.cpu_model(), "cores": machine.cpu_count(), "logical_cpus": os.cpu_count(),
            "llc_bytes": machine.last_level_cache_bytes(), "flags": flags, "flags_from": source}


def _cpu_flags() -> tuple[list[str], str | None]:
    """The CPU's flags and where they came from: py-cpuinfo (installed with pytest-benchmark; any
    OS, CPUID itself), else Linux's /proc/cpuinfo; ([], None) when neither can say."""
    try:
        import cpuinfo  # noqa: PLC0415  (optional: py-cpuinfo comes with pytest-benchmark, /proc/cpuinfo otherwise)
        flags = cpuinfo.get_cpu_info().get("flags") or []
        if flags:
            return sorted(set(flags)), "py-cpuinfo"
    except Exception:      # a third-party probe: capturing the environment never ends a run
        pass
    flags = machine.cpu_flags()
    return flags, ("/proc/cpuinfo" if flags else None)


def _blas() -> list[dict]:
    """NumPy's BLAS and its threads, as threadpoolctl reports them (not installed: said so; the GPU
    machines' python3 that gpu-check runs on lacks it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl is not installed"}]
    return threadpool_info()


def _numba_info() -> dict:
    info = {"version": numba.__version__, "threads": numba.config.NUMBA_NUM_THREADS}
    try:
        info["threading_layer"] = numba.threading_layer()
    except ValueError:        # no parallel region has run yet
        info["threading_layer"] = None
    return info
