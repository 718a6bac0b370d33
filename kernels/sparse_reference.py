"""The definition of sparse_matmul: its float64 oracle, its argument check and its tolerance.

sparse_matmul(a, w) -> a @ w, where a (batch x K, or a K-vector) is a ReLU output with many exact
zeros and w is K x N, row-major: activation k owns row k of w. Zero activations are structurally
absent: the oracle, like every sparse-aware kernel, never reads the row of w of a zero activation,
so an inf or NaN weight in that row does not reach the output (IEEE's 0 * inf = NaN never happens).
Dense backends (numpy, torch, cupy) compute IEEE a @ w and differ from this only there; the
benchmark's weights are finite, where both agree.

The argument check serves every backend (NumPy, CuPy, torch arrays alike): it reads only .shape
and .dtype.
"""

from __future__ import annotations

import math

import numpy as np

FLOAT_DTYPES = ("float16", "float32", "float64")

# Relative error allowed per dtype, times sqrt(K), relative to |a| @ |w| (see `tolerance`).
RTOL_SQRT_K = {"float16": 1e-5, "float32": 1e-5, "float64": 1e-14}
# What rounding the output to its dtype alone costs, relative to |y| <= |a| @ |w|: a float16
# output keeps 11 bits; float32 and float64 outputs are covered by the term above.
OUTPUT_ROUNDING = {"float16": 2.0 ** -11, "float32": 0.0, "float64": 0.0}


def _dtype_name(a) -> str:
    return str(a.dtype).removeprefix("torch.")


def check_args(a, w) -> tuple[tuple[int, ...], str]:
    """Check sparse_matmul's arguments (arrays of any library); return (output shape, dtype).

    TypeError: a dtype that is not float16/32/64 (int, bool, complex), or a and w of different
    dtypes. ValueError: a not 1-D or 2-D, w not 2-D, or K of a and w different.
    """
    da, dw = _dtype_name(a), _dtype_name(w)
    for name, dt in (("a", da), ("w", dw)):
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"sparse_matmul: {name} must be a floating-point array "
                            f"({', '.join(FLOAT_DTYPES)}), got {dt}")
    if da != dw:
        raise TypeError(f"sparse_matmul: a and w must have the same dtype, got {da} and {dw}")
    if len(a.shape) not in (1, 2):
        raise ValueError(f"sparse_matmul: a must be a K-vector or batch x K, got shape {tuple(a.shape)}")
    if len(w.shape) != 2:
        raise ValueError(f"sparse_matmul: w must be K x N, got shape {tuple(w.shape)}")
    if a.shape[-1] != w.shape[0]:
        raise ValueError(f"sparse_matmul: K of a ({a.shape[-1]}) and of w ({w.shape[0]}) differ: "
                         f"shapes {tuple(a.shape)} and {tuple(w.shape)}")
    return (*a.shape[:-1], w.shape[1]), da


def sparse_matmul(a, w) -> np.ndarray:
    """a @ w in float64, each row of a reading only the rows of w of its non-zero activations.
    Reads a once and, per row of a, the rows of w it needs; writes one float64 (batch x N) array."""
    check_args(a, w)
    a64, w64 = np.asarray(a, np.float64), np.asarray(w, np.float64)
    rows = a64.reshape(1, a64.shape[0]) if a64.ndim == 1 else a64
    y = np.zeros((rows.shape[0], w64.shape[1]))
    for i, row in enumerate(rows):
        nz = np.flatnonzero(row)                       # NaN != 0: a NaN activation is present
        with np.errstate(all="ignore"):                # inf * finite in a present row is IEEE's
            y[i] = row[nz] @ w64[nz]
    return y.reshape(*a64.shape[:-1], w64.shape[1])


def magnitude(a, w) -> np.ndarray:
    """|a| @ |w| over present activations, in float64: the scale each output's error is judged by."""
    a64, w64 = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(w, np.float64))
    return sparse_matmul(a64, w64)


def tolerance(dtype: str, k: int) -> float:
    """The relative error (to |a| @ |w|) a kernel may make: RTOL_SQRT_K[dtype] * sqrt(K), plus the
    output's own rounding for float16.

    Why sqrt(K): a sum of K products rounded at each step (float32 accumulation) errs by about
    u * sqrt(K) * |a| @ |w| for random signs (u = 2**-24), K * u in the worst case; blocked and
    split-K orders (the kernels') are no worse. 1e-5 * sqrt(K) is ~170x the typical error at any
    K, so no honest summation order fails it, while a kernel that drops or doubles one present
    row errs by about 1 / nnz of |a| @ |w| in its worst column, far above it at the test sizes.
    float16 weights are accumulated in float32 (the same term), then rounded to half."""
    return RTOL_SQRT_K[dtype] * math.sqrt(max(k, 1)) + OUTPUT_ROUNDING[dtype]


def worst_error(y, a, w) -> float:
    """max |y - oracle| / |a| @ |w| over finite oracle entries (0 / 0 counts as 0); non-finite
    entries must match exactly (inf sign, NaN place), else inf."""
    ref = sparse_matmul(a, w)
    got = np.asarray(y, np.float64)
    if got.shape != ref.shape:
        return math.inf
    finite = np.isfinite(ref)
    if not np.array_equal(np.isnan(got), np.isnan(ref)) or not np.array_equal(got[~finite & ~np.isnan(ref)],
                                                                            ref[~finite & ~np.isnan(ref)]):
        return math.inf
    if not finite.any():
        return 0.0
    scale = magnitude(a, w)[finite]
    err = np.abs(got[finite] - ref[finite])
    if not np.isfinite(err).all():
        return math.inf
    tiny = np.finfo(np.float32).tiny              # subnormal flush: an absolute floor
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(err <= tiny, 0.0, err / np.maximum(scale, tiny))
    return float(rel.max(initial=0.0))
