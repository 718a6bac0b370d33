"""Fused, parallel CPU kernels with numba.njit: the numba_cpu backend (float32 and float64).

Every op is one pass over memory: each input read once, each output written once, nothing in
between. Three layers, top to bottom of this file:

- Device helpers: an exp and an expm1 of our own (range reduction t = k*ln2 + r, a polynomial in r,
  2**k built from the exponent bits), branch-free so that LLVM vectorises every loop that calls
  them; with libm's exp per element a sigmoid cannot run at memory speed. Packing and unpacking of
  the relu mask, 8 elements per byte, as explicit 8-lane LLVM vector code.
- Kernels `_<op>_kernel`: one serial, branch-free loop over a contiguous block (the device code;
  the comment above each says what it moves, as bench/roofline.py counts it), and
  `_<op>_parallel`, which runs the kernel over blocks of `BLOCK` elements with `prange`, with
  ordinary or streaming stores (below). Blocks are multiples of 64 elements, so threads never
  share a byte of a packed mask.
- Launchers `<op>(..., out=None, **params)`, registered with `@register`: the registry has already
  checked dtypes and shapes and made the inputs C-contiguous; the launcher allocates the output when
  `out` is None and runs the kernel on the flat views, serially below `SERIAL_MAX` elements (where
  waking threads costs more than the work).

Streaming stores. An output of at least `STREAM_MIN_BYTES` (far larger than the last-level cache)
is written with non-temporal stores (x86-64: vmovntps/vmovntpd): the line goes to memory without
first being read for ownership, so a relu moves 8 bytes per element instead of 12. Below that size
the ordinary stores stay, and leave the output in cache for whoever reads it next. One mechanism
serves every kernel: `_streamed(y)` retypes an output block so that `y[i] = v` (and the 8-lane
stores of the mask helpers) emit non-temporal stores; the kernel's source is the same in both
paths, so its values are bit for bit the same. Each parallel block splits its output with
`_stream_split`: ordinary stores up to the block's first 32-byte boundary, streaming stores for a
whole number of 64-element groups, ordinary stores for the rest, then a store fence
(`_store_fence`), since non-temporal stores are weakly ordered. The threshold is read at each call,
so tests can lower it; `stream_copy` is the same path as a copy, the CPU peak probe of
bench/roofline.py.

Kernels compile on the first call per dtype (never at import) and are cached on disk
(`cache=True`). No fast-math flag except `contract` (fused multiply-add): NaN and inf keep their
IEEE meaning. float16 is not supported (the registry raises TypeError): numba has no float16
arithmetic on the CPU.
"""

from __future__ import annotations

import math
import operator
from pathlib import Path

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, prange, types
from numba.core.datamodel.models import ArrayModel
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, lower_builtin, overload, register_model

from .reference import LEAKY_SLOPE, mask_nbytes
from .registry import Available, Backend, declare_backend, register


def _probe() -> Available | str:
    try:
        import numba
    except ImportError as exc:  # pragma: no cover - numba is a core dependency
        return f"numba is not importable: {exc}"
    return Available(description=f"fused, parallel numba {numba.__version__} njit kernels, "
                                 f"{numba.config.NUMBA_NUM_THREADS} threads")


_backend = declare_backend(Backend(
    name="numba_cpu",
    library="numpy",
    default_device="cpu",
    probe=_probe,
    to_native=np.asarray,                 # host arrays are already NumPy arrays: no copy
    to_numpy=np.asarray,
    is_native=lambda a: isinstance(a, np.ndarray),
    empty=lambda shape, dtype: np.empty(shape, dtype),
    dtypes=("float32", "float64"),
    # not np.ascontiguousarray alone: it turns a 0-d array into shape (1,)
    contiguous=lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a),
))

BLOCK = 16384          # elements per parallel work item: a multiple of 64 (whole mask bytes)
SERIAL_MAX = 1 << 15   # below this many elements a kernel runs on the calling thread only

_X86_64 = llvm.get_process_triple().split("-")[0] in ("x86_64", "amd64")


def last_level_cache_bytes() -> int:
    """The largest CPU cache sysfs lists, 32 MiB when unknown (bench/ reads it here too)."""
    unit = {"K": 2**10, "M": 2**20, "G": 2**30}
    best = 0
    for size in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = size.read_text().strip()
            best = max(best, int(text.rstrip("KMG")) * unit.get(text[-1:], 1))
        except (OSError, ValueError):
            continue
    return best or 32 * 2**20


# Outputs of at least this many bytes are written with streaming stores (see "Streaming stores"
# below); None: never. The size of the last-level cache: an output that large cannot stay in the
# cache for the next reader anyway, so streaming costs nothing there, and it saves the read for
# ownership of every line (relu at 2**25 float32: 0.71x the time). Smaller outputs keep ordinary
# stores, which leave them in cache for the next layer. (On the 2-core EPYC this was measured on,
# with a 32 MiB L3, a benchmark loop already gains from 8 MiB outputs, but such a loop never reads
# its output back, so it cannot see what eviction costs the next reader.) Only on x86-64, where it
# was measured; elsewhere the same code runs when a test lowers the threshold. Read at every call.
STREAM_MIN_BYTES: int | None = last_level_cache_bytes() if _X86_64 else None

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
# Streaming stores: non-temporal stores for outputs far larger than the cache
# ---------------------------------------------------------------------------------------------
#
# `_streamed(y)` gives a 1-D output block the numba type `_StreamedArray`: the same array (same
# data model, no copy) on which `y[i] = v`, and the 8-lane store of `_unpack_select8`, lower to a
# store with LLVM's !nontemporal metadata. `_store` is the one place that emits an output store,
# of either kind. A kernel called with a streamed output is a second specialisation of the same
# source, so both paths compute the same bits; only the store instruction differs.
#
# Alignment. x86 has non-temporal stores only for aligned vectors, and LLVM's loop vectorizer
# widens a !nontemporal element store only if the widened store is legal at the element store's
# alignment (LoopVectorizationLegality asks TTI::isLegalNTStore). So an element store into a
# streamed array says `align 32`. That is true of every store the compiled loop makes: the
# streamed part of a block starts on a 32-byte boundary and holds a whole number of
# `_STREAM_GROUP` elements, a multiple of the vector width times the interleave count LLVM picks
# on AVX2 and AVX-512 (at most 16 lanes x 4), so the vector loop covers it exactly and no scalar
# remainder iteration runs. It would not be true of a lone element store, which only the
# vectorizer's fallback for overlapping arrays could make (the registry rejects an `out=` that
# overlaps an input), and x86's scalar stores have no alignment requirement. `_streamed(y)`
# requires y's first element on a 32-byte boundary: `_stream_split` gives exactly such blocks.
#
# Ordering. Non-temporal stores are weakly ordered: every block that streamed ends with
# `_store_fence` (x86-64: sfence; elsewhere an LLVM seq_cst fence) before its thread reports the
# block done, so the caller sees the whole output.

_STREAM_ALIGN = 32     # bytes: one AVX vector; the streamed part of a block starts on this boundary
_STREAM_GROUP = 64     # elements: the streamed part of a block is a whole number of these


class _StreamedArray(types.Array):
    """A 1-D C-contiguous output block, starting on a 32-byte boundary, whose stores are
    non-temporal. Made by `_streamed` only."""

    def __init__(self, dtype, ndim=1, layout="C", readonly=False, aligned=True):
        super().__init__(dtype, ndim, layout, readonly=readonly, aligned=aligned,
                         name=f"streamed array({dtype}, {ndim}d, {layout})")


register_model(_StreamedArray)(ArrayModel)


def _store(builder, value, ptr, arrty) -> None:
    """Store `value` (an element or a vector) at `ptr` in an array of numba type `arrty`: a
    non-temporal store into a `_StreamedArray` (alignment: see above), else an ordinary one."""
    if isinstance(arrty, _StreamedArray):
        st = builder.store(value, ptr, align=_STREAM_ALIGN)
        st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
    else:
        builder.store(value, ptr, align=_align(arrty))


def _align(arrty) -> int:
    """The alignment an access to an element of an array of numba type `arrty` may assume."""
    return arrty.dtype.bitwidth // 8 if arrty.aligned else 1


@intrinsic
def _streamed(typingctx, a):
    """`a`, a 1-D C-contiguous float array whose first element is on a 32-byte boundary, typed so
    that its stores are non-temporal: the same memory, no copy."""
    if not (isinstance(a, types.Array) and not isinstance(a, _StreamedArray) and a.ndim == 1
            and a.layout == "C" and a.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, sig.return_type, args[0])

    return _StreamedArray(a.dtype, aligned=a.aligned)(a), codegen


@lower_builtin(operator.setitem, _StreamedArray, types.Integer, types.Any)
def _streamed_setitem(context, builder, sig, args):
    """y[i] = v on a streamed array: a negative i counts from the end, as on any array."""
    aty, ity, vty = sig.args
    ary = context.make_array(aty)(context, builder, args[0])
    i = context.cast(builder, args[1], ity, types.intp)
    if ity.signed:
        i = builder.select(builder.icmp_signed("<", i, i.type(0)), builder.add(i, ary.nitems), i)
    _store(builder, context.cast(builder, args[2], vty, aty.dtype), builder.gep(ary.data, [i]), aty)
    return context.get_dummy_value()


@intrinsic
def _store_fence(typingctx):
    """Every streaming store before it is visible before any store after it."""
    def codegen(context, builder, sig, args):
        if _X86_64:
            sfence = builder.module.declare_intrinsic(
                "llvm.x86.sse.sfence", fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(sfence, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _address(typingctx, a):
    """The address of a's data, as an int64."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return types.int64(a), codegen


# ---------------------------------------------------------------------------------------------
# The packed mask: 8 elements per byte, bit k of byte j is element 8*j + k (little bit order)
# ---------------------------------------------------------------------------------------------

def _vector_ptr(context, builder, arrty, arr, index, vty):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def _load8(context, builder, arrty, arr, index):
    """The 8 lanes arr[index:index+8], as an LLVM vector (no alignment assumed)."""
    vty = ir.VectorType(context.get_data_type(arrty.dtype), 8)
    return builder.load(_vector_ptr(context, builder, arrty, arr, index, vty), align=_align(arrty))


def _store8(context, builder, arrty, arr, index, value):
    """arr[index:index+8] = value, through `_store`: non-temporal into a streamed array, where the
    caller keeps arr[index] on a 32-byte boundary."""
    _store(builder, value, _vector_ptr(context, builder, arrty, arr, index, value.type), arrty)


def _is_float_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)


@intrinsic
def _relu_pack8(typingctx, x, y, i):
    """y[i:i+8] = relu(x[i:i+8]); returns the byte of bits (x[i+k] > 0). One 8-lane load, compare,
    max, store and a movemask: no branch, no bounds check (the caller keeps i + 8 <= size; and
    y[i] on a 32-byte boundary if y is streamed)."""
    if not (_is_float_array(x) and _is_float_array(y) and x.dtype == y.dtype
            and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        xty, yty, _ = sig.args
        v = _load8(context, builder, xty, args[0], args[2])
        zero = ir.Constant(v.type, None)
        y8 = builder.select(builder.fcmp_ordered("<", v, zero), zero, v)   # NaN stays NaN
        _store8(context, builder, yty, args[1], args[2], y8)
        return builder.bitcast(builder.fcmp_ordered(">", v, zero), ir.IntType(8))

    return types.uint8(x, y, i), codegen


@intrinsic
def _unpack_select8(typingctx, dy, bits, dx, i):
    """dx[i+k] = dy[i+k] where bit k of `bits` is set, else 0, for k < 8: one 8-lane load, select
    and store (the caller keeps i + 8 <= size, and dx[i] on a 32-byte boundary if dx is
    streamed)."""
    if not (_is_float_array(dy) and _is_float_array(dx) and dy.dtype == dx.dtype
            and bits == types.uint8 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        dyty, _, dxty, _ = sig.args
        v = _load8(context, builder, dyty, args[0], args[3])
        keep = builder.bitcast(args[1], ir.VectorType(ir.IntType(1), 8))
        dx8 = builder.select(keep, v, ir.Constant(v.type, None))
        _store8(context, builder, dxty, args[2], args[3], dx8)
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


@njit(inline="always", **_DEVICE)
def _stream_split(y, s):
    """Block s of the output y as slices (head, body, tail): the body, written with streaming
    stores, starts at the first 32-byte boundary in s and holds a whole number of _STREAM_GROUP
    elements; head and tail, the rest, are written as usual. An output whose address is not a
    multiple of its element size (a misaligned view of a buffer) gets no body."""
    item = y.itemsize
    addr = _address(y) + s.start * item
    if addr % item == 0:
        h = min(s.start + ((-addr) % _STREAM_ALIGN) // item, s.stop)
    else:
        h = s.stop
    t = h + (s.stop - h) // _STREAM_GROUP * _STREAM_GROUP
    return slice(s.start, h), slice(h, t), slice(t, s.stop)


def _streams(out) -> bool:
    """Whether an output this large is written with streaming stores (STREAM_MIN_BYTES)."""
    return STREAM_MIN_BYTES is not None and out.nbytes >= STREAM_MIN_BYTES


def _run(kernel, parallel, out, *arrays) -> None:
    """Run an op whose (main) output is `out`: streaming through the parallel driver at any size
    when `out` is that large, else serially below SERIAL_MAX elements, else in parallel."""
    if _streams(out):
        parallel(*arrays, True)
    elif out.size < SERIAL_MAX:
        kernel(*arrays)
    else:
        parallel(*arrays, False)


def _out(out, like):
    return np.empty_like(like) if out is None else out


# ---------------------------------------------------------------------------------------------
# Kernels (device code) and their parallel drivers. Bytes: float32 figures; float64 doubles them.
# A driver's `stream` flag: False runs the kernel on each whole block, as it always did; True
# splits each block's output with `_stream_split`, runs the kernel on the three parts (the body
# with a streamed output) and ends the block with a store fence. See "Streaming stores".
# ---------------------------------------------------------------------------------------------

# reads 4 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _relu_kernel(x, y):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        y[i] = zero if v < zero else v           # NaN < 0 is false: NaN stays NaN


@njit(**_PARALLEL)
def _relu_parallel(x, y, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        if stream:
            head, body, tail = _stream_split(y, s)
            _relu_kernel(x[head], y[head])
            _relu_kernel(x[body], _streamed(y[body]))
            _relu_kernel(x[tail], y[tail])
            _store_fence()
        else:
            _relu_kernel(x[s], y[s])


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _relu_grad_kernel(dy, x, dx):
    zero = x.dtype.type(0)
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > zero else zero   # 0 where x <= 0 or x is NaN


@njit(**_PARALLEL)
def _relu_grad_parallel(dy, x, dx, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        if stream:
            head, body, tail = _stream_split(dx, s)
            _relu_grad_kernel(dy[head], x[head], dx[head])
            _relu_grad_kernel(dy[body], x[body], _streamed(dx[body]))
            _relu_grad_kernel(dy[tail], x[tail], dx[tail])
            _store_fence()
        else:
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
def _sigmoid_parallel(x, y, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        if stream:
            head, body, tail = _stream_split(y, s)
            _sigmoid_kernel(x[head], y[head])
            _sigmoid_kernel(x[body], _streamed(y[body]))
            _sigmoid_kernel(x[tail], y[tail])
            _store_fence()
        else:
            _sigmoid_kernel(x[s], y[s])


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _sigmoid_grad_kernel(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        v = y[i]
        dx[i] = dy[i] * v * (one - v)            # left to right, as the reference and PyTorch


@njit(**_PARALLEL)
def _sigmoid_grad_parallel(dy, y, dx, stream):
    for b in prange(_nblocks(y.size)):
        s = _block(b, y.size)
        if stream:
            head, body, tail = _stream_split(dx, s)
            _sigmoid_grad_kernel(dy[head], y[head], dx[head])
            _sigmoid_grad_kernel(dy[body], y[body], _streamed(dx[body]))
            _sigmoid_grad_kernel(dy[tail], y[tail], dx[tail])
            _store_fence()
        else:
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
def _tanh_parallel(x, y, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        if stream:
            head, body, tail = _stream_split(y, s)
            _tanh_kernel(x[head], y[head])
            _tanh_kernel(x[body], _streamed(y[body]))
            _tanh_kernel(x[tail], y[tail])
            _store_fence()
        else:
            _tanh_kernel(x[s], y[s])


# reads 8 B + writes 4 B per element (float32); see bench/roofline.py
@njit(**_DEVICE)
def _tanh_grad_kernel(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        v = y[i]
        dx[i] = dy[i] * (one - v * v)


@njit(**_PARALLEL)
def _tanh_grad_parallel(dy, y, dx, stream):
    for b in prange(_nblocks(y.size)):
        s = _block(b, y.size)
        if stream:
            head, body, tail = _stream_split(dx, s)
            _tanh_grad_kernel(dy[head], y[head], dx[head])
            _tanh_grad_kernel(dy[body], y[body], _streamed(dx[body]))
            _tanh_grad_kernel(dy[tail], y[tail], dx[tail])
            _store_fence()
        else:
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
def _leaky_relu_parallel(x, y, slope, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        if stream:
            head, body, tail = _stream_split(y, s)
            _leaky_relu_kernel(x[head], y[head], slope)
            _leaky_relu_kernel(x[body], _streamed(y[body]), slope)
            _leaky_relu_kernel(x[tail], y[tail], slope)
            _store_fence()
        else:
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
def _leaky_relu_grad_parallel(dy, x, dx, slope, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        if stream:
            head, body, tail = _stream_split(dx, s)
            _leaky_relu_grad_kernel(dy[head], x[head], dx[head], slope)
            _leaky_relu_grad_kernel(dy[body], x[body], _streamed(dx[body]), slope)
            _leaky_relu_grad_kernel(dy[tail], x[tail], dx[tail], slope)
            _store_fence()
        else:
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


# reads 4 B + writes 4.125 B per element (float32: y and 1 bit of mask); see bench/roofline.py
@njit(**_DEVICE)
def _relu_mask_streamed_kernel(x, y, mask):
    """_relu_mask_kernel with y split by `_stream_split`: element by element in the head and
    tail, and in the body 8 elements per streaming 8-lane store on y's 32-byte boundaries. Those
    groups start `shift` elements into a mask byte: each group's 8 bits complete the current byte
    and begin the next. x, y: a block whose start is a multiple of 8 elements; mask: its bytes."""
    head, body, tail = _stream_split(y, slice(0, x.size))
    zero = x.dtype.type(0)
    shift = body.start & 7                       # = head.stop when there is a body (head < 8)
    acc = 0                                      # bits of the byte in progress, below `shift`
    for i in range(head.stop):
        v = x[i]
        y[i] = zero if v < zero else v
        if v > zero:
            acc |= 1 << (i & 7)
        if i & 7 == 7:                           # only when there is no body
            mask[i >> 3] = acc
            acc = 0
    xb, out, mb = x[body], _streamed(y[body]), mask[body.start >> 3:]
    for k in range((body.stop - body.start) // 8):  # group k: 8 elements from bit `shift` of mb[k]
        bits = np.int64(_relu_pack8(xb, out, 8 * k))
        mb[k] = (acc | (bits << shift)) & 255
        acc = bits >> (8 - shift)
    for i in range(tail.start, tail.stop):
        v = x[i]
        y[i] = zero if v < zero else v
        if v > zero:
            acc |= 1 << (i & 7)
        if i & 7 == 7:
            mask[i >> 3] = acc
            acc = 0
    if x.size & 7:                               # the last, partial byte (last block only)
        mask[x.size >> 3] = acc


@njit(**_PARALLEL)
def _relu_mask_parallel(x, y, mask, stream):
    for b in prange(_nblocks(x.size)):
        s = _block(b, x.size)
        m = slice(s.start // 8, (s.stop + 7) // 8)
        if stream:
            _relu_mask_streamed_kernel(x[s], y[s], mask[m])
            _store_fence()
        else:
            _relu_mask_kernel(x[s], y[s], mask[m])


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


# reads 4.125 B + writes 4 B per element (float32: dy and 1 bit of mask); see bench/roofline.py
@njit(**_DEVICE)
def _relu_grad_mask_streamed_kernel(dy, mask, dx):
    """_relu_grad_mask_kernel with dx split by `_stream_split`: element by element in the head
    and tail, and in the body 8 elements per streaming 8-lane store on dx's 32-byte boundaries.
    Those need not be whole mask bytes: each group takes its 8 bits from two bytes at once.
    dy, dx: a block whose start is a multiple of 8 elements; mask: its bytes."""
    head, body, tail = _stream_split(dx, slice(0, dx.size))
    zero = dy.dtype.type(0)
    for i in range(head.stop):
        dx[i] = dy[i] if (mask[i >> 3] >> (i & 7)) & 1 else zero
    shift = body.start & 7
    dyb, out, mb = dy[body], _streamed(dx[body]), mask[body.start >> 3:]
    if shift == 0:                               # group k: byte mb[k]
        for k in range((body.stop - body.start) // 8):
            _unpack_select8(dyb, mb[k], out, 8 * k)
    else:                                        # group k: the top of mb[k], the bottom of mb[k+1]
        for k in range((body.stop - body.start) // 8):
            pair = mb[k] | (mb[k + 1] << 8)
            _unpack_select8(dyb, np.uint8((pair >> shift) & 255), out, 8 * k)
    for i in range(tail.start, tail.stop):
        dx[i] = dy[i] if (mask[i >> 3] >> (i & 7)) & 1 else zero


@njit(**_PARALLEL)
def _relu_grad_mask_parallel(dy, mask, dx, stream):
    for b in prange(_nblocks(dy.size)):
        s = _block(b, dy.size)
        m = slice(s.start // 8, (s.stop + 7) // 8)
        if stream:
            _relu_grad_mask_streamed_kernel(dy[s], mask[m], dx[s])
            _store_fence()
        else:
            _relu_grad_mask_kernel(dy[s], mask[m], dx[s])


# reads 4 B + writes 4 B per element (float32): the CPU peak probe of bench/roofline.py, not an op
@njit(**_DEVICE)
def _copy_kernel(x, y):
    for i in range(x.size):
        y[i] = x[i]


@njit(**_PARALLEL)
def _copy_parallel(x, y):
    for b in prange(_nblocks(x.size)):
        head, body, tail = _stream_split(y, _block(b, x.size))
        _copy_kernel(x[head], y[head])
        _copy_kernel(x[body], _streamed(y[body]))
        _copy_kernel(x[tail], y[tail])
        _store_fence()


def stream_copy(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[:] = src for 1-D C-contiguous float32 or float64 arrays, at any size, on every thread
    and with the kernels' streaming stores: the bandwidth a streaming kernel can reach."""
    _copy_parallel(src, dst)


# ---------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------

@register("relu", "numba_cpu")
def relu(x, out=None):
    y = _out(out, x)
    _run(_relu_kernel, _relu_parallel, y, x.ravel(), y.ravel())
    return y


@register("relu_grad", "numba_cpu")
def relu_grad(dy, x, out=None):
    dx = _out(out, dy)
    _run(_relu_grad_kernel, _relu_grad_parallel, dx, dy.ravel(), x.ravel(), dx.ravel())
    return dx


@register("sigmoid", "numba_cpu")
def sigmoid(x, out=None):
    y = _out(out, x)
    _run(_sigmoid_kernel, _sigmoid_parallel, y, x.ravel(), y.ravel())
    return y


@register("sigmoid_grad", "numba_cpu")
def sigmoid_grad(dy, y, out=None):
    dx = _out(out, dy)
    _run(_sigmoid_grad_kernel, _sigmoid_grad_parallel, dx, dy.ravel(), y.ravel(), dx.ravel())
    return dx


@register("tanh", "numba_cpu")
def tanh(x, out=None):
    y = _out(out, x)
    _run(_tanh_kernel, _tanh_parallel, y, x.ravel(), y.ravel())
    return y


@register("tanh_grad", "numba_cpu")
def tanh_grad(dy, y, out=None):
    dx = _out(out, dy)
    _run(_tanh_grad_kernel, _tanh_grad_parallel, dx, dy.ravel(), y.ravel(), dx.ravel())
    return dx


@register("leaky_relu", "numba_cpu")
def leaky_relu(x, out=None, slope=LEAKY_SLOPE):
    y = _out(out, x)
    _run(_leaky_relu_kernel, _leaky_relu_parallel, y, x.ravel(), y.ravel(), float(slope))
    return y


@register("leaky_relu_grad", "numba_cpu")
def leaky_relu_grad(dy, x, out=None, slope=LEAKY_SLOPE):
    dx = _out(out, dy)
    _run(_leaky_relu_grad_kernel, _leaky_relu_grad_parallel, dx,
         dy.ravel(), x.ravel(), dx.ravel(), float(slope))
    return dx


@register("relu_mask", "numba_cpu")
def relu_mask(x, out=None):
    if out is None:
        y, mask = np.empty_like(x), np.empty(mask_nbytes(x.size), np.uint8)
    else:
        y, mask = out
    _run(_relu_mask_kernel, _relu_mask_parallel, y, x.ravel(), y.ravel(), mask)
    return y, mask


@register("relu_grad_mask", "numba_cpu")
def relu_grad_mask(dy, mask, out=None):
    dx = _out(out, dy)
    _run(_relu_grad_mask_kernel, _relu_grad_mask_parallel, dx, dy.ravel(), mask, dx.ravel())
    return dx
