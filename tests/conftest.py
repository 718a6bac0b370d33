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


def kernel_params():
    """One pytest param per registered (op, backend), with the backend's reason as skip mark."""
    params = []
    for k in registry.kernels():
        be = registry.backend(k.backend)
        marks = []
        if be.device == "gpu":
            marks.append(pytest.mark.gpu)
        if not be.available:
            marks.append(pytest.mark.skip(reason=f"{k.backend}: {be.reason}"))
        params.append(pytest.param(k.op, k.backend, id=f"{k.op}-{k.backend}", marks=marks))
    return params


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
