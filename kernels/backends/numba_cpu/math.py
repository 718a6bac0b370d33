"""exp and tanh for numba_cpu's kernels, without libm: branch-free, so that every loop calling
them vectorises (with libm's exp per element a sigmoid cannot run at memory speed). Device code:
call them from numba.njit functions only. float32 or float64 by the argument's type.

- `exp_neg(v)` = exp(-v), `exp(t)`: within about an ulp (see below for the flush to zero).
- `exp_neg_gradual(v)` = exp(-v) for v >= 0, its subnormal results too (SiLU and GELU multiply
  exp(-|z|) by x: there a flushed 1e-39 would be a missing -1e-37).
- `exp_m2_parts(a)`: exp(-2a) for 0 <= a <= 20 in pieces that keep its digits, for tanh.
- `tanh_pos(a)`: tanh(a) for 0 <= a <= 20, within 2 ulp (bench/analysis/accuracy.py measures it).
- `like(v, c)`: the constant c in v's float type, so that an op written once serves both dtypes.
- `fma(a, b, c)`: a*b + c rounded once."""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from kernels.backends.numba_cpu.jit import DEVICE

# ---------------------------------------------------------------------------------------------
# exp and expm1 without libm: t = k*ln2 + r, |r| <= ln2/2, exp(t) = 2**k * exp(r)
# ---------------------------------------------------------------------------------------------
#
# k = round(t / ln2) comes from the "magic number" trick: z = t*log2(e) + 1.5*2**m (m = 23 or 52,
# the mantissa width) is rounded to an integer by the addition itself, so k = z - MAGIC exactly,
# and the low bits of z's pattern hold k. r = t - k*ln2 in two steps (Cody-Waite: ln2 = LN2_HI +
# LN2_LO): t - k*LN2_HI is exact (in float32 a fused multiply-add with LN2_HI = float32(ln2) makes
# it so; in float64 LN2_HI has trailing zeros), so only LN2_LO's product rounds, and k*ln2 costs
# exp no digits even at |k| = 128 (one float32 constant alone would cost it up to 4 ulp there).
# exp(r) = 1 + r*g(r), g a polynomial. 2**k is the bit pattern (k + bias) << m, built by integer
# add and shift on z's bits (`_pow2`); where the helpers below need 2**(k-1) or 2**j / 2, the
# bias (126, 1022) is added to MAGIC instead: z = MAGIC + bias + k still rounds to an integer the
# same way, MAGIC's own bits vanish in the shift (their low 9, 12 bits are zero), and 2**(k-1) is
# one shift. No branch anywhere: the loops that call these helpers vectorise (8 float32 lanes per
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
# `exp_m2_parts(a)` gives exp(-2a) = 2**-j * exp(r), 2a = j*ln2 - r, as (1 - 2c) / (2S) for
# 0 <= a <= 20, the form tanh needs: S = 2**j / 2 exact, c = -r/2 * g(r) with g(r) - 1 computed
# without the 1, so that 1 - exp(-2a) keeps its digits as a -> 0. It works with w = -r/2 (and
# ln2/2, and g's coefficients times 2**i): exact scalings of the same roundings, one operation
# fewer than doubling a, and none to scale c.

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


@intrinsic
def fma(typingctx, a, b, c):
    """a*b + c rounded once (llvm.fma: one vfmadd instruction on x86-64 with FMA), for three
    float32 or three float64 values in njit code."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


_F = np.float32
_EXPNEG_MIN_F32, _EXPNEG_MAX_F32 = _F(-89.0), _F(87.6)   # k in [-126, 128]: 2**(k-1) is 0 or normal
_MAGIC_F32 = _F(12582912.0)                               # 1.5 * 2**23
_MAGIC126_F32 = _MAGIC_F32 + _F(126)                      # ... + 126: see _pow2 above
_NLOG2E_F32 = _F(-1.4426950408889634)
_LN2_HI_F32 = _F(math.log(2))
_LN2_LO_F32 = _F(math.log(2) - float(_LN2_HI_F32))
# g(r) ~ (exp(r) - 1)/r on [-ln2/2, ln2/2], degree 5: minimax for relative error (1.5e-8 on g,
# a quarter of a float32 ulp), fitted in float64 by Lawson's iteration with 1 and 1/2 fixed, each
# further coefficient rounded to float32 before the next was fitted.
_G_F32 = (1.0, 0.5, 0.16666541993618011, 0.041666485369205475, 0.008366708643734455,
          0.0013933980371803045)
_G1_F32, _G2_F32, _G3_F32, _G4_F32, _G5_F32 = (_F(c) for c in _G_F32[1:])
_2G1_F32, _2G2_F32, _2G3_F32, _2G4_F32, _2G5_F32 = (_F(2 * c) for c in _G_F32[1:])
_TWO_F32 = _F(2.0)
# The same g to degree 6 for tanh's exp(-2a) (`exp_m2_parts`): minimax relative error 4.3e-10,
# fitted the same way (its degree-5 error, a quarter of an ulp, alone took tanh past 2 ulp); each
# coefficient times 2**i, for the polynomial in w = -r/2 (exact scalings: the same roundings).
_H_F32 = (0.5, 0.1666666567325592, 0.04166649281978607, 0.008333546109497547,
          0.0013932324945926666, 0.00019761805015150458)
_H1_F32, _H2_F32, _H3_F32, _H4_F32, _H5_F32, _H6_F32 = (_F(c * 2 ** i) for i, c in enumerate(_H_F32, 1))
_2LOG2E_F32, _HALF_F32 = _F(2 * 1.4426950408889634), _F(0.5)
_LN2_HI2_F32, _LN2_LO2_F32 = _F(_LN2_HI_F32 / 2), _F(_LN2_LO_F32 / 2)     # ln2/2 in two parts

_D = np.float64
_EXPNEG_MIN_F64, _EXPNEG_MAX_F64 = _D(-710.0), _D(708.5)    # k in [-1022, 1024]
_MAGIC_F64 = _D(6755399441055744.0)                       # 1.5 * 2**52
_MAGIC1022_F64 = _MAGIC_F64 + _D(1022)
_NLOG2E_F64, _2LOG2E_F64 = _D(-1.4426950408889634), _D(2 * 1.4426950408889634)
_LN2_HI_F64, _LN2_LO_F64 = _D(0.6931471803691238), _D(1.9082149292705877e-10)
# g(r) = (exp(r) - 1)/r = sum r**i / (i+1)!: Taylor to r**12, truncation below 2e-17 for |r| <= ln2/2.
(_G0_F64, _G1_F64, _G2_F64, _G3_F64, _G4_F64, _G5_F64, _G6_F64, _G7_F64, _G8_F64, _G9_F64,
 _G10_F64, _G11_F64, _G12_F64) = (_D(1.0 / math.factorial(i + 1)) for i in range(13))
# the same times 2**i, for tanh's polynomial in w = -r/2 (`_h_f64`)
(_H1_F64, _H2_F64, _H3_F64, _H4_F64, _H5_F64, _H6_F64, _H7_F64, _H8_F64, _H9_F64, _H10_F64,
 _H11_F64, _H12_F64) = (_D(2.0 ** i / math.factorial(i + 1)) for i in range(1, 13))
_LN2_HI2_F64, _LN2_LO2_F64, _HALF_F64 = _LN2_HI_F64 / 2, _LN2_LO_F64 / 2, _D(0.5)
_TWO_F64 = _D(2.0)


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
def _h_f64(w):
    """g(-2w) - 1, without the 1 (its rounding would cost tanh its digits near 0)."""
    w2 = w * w
    w4 = w2 * w2
    q0 = w2 * (_H2_F64 - w * _H3_F64) - w * _H1_F64
    q1 = (_H4_F64 - w * _H5_F64) + w2 * (_H6_F64 - w * _H7_F64)
    q2 = (_H8_F64 - w * _H9_F64) + w2 * (_H10_F64 - w * _H11_F64) + w4 * _H12_F64
    return (q0 + w4 * q1) + (w4 * w4) * q2


@njit(inline="always", **DEVICE)
def _exp_neg_f32(v):
    v = min(v, _EXPNEG_MAX_F32)
    v = max(v, _EXPNEG_MIN_F32)    # numba's min/max follow Python's: a NaN first argument stays
    z = v * _NLOG2E_F32 + _MAGIC126_F32          # k = round(-v*log2(e)), 126 + k in z's low bits
    k = z - _MAGIC126_F32
    w = fma(k, _LN2_LO_F32, fma(k, _LN2_HI_F32, v))   # w = -r, with -v = k*ln2 + r
    # 2*exp(r) = 2 + r*2g(r) at r = -w = 2 - 2w + w**2 * (2g1 - w*2g2 + ...): everything but the
    # 2 is summed first (|m| < 0.9: its roundings are small in units of the result), so the
    # result rounds once at its own magnitude
    w2 = w * w
    m = fma(w2, (_2G1_F32 + w2 * (_2G3_F32 + w2 * _2G5_F32)) - w * (_2G2_F32 + w2 * _2G4_F32), -(w + w))
    return (_TWO_F32 + m) * _pow2(z, 0)          # 2*exp(r) * 2**(k-1)


@njit(inline="always", **DEVICE)
def _exp_neg_f64(v):
    v = min(v, _EXPNEG_MAX_F64)
    v = max(v, _EXPNEG_MIN_F64)
    z = v * _NLOG2E_F64 + _MAGIC1022_F64
    k = z - _MAGIC1022_F64
    w = (v + k * _LN2_HI_F64) + k * _LN2_LO_F64
    g = _g_f64(w)
    return (_TWO_F64 - w * (g + g)) * _pow2(z, 0)


# exp_neg_gradual: exp_neg's steps for v in [0, V], scaled by 2**(k-1) through 2**(k-1+S) (a
# normal number for every k >= -151 in float32, -1076 in float64) and then by 2**-S, which rounds
# once into the subnormal range where the result lies there: gradual underflow instead of the
# flush. exp(-104) and exp(-746) round to 0, so V clamps nothing that is not 0.
_EXPSUB_MAX_F32, _MAGIC190_F32, _SUB_SCALE_F32 = _F(104.0), _MAGIC_F32 + _F(190), _F(2.0 ** -64)
_EXPSUB_MAX_F64, _MAGIC1150_F64, _SUB_SCALE_F64 = _D(746.0), _MAGIC_F64 + _D(1150), _D(2.0 ** -128)


@njit(inline="always", **DEVICE)
def _exp_neg_scaled_f32(v):
    u = min(v, _EXPSUB_MAX_F32)                  # a NaN v stays NaN (see _exp_neg_f32)
    z = u * _NLOG2E_F32 + _MAGIC190_F32          # k = round(-u*log2(e)), 190 + k in z's low bits
    k = z - _MAGIC190_F32
    w = fma(k, _LN2_LO_F32, fma(k, _LN2_HI_F32, u))
    w2 = w * w
    m = fma(w2, (_2G1_F32 + w2 * (_2G3_F32 + w2 * _2G5_F32)) - w * (_2G2_F32 + w2 * _2G4_F32), -(w + w))
    big = (_TWO_F32 + m) * _pow2(z, 0)          # 2*exp(r) * 2**(k+63) = exp(-u) * 2**64
    return (_F(0.0) if v > _EXPSUB_MAX_F32 else big), _SUB_SCALE_F32


@njit(inline="always", **DEVICE)
def _exp_neg_scaled_f64(v):
    u = min(v, _EXPSUB_MAX_F64)
    z = u * _NLOG2E_F64 + _MAGIC1150_F64
    k = z - _MAGIC1150_F64
    w = (u + k * _LN2_HI_F64) + k * _LN2_LO_F64
    g = _g_f64(w)
    big = (_TWO_F64 - w * (g + g)) * _pow2(z, 0)
    return (_D(0.0) if v > _EXPSUB_MAX_F64 else big), _SUB_SCALE_F64


@njit(inline="always", **DEVICE)
def _exp_neg_gradual_f32(v):
    big, scale = _exp_neg_scaled_f32(v)
    return big * scale


@njit(inline="always", **DEVICE)
def _exp_neg_gradual_f64(v):
    big, scale = _exp_neg_scaled_f64(v)
    return big * scale


@njit(inline="always", **DEVICE)
def _exp_m2_parts_f32(a):
    z = a * _2LOG2E_F32 + _MAGIC126_F32          # j = round(2a*log2(e)), in [0, 58]
    j = z - _MAGIC126_F32
    w = fma(-j, _LN2_LO2_F32, fma(-j, _LN2_HI2_F32, a))   # w = a - j*ln2/2 = -r/2
    # w(1 + h) = w + w**2 * q(w), h = g(r) - 1 = w*q(w): Horner in w, one rounding for the sum
    q = fma(w, fma(w, fma(w, fma(w, fma(w, _H6_F32, -_H5_F32), _H4_F32), -_H3_F32), _H2_F32), -_H1_F32)
    return _pow2(z, 0), fma(w * w, q, w)         # 2**j / 2, and w(1 + h)


@njit(inline="always", **DEVICE)
def _exp_m2_parts_f64(a):
    z = a * _2LOG2E_F64 + _MAGIC1022_F64
    j = z - _MAGIC1022_F64
    w = (a - j * _LN2_HI2_F64) - j * _LN2_LO2_F64
    return _pow2(z, 0), fma(w, _h_f64(w), w)


@njit(inline="always", **DEVICE)
def _exp_f32(t):
    return _exp_neg_f32(-t)


@njit(inline="always", **DEVICE)
def _exp_f64(t):
    return _exp_neg_f64(-t)


@njit(inline="always", **DEVICE)
def _tanh_pos(a):
    """tanh(a) for 0 <= a <= 20 (or NaN), float32 or float64: one quotient for every a. With
    exp(-2a) = (1 - 2c) / (2S) (`exp_m2_parts`: S = 2**j / 2 exact, c rounded once),
    tanh(a) = (1 - exp(-2a)) / (1 + exp(-2a)) = ((S - 1/2) + c) / ((S + 1/2) - c), where S - 1/2
    and S + 1/2 are exact (up to a = 8.3 in float32; beyond, tanh rounds to 1 either way): three
    roundings (numerator, denominator, quotient) and c's own. Near a = 0 (j = 0) the numerator is
    c itself, so tanh keeps its digits as a -> 0 without a second branch. At most 1.91 ulp in
    float32 (every positive float32 checked; at 0.5102), 2.02 in float64 (2**24 samples; at
    0.1882): within bench/analysis/accuracy.py's bounds (2 and 3)."""
    s, c = exp_m2_parts(a)
    half = like(a, 0.5)
    return ((s - half) + c) / ((s + half) - c)


def exp_neg(v):
    """exp(-v) of a float32 or float64 scalar in njit code: branch-free, vectorisable, within a few
    ulp (flushing results below 2**-125.5 to zero, see above). Python callers: use np.exp."""
    raise TypeError("exp_neg is device code: call it from numba.njit functions")


def exp_neg_gradual(v):
    """exp(-v) of a float32 or float64 scalar v >= 0 (or NaN) in njit code, subnormal results
    included (gradual underflow, not exp_neg's flush): branch-free, vectorisable."""
    raise TypeError("exp_neg_gradual is device code: call it from numba.njit functions")


def exp_neg_scaled(v):
    """(exp(-v) * 2**S, 2**-S) for a float32 or float64 v >= 0 (or NaN) in njit code, S = 64 in
    float32, 128 in float64: exp(-v) as a normal number (0 where exp(-v) rounds to 0) and the
    factor that scales it, or a product with it, back (rounding once, into the subnormals)."""
    raise TypeError("exp_neg_scaled is device code: call it from numba.njit functions")


def exp(t):
    """exp(t) in njit code: `exp_neg(-t)` (LLVM folds the two negations away)."""
    raise TypeError("exp is device code: call it from numba.njit functions")


def tanh_pos(a):
    """tanh(a) for 0 <= a <= 20 (or NaN) in njit code, within 2 ulp: branch-free."""
    raise TypeError("tanh_pos is device code: call it from numba.njit functions")


def exp_m2_parts(a):
    """(S, c) with exp(-2a) = (1 - 2c) / (2S) for 0 <= a <= 20, in njit code: the pieces from
    which tanh keeps its digits. S = 2**j / 2 is exact (j = round(2a / ln2) >= 0), c = w(1 + h)
    rounded once, |c| < 0.2 (w = a - j*ln2/2, h = g(-2w) - 1 with exp(r) = 1 + r*g(r))."""
    raise TypeError("exp_m2_parts is device code: call it from numba.njit functions")


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
overload(exp_neg_gradual, inline="always")(_by_dtype(_exp_neg_gradual_f32, _exp_neg_gradual_f64))
overload(exp_neg_scaled, inline="always")(_by_dtype(_exp_neg_scaled_f32, _exp_neg_scaled_f64))
overload(exp, inline="always")(_by_dtype(_exp_f32, _exp_f64))
overload(exp_m2_parts, inline="always")(_by_dtype(_exp_m2_parts_f32, _exp_m2_parts_f64))
overload(tanh_pos, inline="always")(_by_dtype(_tanh_pos, _tanh_pos))


@overload(like, inline="always")
def _like(v, c):
    if v == types.float32:
        return lambda v, c: np.float32(c)
    if v == types.float64:
        return lambda v, c: np.float64(c)
    return None
