"""The definition of every op: float64 NumPy oracles and the table that describes each op.

Semantics live here and only here. The tests and the benchmark's correctness gate compare every
backend against these functions, computed in float64 from the same input values. Each oracle is
written for clarity, not speed, and says what it reads and writes.

sparse_matmul(a, w) -> a @ w, where a (batch x K, or a K-vector) is a ReLU output with many exact
zeros and w is K x N, row-major: activation k owns row k of w. Zero activations are structurally
absent: the oracle, like every sparse-aware kernel, never reads the row of w of a zero activation,
so an inf or NaN weight in that row does not reach the output (IEEE's 0 * inf = NaN never happens).
Dense backends (numpy, torch, cupy) compute IEEE a @ w and differ from this only there; the
benchmark's weights are finite, where both agree.

Conventions (public API): gradients follow PyTorch's backward functions. relu_grad and
leaky_relu_grad take the forward *input* x; sigmoid_grad and tanh_grad take the forward *output* y.
relu_mask keeps the sign of x packed 1 bit per element, little bit order, as
``np.packbits(x.ravel() > 0, bitorder="little")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

LEAKY_SLOPE = 0.01
FLOAT_DTYPES = ("float16", "float32", "float64")


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
    kind: str = "elementwise"               # "elementwise" (outputs shaped like the inputs) or "matmul"
    # Per-op hooks where the elementwise rules do not fit (None: those rules). check(*arrays)
    # validates how the arrays relate (ValueError for shapes, TypeError for dtypes) and returns the
    # (shape, dtype) of each output; compare(outputs, inputs) -> (ok, message, worst) is the op's
    # own correctness criterion (worst: the largest error as a multiple of the allowed one).
    check: Callable | None = None
    compare: Callable | None = None

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
        OpSpec("sparse_matmul", ("a", "w"), kind="matmul",
               check=lambda a, w: [sparse_matmul_layout(a, w)],
               compare=lambda outs, ins: compare_sparse_matmul(outs[0], *ins)),
    )
}


_DTYPE_NAMES: dict = {}


def dtype_name(a) -> str:
    """'float32' for a NumPy, CuPy, numba or torch array of float32 (torch spells it torch.float32).
    Cached per dtype object: NumPy's dtype.name costs microseconds, on every call of every kernel."""
    dt = a.dtype
    try:
        return _DTYPE_NAMES[dt]
    except KeyError:
        name = str(dt).removeprefix("torch.")
        _DTYPE_NAMES[dt] = name
        return name


# The ops whose outputs are shaped like their inputs (everything but the matmuls).
ELEMENTWISE_OPS: tuple[str, ...] = tuple(name for name, s in OPS.items() if s.kind == "elementwise")


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
RTOL_SQRT_K = {"float16": 1e-5, "float32": 1e-5, "float64": 1e-14}
# What rounding the output to its dtype alone costs, relative to |y| <= |a| @ |w|: a float16
# output keeps 11 bits; float32 and float64 outputs are covered by the term above.
OUTPUT_ROUNDING = {"float16": 2.0 ** -11, "float32": 0.0, "float64": 0.0}


def sparse_matmul_layout(a, w) -> tuple[tuple[int, ...], str]:
    """Check sparse_matmul's arguments (arrays of any library); return (output shape, dtype).

    TypeError: a dtype that is not float16/32/64 (int, bool, complex), or a and w of different
    dtypes. ValueError: a not 1-D or 2-D, w not 2-D, or K of a and w different.
    """
    da, dw = dtype_name(a), dtype_name(w)
    for name, dt in (("a", da), ("w", dw)):
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"sparse_matmul: {name} must be a floating-point array "
                            f"({', '.join(FLOAT_DTYPES)}), got {dt}")
    if da != dw:
        raise TypeError(f"sparse_matmul: a and w must have the same dtype, got {da} and {dw}")
    sa, sw = tuple(a.shape), tuple(w.shape)      # plain tuples (the simulator's refuse index -1)
    if len(sa) not in (1, 2):
        raise ValueError(f"sparse_matmul: a must be a K-vector or batch x K, got shape {sa}")
    if len(sw) != 2:
        raise ValueError(f"sparse_matmul: w must be K x N, got shape {sw}")
    if sa[-1] != sw[0]:
        raise ValueError(f"sparse_matmul: K of a ({sa[-1]}) and of w ({sw[0]}) differ: "
                         f"shapes {sa} and {sw}")
    return (*sa[:-1], sw[1]), da


def as_rows(a):
    """a as the batch x K matrix sparse_matmul works on: a K-vector is one row (a view)."""
    return a.reshape(1, a.shape[0]) if a.ndim == 1 else a


def matmul_operands(a, w, out, empty):
    """A sparse_matmul launcher's operands, arrays of its library: (a as batch x K, the batch x N
    output), the output a view of out when given, else empty((batch, N), w.dtype)."""
    a2 = as_rows(a)
    shape = (a2.shape[0], w.shape[1])
    return a2, (empty(shape, w.dtype) if out is None else out.reshape(*shape))


def matmul_result(a, y, out):
    """What a sparse_matmul launcher returns: out when given (y, its batch x N view, holds the
    product), else the batch x N y in a's shape (a K-vector gives an N-vector)."""
    return y.reshape(*a.shape[:-1], y.shape[1]) if out is None else out


def sparse_matmul(a, w) -> np.ndarray:
    """a @ w in float64, each row of a reading only the rows of w of its non-zero activations.
    Reads a once and the rows of w some row of a needs; writes one float64 (batch x N) array.

    Where those rows are all finite, skipping a zero activation and multiplying it by its (finite)
    weights give the same sum, so one float64 product serves the whole batch; otherwise each row
    of a is summed over its own present rows."""
    sparse_matmul_layout(a, w)
    a64 = np.asarray(a, np.float64)
    rows = as_rows(a64)
    needed = np.flatnonzero((rows != 0).any(axis=0))          # NaN != 0: a NaN activation is present
    w_needed = np.asarray(w[needed], np.float64)
    if np.isfinite(w_needed).all():
        with np.errstate(all="ignore"):
            y = rows[:, needed] @ w_needed
    else:
        y = np.zeros((rows.shape[0], w_needed.shape[1]))
        for i, row in enumerate(rows):
            nz = np.flatnonzero(row[needed])
            with np.errstate(all="ignore"):                    # inf * finite in a present row is IEEE's
                y[i] = row[needed][nz] @ w_needed[nz]
    return y.reshape(*a64.shape[:-1], w_needed.shape[1])


def sparse_matmul_magnitude(a, w) -> np.ndarray:
    """|a| @ |w| over present activations, in float64: the scale each output's error is judged by."""
    a64, w64 = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(w, np.float64))
    return sparse_matmul(a64, w64)


def sparse_matmul_tolerance(dtype: str, k: int) -> float:
    """The relative error (to |a| @ |w|) a kernel may make: RTOL_SQRT_K[dtype] * sqrt(K), plus the
    output's own rounding for float16.

    Why sqrt(K): a sum of K products rounded at each step (float32 accumulation) errs by about
    u * sqrt(K) * |a| @ |w| for random signs (u = 2**-24), K * u in the worst case; blocked and
    split-K orders (the kernels') are no worse. 1e-5 * sqrt(K) is ~170x the typical error at any
    K, so no honest summation order fails it, while a kernel that drops or doubles one present
    row errs by about 1 / nnz of |a| @ |w| in its worst column, far above it at the test sizes.
    float16 weights are accumulated in float32 (the same term), then rounded to half."""
    return RTOL_SQRT_K[dtype] * math.sqrt(max(k, 1)) + OUTPUT_ROUNDING[dtype]


def sparse_matmul_error(y, a, w, columns=None) -> float:
    """The worst error of y against the oracle, as a fraction of |a| @ |w| (0 / 0 counts as 0), on
    every column or only on `columns`; inf where a non-finite entry does not match exactly (NaN
    where the oracle has NaN, the same infinity where it has one) or the shape is wrong."""
    got = np.asarray(y, np.float64)
    if got.shape != sparse_matmul_layout(a, w)[0]:
        return math.inf
    if columns is not None:
        w = np.asarray(w)[:, columns]
        got = got[..., columns]
    ref = sparse_matmul(a, w)
    finite = np.isfinite(ref)
    ref_inf = np.isinf(ref)
    if not np.array_equal(np.isnan(got), np.isnan(ref)) or not np.array_equal(got[ref_inf], ref[ref_inf]):
        return math.inf
    if not finite.any():
        return 0.0
    err = np.abs(got[finite] - ref[finite])
    if not np.isfinite(err).all():
        return math.inf
    scale = sparse_matmul_magnitude(a, w)[finite]
    tiny = np.finfo(np.float32).tiny              # subnormal flush: an absolute floor
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(err <= tiny, 0.0, err / np.maximum(scale, tiny))
    return float(rel.max(initial=0.0))


SAMPLE_COLUMNS_ABOVE = 2**25   # multiply-adds (batch x K x N) beyond this: the oracle on sampled columns


def compare_sparse_matmul(y, a, w) -> tuple[bool, str, float]:
    """sparse_matmul's correctness criterion: worst error within `sparse_matmul_tolerance`, on
    every column, or for large products on a sample of columns while every element is
    checked for NaN (with finite inputs none is right: a NaN is an output never written).
    Beyond SAMPLE_COLUMNS_ABOVE multiply-adds (batch x K x N) the oracle runs on a sample of
    columns, both ends and random ones, so that checking a batch of 64 costs what a vector does."""
    dtype, k = dtype_name(w), w.shape[0]
    columns = None
    batch = 1 if a.ndim == 1 else a.shape[0]
    if batch * w.size > SAMPLE_COLUMNS_ABOVE:
        n = w.shape[1]
        rng = np.random.default_rng(n)
        keep = max(256, SAMPLE_COLUMNS_ABOVE // max(1, batch * k))   # the oracle's work, bounded
        edge = min(n, keep // 4)
        columns = np.unique(np.r_[0:edge, n - edge:n, rng.integers(0, n, keep // 2)])
        if np.isfinite(a).all() and np.isnan(np.asarray(y)).any() and np.isfinite(w[:, columns]).all():
            return False, f"y: {int(np.isnan(y).sum())} elements never written (NaN left in out)", math.inf
    err = sparse_matmul_error(y, a, w, columns)
    tol = sparse_matmul_tolerance(dtype, k)
    if err <= tol:
        return True, "", err / tol
    how = "non-finite values where the oracle differs, or a wrong shape" if math.isinf(err) else \
        f"worst error {err:.3g} of |a| @ |w| > tolerance {tol:.3g} (1e-5 * sqrt(K) for K = {k})"
    return False, f"y: {how}", err / tol if math.isfinite(err) else math.inf


def reference(op: str):
    """The float64 oracle of an op."""
    if op not in OPS:
        raise LookupError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    return globals()[op]
