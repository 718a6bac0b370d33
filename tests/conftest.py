"""Shared fixtures: the (op, backend) matrix every correctness test runs over, and GPU skips.

`make test` sets NUMBA_ENABLE_CUDASIM=1, so the numba_cuda backend runs on numba-cuda's CPU
simulator (small sizes only: it is slow). Backends that need a real GPU (CuPy, torch CUDA) are
skipped with the reason their probe gives.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import kernels
from kernels import registry

SIMULATED_MAX = 1000   # largest array a simulated GPU backend gets in tests


def _marks(be) -> list:
    marks = [pytest.mark.gpu] if be.device == "gpu" else []
    if not be.available:
        marks.append(pytest.mark.skip(reason=f"{be.name}: {be.reason}"))
    return marks


def kernel_params():
    """One pytest param per registered (op, backend), with the backend's reason as skip mark."""
    return [pytest.param(k.op, k.backend, id=f"{k.op}-{k.backend}", marks=_marks(registry.backend(k.backend)))
            for k in registry.kernels()]


def kernel_dtype_params():
    """One pytest param per registered (op, backend) and each dtype that backend supports."""
    return [pytest.param(k.op, k.backend, dt, id=f"{k.op}-{k.backend}-{dt}", marks=_marks(registry.backend(k.backend)))
            for k in registry.kernels() for dt in registry.backend(k.backend).dtypes]


def dtypes_of(backend: str) -> list[str]:
    return list(registry.backend(backend).dtypes)


def max_size(backend: str) -> int | None:
    return SIMULATED_MAX if registry.backend(backend).simulated else None


@pytest.fixture
def rng(request):
    # a fresh, reproducible seed per test: different tests see different values
    return np.random.default_rng(abs(hash(request.node.nodeid)) % 2**32)


def pytest_report_header(config):
    lines = [f"NUMBA_ENABLE_CUDASIM={os.environ.get('NUMBA_ENABLE_CUDASIM', '0')}"]
    for be in kernels.backends():
        state = "simulated" if be.available and be.simulated else ("ok" if be.available else be.reason)
        lines.append(f"backend {be.name:17s} {be.device}: {state}")
    return lines
