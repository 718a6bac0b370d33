"""numba_cpu's ops: each elementwise op is one scalar function, run by the driver of its family
(streaming.py); the two packed-mask ops are block kernels with 8-lane vector code.

`FAMILIES` maps each op id (and `copy`, the CPU peak probe's copy) to its compiled `Family`. What
each op reads and writes per element is bench/measure/roofline.py's `traffic`, the one place it is stated.
An elementwise op `f(*elements, p)` returns the output element from its inputs' elements and the
op's scalar parameter p (leaky ReLU's slope; 0.0 and unused by the others); constants go through
`like` so that one expression serves float32 and float64. Adding an op: a function here and its
line in `FAMILIES`.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

from kernels.backends.numba_cpu.math import exp_neg, exp_neg_gradual, exp_neg_scaled, fma, like, tanh_pos
from kernels.backends.numba_cpu.streaming import align, elementwise, masked, store, stream_split, streamed
from kernels.ops.elementwise import GELU_C1, GELU_C2

_GELU_3C2 = 3.0 * GELU_C2

# --- elementwise ops -----------------------------------------------------------------------------


@register_jitable
def _relu(x, p):
    zero = like(x, 0.0)
    return zero if x < zero else x               # NaN < 0 is false: NaN stays NaN


@register_jitable
def _zero_from(v):
    """+0.0 in v's type, computed from v: |v*0|, or 0 where that is NaN (v not finite).

    For an op whose result is either an input element or zero: a zero computed from the element
    keeps the element's load unconditional. With a constant zero in one arm, LLVM sinks the load
    into the other arm and the x86 backend folds load and select into one zero-masking load
    (vmovups {k}{z}), which waits for the compare before it can fetch: relu_grad ran 5 % (in the
    VM's faster memory phases 36 %) slower than leaky_relu_grad, which moves the same bytes."""
    zero = like(v, 0.0)
    k = v * zero                                 # +-0, or NaN where v is not finite
    return abs(zero if k != k else k)            # (v*0 + 0 instead of abs: 8 % slower, mask spills)


@register_jitable
def _relu_grad(dy, x, p):
    # torch's threshold_backward: dy unless x <= 0, so a NaN x passes dy
    return dy if not (x <= like(x, 0.0)) else _zero_from(dy)


@register_jitable
def _sigmoid(x, p):
    # exp(-x) overflows to inf for x < -88.7 (float32): 1/inf is the exact 0; for x > 17 it is
    # below epsilon and 1/(1 + e) rounds to 1. NaN propagates.
    one = like(x, 1.0)
    return one / (one + exp_neg(x))


@register_jitable
def _sigmoid_grad(dy, y, p):
    one = like(y, 1.0)
    return dy * y * (one - y)                    # left to right, as the reference and PyTorch


@register_jitable
def _tanh(x, p):
    # tanh(20) is 1 to the last bit in float64; NaN stays NaN; the sign of x (-0 included) goes on last
    return math.copysign(tanh_pos(min(abs(x), like(x, 20.0))), x)


@register_jitable
def _tanh_grad(dy, y, p):
    return dy * (like(y, 1.0) - y * y)


@register_jitable
def _leaky_relu(x, slope):
    s = like(x, slope)
    if like(x, 0.0) < s <= like(x, 1.0):
        # the same bits as the select below, NaN, inf and -0 included (s * x is finite where x
        # is, and x >= s * x exactly when x >= 0), in one instruction less: the select's compare
        # and masked move made leaky_relu 13 % slower than relu beyond the cache in this VM's
        # slower phases; the max 7 %. (Not at s = 0: there 0 * -inf is NaN, max(-inf, NaN) not.)
        return max(x, s * x)
    return x if x > like(x, 0.0) else s * x                    # NaN: slope * NaN is NaN


@register_jitable
def _leaky_relu_grad(dy, x, slope):
    return dy if x > like(x, 0.0) else like(x, slope) * dy


@register_jitable
def _sigmoid_parts(z, zl):
    """(sigmoid(z + zl), 1 - sigmoid(z + zl)) for |zl| <= ulp(z) (0 where z is all there is), each
    without cancellation or overflow: exp of -|z| only, with its subnormal results (x * sigmoid(x)
    at x = -89 is a normal -2e-37), times 1 - sign(z) zl. Selects, no branch."""
    one = like(z, 1.0)
    e = exp_neg_gradual(abs(z))
    e = e - e * (math.copysign(one, z) * zl)   # exp(-|z + zl|) = e exp(-sign(z) zl)
    r = one / (one + e)
    er = e * r
    pos = z >= like(z, 0.0)                      # NaN: false, and both parts are NaN anyway
    return (r if pos else er), (er if pos else r)


@register_jitable
def _x_sigmoid(x, z, zl):
    """x * sigmoid(z + zl) (|zl| <= ulp(z)), within a few ulp wherever the product is a normal
    number, also where sigmoid(z) is not (z < -87.3 in float32): there exp(-|z|) is kept scaled
    by 2**S and the product scaled back, one rounding. +inf at z = +inf; NaN at x = -inf (-inf * 0),
    as PyTorch's x / (1 + exp(-x))."""
    one = like(z, 1.0)
    big, scale = exp_neg_scaled(abs(z))
    big = big - big * (math.copysign(one, z) * zl)
    r = one / (one + big * scale)
    return x * r if z >= like(z, 0.0) else (x * (big * r)) * scale


@register_jitable
def _silu(x, p):
    return _x_sigmoid(x, x, like(x, 0.0))


@register_jitable
def _silu_grad(dy, x, p):
    # aten's silu_backward: dy * s * (1 + x * (1 - s)); NaN at x = +-inf as PyTorch's
    s, c = _sigmoid_parts(x, like(x, 0.0))
    return dy * (s * (like(x, 1.0) + x * c))


@register_jitable
def _gelu_z(x):
    """x*x, and z = 2u = x (C1 + C2 x^2) as z + zl (GELU's 1 + tanh(u) is 2 sigmoid(z)): gelu(x)
    ~ x exp(z) for z << 0 carries z's absolute error, up to |z| (87 in float32, 708 in float64)
    times its relative one (float32's own three roundings: 1.1e-5 near x = -9.5; the gate allows
    1e-5). So z is computed in float64 with its roundings kept (FMA: x^2 and x t exactly, t = C1 +
    C2 x^2 as a sum of two), and zl, what z rounded to x's type lost, kept to +-1 where z is not
    finite. x*x rounded once is x's own x*x (inf where it overflows, as PyTorch's)."""
    w = np.float64(x)
    w2 = w * w
    w2l = fma(w, w, -w2)
    q = GELU_C2 * w2
    ql = fma(np.float64(GELU_C2), w2, -q) + GELU_C2 * w2l
    t = GELU_C1 + q
    tb = t - GELU_C1
    tl = ((GELU_C1 - (t - tb)) + (q - tb)) + ql
    z = w * t
    zl = fma(w, t, -z) + w * tl
    zh = like(x, z)
    return like(x, w2), zh, like(x, min(1.0, max(-1.0, (z - np.float64(zh)) + zl)))


@register_jitable
def _gelu(x, p):
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation where tanh(u) is near -1
    _, z, zl = _gelu_z(x)
    return _x_sigmoid(x, z, zl)


@register_jitable
def _gelu_grad(dy, x, p):
    # aten's gelu_backward(approximate="tanh") = dy s (1 + x (1 - s) z'): NaN where x*x overflows,
    # (x * c) * z' = 0 * inf, as PyTorch's. Its error counts against |dy|: z from float64 without
    # _gelu_z's compensation (with it LLVM no longer vectorised the float64 loop).
    w = np.float64(x)
    w2 = w * w
    z64 = w * (GELU_C1 + GELU_C2 * w2)
    x2, z = like(x, w2), like(x, z64)
    zl = like(x, min(1.0, max(-1.0, z64 - np.float64(z))))
    s, c = _sigmoid_parts(z, zl)
    return dy * (s * (like(x, 1.0) + (x * c) * (like(x, GELU_C1) + like(x, _GELU_3C2) * x2)))


@register_jitable
def _copy(x, p):
    return x


# --- the packed mask: 8 elements per byte, bit k of byte j is element 8*j + k (little bit order) ---

def _vector_ptr(context, builder, arrty, arr, index, vty):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def _load(context, builder, arrty, arr, index, lanes):
    """The lanes arr[index:index+lanes], as an LLVM vector (no alignment assumed)."""
    vty = ir.VectorType(context.get_data_type(arrty.dtype), lanes)
    return builder.load(_vector_ptr(context, builder, arrty, arr, index, vty), align=align(arrty))


def _store(context, builder, arrty, arr, index, value):
    """arr[index:index+lanes] = value, through `store`: non-temporal into a streamed array, where
    the caller keeps arr[index] on a _STREAM_ALIGN boundary."""
    store(builder, value, _vector_ptr(context, builder, arrty, arr, index, value.type), arrty)


def _is_float_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)


def _line_lanes(arrty) -> int:
    """Elements of arrty's dtype in a 64-byte cache line: 16 float32, 8 float64."""
    return 64 // (arrty.dtype.bitwidth // 8)


def line_lanes(a):
    """Elements of a's dtype in a 64-byte line, as a compile-time constant in njit code (numba
    reads `a.itemsize` from the array at run time, which keeps LLVM from unrolling by it)."""
    raise TypeError("line_lanes is device code: call it from numba.njit functions")


@overload(line_lanes, inline="always")
def _line_lanes_overload(a):
    if _is_float_array(a):
        lanes = _line_lanes(a)
        return lambda a: lanes
    return None


def _relu_pack(context, builder, sig, args, lanes):
    """y[i:i+lanes] = relu(x[i:i+lanes]); returns the bits (x[i+k] > 0) as an int64. One vector
    load, compare, select, store and a movemask: no branch, no bounds check (the caller keeps
    i + lanes <= size; and y[i] on a _STREAM_ALIGN boundary if y is streamed)."""
    xty, yty, _ = sig.args
    v = _load(context, builder, xty, args[0], args[2], lanes)
    zero = ir.Constant(v.type, None)
    _store(context, builder, yty, args[1], args[2],
           builder.select(builder.fcmp_ordered("<", v, zero), zero, v))      # NaN stays NaN
    bits = builder.bitcast(builder.fcmp_ordered(">", v, zero), ir.IntType(lanes))
    return builder.zext(bits, ir.IntType(64))


def _relu_pack_typer(x, y, i):
    if (_is_float_array(x) and _is_float_array(y) and x.dtype == y.dtype
            and isinstance(i, types.Integer)):
        return types.int64(x, y, i)
    return None


@intrinsic
def _relu_pack8(typingctx, x, y, i):
    """`_relu_pack` of 8 lanes: y[i:i+8] = relu(x[i:i+8]), the byte of bits (x[i+k] > 0)."""
    return _relu_pack_typer(x, y, i), lambda c, b, sig, args: _relu_pack(c, b, sig, args, 8)


@intrinsic
def _relu_pack_line(typingctx, x, y, i):
    """`_relu_pack` of a 64-byte line (16 float32 or 8 float64 lanes): a whole line per
    non-temporal store into a streamed y."""
    sig = _relu_pack_typer(x, y, i)
    if sig is None:
        return None
    lanes = _line_lanes(y)
    return sig, lambda c, b, sig, args: _relu_pack(c, b, sig, args, lanes)


def _select_store(context, builder, sig, args, lanes):
    """dx[i+k] = dy[i+k] where bit k of `bits` is set, else +0, for k < lanes: one vector load,
    select and store, the zero computed from the loaded lanes as `_zero_from` does (so that the
    load stays a plain load, issued before the bits are known)."""
    dyty, _, dxty, _ = sig.args
    dy, bits, dx, i = args
    vty = ir.VectorType(context.get_data_type(dyty.dtype), lanes)
    v = _load(context, builder, dyty, dy, i, lanes)
    zero = ir.Constant(vty, None)
    k = builder.fadd(builder.fmul(v, zero), zero)                   # +0, or NaN where v is not finite
    kept = builder.select(builder.fcmp_unordered("uno", k, k), zero, k)
    keep = builder.bitcast(builder.trunc(bits, ir.IntType(lanes)), ir.VectorType(ir.IntType(1), lanes))
    store(builder, builder.select(keep, v, kept), _vector_ptr(context, builder, dxty, dx, i, vty), dxty)
    return context.get_dummy_value()


def _unpack_select_typer(dy, bits, dx, i):
    if (_is_float_array(dy) and _is_float_array(dx) and dy.dtype == dx.dtype
            and isinstance(bits, types.Integer) and isinstance(i, types.Integer)):
        return types.none(dy, bits, dx, i)
    return None


@intrinsic
def _unpack_select8(typingctx, dy, bits, dx, i):
    """dx[i+k] = dy[i+k] where bit k of `bits` is set, else 0, for k < 8 (the caller keeps
    i + 8 <= size, and dx[i] on a _STREAM_ALIGN boundary if dx is streamed)."""
    sig = _unpack_select_typer(dy, bits, dx, i)
    return sig, lambda context, builder, sig, args: _select_store(context, builder, sig, args, 8)


@intrinsic
def _unpack_select_line(typingctx, dy, bits, dx, i):
    """_unpack_select8 for the 64 bytes of a cache line: 16 float32 or 8 float64 lanes, bit k
    of `bits` for lane k (the caller keeps i + lanes <= size, and dx[i] on a _STREAM_ALIGN
    boundary if dx is streamed): a whole line per non-temporal store."""
    sig = _unpack_select_typer(dy, bits, dx, i)
    if sig is None:
        return None
    lanes = _line_lanes(dy)
    return sig, lambda context, builder, sig, args: _select_store(context, builder, sig, args, lanes)


@register_jitable
def _line_bits(mb, first, per, shift):
    """The mask bits of a 64-byte line of values: its `per` bytes (2 float32, 1 float64) from
    mb[first], and the next one where the line starts `shift` bits into its first byte, shifted
    down by `shift`. Read one by one, not in a loop: over 2 or 3 bytes with a run-time count
    that loop cost 18 cycles a line, and with a constant count LLVM vectorised it into a masked
    byte load."""
    bits = np.int64(mb[first])
    if per == 2:
        bits |= np.int64(mb[first + 1]) << 8
    if shift:
        bits |= np.int64(mb[first + per]) << (8 * per)
    return bits >> shift


@register_jitable
def _put_line_bits(mb, first, per, bits):
    """mb[first:first + per] = the low 8 * per bits of `bits`, a byte each (per: 2 or 1)."""
    mb[first] = bits & 255
    if per == 2:
        mb[first + 1] = bits >> 8 & 255


@register_jitable
def _relu_mask_kernel(x, mask, y):
    """y = relu(x) and the mask of x > 0. x, y: a block whose start is a multiple of 8 elements;
    mask: its bytes. A 64-byte line at a time (16 float32 lanes: 2 mask bytes; 8 float64: 1),
    then whole bytes, then the last partial byte: 8-lane steps alone left half of an AVX-512
    register unused (in cache the mask kernels ran 1.3x slower than sigmoid_grad)."""
    n = x.size
    full = n // 8
    lanes = line_lanes(x)
    per = lanes // 8                             # mask bytes per line
    lines = n // lanes
    for k in range(lines):
        _put_line_bits(mask, per * k, per, _relu_pack_line(x, y, lanes * k))
    for j in range(lines * per, full):
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


@register_jitable
def _relu_mask_streamed_kernel(x, mask, y):
    """_relu_mask_kernel with y split by `stream_split`: element by element in the head and
    tail, and in the body a cache line (64 bytes: 16 float32 or 8 float64 elements) per streaming
    store on y's _STREAM_ALIGN boundaries. Those lines start `shift` elements into a mask byte:
    each line's bits complete the byte in progress, fill whole bytes and begin the next.
    x, y: a block whose start is a multiple of 8 elements; mask: its bytes."""
    head, body, tail = stream_split(y, slice(0, x.size))
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
    lanes = line_lanes(x)                        # a line: a whole number of mask bytes
    per = lanes // 8
    xb, out, mb = x[body], streamed(y[body]), mask[body.start >> 3:]
    for k in range((body.stop - body.start) // lanes):   # line k: from bit `shift` of its bytes
        bits = _relu_pack_line(xb, out, lanes * k)
        _put_line_bits(mb, k * per, per, acc | (bits << shift))
        acc = bits >> (lanes - shift)
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


@register_jitable
def _relu_grad_mask_kernel(dy, mask, dx):
    """dx = dy where the mask's bit is set, else 0. dy, dx: a block whose start is a multiple of
    8 elements; mask: its bytes."""
    n = dy.size
    full = n // 8
    lanes = line_lanes(dy)                       # a line at a time, as in _relu_mask_kernel
    per = lanes // 8
    lines = n // lanes
    for k in range(lines):
        _unpack_select_line(dy, _line_bits(mask, per * k, per, 0), dx, lanes * k)
    for j in range(lines * per, full):
        _unpack_select8(dy, mask[j], dx, 8 * j)
    if full * 8 < n:
        zero = dy.dtype.type(0)
        bits = mask[full]
        for i in range(full * 8, n):
            dx[i] = dy[i] if (bits >> (i - full * 8)) & 1 else zero


@register_jitable
def _relu_grad_mask_streamed_kernel(dy, mask, dx):
    """_relu_grad_mask_kernel with dx split by `stream_split`: element by element in the head
    and tail, and in the body a cache line (64 bytes: 16 float32 or 8 float64 elements) per
    streaming store on dx's _STREAM_ALIGN boundaries. A line's bits need not start on a mask
    byte: each line takes them from the bytes it overlaps, shifted.
    dy, dx: a block whose start is a multiple of 8 elements; mask: its bytes."""
    head, body, tail = stream_split(dx, slice(0, dx.size))
    zero = dy.dtype.type(0)
    for i in range(head.stop):
        dx[i] = dy[i] if (mask[i >> 3] >> (i & 7)) & 1 else zero
    shift = body.start & 7
    lanes = line_lanes(dy)                       # a whole number of mask bytes: 16 or 8
    per = lanes // 8
    dyb, out, mb = dy[body], streamed(dx[body]), mask[body.start >> 3:]
    for k in range((body.stop - body.start) // lanes):
        _unpack_select_line(dyb, _line_bits(mb, k * per, per, shift), out, lanes * k)
    for i in range(tail.start, tail.stop):
        dx[i] = dy[i] if (mask[i >> 3] >> (i & 7)) & 1 else zero


FAMILIES = {
    "relu": elementwise(_relu),
    "relu_grad": elementwise(_relu_grad),
    "sigmoid": elementwise(_sigmoid),
    "sigmoid_grad": elementwise(_sigmoid_grad),
    "tanh": elementwise(_tanh),
    "tanh_grad": elementwise(_tanh_grad),
    "leaky_relu": elementwise(_leaky_relu),
    "leaky_relu_grad": elementwise(_leaky_relu_grad),
    "silu": elementwise(_silu),
    "silu_grad": elementwise(_silu_grad),
    "gelu": elementwise(_gelu),
    "gelu_grad": elementwise(_gelu_grad),
    "relu_mask": masked(_relu_mask_kernel, _relu_mask_streamed_kernel),
    "relu_grad_mask": masked(_relu_grad_mask_kernel, _relu_grad_mask_streamed_kernel),
    "copy": elementwise(_copy),
}
