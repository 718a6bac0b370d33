"""The elementwise ops: y = f(x) (or dx = f(dy, x | y | mask)) element by element. Their specs and
float64 oracles, each written for clarity, not speed, and saying what it reads and writes.

Gradients follow PyTorch's backward functions: relu_grad and leaky_relu_grad take the forward
*input* x; sigmoid_grad and tanh_grad take the forward *output* y. relu_mask keeps the sign of x
packed 1 bit per element, little bit order, as ``np.packbits(x.ravel() > 0, bitorder="little")``.
A new elementwise op is one spec here and its oracle (a function of the op's name), then one
kernel per backend (or an `omitted` reason).
"""

from __future__ import annotations

import numpy as np

from kernels.ops.spec import OpSpec

LEAKY_SLOPE = 0.01

SPECS = (
    OpSpec("relu", ("x",), flops_per_element=1),                        # max(x, 0)
    OpSpec("relu_grad", ("dy", "x"), ("dx",), grad=True, forward="relu", flops_per_element=1),   # x > 0 ? dy : 0
    OpSpec("sigmoid", ("x",), flops_per_element=3, tuning="exp"),       # exp(-x), 1 + e, 1 / d
    OpSpec("sigmoid_grad", ("dy", "y"), ("dx",), grad=True, forward="sigmoid", grad_of_output=True,
           flops_per_element=3),                                        # dy * y, 1 - y, product
    OpSpec("tanh", ("x",), flops_per_element=1, tuning="exp"),          # tanh(x)
    OpSpec("tanh_grad", ("dy", "y"), ("dx",), grad=True, forward="tanh", grad_of_output=True,
           flops_per_element=3),                                        # y * y, 1 - y2, dy * t
    OpSpec("leaky_relu", ("x",), params={"slope": LEAKY_SLOPE}, flops_per_element=2),   # slope * x, select
    OpSpec("leaky_relu_grad", ("dy", "x"), ("dx",), params={"slope": LEAKY_SLOPE},
           grad=True, forward="leaky_relu", flops_per_element=2),      # slope * dy, select
    OpSpec("relu_mask", ("x",), ("y", "mask"), flops_per_element=2, tuning="mask"),     # max(x, 0), x > 0
    OpSpec("relu_grad_mask", ("dy", "mask"), ("dx",), grad=True, forward="relu_mask", mask_input=True,
           flops_per_element=1, tuning="mask"),                         # bit ? dy : 0
)


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# Every oracle below reads its inputs once and writes one new float64 array (two for relu_mask).

def relu(x):
    x = _f64(x)
    # NaN stays NaN (np.maximum propagates it), as in NumPy and PyTorch.
    return np.maximum(x, 0.0)


def relu_grad(dy, x):
    dy, x = _f64(dy), _f64(x)
    # PyTorch's threshold_backward: 0 where x <= 0 (x == 0 included), else dy. A NaN x is not <= 0,
    # so it passes dy, and +inf passes dy too.
    return np.where(x <= 0, 0.0, dy)


def sigmoid(x):
    x = _f64(x)
    # 1 / (1 + exp(-x)) without overflow: exp of a non-positive number only.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(dy, y):
    dy, y = _f64(dy), _f64(y)
    # From the forward output, as PyTorch: dy * y * (1 - y), evaluated left to right.
    with np.errstate(over="ignore", invalid="ignore"):
        return dy * y * (1.0 - y)


def tanh(x):
    return np.tanh(_f64(x))


def tanh_grad(dy, y):
    dy, y = _f64(dy), _f64(y)
    with np.errstate(over="ignore", invalid="ignore"):
        return dy * (1.0 - y * y)


def leaky_relu(x, slope=LEAKY_SLOPE):
    x = _f64(x)
    return np.where(x > 0, x, slope * x)


def leaky_relu_grad(dy, x, slope=LEAKY_SLOPE):
    dy, x = _f64(dy), _f64(x)
    # PyTorch's leaky_relu_backward: dy where x > 0, else slope * dy, so a NaN x gives slope * dy
    # (not relu_grad's choice for NaN: each follows its own torch kernel).
    return np.where(x > 0, dy, slope * dy)


def pack_mask(x) -> np.ndarray:
    """The sign mask of x, (x > 0) packed 1 bit per element in C order, little bit order."""
    return np.packbits(np.asarray(x).ravel() > 0, bitorder="little")


def unpack_mask(mask, shape) -> np.ndarray:
    """The boolean array of `shape` that a packed mask holds."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(np.asarray(mask, dtype=np.uint8), count=n, bitorder="little").astype(bool).reshape(shape)


def relu_mask(x):
    return relu(x), pack_mask(x)


def relu_grad_mask(dy, mask):
    dy = _f64(dy)
    return np.where(unpack_mask(mask, dy.shape), dy, 0.0)


# Relative error allowed per dtype, times sqrt(K), relative to |a| @ |w| (see `tolerance`).
