"""pytest-benchmark suites: the machine's GPU, driver, CUDA and BLAS in every saved file.

pytest-benchmark records the CPU (py-cpuinfo) but nothing of a GPU; the
`pytest_benchmark_update_machine_info` hook adds what actbench's own runs record, so two saved
files from different machines show why their numbers differ.
"""

from __future__ import annotations


def _gpu() -> dict | None:
    """GPU name, memory, driver and CUDA runtime, from the first GPU backend that can run here."""
    from kernels import registry
    try:
        from bench.run.runner import _gpu_info
        from bench.model.cases import Case
    except ImportError:
        return None
    gpu_cases = [Case("relu", be.name, "gpu", "float32", 1) for be in registry.all_backends()
                 if be.device == "gpu" and be.available and not be.simulated]
    return _gpu_info(gpu_cases) if gpu_cases else None


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.measure.environment import environment
    env = environment("pytest tests/benchmarks")
    machine_info["actbench"] = {
        "cpu": env["cpu"],
        "gpu": _gpu(),
        "blas": [{k: b.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
                 for b in env["numpy"]["blas"] if b.get("user_api") == "blas"],
        "numba": env["numba"],
        "packages": env["packages"],
    }
