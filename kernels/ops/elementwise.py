"""The elementwise ops: y = f(x) (or dx = f(dy, x | y | mask)) element by element. Their specs and
float64 oracles, each written for clarity, not speed, and saying what it reads and writes.

Gradients follow PyTorch's backward functions: relu_grad, leaky_relu_grad, silu_grad and gelu_grad
take the forward *input* x; sigmoid_grad and tanh_grad take the forward *output* y. gelu is PyTorch's
approximate="tanh" GELU. relu_mask keeps the sign of x
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
    OpSpec("silu", ("x",), flops_per_element=4, tuning="exp"),          # exp(-x), 1 + e, 1 / d, x * s
    # aten's silu_backward: sigmoid (3), 1 - s, x * ., 1 + ., s * ., dy * .
    OpSpec("silu_grad", ("dy", "x"), ("dx",), grad=True, forward="silu", flops_per_element=8, tuning="exp"),
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): x^3 (2), * k, x + ., * b, tanh, 1 + ., 0.5 x, *
    OpSpec("gelu", ("x",), flops_per_element=9, tuning="exp"),
    # aten's gelu_backward(approximate="tanh"): the forward's inner and tanh (6), 0.5 x, 1 + t, 0.5 (1 + t),
    # 1 - t^2 (2), b (1 + 3k x^2) (3), the products and the sum (3), dy * .
    OpSpec("gelu_grad", ("dy", "x"), ("dx",), grad=True, forward="gelu", flops_per_element=18, tuning="exp"),
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


def _sigmoid_parts(z):
    """(sigmoid(z), 1 - sigmoid(z)) in float64, each without cancellation or overflow: exp of -|z|
    only. NaN stays NaN."""
    e = np.exp(-np.abs(z))
    r = 1.0 / (1.0 + e)
    return np.where(z >= 0, r, e * r), np.where(z >= 0, e * r, r)


# GELU's tanh approximation as a sigmoid: 1 + tanh(u) = 2 sigmoid(2u) (no cancellation where
# tanh(u) is near -1), with z = 2u = x (GELU_C1 + GELU_C2 x^2) and dz/dx = GELU_C1 + 3 GELU_C2 x^2.
GELU_BETA, GELU_KAPPA = float(np.sqrt(2.0 / np.pi)), 0.044715
GELU_C1, GELU_C2 = 2.0 * GELU_BETA, 2.0 * GELU_BETA * GELU_KAPPA


def silu(x):
    x = _f64(x)
    # x * sigmoid(x). PyTorch computes x / (1 + exp(-x)): NaN at -inf (-inf / inf), and so this
    # (-inf * 0); +inf gives +inf. Elsewhere the product of two exact-enough factors: no overflow.
    with np.errstate(invalid="ignore"):
        return x * _sigmoid_parts(x)[0]


def silu_grad(dy, x):
    dy, x = _f64(dy), _f64(x)
    # aten's silu_backward: dy * s * (1 + x * (1 - s)), s = sigmoid(x). NaN at x = +-inf, as in
    # PyTorch (inf * 0, 0 * -inf).
    s, c = _sigmoid_parts(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return dy * (s * (1.0 + x * c))


def gelu(x):
    x = _f64(x)
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u). PyTorch gives NaN at -inf (-inf * 0), +inf at +inf.
    with np.errstate(invalid="ignore", over="ignore"):
        z = x * (GELU_C1 + GELU_C2 * (x * x))
        return x * _sigmoid_parts(z)[0]


def gelu_grad(dy, x):
    """aten's gelu_backward(dy, x, approximate="tanh"): dy (0.5 (1 + t) + 0.5 x (1 - t^2) u'),
    t = tanh(u), which is dy s (1 + x (1 - s) z') with s = sigmoid(z), z = 2u. NaN at x = +-inf, as
    PyTorch's (0 * inf), and, as PyTorch's, where x * x overflows the type the kernel computes in
    (float32 for float16 and float32 inputs: |x| > 1.8e19, where u' is inf and 1 - t^2 is 0)."""
    compute = np.float64 if np.asarray(x).dtype == np.float64 else np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        square_overflows = np.isinf(np.square(np.asarray(x, dtype=compute)))
        dy, x = _f64(dy), _f64(x)
        x2 = x * x
        s, c = _sigmoid_parts(x * (GELU_C1 + GELU_C2 * x2))
        dx = dy * (s * (1.0 + (x * c) * (GELU_C1 + 3.0 * GELU_C2 * x2)))
        return np.where(square_overflows, np.nan, dx)


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
