"""exp and expm1 for numba_cpu's kernels, without libm: branch-free, so that every loop calling
them vectorises (with libm's exp per element a sigmoid cannot run at memory speed). Device code:
call them from numba.njit functions only.

- `exp_neg(v)` = exp(-v), `exp(t)`, `expm1_m2(a)` = exp(-2a) - 1 for 0 <= a <= 20: float32 or
  float64 by the argument's type, within a few ulp (see below for the flush to zero).
- `like(v, c)`: the constant c in v's float type, so that an op written once serves both dtypes.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .jit import DEVICE

# ---------------------------------------------------------------------------------------------
# exp and expm1 without libm: t = k*ln2 + r, |r| <= ln2/2, exp(t) = 2**k * exp(r)
# ---------------------------------------------------------------------------------------------
#
# k = round(t / ln2) comes from the "magic number" trick: z = t*log2(e) + 1.5*2**m (m = 23 or 52,
# the mantissa width) is rounded to an integer by the addition itself, so k = z - MAGIC exactly,
# and the low bits of z's pattern hold k. r = t - k*ln2: in float32 one fused multiply-add with
# float32(ln2), whose error of 1.9e-9 adds at most 2.4e-7 (|k| <= 128) to exp's relative error;
# in float64 two (Cody-Waite: ln2 = LN2_HI + LN2_LO, k*LN2_HI exact). exp(r) = 1 + r*g(r), g a
# polynomial. 2**k is the bit pattern (k + bias) << m, built by integer add and shift on z's bits
# (`_pow2`). No branch anywhere: the loops that call these helpers vectorise (8 float32 lanes per
# AVX2 instruction).
#
# `exp_neg(v)` = exp(-v), the form the sigmoid needs: it takes the sign into its constants rather
# than negating v (LLVM then keeps the clamps as single min/max instructions). It scales by
# 2**(k-1) and doubles the polynomial (exact), so that the largest k still has a finite scale and
# exp overflows to inf exactly where it should. v is clamped first, so the integer tricks never
# wrap; a NaN passes through the clamps (every comparison with NaN is false) and the arithmetic.
# Results below 2**-125.5 (float32; 2**-1021.5 in float64) flush to zero: an absolute error under
# 1.7e-38 (float32), which sigmoid never shows (there 1/(1 + e) is 1).
#
# `expm1_m2(a)` = exp(-2a) - 1 for 0 <= a <= 20, the form tanh needs: 2**k * r*g(r) + (2**k - 1),
# with r*g(r) = exp(r) - 1 computed without the 1, so it keeps its digits as a -> 0.

_MANTISSA = {32: 23, 64: 52}


@intrinsic
def _pow2(typingctx, z, bias):
    """2.0**(k + bias - B) as z's float type, where z = MAGIC + k (see above) and B is the dtype's
    exponent bias (127, 1023): bias = B gives 2**k. The caller keeps k + bias in [0, 2*B]."""
    if z not in (types.float32, types.float64) or not isinstance(bias, types.Integer):
        return None
    bits = z.bitwidth

    def codegen(context, builder, sig, args):
        zv, bv = args
        ity = ir.IntType(bits)
        zi = builder.bitcast(zv, ity)
        b = builder.trunc(bv, ity) if bits < 64 else bv
        # z's bits are MAGIC's + k, and MAGIC's are zero in the low 22 (51) bits: the shift leaves
        # exactly (k + bias) in the exponent field and zero in the mantissa.
        e = builder.shl(builder.add(zi, b), ir.Constant(ity, _MANTISSA[bits]))
        return builder.bitcast(e, zv.type)

    return z(z, types.int64), codegen


_F = np.float32
_EXPNEG_MIN_F32, _EXPNEG_MAX_F32 = _F(-89.0), _F(87.6)   # k in [-126, 128]: 2**(k-1) is 0 or normal
_MAGIC_F32 = _F(12582912.0)                               # 1.5 * 2**23
_NLOG2E_F32, _M2LOG2E_F32 = _F(-1.4426950408889634), _F(-2 * 1.4426950408889634)
_LN2_F32 = _F(math.log(2))
# g(r) ~ (exp(r) - 1)/r on [-ln2/2, ln2/2]: minimax for relative error (4.5e-7 on g, 1.8e-7 on
# 1 + r*g), fitted in float64 by Lawson's iteration, rounded to float32.
_G_F32 = (1.0, 0.49999403953552246, 0.16666831076145172, 0.04187256842851639, 0.008338072337210178)
_G0_F32, _G1_F32, _G2_F32, _G3_F32, _G4_F32 = (_F(c) for c in _G_F32)
_2G0_F32, _2G1_F32, _2G2_F32, _2G3_F32, _2G4_F32 = (_F(2 * c) for c in _G_F32)
_ONE_F32, _TWO_F32 = _F(1.0), _F(2.0)

_D = np.float64
_EXPNEG_MIN_F64, _EXPNEG_MAX_F64 = _D(-710.0), _D(708.5)    # k in [-1022, 1024]
_MAGIC_F64 = _D(6755399441055744.0)                       # 1.5 * 2**52
_NLOG2E_F64, _M2LOG2E_F64 = _D(-1.4426950408889634), _D(-2 * 1.4426950408889634)
_LN2_HI_F64, _LN2_LO_F64 = _D(0.6931471803691238), _D(1.9082149292705877e-10)
# g(r) = (exp(r) - 1)/r = sum r**i / (i+1)!: Taylor to r**12, truncation below 2e-17 for |r| <= ln2/2.
(_G0_F64, _G1_F64, _G2_F64, _G3_F64, _G4_F64, _G5_F64, _G6_F64, _G7_F64, _G8_F64, _G9_F64,
 _G10_F64, _G11_F64, _G12_F64) = (_D(1.0 / math.factorial(i + 1)) for i in range(13))
_ONE_F64, _TWO_F64 = _D(1.0), _D(2.0)


@njit(inline="always", **DEVICE)
def _g_f64(w):
    """g(-w), Estrin's scheme: a dependency chain of 5 multiply-adds instead of Horner's 12."""
    w2 = w * w
    w4 = w2 * w2
    q0 = (_G0_F64 - w * _G1_F64) + w2 * (_G2_F64 - w * _G3_F64)
    q1 = (_G4_F64 - w * _G5_F64) + w2 * (_G6_F64 - w * _G7_F64)
    q2 = (_G8_F64 - w * _G9_F64) + w2 * (_G10_F64 - w * _G11_F64) + w4 * _G12_F64
    return (q0 + w4 * q1) + (w4 * w4) * q2


@njit(inline="always", **DEVICE)
def _exp_neg_f32(v):
    v = min(v, _EXPNEG_MAX_F32)
    v = max(v, _EXPNEG_MIN_F32)    # numba's min/max follow Python's: a NaN first argument stays
    z = v * _NLOG2E_F32 + _MAGIC_F32             # k = round(-v*log2(e)), in z's low bits
    k = z - _MAGIC_F32
    w = v + k * _LN2_F32                         # w = -r, with -v = k*ln2 + r
    # 2*exp(r) = 2 + r*2g(r) at r = -w, Estrin's scheme (a shorter dependency chain than Horner's)
    w2 = w * w
    p = (_TWO_F32 - w * _2G0_F32) + w2 * ((_2G1_F32 - w * _2G2_F32) + w2 * (_2G3_F32 - w * _2G4_F32))
    return p * _pow2(z, 126)                     # 2*exp(r) * 2**(k-1)


@njit(inline="always", **DEVICE)
def _exp_neg_f64(v):
    v = min(v, _EXPNEG_MAX_F64)
    v = max(v, _EXPNEG_MIN_F64)
    z = v * _NLOG2E_F64 + _MAGIC_F64
    k = z - _MAGIC_F64
    w = (v + k * _LN2_HI_F64) + k * _LN2_LO_F64
    g = _g_f64(w)
    return (_TWO_F64 - w * (g + g)) * _pow2(z, 1022)


@njit(inline="always", **DEVICE)
def _expm1_m2_f32(a):
    z = a * _M2LOG2E_F32 + _MAGIC_F32            # k = round(-2a*log2(e)), in [-58, 0]
    k = z - _MAGIC_F32
    w = a + a + k * _LN2_F32                     # w = -r, with -2a = k*ln2 + r
    w2 = w * w
    g = (_G0_F32 - w * _G1_F32) + w2 * ((_G2_F32 - w * _G3_F32) + w2 * _G4_F32)   # g(r)
    s = _pow2(z, 127)                            # 2**k
    return (s * w) * (-g) + (s - _ONE_F32)       # 2**k * (exp(r) - 1) + (2**k - 1)


@njit(inline="always", **DEVICE)
def _expm1_m2_f64(a):
    z = a * _M2LOG2E_F64 + _MAGIC_F64
    k = z - _MAGIC_F64
    w = (a + a + k * _LN2_HI_F64) + k * _LN2_LO_F64
    s = _pow2(z, 1023)
    return (s * w) * (-_g_f64(w)) + (s - _ONE_F64)


@njit(inline="always", **DEVICE)
def _exp_f32(t):
    return _exp_neg_f32(-t)


@njit(inline="always", **DEVICE)
def _exp_f64(t):
    return _exp_neg_f64(-t)


def exp_neg(v):
    """exp(-v) of a float32 or float64 scalar in njit code: branch-free, vectorisable, within a few
    ulp (flushing results below 2**-125.5 to zero, see above). Python callers: use np.exp."""
    raise TypeError("exp_neg is device code: call it from numba.njit functions")


def exp(t):
    """exp(t) in njit code: `exp_neg(-t)` (LLVM folds the two negations away)."""
    raise TypeError("exp is device code: call it from numba.njit functions")


def expm1_m2(a):
    """exp(-2a) - 1 for 0 <= a <= 20 (or NaN) in njit code: branch-free, vectorisable."""
    raise TypeError("expm1_m2 is device code: call it from numba.njit functions")


def like(v, c):
    """The number c as v's float type (float32 or float64), in njit code."""
    raise TypeError("like is device code: call it from numba.njit functions")


def _by_dtype(f32, f64):
    """An overload body that picks the float32 or the float64 helper by the argument's type."""
    def impl(t):
        if t == types.float32:
            return lambda t: f32(t)
        if t == types.float64:
            return lambda t: f64(t)
        return None
    return impl


overload(exp_neg, inline="always")(_by_dtype(_exp_neg_f32, _exp_neg_f64))
overload(exp, inline="always")(_by_dtype(_exp_f32, _exp_f64))
overload(expm1_m2, inline="always")(_by_dtype(_expm1_m2_f32, _expm1_m2_f64))


@overload(like, inline="always")
def _like(v, c):
    if v == types.float32:
        return lambda v, c: np.float32(c)
    if v == types.float64:
        return lambda v, c: np.float64(c)
    return None
