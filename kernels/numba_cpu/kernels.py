"""numba_cpu's ops: each elementwise op is one scalar function, run by the driver of its family
(streaming.py); the two packed-mask ops are block kernels with 8-lane vector code.

`FAMILIES` maps each op id (and `copy`, the CPU peak probe's copy) to its compiled `Family`. What
each op reads and writes per element is bench/roofline.py's `traffic`, the one place it is stated.
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
from numba.extending import intrinsic, register_jitable

from .math import exp_neg, like, tanh_pos
from .streaming import align, elementwise, masked, store, stream_split, streamed

# --- elementwise ops -----------------------------------------------------------------------------


@register_jitable
def _relu(x, p):
    zero = like(x, 0.0)
    return zero if x < zero else x               # NaN < 0 is false: NaN stays NaN


@register_jitable
def _relu_grad(dy, x, p):
    zero = like(x, 0.0)
    return zero if x <= zero else dy             # torch's threshold_backward: a NaN x passes dy


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
    return x if x > like(x, 0.0) else like(x, slope) * x      # NaN: slope * NaN is NaN


@register_jitable
def _leaky_relu_grad(dy, x, slope):
    return dy if x > like(x, 0.0) else like(x, slope) * dy


@register_jitable
def _copy(x, p):
    return x


# --- the packed mask: 8 elements per byte, bit k of byte j is element 8*j + k (little bit order) ---

def _vector_ptr(context, builder, arrty, arr, index, vty):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def _load8(context, builder, arrty, arr, index):
    """The 8 lanes arr[index:index+8], as an LLVM vector (no alignment assumed)."""
    vty = ir.VectorType(context.get_data_type(arrty.dtype), 8)
    return builder.load(_vector_ptr(context, builder, arrty, arr, index, vty), align=align(arrty))


def _store8(context, builder, arrty, arr, index, value):
    """arr[index:index+8] = value, through `store`: non-temporal into a streamed array, where the
    caller keeps arr[index] on a _STREAM_ALIGN boundary."""
    store(builder, value, _vector_ptr(context, builder, arrty, arr, index, value.type), arrty)


def _is_float_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)


@intrinsic
def _relu_pack8(typingctx, x, y, i):
    """y[i:i+8] = relu(x[i:i+8]); returns the byte of bits (x[i+k] > 0). One 8-lane load, compare,
    max, store and a movemask: no branch, no bounds check (the caller keeps i + 8 <= size; and
    y[i] on a _STREAM_ALIGN boundary if y is streamed)."""
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
    and store (the caller keeps i + 8 <= size, and dx[i] on a _STREAM_ALIGN boundary if dx is
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


@register_jitable
def _relu_mask_kernel(x, mask, y):
    """y = relu(x) and the mask of x > 0. x, y: a block whose start is a multiple of 8 elements;
    mask: its bytes."""
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


@register_jitable
def _relu_mask_streamed_kernel(x, mask, y):
    """_relu_mask_kernel with y split by `stream_split`: element by element in the head and
    tail, and in the body 8 elements per streaming 8-lane store on y's _STREAM_ALIGN boundaries. Those
    groups start `shift` elements into a mask byte: each group's 8 bits complete the current byte
    and begin the next. x, y: a block whose start is a multiple of 8 elements; mask: its bytes."""
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
    xb, out, mb = x[body], streamed(y[body]), mask[body.start >> 3:]
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


@register_jitable
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


@register_jitable
def _relu_grad_mask_streamed_kernel(dy, mask, dx):
    """_relu_grad_mask_kernel with dx split by `stream_split`: element by element in the head
    and tail, and in the body 8 elements per streaming 8-lane store on dx's _STREAM_ALIGN boundaries.
    Those need not be whole mask bytes: each group takes its 8 bits from two bytes at once.
    dy, dx: a block whose start is a multiple of 8 elements; mask: its bytes."""
    head, body, tail = stream_split(dx, slice(0, dx.size))
    zero = dy.dtype.type(0)
    for i in range(head.stop):
        dx[i] = dy[i] if (mask[i >> 3] >> (i & 7)) & 1 else zero
    shift = body.start & 7
    dyb, out, mb = dy[body], streamed(dx[body]), mask[body.start >> 3:]
    if shift == 0:                               # group k: byte mb[k]
        for k in range((body.stop - body.start) // 8):
            _unpack_select8(dyb, mb[k], out, 8 * k)
    else:                                        # group k: the top of mb[k], the bottom of mb[k+1]
        for k in range((body.stop - body.start) // 8):
            pair = mb[k] | (mb[k + 1] << 8)
            _unpack_select8(dyb, np.uint8((pair >> shift) & 255), out, 8 * k)
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
    "relu_mask": masked(_relu_mask_kernel, _relu_mask_streamed_kernel),
    "relu_grad_mask": masked(_relu_grad_mask_kernel, _relu_grad_mask_streamed_kernel),
    "copy": elementwise(_copy),
}
