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
from kernels.ops.elementwise import GELU_C1, GELU_C2
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

    # SiLU and GELU as a careful user writes them: x * sigmoid(z) with the sigmoid from exp(-|z|)
    # (x / (1 + exp(-x)) gives 0 at x = -89 in float32, where silu is -2e-37), and GELU's
    # 1 + tanh(u) as 2 sigmoid(2u) (it cancels where tanh(u) is near -1). float16 computes in
    # float32 and rounds once, as PyTorch does.

    def _sigmoid_parts(self, z):
        """sigmoid(z) and 1 - sigmoid(z), without cancellation or overflow."""
        xp = self._xp()
        e = xp.exp(-abs(z))
        r = 1 / (1 + e)
        er = e * r
        pos = z >= 0
        return xp.where(pos, r, er), xp.where(pos, er, r)

    def _compute(self, *arrays):
        return tuple(a.astype(self._xp().float32) if a.dtype == self._xp().float16 else a for a in arrays)

    def _gelu_z(self, x):
        """x*x and z = x (C1 + C2 x^2) in x's type, z from float64 (rounded once: gelu(x) ~ x
        exp(z) carries z's error times |z|, up to 87, which float32's roundings took past the gate)."""
        w = x.astype(self._xp().float64)
        return x * x, (w * (GELU_C1 + GELU_C2 * (w * w))).astype(x.dtype)

    def silu(self, x, out=None):
        xp, out = self._xp(), self._out(out, x)
        (w,) = self._compute(x)
        with self._quiet():
            return xp.multiply(w, self._sigmoid_parts(w)[0], out=out, casting="unsafe")

    def silu_grad(self, dy, x, out=None):
        xp, out = self._xp(), self._out(out, dy)
        d, w = self._compute(dy, x)
        with self._quiet():
            s, c = self._sigmoid_parts(w)
            return xp.multiply(d, s * (1 + w * c), out=out, casting="unsafe")

    def gelu(self, x, out=None):
        xp, out = self._xp(), self._out(out, x)
        (w,) = self._compute(x)
        with self._quiet():
            return xp.multiply(w, self._sigmoid_parts(self._gelu_z(w)[1])[0], out=out, casting="unsafe")

    def gelu_grad(self, dy, x, out=None):
        xp, out = self._xp(), self._out(out, dy)
        d, w = self._compute(dy, x)
        with self._quiet():
            w2, z = self._gelu_z(w)
            s, c = self._sigmoid_parts(z)
            # (w * c) * dz: 0 * inf = NaN where w * w overflows, as PyTorch's
            return xp.multiply(d, s * (1 + (w * c) * (GELU_C1 + 3 * GELU_C2 * w2)), out=out, casting="unsafe")

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
