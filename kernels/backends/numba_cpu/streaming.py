"""How numba_cpu's kernels write memory and split work: streaming (non-temporal) stores, parallel
blocks, and the drivers that run an op over them.

- `streamed(y)` retypes an output block so that `y[i] = v` is a non-temporal store; `store` is the
  one place that emits an output store in LLVM code (the mask kernels' 8-lane stores use it).
- `stream_split` cuts a block into the parts written with ordinary and with streaming stores;
  `store_fence` orders them.
- `elementwise(op)` and `masked(kernel, streamed_kernel)` build an op's serial kernel and its
  parallel driver once for every op of a family: an op is a scalar function, not a copy of a loop.
"""

from __future__ import annotations

import operator
import re
from typing import NamedTuple

from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, prange, types
from numba.core.datamodel.models import ArrayModel
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, lower_builtin, overload, register_jitable, register_model

from kernels.backends.numba_cpu.jit import DEVICE, PARALLEL, X86_64

# ---------------------------------------------------------------------------------------------
# Streaming stores: non-temporal stores for outputs far larger than the cache
# ---------------------------------------------------------------------------------------------
#
# `streamed(y)` gives a 1-D output block the numba type `StreamedArray`: the same array (same
# data model, no copy) on which `y[i] = v`, and the 8-lane store of `_unpack_select8`, lower to a
# store with LLVM's !nontemporal metadata. `store` is the one place that emits an output store,
# of either kind. A kernel called with a streamed output is a second specialisation of the same
# source, so both paths compute the same bits; only the store instruction differs.
#
# Alignment. x86 has non-temporal stores only for aligned vectors, and LLVM's loop vectorizer
# widens a !nontemporal element store only if the widened store is legal at the element store's
# alignment (LoopVectorizationLegality asks TTI::isLegalNTStore). So an element store into a
# streamed array says `align _STREAM_ALIGN` (a vector store: at most its own size). That is true
# of every store the compiled loop makes: the streamed part of a block starts on such a boundary
# and holds a whole number of
# `_STREAM_GROUP` elements, a multiple of the vector width times the interleave count LLVM picks
# on AVX2 and AVX-512 (at most 16 lanes x 4), so the vector loop covers it exactly and no scalar
# remainder iteration runs. It would not be true of a lone element store, which only the
# vectorizer's fallback for overlapping arrays could make (the registry rejects an `out=` that
# overlaps an input), and x86's scalar stores have no alignment requirement. `streamed(y)`
# requires y's first element on that boundary: `stream_split` gives exactly such blocks.
#
# Ordering. Non-temporal stores are weakly ordered: every block that streamed ends with
# `store_fence` (x86-64: sfence; elsewhere an LLVM seq_cst fence) before its thread reports the
# block done, so the caller sees the whole output.



def _has_avx512() -> bool:
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f"))
    except RuntimeError:                  # llvmlite cannot tell on this host
        return False


# bytes: the streamed part of a block starts on this boundary. A whole cache line where the CPU
# has 64-byte vectors (AVX-512): each non-temporal store then writes a full line, which the write-
# combining buffers send as one (two 32-byte halves of a line cost more; copy and relu here: ~5 %).
_STREAM_ALIGN = 64 if X86_64 and _has_avx512() else 32
_STREAM_GROUP = 64     # elements: the streamed part of a block is a whole number of these


class StreamedArray(types.Array):
    """A 1-D C-contiguous output block, starting on a `_STREAM_ALIGN` boundary, whose stores are
    non-temporal. Made by `streamed` only."""

    def __init__(self, dtype, ndim=1, layout="C", readonly=False, aligned=True):
        super().__init__(dtype, ndim, layout, readonly=readonly, aligned=aligned,
                         name=f"streamed array({dtype}, {ndim}d, {layout})")


register_model(StreamedArray)(ArrayModel)


def store(builder, value, ptr, arrty) -> None:
    """Store `value` (an element or a vector) at `ptr` in an array of numba type `arrty`: a
    non-temporal store into a `StreamedArray` (alignment: see above), else an ordinary one."""
    if isinstance(arrty, StreamedArray):
        vector = isinstance(value.type, ir.VectorType)
        size = value.type.count * arrty.dtype.bitwidth // 8 if vector else _STREAM_ALIGN
        st = builder.store(value, ptr, align=min(_STREAM_ALIGN, size))
        st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
    else:
        builder.store(value, ptr, align=align(arrty))


def align(arrty) -> int:
    """The alignment an access to an element of an array of numba type `arrty` may assume."""
    return arrty.dtype.bitwidth // 8 if arrty.aligned else 1


@intrinsic
def streamed(typingctx, a):
    """`a`, a 1-D C-contiguous float array whose first element is on a `_STREAM_ALIGN` boundary, typed so
    that its stores are non-temporal: the same memory, no copy."""
    if not (isinstance(a, types.Array) and not isinstance(a, StreamedArray) and a.ndim == 1
            and a.layout == "C" and a.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, sig.return_type, args[0])

    return StreamedArray(a.dtype, aligned=a.aligned)(a), codegen


@lower_builtin(operator.setitem, StreamedArray, types.Integer, types.Any)
def _streamed_setitem(context, builder, sig, args):
    """y[i] = v on a streamed array: a negative i counts from the end, as on any array."""
    aty, ity, vty = sig.args
    ary = context.make_array(aty)(context, builder, args[0])
    i = context.cast(builder, args[1], ity, types.intp)
    if ity.signed:
        i = builder.select(builder.icmp_signed("<", i, i.type(0)), builder.add(i, ary.nitems), i)
    store(builder, context.cast(builder, args[2], vty, aty.dtype), builder.gep(ary.data, [i]), aty)
    return context.get_dummy_value()


@intrinsic
def store_fence(typingctx):
    """Every streaming store before it is visible before any store after it."""
    def codegen(context, builder, sig, args):
        if X86_64:
            sfence = builder.module.declare_intrinsic(
                "llvm.x86.sse.sfence", fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(sfence, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def address(typingctx, a):
    """The address of a's data, as an int64."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return types.int64(a), codegen


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------

@njit(inline="always", **DEVICE)
def _block(b, n, block):
    """The slice of block b (of `block` elements) of n elements."""
    lo = b * block
    return slice(lo, min(lo + block, n))


@njit(inline="always", **DEVICE)
def stream_split(y, s):
    """Block s of the output y as slices (head, body, tail): the body, written with streaming
    stores, starts at the first _STREAM_ALIGN boundary in s and holds a whole number of _STREAM_GROUP
    elements; head and tail, the rest, are written as usual. An output whose address is not a
    multiple of its element size (a misaligned view of a buffer) gets no body."""
    item = y.itemsize
    addr = address(y) + s.start * item
    if addr % item == 0:
        h = min(s.start + ((-addr) % _STREAM_ALIGN) // item, s.stop)
    else:
        h = s.stop
    t = h + (s.stop - h) // _STREAM_GROUP * _STREAM_GROUP
    return slice(s.start, h), slice(h, t), slice(t, s.stop)




# ---------------------------------------------------------------------------------------------
# Drivers: one serial kernel and one parallel driver per family of ops, the op a parameter
# ---------------------------------------------------------------------------------------------
#
# Every family takes four arguments (a, b, p, y): inputs, a scalar parameter, and its (main)
# output, a 1-D array. The driver runs the family's
# block function over blocks of `block` elements (a multiple of 64, so that threads never share a
# byte of a packed mask) with `prange`: the ordinary one, or with `stream` the streaming one (which
# splits the block's output with `stream_split` and writes its body with streaming stores),
# followed by a store fence.
#
# The ops and kernels a factory closes over are module-level functions made jitable with
# `register_jitable`: numba keys a cached closure by the pickled contents of its cells, and such a
# function pickles by name, so every process finds the machine code it cached before. A numba
# dispatcher or intrinsic pickles with a fresh id in every process: a closure that held one, or
# called one, would never hit the cache (the inner functions here call only plain ones).
#
# Every function a factory makes is renamed for its op (`_own_name`) before numba sees it. numba
# names a compiled function's symbol by module, qualified name, argument types and a number taken
# from a counter in the compiling process, so the closures of two ops of one family (the same
# `elementwise.<locals>.ordinary`, both with (a, b, p, y) arguments) differ only by that number.
# Compiled in two processes, two ops can take the same number: a third process that loads both
# from the disk cache links one symbol for both, and one op runs the other's code (seen here:
# tanh ran leaky_relu's loop after the cache was filled by two test runs; numba issue 10486 is the
# same collision through fork). With the op in the name no counter can make two ops' symbols meet.


def _own_name(fn, tag: str):
    """`fn` renamed `<factory>.<tag>.<name>` (tag: the op it is made for, as an identifier)."""
    factory = fn.__qualname__.split(".<locals>.")[0]
    fn.__qualname__ = f"{factory}.{tag}.{fn.__name__}"
    return fn


def _tag(fn) -> str:
    """A module-level function's module and name as one identifier: the op a factory's functions
    are made for."""
    return re.sub(r"\W", "_", f"{fn.__module__}.{fn.__qualname__}")


class Family(NamedTuple):
    """A family's compiled entry points: `kernel(a, b, p, y)` on the calling thread, and
    `parallel(stream, block, a, b, p, y)` on every thread."""

    kernel: object
    parallel: object


def _family(tag, ordinary, streaming, cut) -> Family:
    """The entry points of a family of four arguments (a, b, p, y), y its 1-D output, whose
    blocks are computed by `ordinary(a, b, p, y)` or `streaming(a, b, p, y)`, where
    `cut(a, b, p, y, s)` gives the arguments of the elements in slice s; `tag` names the op."""
    def kernel(a, b, p, y):
        ordinary(a, b, p, y)

    def parallel(stream, block, a, b, p, y):
        n = y.size
        for k in prange((n + block - 1) // block):
            part = cut(a, b, p, y, _block(k, n, block))
            if stream:
                streaming(*part)
                store_fence()
            else:
                ordinary(*part)

    return Family(njit(**DEVICE)(_own_name(kernel, tag)), njit(**PARALLEL)(_own_name(parallel, tag)))


def _part(b, s):
    """b[s], or None where b is None (the absent second input of a one-input op)."""
    raise TypeError("_part is device code: call it from numba.njit functions")


@overload(_part, inline="always")
def _part_impl(b, s):
    if isinstance(b, types.NoneType):
        return lambda b, s: None
    return lambda b, s: b[s]


def _elements(a, b, i):
    """(a[i],) where b is None, else (a[i], b[i]): the elements an op reads."""
    raise TypeError("_elements is device code: call it from numba.njit functions")


@overload(_elements, inline="always")
def _elements_impl(a, b, i):
    if isinstance(b, types.NoneType):
        return lambda a, b, i: (a[i],)
    return lambda a, b, i: (a[i], b[i])


@register_jitable
def _stream_parts(y):
    """y's (head, body, tail) by `stream_split`, and y[body] streamed."""
    head, body, tail = stream_split(y, slice(0, y.size))
    return head, body, tail, streamed(y[body])


@register_jitable
def _cut(a, b, p, y, s):
    return a[s], _part(b, s), p, y[s]


def elementwise(op) -> Family:
    """The entry points of `y = op(a, p)` or `y = op(a, b, p)` element by element: `op(*elements,
    p)` is a module-level function made jitable with `register_jitable`; a and b (None for a
    one-input op) are 1-D inputs the size of the 1-D output y, p the op's scalar parameter (0.0
    for ops without one)."""
    tag = _tag(op)

    def ordinary(a, b, p, y):
        for i in range(y.size):
            y[i] = op(*_elements(a, b, i), p)

    def streaming(a, b, p, y):
        head, body, tail, out = _stream_parts(y)
        ordinary(a[head], _part(b, head), p, y[head])
        ordinary(a[body], _part(b, body), p, out)
        ordinary(a[tail], _part(b, tail), p, y[tail])

    ordinary = register_jitable(_own_name(ordinary, tag))
    return _family(tag, ordinary, register_jitable(_own_name(streaming, tag)), _cut)


def masked(ordinary, streaming) -> Family:
    """The entry points of an op with a packed mask, 8 elements per byte, called with arguments
    (a, mask, p, y), p unused: `ordinary(a, mask, y)` computes a block of the 1-D output y from the
    1-D input a and the block's mask bytes (the block starts on a whole byte), `streaming(a, mask,
    y)` the same with y split by `stream_split`. Both are module-level functions made jitable
    with `register_jitable`."""
    tag = _tag(ordinary)

    def block(a, mask, p, y):
        ordinary(a, mask, y)

    def streamed_block(a, mask, p, y):
        streaming(a, mask, y)

    return _family(tag, register_jitable(_own_name(block, tag)), register_jitable(_own_name(streamed_block, tag)),
                   _cut_masked)


@register_jitable
def _cut_masked(a, mask, p, y, s):
    return a[s], mask[s.start // 8:(s.stop + 7) // 8], p, y[s]
