"""Facts about the host CPU, read from the OS: model, usable cores, instruction-set flags, cache sizes.

A leaf module (standard library only), so that kernels and the bench harness can both ask without
importing each other. These are what the OS reports, not measurements: a VM may list a host's
large shared L3 for its two cores, so tuning choices are measured, never derived from them alone.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
DEFAULT_LLC_BYTES = 32 * 2**20      # when sysfs says nothing (macOS, Windows, some containers)
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC 9B45'), or the platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """Logical cores this process may run on: its affinity mask where the OS has one (a container
    on a 64-core host given 2 cores says 2; os.cpu_count() would say 64), else the cores the OS
    reports (1 when it cannot tell)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):      # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The instruction-set flags Linux lists for the first CPU ('avx2', 'avx512f', ...), sorted;
    [] where there is no such file (bench/measure/environment.py asks py-cpuinfo first, which reads them
    on any OS)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):      # x86, ARM
                return sorted(set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def _bytes(text: str) -> int:
    """sysfs size text ('32768K', '1M', '512') in bytes."""
    text = text.strip()
    scale = _UNITS.get(text[-1:].upper(), 1)
    return int(text.rstrip("KMGkmg")) * scale


def cache_sizes(cache_dir: Path = CACHE_DIR) -> dict[str, int]:
    """Cache sizes of CPU 0 by name ('L1d', 'L1i', 'L2', 'L3'), in bytes; {} when sysfs has none."""
    out: dict[str, int] = {}
    for index in sorted(cache_dir.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = _bytes((index / "size").read_text())
        except (OSError, ValueError):
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


def last_level_cache_bytes(cache_dir: Path = CACHE_DIR) -> int:
    """The largest cache sysfs lists, DEFAULT_LLC_BYTES when it lists none."""
    return max(cache_sizes(cache_dir).values(), default=DEFAULT_LLC_BYTES)
