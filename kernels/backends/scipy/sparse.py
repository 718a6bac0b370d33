"""sparse_matmul through SciPy: the activations converted to CSR at call time, then CSR @ dense w.

This is what a user reaches for first: `scipy.sparse.csr_array(a) @ w`. The activations appear at
run time, so the conversion is part of every call; `to_csr` and `csr_matmul` are its two steps, so
that the benchmark can report the conversion's share separately. SciPy's sparse kernels are
serial C++ (sparsetools): one thread, whatever the machine has. Zeros are structurally absent from
the CSR matrix, so this backend has the op's sparse-aware semantics (no 0 * inf). float32 and
float64 only: scipy.sparse has no float16.
"""

from __future__ import annotations

import numpy as np

import scipy
import scipy.sparse as sp
from kernels.ops import as_rows, matmul_result
from kernels.registry import Available, Backend, declare_backend, register

DTYPES = ("float32", "float64")


def _probe() -> Available | str:
    return Available(description=f"SciPy {scipy.__version__} CSR (activations converted at call time) "
                                 "@ dense, one thread")


declare_backend(Backend(
    name="scipy_csr",
    library="numpy",
    default_device="cpu",
    probe=_probe,
    to_native=np.asarray,
    to_numpy=np.asarray,
    is_native=lambda a: isinstance(a, np.ndarray),
    empty=lambda shape, dtype: np.empty(shape, dtype),
    dtypes=DTYPES,
    one_thread_ops=frozenset({"sparse_matmul"}),   # scipy.sparse's CSR product is single-threaded
))


def to_csr(a: np.ndarray):
    """a (batch x K, or a K-vector as 1 x K) as a CSR array: reads a once, keeps its non-zeros
    (NaN included)."""
    return sp.csr_array(as_rows(a))


def csr_matmul(csr, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """csr @ w, reading only the rows of w of stored activations; a (batch x N) array of w's dtype."""
    y = csr @ w
    if out is None:
        return np.asarray(y, dtype=w.dtype)
    out[...] = y
    return out


@register("sparse_matmul", "scipy_csr")
def sparse_matmul(a: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ w: convert a to CSR, then CSR @ dense (both timed as one call)."""
    n = w.shape[1]
    y = csr_matmul(to_csr(a), w, None if out is None else out.reshape(-1, n))
    return matmul_result(a, y, out)
