"""The NumPy baseline: each op as a user would write it in NumPy, the x-1 column of every table.

These are deliberately plain (`np.maximum(x, 0)`, `1 / (1 + np.exp(-x))`): the point is to
measure what NumPy gives without tricks. Each writes into `out` where given, so that the timed
region excludes allocation as it does for the other backends; temporaries NumPy makes on the way
are part of its cost. Bytes moved per call: see bench/measure/roofline.py.

The ops are written once against an array module `xp` (`ArrayModuleOps`), as CuPy's own tests
do: the `cupy` backend (kernels/backends/cupy/elementwise.py) is the same code with `xp = cupy`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from kernels.ops import ELEMENTWISE_OPS, OPS
from kernels.registry import Available, Backend, declare_backend, register

declare_backend(Backend(
    name="numpy",
    library="numpy",
    default_device="cpu",
    probe=lambda: Available(description=f"NumPy {np.__version__} ufuncs, as a user would write them"),
    to_native=np.asarray,                 # host arrays are already NumPy arrays: no copy
    to_numpy=np.asarray,
    is_native=lambda a: isinstance(a, np.ndarray),
    empty=lambda shape, dtype: np.empty(shape, dtype),
    dtypes=("float16", "float32", "float64"),
    one_thread_ops=frozenset(ELEMENTWISE_OPS),   # ufuncs; its sparse_matmul's BLAS uses every core
))


class ArrayModuleOps:
    """Every op as a NumPy user writes it, against the array module `xp()` returns (NumPy, CuPy)."""

    def __init__(self, xp):
        self._xp = xp            # a function: CuPy is imported on first use, never at import

    def _out(self, out, like):
        return self._xp().empty_like(like) if out is None else out

    def _quiet(self):
        """NumPy warns where IEEE arithmetic gives the right inf or 0 (exp(-x) for x << 0)."""
        xp = self._xp()
        return xp.errstate(over="ignore", invalid="ignore") if hasattr(xp, "errstate") else contextlib.nullcontext()

    def relu(self, x, out=None):
        return self._xp().maximum(x, 0, out=self._out(out, x))         # NaN propagates

    def relu_grad(self, dy, x, out=None):
        # dy unless x <= 0 (a NaN x passes dy, as torch's threshold_backward); not dy * (x > 0),
        # which turns an inf or NaN dy into NaN where x <= 0
        xp, out = self._xp(), self._out(out, dy)
        xp.copyto(out, dy)
        xp.copyto(out, 0, where=x <= 0)
        return out

    def sigmoid(self, x, out=None):
        xp, out = self._xp(), self._out(out, x)
        with self._quiet():
            xp.exp(-x, out=out)                     # inf for x << 0: 1 / inf is the right 0
        out += 1
        return xp.divide(1, out, out=out)

    def sigmoid_grad(self, dy, y, out=None):
        with self._quiet():
            out = self._xp().multiply(dy, y, out=self._out(out, dy))
            out *= 1 - y
        return out

    def tanh(self, x, out=None):
        return self._xp().tanh(x, out=self._out(out, x))

    def tanh_grad(self, dy, y, out=None):
        with self._quiet():
            return self._xp().multiply(dy, 1 - y * y, out=self._out(out, dy))

    def leaky_relu(self, x, out=None, slope=0.01):
        xp = self._xp()
        out = xp.multiply(x, slope, out=self._out(out, x))
        xp.copyto(out, x, where=x > 0)
        return out

    def leaky_relu_grad(self, dy, x, out=None, slope=0.01):
        xp = self._xp()
        out = xp.multiply(dy, slope, out=self._out(out, dy))
        xp.copyto(out, dy, where=x > 0)
        return out

    def relu_mask(self, x, out=None):
        xp = self._xp()
        y, mask = (None, None) if out is None else out
        y = xp.maximum(x, 0, out=self._out(y, x))
        packed = xp.packbits((x > 0).ravel(), bitorder="little")
        if mask is None:
            return y, packed
        mask[...] = packed
        return y, mask

    def relu_grad_mask(self, dy, mask, out=None):
        xp = self._xp()
        keep = xp.unpackbits(mask, bitorder="little")[: dy.size].reshape(dy.shape).view(bool)
        out = self._out(out, dy)
        out.fill(0)
        xp.copyto(out, dy, where=keep)
        return out

    def sparse_matmul(self, a, w, out=None):
        # dense IEEE a @ w through the BLAS (cuBLAS under CuPy): zeros multiplied like any value.
        # The baseline every sparse-aware kernel is measured against.
        return self._xp().matmul(a, w, out=out)


def register_all(backend: str, ops: ArrayModuleOps) -> None:
    """Register every op that `ops` writes as an expression on `backend` (an op it does not write,
    a new kind's say, is registered by a module of its own or left to `bench list`'s "-")."""
    for op in OPS:
        if hasattr(ops, op):
            register(op, backend)(getattr(ops, op))


register_all("numpy", ArrayModuleOps(lambda: np))
