"""The definition of every op: float64 NumPy oracles and the table that describes each op.

Semantics live here and only here. The tests and the benchmark's correctness gate compare every
backend against these functions, computed in float64 from the same input values. Each oracle is
written for clarity, not speed, and says what it reads and writes.

Conventions (public API): gradients follow PyTorch's backward functions. relu_grad and
leaky_relu_grad take the forward *input* x; sigmoid_grad and tanh_grad take the forward *output* y.
relu_mask keeps the sign of x packed 1 bit per element, little bit order, as
``np.packbits(x.ravel() > 0, bitorder="little")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class OpSpec:
    """What an op takes and gives; enough to validate a call and to count its bytes."""

    name: str
    inputs: tuple[str, ...]                 # array arguments, in call order
    outputs: tuple[str, ...] = ("y",)       # arrays returned (a tuple when more than one)
    params: dict = field(default_factory=dict)   # scalar keywords and their defaults
    grad: bool = False                      # a backward op: first input is dy, tolerance scales with |dy|
    forward: str | None = None              # for a gradient: the forward op it differentiates
    grad_of_output: bool = False            # the second input is the forward output y, not x
    mask_input: bool = False                # the second input is a packed bit mask (uint8)

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)


OPS: dict[str, OpSpec] = {
    s.name: s
    for s in (
        OpSpec("relu", ("x",)),
        OpSpec("relu_grad", ("dy", "x"), ("dx",), grad=True, forward="relu"),
        OpSpec("sigmoid", ("x",)),
        OpSpec("sigmoid_grad", ("dy", "y"), ("dx",), grad=True, forward="sigmoid", grad_of_output=True),
        OpSpec("tanh", ("x",)),
        OpSpec("tanh_grad", ("dy", "y"), ("dx",), grad=True, forward="tanh", grad_of_output=True),
        OpSpec("leaky_relu", ("x",), params={"slope": LEAKY_SLOPE}),
        OpSpec("leaky_relu_grad", ("dy", "x"), ("dx",), params={"slope": LEAKY_SLOPE},
               grad=True, forward="leaky_relu"),
        OpSpec("relu_mask", ("x",), ("y", "mask")),
        OpSpec("relu_grad_mask", ("dy", "mask"), ("dx",), grad=True, forward="relu_mask", mask_input=True),
    )
}


def mask_nbytes(n: int) -> int:
    """Bytes of a packed 1-bit-per-element mask of n elements."""
    return (n + 7) // 8


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# Every oracle below reads its inputs once and writes one new float64 array (two for relu_mask).

def relu(x):
    x = _f64(x)
    # NaN stays NaN (np.maximum propagates it), as in NumPy and PyTorch.
    return np.maximum(x, 0.0)


def relu_grad(dy, x):
    dy, x = _f64(dy), _f64(x)
    # dy where x > 0, else 0: 0 at x == 0 (PyTorch's choice) and 0 where x is NaN.
    return np.where(x > 0, dy, 0.0)


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


def reference(op: str):
    """The float64 oracle of an op."""
    if op not in OPS:
        raise LookupError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    return globals()[op]
