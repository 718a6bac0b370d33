"""Fused, parallel CPU kernels with numba.njit: the numba_cpu backend (float32 and float64).

Every op is one pass over memory: each input read once, each output written once, nothing in
between. The package, bottom to top:

- jit.py: the njit options, and a disk cache that recompiles when any file of the package changes.
- math.py: exp and expm1 of our own, branch-free, so that the loops calling them vectorise.
- streaming.py: streaming (non-temporal) stores, parallel blocks, and the drivers that run an op
  over them, one per family (`elementwise`, `masked`).
- kernels.py: the ops, each a scalar function (or, for the packed mask, a block kernel), and
  `FAMILIES`, their compiled entry points.
- here: the backend record and the launchers, generated from kernels.ops.OPS.

Launchers `<op>(..., out=None, **params)`: the registry has already checked dtypes and shapes and
made the inputs C-contiguous; the launcher allocates the output when `out` is None and runs the
kernel on the flat views: on the calling thread below the op's measured `serial_max` (where waking
threads costs more than the work; strategy.py), else in parallel blocks of `BLOCK` elements.

Streaming stores. An output of at least `STRATEGY.min_bytes` (as large as the last-level cache) is
written as strategy.py measured best on this machine for its family and dtype: with non-temporal
stores (x86-64: vmovntps/vmovntpd, the line goes to memory without first being read for
ownership, so a relu moves 8 bytes per element instead of 12) or ordinary ones, in blocks of the
measured size. Smaller outputs keep ordinary stores, which leave them in cache for whoever reads
them next. The kernel's source is the same in both paths, so its values are bit for bit the same.
`store_strategy()` says what was chosen; `stream_copy` is the streaming path as a copy, the CPU
peak probe of bench/measure/roofline.py.

Kernels compile on the first call per dtype (never at import) and are cached on disk. float16 is
not supported (the registry raises TypeError): numba has no float16 arithmetic on the CPU.
"""

from __future__ import annotations

import numpy as np

import numba
from kernels.ops import ELEMENTWISE_OPS, OPS, dtype_name, mask_nbytes
from kernels.registry import Available, Backend, declare_backend, register
from kernels.backends.numba_cpu.jit import X86_64
from kernels.backends.numba_cpu import sparse_method
from kernels.backends.numba_cpu.strategy import DEFAULT_BLOCK, SPLIT_SIZES, StoreStrategy, check_environment


def _probe() -> Available | str:
    return Available(description=f"fused, parallel numba {numba.__version__} njit kernels, "
                                 f"{numba.config.NUMBA_NUM_THREADS} threads")


def _check_settings() -> None:
    """ValueError naming the variable: ACTBENCH_STORES / _BLOCK / _SERIAL_MAX (strategy.py) and
    ACTBENCH_SPARSE_METHOD (sparse_method.py), so `bench run` says so in one line before measuring."""
    check_environment()
    sparse_method.check_environment()


_backend = declare_backend(Backend(
    name="numba_cpu",
    library="numpy",
    default_device="cpu",
    probe=_probe,
    to_native=np.asarray,                 # host arrays are already NumPy arrays: no copy
    to_numpy=np.asarray,
    # exactly ndarray: numba cannot type a subclass (np.matrix), and the registry's TypeError for it
    # says how to move it (kernels.asarray) where numba would print 80 lines of TypingError
    is_native=lambda a: type(a) is np.ndarray,
    empty=lambda shape, dtype: np.empty(shape, dtype),
    dtypes=("float32", "float64"),
    # not np.ascontiguousarray alone: it turns a 0-d array into shape (1,)
    contiguous=lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a),
    check_settings=_check_settings,       # the variables that steer it, checked before a run
    settings=lambda: _settings(),         # what was chosen on this machine (defined below)
))

from kernels.backends.numba_cpu.kernels import FAMILIES  # noqa: E402  (the backend first: kernels.py never registers)

BLOCK = DEFAULT_BLOCK  # elements per parallel work item below STRATEGY.min_bytes
SERIAL_MIN = SPLIT_SIZES[0]   # below this many elements a kernel runs on the calling thread, unmeasured
SERIAL_MAX = None      # None: each op's measured threshold; an int overrides it (tests force a path)


# The family whose measured store strategy each op follows (strategy.py)
STRATEGY = StoreStrategy(enabled=X86_64)     # read at every call, so tests can replace it


def _settings() -> dict:
    """The choices this process made: stores and threads (strategy.py), sparse_matmul's method per
    case class (sparse_method.py); empty parts left out."""
    got = {"stores": store_strategy(probe=False), "sparse_method": sparse.METHOD.report()}
    if not got["sparse_method"]["choices"]:
        del got["sparse_method"]
    return got


def store_strategy(probe: bool = True) -> dict:
    """How numba_cpu writes large outputs on this machine, per family and dtype: streaming or
    ordinary stores and the block size, measured at first use (or read from the disk cache or the
    environment), with the machine key and the size from which it applies. JSON-ready. With
    probe=False only the choices made so far in this process (those a run used)."""
    return STRATEGY.report(probe)


def _run(op: str, out, *args) -> None:
    """Run op's family on `args` (its output is `out`): an output of at least `STRATEGY.min_bytes`
    as the measured strategy says, else serially below the op's serial threshold, else in
    parallel with ordinary stores."""
    family = FAMILIES[op]
    if _serial(op, out):
        family.kernel(*args)
    elif out.nbytes >= STRATEGY.min_bytes:
        choice = STRATEGY.choose(OPS[op].tuning, dtype_name(out))   # the op's cost class (its spec)
        family.parallel(choice.stream, choice.block, *args)
    else:
        family.parallel(False, BLOCK, *args)


def _serial(op: str, out) -> bool:
    """Whether op's output `out` is computed on the calling thread alone: below the op's measured
    threshold (`SERIAL_MAX` instead where a test sets it) and below `STRATEGY.min_bytes`."""
    if out.nbytes >= STRATEGY.min_bytes:
        return False
    if SERIAL_MAX is not None:
        return out.size < SERIAL_MAX
    return out.size < SERIAL_MIN or out.size < STRATEGY.serial_max(op, dtype_name(out))


def _elementwise_launcher(op: str):
    """The launcher of an elementwise op: `op(a, b=None, out=None, **params)` (b for the ops of
    two inputs; the registry passes `out` by keyword), one output.

    The smallest calls (below `SERIAL_MIN`, where nothing is looked up) run the kernel without
    `_run`: at 1k elements a kernel takes about as long as a few Python calls, so every step
    shows (one function call ~70 ns; `out.dtype.name`, computed in Python by NumPy, 1.5 us:
    hence the cached `dtype_name` in `_serial`)."""
    param = next(iter(OPS[op].params), None)              # the op's one scalar parameter, if any

    def launch(a, b=None, out=None, **params):
        y = np.empty_like(a) if out is None else out
        p = params[param] if param else 0.0
        if a.ndim != 1:
            a, b, out = a.ravel(), None if b is None else b.ravel(), y.ravel()
        else:
            out = y
        if SERIAL_MAX is None and y.size < SERIAL_MIN and y.nbytes < STRATEGY.min_bytes:
            FAMILIES[op].kernel(a, b, p, out)
        else:
            _run(op, y, a, b, p, out)
        return y
    launch.__name__ = launch.__qualname__ = op
    return launch


def _flat(a):
    """a as 1-D (a view): a itself when it is already, without ravel's cost (a kernel at 1k
    elements runs in about the time of a few Python calls)."""
    return a if a.ndim == 1 else a.ravel()


def _relu_mask(x, out=None):
    if out is None:
        y, mask = np.empty_like(x), np.empty(mask_nbytes(x.size), np.uint8)
    else:
        y, mask = out
    _run("relu_mask", y, _flat(x), mask, 0.0, _flat(y))
    return y, mask


def _relu_grad_mask(dy, mask, out=None):
    dx = np.empty_like(dy) if out is None else out
    _run("relu_grad_mask", dx, _flat(dy), mask, 0.0, _flat(dx))
    return dx


_MASKED = {"relu_mask": _relu_mask, "relu_grad_mask": _relu_grad_mask}
for _op in ELEMENTWISE_OPS:                   # sparse_matmul: kernels/backends/numba_cpu/sparse.py
    register(_op, "numba_cpu")(_MASKED.get(_op) or _elementwise_launcher(_op))


def stream_copy(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[:] = src for 1-D C-contiguous float32 or float64 arrays, at any size, on every thread
    and with the kernels' streaming stores: the bandwidth a streaming kernel can reach."""
    FAMILIES["copy"].parallel(True, BLOCK, src, None, 0.0, dst)

from kernels.backends.numba_cpu import sparse  # noqa: E402,F401  (sparse_matmul on this backend: after its record)
