"""The NumPy baseline: each op as a user would write it in NumPy, the x-1 column of every table.

These are deliberately plain (`np.maximum(x, 0)`, `1 / (1 + np.exp(-x))`): the point is to
measure what NumPy gives without tricks. Each writes into `out` where given, so that the timed
region excludes allocation as it does for the other backends; temporaries NumPy makes on the way
are part of its cost. Bytes moved per call: see bench/roofline.py.
"""

from __future__ import annotations

import numpy as np

from .reference import pack_mask, unpack_mask
from .registry import Backend, declare_backend, register

declare_backend(Backend(
    name="numpy",
    device="cpu",
    probe=lambda: None,
    to_native=np.asarray,                 # host arrays are already NumPy arrays: no copy
    to_numpy=np.asarray,
    is_native=lambda a: isinstance(a, np.ndarray),
    empty=lambda shape, dtype: np.empty(shape, dtype),
    dtypes=("float16", "float32", "float64"),
    description=f"NumPy {np.__version__} ufuncs, as a user would write them",
))


def _out(out, like):
    return np.empty_like(like) if out is None else out


@register("relu", "numpy")
def relu(x, out=None):
    return np.maximum(x, 0, out=_out(out, x))


@register("relu_grad", "numpy")
def relu_grad(dy, x, out=None):
    out = _out(out, dy)
    out.fill(0)
    np.copyto(out, dy, where=x > 0)        # not dy * (x > 0): that keeps NaN and inf where x <= 0
    return out


@register("sigmoid", "numpy")
def sigmoid(x, out=None):
    out = _out(out, x)
    with np.errstate(over="ignore"):      # exp(-x) overflows to inf for x << 0: 1 / inf is the right 0
        np.exp(-x, out=out)
    out += 1
    return np.divide(1, out, out=out)


@register("sigmoid_grad", "numpy")
def sigmoid_grad(dy, y, out=None):
    out = _out(out, dy)
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(dy, y, out=out)
        out *= 1 - y
    return out


@register("tanh", "numpy")
def tanh(x, out=None):
    return np.tanh(x, out=_out(out, x))


@register("tanh_grad", "numpy")
def tanh_grad(dy, y, out=None):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.multiply(dy, 1 - y * y, out=_out(out, dy))


@register("leaky_relu", "numpy")
def leaky_relu(x, out=None, slope=0.01):
    out = np.multiply(x, slope, out=_out(out, x))
    np.copyto(out, x, where=x > 0)
    return out


@register("leaky_relu_grad", "numpy")
def leaky_relu_grad(dy, x, out=None, slope=0.01):
    out = np.multiply(dy, slope, out=_out(out, dy))
    np.copyto(out, dy, where=x > 0)
    return out


@register("relu_mask", "numpy")
def relu_mask(x, out=None):
    y, mask = (None, None) if out is None else out
    y = np.maximum(x, 0, out=_out(y, x))
    packed = pack_mask(x)
    if mask is None:
        return y, packed
    mask[...] = packed
    return y, mask


@register("relu_grad_mask", "numpy")
def relu_grad_mask(dy, mask, out=None):
    keep = unpack_mask(mask, dy.shape)
    out = _out(out, dy)
    out.fill(0)
    np.copyto(out, dy, where=keep)
    return out
