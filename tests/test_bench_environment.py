"""What a run records about its machine (bench/measure/environment.py, kernels/machine.py): the cores this
process may use (its affinity mask, not the host's count, which names the baseline) and the CPU's
instruction-set flags, from py-cpuinfo or else /proc/cpuinfo."""

from __future__ import annotations

import os
import sys

from bench.measure import environment
from bench.analysis import history
from kernels import machine


def test_usable_cores_come_from_the_affinity_mask(monkeypatch):
    # a container given 2 cores of a 64-core host
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 7}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert machine.cpu_count() == 2
    cpu = environment.environment("test")["cpu"]
    assert (cpu["cores"], cpu["logical_cpus"]) == (2, 64)
    assert history.machine_name({"cpu": {"model": "AMD EPYC 9B45", "cores": cpu["cores"]}}) == "amd-epyc-9b45-2c"


def test_without_an_affinity_mask_the_os_count_is_used(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)       # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert machine.cpu_count() == 8


def test_flags_of_proc_cpuinfo_sorted_once(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: sse2 avx512f avx2 sse2\n\nprocessor\t: 1\n"
                 "flags\t\t: other\n")
    assert machine.cpu_flags(f) == ["avx2", "avx512f", "sse2"]
    assert machine.cpu_flags(tmp_path / "missing") == []


def test_flags_are_recorded_with_their_source(monkeypatch):
    cpu = environment.environment("test")["cpu"]
    assert cpu["flags_from"] in ("py-cpuinfo", "/proc/cpuinfo", None)
    assert cpu["flags"] == sorted(set(cpu["flags"]))
    if sys.platform.startswith("linux") and os.path.exists("/proc/cpuinfo"):
        assert cpu["flags"], "Linux lists flags: one source must have read them"
    # py-cpuinfo missing (it comes with pytest-benchmark, not with actbench): /proc/cpuinfo instead
    monkeypatch.setitem(sys.modules, "cpuinfo", None)
    monkeypatch.setattr(machine, "cpu_flags", lambda: ["avx2", "sse2"])
    cpu = environment.environment("test")["cpu"]
    assert (cpu["flags"], cpu["flags_from"]) == (["avx2", "sse2"], "/proc/cpuinfo")
    monkeypatch.setattr(machine, "cpu_flags", lambda: [])
    cpu = environment.environment("test")["cpu"]
    assert (cpu["flags"], cpu["flags_from"]) == ([], None)


def test_py_cpuinfo_is_asked_first(monkeypatch):
    class FakeCpuinfo:
        @staticmethod
        def get_cpu_info():
            return {"flags": ["sse2", "avx512f", "sse2"]}
    monkeypatch.setitem(sys.modules, "cpuinfo", FakeCpuinfo)
    cpu = environment.environment("test")["cpu"]
    assert (cpu["flags"], cpu["flags_from"]) == (["avx512f", "sse2"], "py-cpuinfo")


def test_the_header_names_the_usable_cores_and_the_widest_vector_extension():
    from bench.report import formatting
    from bench.model.results import Run
    cpu = {"model": "AMD EPYC", "cores": 2, "logical_cpus": 64, "llc_bytes": 2**25, "flags": ["avx2", "avx512f"]}
    line = dict(formatting.env_lines(Run(env={"cpu": cpu})))["cpu"]
    assert line == "AMD EPYC, 2 of 64 cores, LLC 32 MiB, AVX-512"
    old = {"model": "AMD EPYC", "cores": 2, "llc_bytes": 2**25}          # a file from before the flags
    assert dict(formatting.env_lines(Run(env={"cpu": old})))["cpu"] == "AMD EPYC, 2 cores, LLC 32 MiB"
