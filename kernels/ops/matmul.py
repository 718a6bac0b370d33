"""The matmul ops: sparse_matmul(a, w) -> a @ w, where a (batch x K, or a K-vector) is a ReLU output
with many exact zeros and w is K x N, row-major: activation k owns row k of w. Its spec, its own
checks of the arguments and of a result, and the float64 oracle.

Zero activations are structurally absent: the oracle, like every sparse-aware kernel, never reads
the row of w of a zero activation, so an inf or NaN weight in that row does not reach the output
(IEEE's 0 * inf = NaN never happens). Dense backends (numpy, torch, cupy) compute IEEE a @ w and
differ from this only there; the benchmark's weights are finite, where both agree.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.ops.spec import FLOAT_DTYPES, OpSpec, dtype_name

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


SPECS = (
    OpSpec("sparse_matmul", ("a", "w"), kind="matmul",
           check=lambda a, w: [sparse_matmul_layout(a, w)],
           compare=lambda outs, ins: compare_sparse_matmul(outs[0], *ins)),
)
