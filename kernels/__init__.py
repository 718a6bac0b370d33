"""actbench kernels: one API over every backend.

    import kernels
    relu = kernels.get("relu", "numba_cpu")
    y = relu(x)                                  # x a NumPy array: a new array, x untouched
    x_gpu = kernels.asarray("cupy_raw", x)       # move data to a backend ...
    y = kernels.asnumpy(kernels.get("sigmoid", "cupy_raw")(x_gpu))   # ... and back

`all_ops()` lists the op ids, `all_backends()` the backend records (name, device, available, reason).
Each backend family is a package of kernels/backends/ and imports exactly one optional dependency, so a machine
without CuPy or torch simply has fewer available backends, each with the reason why.

A user's own kernels (docs/plugins.md) use only the names below: `Backend` and `Available` (the
records), `declare_backend` (a new backend, never one that exists) and `register` (a kernel for an
existing op on such a backend, never in place of one). `python -m bench run --plugin my_kernels.py`
then checks and times them like every backend here (examples/my_relu.py).
"""

from __future__ import annotations

import numpy as np

from kernels import registry
from kernels.ops import OPS
from kernels.registry import Available, Backend, Kernel

# Importing the backends declares each backend and registers its kernels, in the order of
# kernels/backends/__init__.py; none touches a device.
import kernels.backends  # noqa: E402,F401

__all__ = ["get", "all_ops", "all_backends", "asarray", "asnumpy", "Backend", "Kernel", "OPS",
           "Available", "declare_backend", "register"]


def get(op: str, backend: str):
    """The checked launcher of `op` on `backend`. LookupError names the valid ones; a backend that
    cannot run here is a RuntimeError that says why."""
    k = registry.kernel(op, backend)
    be = registry.backend(backend)
    if not be.available:
        raise RuntimeError(f"backend {backend!r} is not available here: {be.reason}")
    return k.fn


def all_ops() -> list[str]:
    """Every op id, in the order of kernels.ops.OPS."""
    return list(OPS)


def all_backends() -> list[Backend]:
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


def declare_backend(backend: Backend) -> Backend:
    """Declare a backend of your own (a plugin's: docs/plugins.md); returns it. ValueError when a
    backend of that name exists already: a plugin adds a backend, it never replaces one."""
    if any(b.name == backend.name for b in registry.all_backends()):
        raise ValueError(f"a backend named {backend.name!r} exists already; give yours another name")
    return registry.declare_backend(backend)


def register(op: str, backend: str, *, supports_out: bool = True):
    """Decorator: `fn` becomes the kernel of the existing op `op` on `backend` (declared first);
    returns the checked launcher. `fn(*arrays, out=None, **params)` gets the op's arrays (contiguous,
    of the backend's kind, dtypes and shapes already checked), its scalar params, and `out` (None, or
    the output arrays to write) unless `supports_out=False`. LookupError for an unknown op or
    backend, ValueError where the op has a kernel on that backend already."""
    registry.spec_of(op)
    registry.backend(backend)
    if any(k.op == op and k.backend == backend for k in registry.kernels()):
        raise ValueError(f"op {op!r} has a kernel on backend {backend!r} already; a plugin adds kernels, "
                         "it never replaces one")
    return registry.register(op, backend, supports_out=supports_out)
