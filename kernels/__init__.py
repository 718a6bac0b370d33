"""actbench kernels: one API over every backend.

    import kernels
    relu = kernels.get("relu", "numba_cpu")
    y = relu(x)                                  # x a NumPy array: a new array, x untouched
    x_gpu = kernels.asarray("cupy_raw", x)       # move data to a backend ...
    y = kernels.asnumpy(kernels.get("sigmoid", "cupy_raw")(x_gpu))   # ... and back

`ops()` lists the op ids, `backends()` the backend records (name, device, available, reason).
Each backend lives in its own module and imports exactly one optional dependency, so a machine
without CuPy or torch simply has fewer available backends, each with the reason why.
"""

from __future__ import annotations

import numpy as np

from . import registry
from .reference import OPS
from .registry import Backend, Kernel

# Importing a backend module declares its backend and registers its kernels; none touches a device.
from . import numpy_cpu, numba_cpu, cupy_gpu, numba_gpu, torch_peer  # noqa: E402,F401
# sparse_matmul: kernels on the backends above, and the two CSR backends (after those they extend)
from . import numba_sparse, scipy_csr, cupy_sparse, numba_cuda_sparse  # noqa: E402,F401

__all__ = ["get", "ops", "backends", "asarray", "asnumpy", "Backend", "Kernel", "OPS"]


def get(op: str, backend: str):
    """The checked launcher of `op` on `backend`. LookupError names the valid ones; a backend that
    cannot run here is a RuntimeError that says why."""
    k = registry.kernel(op, backend)
    be = registry.backend(backend)
    if not be.available:
        raise RuntimeError(f"backend {backend!r} is not available here: {be.reason}")
    return k.fn


def ops() -> list[str]:
    """Every op id, in the order of kernels.reference.OPS."""
    return list(OPS)


def backends() -> list[Backend]:
    """Every backend record, available or not (`.available`, `.reason`)."""
    return registry.all_backends()


def asarray(backend: str, a) -> object:
    """Array `a` (NumPy or any backend's) as an array of `backend`: a copy on a device, the same
    NumPy array for the CPU backends."""
    be = registry.backend(backend)
    if not be.available:
        raise RuntimeError(f"backend {backend!r} is not available here: {be.reason}")
    return be.to_native(asnumpy(a))


def asnumpy(a) -> np.ndarray:
    """A NumPy array holding the values of `a`, an array of any backend."""
    if isinstance(a, np.ndarray):
        return a
    for be in registry.all_backends():
        if be.name != "numpy" and be.is_native(a):
            return be.to_numpy(a)
    return np.asarray(a)
