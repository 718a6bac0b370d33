"""Fused, parallel CPU kernels with numba.njit: the numba_cpu backend (float32 and float64).

Every op is one pass over memory: each input read once, each output written once, nothing in
between. The package, bottom to top:

- jit.py: the njit options, and a disk cache that recompiles when any file of the package changes.
- math.py: exp and expm1 of our own, branch-free, so that the loops calling them vectorise.
- streaming.py: streaming (non-temporal) stores, parallel blocks, and the drivers that run an op
  over them, one per family (`elementwise`, `masked`).
- kernels.py: the ops, each a scalar function (or, for the packed mask, a block kernel), and
  `FAMILIES`, their compiled entry points.
- here: the backend record and the launchers, generated from kernels.reference.OPS.

Launchers `<op>(..., out=None, **params)`: the registry has already checked dtypes and shapes and
made the inputs C-contiguous; the launcher allocates the output when `out` is None and runs the
kernel on the flat views, serially below `SERIAL_MAX` elements (where waking threads costs more
than the work), else in parallel blocks of `BLOCK` elements.

Streaming stores. An output of at least `STREAM_MIN_BYTES` (far larger than the last-level cache)
is written with non-temporal stores (x86-64: vmovntps/vmovntpd): the line goes to memory without
first being read for ownership, so a relu moves 8 bytes per element instead of 12. Below that size
the ordinary stores stay, and leave the output in cache for whoever reads it next. The kernel's
source is the same in both paths, so its values are bit for bit the same. The threshold is read at
each call, so tests can lower it; `stream_copy` is the same path as a copy, the CPU peak probe of
bench/roofline.py.

Kernels compile on the first call per dtype (never at import) and are cached on disk. float16 is
not supported (the registry raises TypeError): numba has no float16 arithmetic on the CPU.
"""

from __future__ import annotations

import numpy as np

from ..machine import last_level_cache_bytes
from ..reference import ELEMENTWISE_OPS, OPS, mask_nbytes
from ..registry import Available, Backend, declare_backend, register
from .jit import X86_64


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

from .kernels import FAMILIES  # noqa: E402  (the backend first: kernels.py never registers)

BLOCK = 16384          # elements per parallel work item: a multiple of 64 (whole mask bytes)
SERIAL_MAX = 1 << 15   # below this many elements a kernel runs on the calling thread only


# Outputs of at least this many bytes are written with streaming stores (see "Streaming stores"
# above); None: never. The size of the last-level cache: an output that large cannot stay in the
# cache for the next reader anyway, so streaming costs nothing there, and it saves the read for
# ownership of every line. Smaller outputs keep ordinary stores, which leave them in cache for the
# next layer. Only on x86-64, where it was measured; elsewhere the same code runs when a test
# lowers the threshold. Read at every call.
STREAM_MIN_BYTES: int | None = last_level_cache_bytes() if X86_64 else None


def _streams(out) -> bool:
    """Whether an output this large is written with streaming stores (STREAM_MIN_BYTES)."""
    return STREAM_MIN_BYTES is not None and out.nbytes >= STREAM_MIN_BYTES


def _run(op: str, out, *args) -> None:
    """Run op's family on `args` (its output is `out`): streaming through the parallel driver at
    any size when `out` is that large, else serially below SERIAL_MAX elements, else in parallel."""
    family = FAMILIES[op]
    if _streams(out):
        family.parallel(True, BLOCK, *args)
    elif out.size < SERIAL_MAX:
        family.kernel(*args)
    else:
        family.parallel(False, BLOCK, *args)


def _elementwise_launcher(op: str):
    """The launcher of an elementwise op: `op(*arrays, out=None, **params)`, one output."""
    param = next(iter(OPS[op].params), None)              # the op's one scalar parameter, if any

    def launch(*arrays, out=None, **params):
        y = np.empty_like(arrays[0]) if out is None else out
        b = arrays[1].ravel() if len(arrays) > 1 else None
        _run(op, y, arrays[0].ravel(), b, params[param] if param else 0.0, y.ravel())
        return y
    launch.__name__ = launch.__qualname__ = op
    return launch


def _relu_mask(x, out=None):
    if out is None:
        y, mask = np.empty_like(x), np.empty(mask_nbytes(x.size), np.uint8)
    else:
        y, mask = out
    _run("relu_mask", y, x.ravel(), mask, 0.0, y.ravel())
    return y, mask


def _relu_grad_mask(dy, mask, out=None):
    dx = np.empty_like(dy) if out is None else out
    _run("relu_grad_mask", dx, dy.ravel(), mask, 0.0, dx.ravel())
    return dx


_MASKED = {"relu_mask": _relu_mask, "relu_grad_mask": _relu_grad_mask}
for _op in ELEMENTWISE_OPS:                   # sparse_matmul: kernels/numba_sparse.py
    register(_op, "numba_cpu")(_MASKED.get(_op) or _elementwise_launcher(_op))


def stream_copy(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[:] = src for 1-D C-contiguous float32 or float64 arrays, at any size, on every thread
    and with the kernels' streaming stores: the bandwidth a streaming kernel can reach."""
    FAMILIES["copy"].parallel(True, BLOCK, src, None, 0.0, dst)
