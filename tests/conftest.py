"""Shared fixtures: a cache directory of its own for numba_cpu's measurements, the (op, backend)
matrix every correctness test runs over, GPU skips, the seeded random generator, and the recorded
example run that the results and report tests read.

NUMBA_ENABLE_CUDASIM=1 is set here, before numba is imported, unless the environment says
otherwise (bench/cli/gpu_check.py sets 0 on a real GPU): `pytest` alone and `make test` agree, and the
numba_cuda backend runs on numba-cuda's CPU simulator (small sizes only: it is slow). Backends that
need a real GPU (CuPy, torch CUDA) are skipped with the reason their probe gives.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402  (after the simulator switch)
import pytest  # noqa: E402

import kernels  # noqa: E402
from kernels import registry  # noqa: E402

EXAMPLE_RUN = Path(__file__).resolve().parent.parent / "reports" / "example" / "2026-11-28T140009-vm.json"

SIMULATED_MAX = 1000   # largest array a simulated GPU backend gets in tests


def _marks(be) -> list:
    marks = [pytest.mark.gpu] if be.device == "gpu" else []
    if not be.available:
        marks.append(pytest.mark.skip(reason=f"{be.name}: {be.reason}"))
    return marks


def kernel_params():
    """One pytest param per registered (op, backend), with the backend's reason as skip mark."""
    return [pytest.param(k.op, k.backend, id=f"{k.op}-{k.backend}", marks=_marks(registry.backend(k.backend)))
            for k in registry.kernels() if registry.spec_of(k.op).kind == "elementwise"]


def kernel_dtype_params():
    """One pytest param per registered (op, backend) and each dtype that backend supports."""
    return [pytest.param(k.op, k.backend, dt, id=f"{k.op}-{k.backend}-{dt}", marks=_marks(registry.backend(k.backend)))
            for k in registry.kernels() if registry.spec_of(k.op).kind == "elementwise"
            for dt in registry.backend(k.backend).dtypes]


def dtypes_of(backend: str) -> list[str]:
    return list(registry.backend(backend).dtypes)


def max_size(backend: str) -> int | None:
    return SIMULATED_MAX if registry.backend(backend).simulated else None


def seed_of(nodeid: str) -> int:
    """The seed of a test: the same in every process (unlike hash(), which Python salts)."""
    return zlib.crc32(nodeid.encode())


@pytest.fixture
def rng(request):
    # a fresh, reproducible seed per test: different tests see different values
    seed = seed_of(request.node.nodeid)
    request.node.rng_seed = seed
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that drew random inputs says its seed, to replay it."""
    outcome = yield
    report = outcome.get_result()
    seed = getattr(item, "rng_seed", None)
    if report.failed and seed is not None:
        report.sections.append(("rng seed", f"np.random.default_rng({seed})  # zlib.crc32 of {item.nodeid!r}"))


@pytest.fixture(scope="session")
def example_run():
    """The recorded run in reports/example/ (a Run; frozen, so tests may share it)."""
    from bench.model import results
    return results.load(EXAMPLE_RUN)


def pytest_configure(config):
    """numba_cpu's measured store strategy and serial thresholds go to a cache of the test
    session's own, removed at its end: a test run (often beside other work) must not leave its
    measurements for later benchmarks. Not for the pytest-benchmark suite (--benchmark-only),
    which measures with the machine's own cache like `make bench`."""
    if config.getoption("benchmark_only", False):
        return
    folder = tempfile.mkdtemp(prefix="actbench-test-cache-")
    old = os.environ.get("ACTBENCH_CACHE_DIR")
    os.environ["ACTBENCH_CACHE_DIR"] = folder

    def restore():
        shutil.rmtree(folder, ignore_errors=True)
        if old is None:
            os.environ.pop("ACTBENCH_CACHE_DIR", None)
        else:
            os.environ["ACTBENCH_CACHE_DIR"] = old
    config.add_cleanup(restore)


def pytest_report_header(config):
    lines = [f"NUMBA_ENABLE_CUDASIM={os.environ.get('NUMBA_ENABLE_CUDASIM', '0')}"]
    for be in kernels.all_backends():
        state = "simulated" if be.available and be.simulated else ("ok" if be.available else be.reason)
        lines.append(f"backend {be.name:17s} {be.device}: {state}")
    return lines


def edited(run, changes: dict, drop=()):
    """The run with some cases changed, {(op, backend, size): {field: value}}, cases matching an
    (op, backend, size) in `drop` left out, and the figures derived again: how the results tests
    make a failed, skipped or unstable case out of the recorded one."""
    from dataclasses import replace

    from bench.model import results
    kept = [e for e in run.results if (e.op, e.backend, e.size) not in drop]
    cases = [replace(e, **changes[(e.op, e.backend, e.size)]) if (e.op, e.backend, e.size) in changes else e
             for e in kept]
    missing = set(changes) - {(e.op, e.backend, e.size) for e in kept}
    assert not missing, f"no such cases: {sorted(missing)}"
    return results.derive(replace(run, results=tuple(cases)))
