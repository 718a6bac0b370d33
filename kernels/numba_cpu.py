"""Fused, parallel CPU kernels with numba.njit: the numba_cpu backend (float32 and float64).

Every op is one pass over memory: each input read once, each output written once, nothing in
between. Three layers, top to bottom of this file:

- Device helpers: an exp and an expm1 of our own (range reduction t = k*ln2 + r, a polynomial in r,
  2**k built from the exponent bits), branch-free so that LLVM vectorises every loop that calls
  them; with libm's exp per element a sigmoid cannot run at memory speed. Packing and unpacking of
  the relu mask, 8 elements per byte, as explicit 8-lane LLVM vector code.
- Kernels `_<op>_kernel`: one serial, branch-free loop over a contiguous block (the device code;
  the comment above each says what it moves, as bench/roofline.py counts it), and
  `_<op>_parallel`, which runs the kernel over blocks of `BLOCK` elements with `prange`. Blocks
  are multiples of 64 elements, so threads never share a byte of a packed mask.
- Launchers `<op>(..., out=None, **params)`, registered with `@register`: the registry has already
  checked dtypes and shapes and made the inputs C-contiguous; the launcher allocates the output when
  `out` is None and runs the kernel on the flat views, serially below `SERIAL_MAX` elements (where
  waking threads costs more than the work).

Kernels compile on the first call per dtype (never at import) and are cached on disk
(`cache=True`). No fast-math flag except `contract` (fused multiply-add): NaN and inf keep their
IEEE meaning. float16 is not supported (the registry raises TypeError): numba has no float16
arithmetic on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .reference import LEAKY_SLOPE, mask_nbytes
from .registry import Backend, declare_backend, register


def _probe() -> str | None:
    try:
        import numba
    except ImportError as exc:  # pragma: no cover - numba is a core dependency
        return f"numba is not importable: {exc}"
    _backend.description = (f"fused, parallel numba {numba.__version__} njit kernels, "
                            f"{numba.config.NUMBA_NUM_THREADS} threads")
    return None


_backend = declare_backend(Backend(
    name="numba_cpu",
    device="cpu",
    probe=_probe,
    to_native=lambda a: np.array(a, copy=True),
    to_numpy=lambda a: np.array(a, copy=True),
    is_native=lambda a: isinstance(a, np.ndarray),
    empty=lambda shape, dtype: np.empty(shape, dtype),
    dtypes=("float32", "float64"),
    # not np.ascontiguousarray alone: it turns a 0-d array into shape (1,)
    contiguous=lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a),
    description="fused, parallel numba.njit kernels",
))

BLOCK = 16384          # elements per parallel work item: a multiple of 64 (whole mask bytes)
SERIAL_MAX = 1 << 15   # below this many elements a kernel runs on the calling thread only

_DEVICE = dict(cache=True, error_model="numpy", fastmath={"contract"})
_PARALLEL = dict(_DEVICE, parallel=True)
# error_model="numpy": a division never checks for zero (a branch that stops vectorisation).


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
# `_exp_neg(v)` = exp(-v), the form the sigmoid needs: it takes the sign into its constants rather
# than negating v (LLVM then keeps the clamps as single min/max instructions). It scales by
# 2**(k-1) and doubles the polynomial (exact), so that the largest k still has a finite scale and
# exp overflows to inf exactly where it should. v is clamped first, so the integer tricks never
# wrap; a NaN passes through the clamps (every comparison with NaN is false) and the arithmetic.
# Results below 2**-125.5 (float32; 2**-1021.5 in float64) flush to zero: an absolute error under
# 1.7e-38 (float32), which sigmoid never shows (there 1/(1 + e) is 1).
#
# `_expm1_m2(a)` = exp(-2a) - 1 for 0 <= a <= 20, the form tanh needs: 2**k * r*g(r) + (2**k - 1),
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


@njit(inline="always", **_DEVICE)
def _g_f64(w):
    """g(-w), Estrin's scheme: a dependency chain of 5 multiply-adds instead of Horner's 12."""
    w2 = w * w
    w4 = w2 * w2
    q0 = (_G0_F64 - w * _G1_F64) + w2 * (_G2_F64 - w * _G3_F64)
    q1 = (_G4_F64 - w * _G5_F64) + w2 * (_G6_F64 - w * _G7_F64)
    q2 = (_G8_F64 - w * _G9_F64) + w2 * (_G10_F64 - w * _G11_F64) + w4 * _G12_F64
    return (q0 + w4 * q1) + (w4 * w4) * q2


@njit(inline="always", **_DEVICE)
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


@njit(inline="always", **_DEVICE)
def _exp_neg_f64(v):
    v = min(v, _EXPNEG_MAX_F64)
    v = max(v, _EXPNEG_MIN_F64)
    z = v * _NLOG2E_F64 + _MAGIC_F64
    k = z - _MAGIC_F64
    w = (v + k * _LN2_HI_F64) + k * _LN2_LO_F64
    g = _g_f64(w)
    return (_TWO_F64 - w * (g + g)) * _pow2(z, 1022)


@njit(inline="always", **_DEVICE)
def _expm1_m2_f32(a):
    z = a * _M2LOG2E_F32 + _MAGIC_F32            # k = round(-2a*log2(e)), in [-58, 0]
    k = z - _MAGIC_F32
    w = a + a + k * _LN2_F32                     # w = -r, with -2a = k*ln2 + r
    w2 = w * w
    g = (_G0_F32 - w * _G1_F32) + w2 * ((_G2_F32 - w * _G3_F32) + w2 * _G4_F32)   # g(r)
    s = _pow2(z, 127)                            # 2**k
    return (s * w) * (-g) + (s - _ONE_F32)       # 2**k * (exp(r) - 1) + (2**k - 1)


@njit(inline="always", **_DEVICE)
def _expm1_m2_f64(a):
    z = a * _M2LOG2E_F64 + _MAGIC_F64
    k = z - _MAGIC_F64
    w = (a + a + k * _LN2_HI_F64) + k * _LN2_LO_F64
    s = _pow2(z, 1023)
    return (s * w) * (-_g_f64(w)) + (s - _ONE_F64)


@njit(inline="always", **_DEVICE)
def _exp_f32(t):
    return _exp_neg_f32(-t)


@njit(inline="always", **_DEVICE)
def _exp_f64(t):
    return _exp_neg_f64(-t)


def _exp_neg(v):
    """exp(-v) of a float32 or float64 scalar in njit code: branch-free, vectorisable, within a few
    ulp (flushing results below 2**-125.5 to zero, see above). Python callers: use np.exp."""
    raise TypeError("_exp_neg is device code: call it from numba.njit functions")


def _exp(t):
    """exp(t) in njit code: `_exp_neg(-t)` (LLVM folds the two negations away)."""
    raise TypeError("_exp is device code: call it from numba.njit functions")


def _expm1_m2(a):
    """exp(-2a) - 1 for 0 <= a <= 20 (or NaN) in njit code: branch-free, vectorisable."""
    raise TypeError("_expm1_m2 is device code: call it from numba.njit functions")


def _by_dtype(f32, f64):
    """An overload body that picks the float32 or the float64 helper by the argument's type."""
    def impl(t):
        if t == types.float32:
            return lambda t: f32(t)
        if t == types.float64:
            return lambda t: f64(t)
        return None
    return impl


overload(_exp_neg, inline="always")(_by_dtype(_exp_neg_f32, _exp_neg_f64))
overload(_exp, inline="always")(_by_dtype(_exp_f32, _exp_f64))
overload(_expm1_m2, inline="always")(_by_dtype(_expm1_m2_f32, _expm1_m2_f64))


# ---------------------------------------------------------------------------------------------
# The packed mask: 8 elements per byte, bit k of byte j is element 8*j + k (little bit order)
# ---------------------------------------------------------------------------------------------

def _vector_ptr(context, builder, arrty, arr, index, vty):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


@intrinsic
def _relu_pack8(typingctx, x, y, i):
    """y[i:i+8] = relu(x[i:i+8]); returns the byte of bits (x[i+k] > 0). One 8-lane load, compare,
    max, store and a movemask: no branch, no bounds check (the caller keeps i + 8 <= size)."""
    if not (isinstance(x, types.Array) and isinstance(y, types.Array) and x.dtype == y.dtype
            and x.dtype in (types.float32, types.float64) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        xty, yty, _ = sig.args
        vty = ir.VectorType(context.get_data_type(xty.dtype), 8)
        align = xty.dtype.bitwidth // 8
        v = builder.load(_vector_ptr(context, builder, xty, args[0], args[2], vty), align=align)
        zero = ir.Constant(vty, None)
        y8 = builder.select(builder.fcmp_ordered("<", v, zero), zero, v)   # NaN stays NaN
        builder.store(y8, _vector_ptr(context, builder, yty, args[1], args[2], vty), align=align)
        return builder.bitcast(builder.fcmp_ordered(">", v, zero), ir.IntType(8))

    return types.uint8(x, y, i), codegen


@intrinsic
def _unpack_select8(typingctx, dy, bits, dx, i):
    """dx[i+k] = dy[i+k] where bit k of `bits` is set, else 0, for k < 8: one 8-lane load, select
    and store (the caller keeps i + 8 <= size)."""
    if not (isinstance(dy, types.Array) and isinstance(dx, types.Array) and dy.dtype == dx.dtype
            and dy.dtype in (types.float32, types.float64) and bits == types.uint8
            and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        dyty, _, dxty, _ = sig.args
        vty = ir.VectorType(context.get_data_type(dyty.dtype), 8)
        align = dyty.dtype.bitwidth // 8
        v = builder.load(_vector_ptr(context, builder, dyty, args[0], args[3], vty), align=align)
        keep = builder.bitcast(args[1], ir.VectorType(ir.IntType(1), 8))
        out = builder.select(keep, v, ir.Constant(vty, None))
        builder.store(out, _vector_ptr(context, builder, dxty, args[2], args[3], vty), align=align)
        return context.get_dummy_value()

    return types.none(dy, bits, dx, i), codegen


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------

@njit(inline="always", **_DEVICE)
def _nblocks(n):
    return (n + BLOCK - 1) // BLOCK


@njit(inline="always", **_DEVICE)
def _block(b, n):
    """The slice of block b of n elements."""
    lo = b * BLOCK
    return slice(lo, min(lo + BLOCK, n))


def _run(kernel, parallel, n: int, *arrays) -> None:
    (kernel if n < SERIAL_MAX else parallel)(*arrays)


def _out(out, like):
    return np.empty_like(like) if out is None else out


# ---------------------------------------------------------------------------------------------
# Kernels (device code) and their parallel drivers. Bytes: float32 figures; float64 doubles them.
# ---------------------------------------------------------------------------------------------

# reads 4 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _relu_kernel(x, y):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        y[i] = zero if v < zero else v           # NaN < 0 is false: NaN stays NaN


@njit(**_PARALLEL)
def _relu_parallel(x, y):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _relu_kernel(x[s], y[s])


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _relu_grad_kernel(dy, x, dx):
    zero = x.dtype.type(0)
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > zero else zero   # 0 where x <= 0 or x is NaN


@njit(**_PARALLEL)
def _relu_grad_parallel(dy, x, dx):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _relu_grad_kernel(dy[s], x[s], dx[s])


# reads 4 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _sigmoid_kernel(x, y):
    one = x.dtype.type(1)
    for i in range(x.size):
        # exp(-x) overflows to inf for x < -88.7 (float32): 1/inf is the exact 0; for x > 17 it
        # is below epsilon and 1/(1 + e) rounds to 1. NaN propagates.
        y[i] = one / (one + _exp_neg(x[i]))


@njit(**_PARALLEL)
def _sigmoid_parallel(x, y):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _sigmoid_kernel(x[s], y[s])


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _sigmoid_grad_kernel(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        v = y[i]
        dx[i] = dy[i] * v * (one - v)            # left to right, as the reference and PyTorch


@njit(**_PARALLEL)
def _sigmoid_grad_parallel(dy, y, dx):
    for b in prange(_nblocks(y.size)):
        s = _block(b, y.size)
        _sigmoid_grad_kernel(dy[s], y[s], dx[s])


# reads 4 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _tanh_kernel(x, y):
    two = x.dtype.type(2)
    cap = x.dtype.type(20)                       # tanh(20) is 1 to the last bit in float64
    for i in range(x.size):
        v = x[i]
        a = min(abs(v), cap)                     # NaN stays NaN
        em = _expm1_m2(a)                        # exp(-2|x|) - 1, in [-1, 0]
        # tanh|x| = (1 - e)/(1 + e) = -em/(2 + em), no cancellation near 0 since em keeps its
        # digits; the sign of x goes on the numerator, off the division's critical path.
        y[i] = math.copysign(em, v) / (em + two)


@njit(**_PARALLEL)
def _tanh_parallel(x, y):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _tanh_kernel(x[s], y[s])


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _tanh_grad_kernel(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        v = y[i]
        dx[i] = dy[i] * (one - v * v)


@njit(**_PARALLEL)
def _tanh_grad_parallel(dy, y, dx):
    for b in prange(_nblocks(y.size)):
        s = _block(b, y.size)
        _tanh_grad_kernel(dy[s], y[s], dx[s])


# reads 4 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _leaky_relu_kernel(x, y, slope):
    zero = x.dtype.type(0)
    a = x.dtype.type(slope)
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > zero else a * v          # NaN: a * NaN is NaN


@njit(**_PARALLEL)
def _leaky_relu_parallel(x, y, slope):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _leaky_relu_kernel(x[s], y[s], slope)


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _leaky_relu_grad_kernel(dy, x, dx, slope):
    zero = x.dtype.type(0)
    a = x.dtype.type(slope)
    for i in range(x.size):
        d = dy[i]
        dx[i] = d if x[i] > zero else a * d


@njit(**_PARALLEL)
def _leaky_relu_grad_parallel(dy, x, dx, slope):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _leaky_relu_grad_kernel(dy[s], x[s], dx[s], slope)


# reads 4 B + writes 4.125 B per element (float32: y and 1 bit of mask); see bench/roofline.py
@njit(**_DEVICE)
def _relu_mask_kernel(x, y, mask):
    """x, y: a block whose start is a multiple of 8 elements; mask: its bytes."""
    n = x.size
    full = n // 8
    for j in range(full):
        mask[j] = _relu_pack8(x, y, 8 * j)
    if full * 8 < n:                             # the last, partial byte (last block only)
        zero = x.dtype.type(0)
        bits = 0
        for i in range(full * 8, n):
            v = x[i]
            y[i] = zero if v < zero else v
            if v > zero:
                bits |= 1 << (i - full * 8)
        mask[full] = bits


@njit(**_PARALLEL)
def _relu_mask_parallel(x, y, mask):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        _relu_mask_kernel(x[s], y[s], mask[s.start // 8:(s.stop + 7) // 8])


# reads 4.125 B + writes 4 B per element (float32: dy and 1 bit of mask); see bench/roofline.py
@njit(**_DEVICE)
def _relu_grad_mask_kernel(dy, mask, dx):
    """dy, dx: a block whose start is a multiple of 8 elements; mask: its bytes."""
    n = dy.size
    full = n // 8
    for j in range(full):
        _unpack_select8(dy, mask[j], dx, 8 * j)
    if full * 8 < n:
        zero = dy.dtype.type(0)
        bits = mask[full]
        for i in range(full * 8, n):
            dx[i] = dy[i] if (bits >> (i - full * 8)) & 1 else zero


@njit(**_PARALLEL)
def _relu_grad_mask_parallel(dy, mask, dx):
    for b in prange(_nblocks(dy.size)):
        s = _block(b, dy.size)
        _relu_grad_mask_kernel(dy[s], mask[s.start // 8:(s.stop + 7) // 8], dx[s])


# ---------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------

@register("relu", "numba_cpu")
def relu(x, out=None):
    y = _out(out, x)
    _run(_relu_kernel, _relu_parallel, x.size, x.ravel(), y.ravel())
    return y


@register("relu_grad", "numba_cpu")
def relu_grad(dy, x, out=None):
    dx = _out(out, dy)
    _run(_relu_grad_kernel, _relu_grad_parallel, x.size, dy.ravel(), x.ravel(), dx.ravel())
    return dx


@register("sigmoid", "numba_cpu")
def sigmoid(x, out=None):
    y = _out(out, x)
    _run(_sigmoid_kernel, _sigmoid_parallel, x.size, x.ravel(), y.ravel())
    return y


@register("sigmoid_grad", "numba_cpu")
def sigmoid_grad(dy, y, out=None):
    dx = _out(out, dy)
    _run(_sigmoid_grad_kernel, _sigmoid_grad_parallel, y.size, dy.ravel(), y.ravel(), dx.ravel())
    return dx


@register("tanh", "numba_cpu")
def tanh(x, out=None):
    y = _out(out, x)
    _run(_tanh_kernel, _tanh_parallel, x.size, x.ravel(), y.ravel())
    return y


@register("tanh_grad", "numba_cpu")
def tanh_grad(dy, y, out=None):
    dx = _out(out, dy)
    _run(_tanh_grad_kernel, _tanh_grad_parallel, y.size, dy.ravel(), y.ravel(), dx.ravel())
    return dx


@register("leaky_relu", "numba_cpu")
def leaky_relu(x, out=None, slope=LEAKY_SLOPE):
    y = _out(out, x)
    _run(_leaky_relu_kernel, _leaky_relu_parallel, x.size, x.ravel(), y.ravel(), float(slope))
    return y


@register("leaky_relu_grad", "numba_cpu")
def leaky_relu_grad(dy, x, out=None, slope=LEAKY_SLOPE):
    dx = _out(out, dy)
    _run(_leaky_relu_grad_kernel, _leaky_relu_grad_parallel, x.size,
         dy.ravel(), x.ravel(), dx.ravel(), float(slope))
    return dx


@register("relu_mask", "numba_cpu")
def relu_mask(x, out=None):
    if out is None:
        y, mask = np.empty_like(x), np.empty(mask_nbytes(x.size), np.uint8)
    else:
        y, mask = out
    _run(_relu_mask_kernel, _relu_mask_parallel, x.size, x.ravel(), y.ravel(), mask)
    return y, mask


@register("relu_grad_mask", "numba_cpu")
def relu_grad_mask(dy, mask, out=None):
    dx = _out(out, dy)
    _run(_relu_grad_mask_kernel, _relu_grad_mask_parallel, dy.size, dy.ravel(), mask, dx.ravel())
    return dx
