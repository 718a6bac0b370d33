"""Kernel and Backend records, the @register decorator, and availability probing with reasons.

A backend module declares its backend once (`declare_backend`) with the functions that move data
to and from it, then registers one launcher per op with `@register(op, backend)`. Registration
wraps the launcher in the argument checks every kernel shares (dtype, shape, mask, out=), so a
kernel body only ever sees valid, contiguous arrays of its own kind.

Records never change once made. Probing is lazy: importing a backend module never touches a
device. The first read of `Backend.state` (or `.available`, `.device`, ...) runs the probe, and the
registry keeps what it found (a `BackendState`) for the rest of the process.
"""

from __future__ import annotations

import functools
import numbers
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from kernels.ops import FLOAT_DTYPES, OPS, OpSpec, dtype_name, mask_nbytes


@dataclass(frozen=True)
class Available:
    """What a probe returns when its backend can run here (a probe that cannot returns the reason,
    a string; None counts as Available()). A device left at None is the backend's default_device."""

    device: str | None = None       # where it runs, when only the probe can tell (torch with CUDA)
    description: str = ""           # library version and device, for `bench list` and the reports
    simulated: bool = False         # runs, but on a simulator: correct, never timed


@dataclass(frozen=True)
class BackendState:
    """What probing found out about a backend in this process: whether it runs here, where, and why not."""

    available: bool
    reason: str                     # why it cannot run here ('' when it can)
    device: str                     # "cpu" or "gpu"
    description: str
    simulated: bool = False


class _FromState:
    """A Backend attribute that reads the backend's probed state (probing on first use)."""

    def __set_name__(self, owner, name: str):
        self.name = name

    def __get__(self, be, owner=None):
        return self if be is None else getattr(probe_state(be), self.name)


@dataclass(frozen=True, eq=False)
class Backend:
    """One way of running kernels: a library on a device, and how to move arrays to and from it.

    The record never changes once declared. What only a probe can find out (is the library there,
    which device, which version) is its `state`, probed once per process on first use and kept by
    the registry; `available`, `reason`, `device`, `description` and `simulated` read it."""

    name: str
    library: str                                  # its arrays' library: numpy, cupy, numba or torch
    default_device: str                           # "cpu" or "gpu": where it runs unless its probe says
    probe: Callable[[], Available | str | None]   # Available when usable here, else the reason why not
    to_native: Callable[[np.ndarray], Any]        # NumPy array -> this backend's array (host: no copy)
    to_numpy: Callable[[Any], np.ndarray]         # this backend's array -> NumPy array (a copy)
    is_native: Callable[[Any], bool]              # is this an array of this backend's kind?
    empty: Callable[[tuple, str], Any]            # uninitialised array of this backend's kind
    dtypes: tuple[str, ...] = ("float32", "float64")
    synchronize: Callable[[], None] = lambda: None
    contiguous: Callable[[Any], Any] | None = None  # a C-contiguous version of an array (copy if needed)
    # ops left out on purpose, {op: why}: shown by `bench list`, and said by kernel()'s LookupError
    omitted: Mapping[str, str] = field(default_factory=dict)
    # ops whose kernels run on the calling thread only (NumPy's ufuncs): a benchmark does not read
    # them against the all-core copy probe beside them (bench/measure/interleave.py)
    one_thread_ops: frozenset[str] = frozenset()
    # dtypes whose subnormal inputs the backend's compiled code reads as zero (CuPy's ufuncs: CuPy
    # compiles with -ftz=true, float32): what its users get, so the gate (bench/measure/check.py) accepts
    # the answer for the flushed inputs where an input is subnormal, and only there; `bench list` says so
    flushes_subnormals: tuple[str, ...] = ()
    # raises ValueError naming a setting of the backend's that no kernel can use (an environment
    # override): the CLI says it as a usage error before anything is measured
    check_settings: Callable[[], None] = lambda: None
    # the tuning choices the backend made so far in this process (measured on the machine, read from
    # its cache or forced by the environment), JSON-ready: a run records them beside its results
    settings: Callable[[], dict] = lambda: {}

    @property
    def state(self) -> BackendState:
        return probe_state(self)

    # read from the probed state, never stored in the record
    available = _FromState()
    reason = _FromState()        # why it cannot run here ('' when it can)
    device = _FromState()
    description = _FromState()
    simulated = _FromState()


_STATES: dict[str, BackendState] = {}


def probe_state(be: Backend) -> BackendState:
    """The backend's state, probed on first use and kept for the rest of the process (probing
    imports libraries and may touch a device: once is enough)."""
    state = _STATES.get(be.name)
    if state is None:
        try:
            found = be.probe()
        except Exception as exc:  # a probe must never take the caller down
            found = f"probe failed: {type(exc).__name__}: {exc}"
        if isinstance(found, str):
            state = BackendState(False, found, be.default_device, "")
        else:
            found = found or Available()
            state = BackendState(True, "", found.device or be.default_device, found.description, found.simulated)
        _STATES[be.name] = state
    return state


def forget_states(*names: str) -> None:
    """Probe these backends (all, when none is named) again on next use: for tests that fake a
    library's presence."""
    for name in names or list(_STATES):
        _STATES.pop(name, None)


@dataclass(frozen=True)
class Kernel:
    """One op on one backend: the checked launcher, and the raw one the checks wrap."""

    op: str
    backend: str
    fn: Callable
    raw: Callable
    supports_out: bool = True


_BACKENDS: dict[str, Backend] = {}
_KERNELS: dict[tuple[str, str], Kernel] = {}


def declare_backend(backend: Backend) -> Backend:
    _BACKENDS[backend.name] = backend
    _STATES.pop(backend.name, None)          # a re-declared backend is probed afresh
    return backend


def backend(name: str) -> Backend:
    if name not in _BACKENDS:
        raise LookupError(f"unknown backend {name!r}; valid backends: {', '.join(_BACKENDS)}")
    return _BACKENDS[name]


def all_backends() -> list[Backend]:
    return list(_BACKENDS.values())


def kernel(op: str, backend_name: str) -> Kernel:
    spec_of(op)
    backend(backend_name)
    if (op, backend_name) not in _KERNELS:
        why = backend(backend_name).omitted.get(op)
        if why:
            raise LookupError(f"op {op!r} has no kernel on backend {backend_name!r}: {why}")
        have = sorted(b for (o, b) in _KERNELS if o == op)
        raise LookupError(f"op {op!r} has no kernel on backend {backend_name!r}; it has: {', '.join(have)}")
    return _KERNELS[(op, backend_name)]


def timed_call(op: str, backend_name: str, native: tuple) -> tuple[Callable, dict]:
    """What a benchmark times for op on a backend with arguments `native` (already on it):
    the kernel's raw launcher (no argument checks in the timed call: check once before) and its
    keywords: the op's parameters, and `out`, its outputs preallocated on the backend where the
    kernel writes in place (None where it allocates: `Kernel.supports_out`)."""
    k = kernel(op, backend_name)
    spec, be = OPS[op], backend(backend_name)
    kwargs: dict = {**spec.params, "out": None}
    if k.supports_out:
        outs = tuple(be.empty(shape, dt) for shape, dt in output_layout(spec, *native))
        kwargs["out"] = outs if len(outs) > 1 else outs[0]
    return k.raw, kwargs


def kernels() -> list[Kernel]:
    return list(_KERNELS.values())


def spec_of(op: str) -> OpSpec:
    if op not in OPS:
        raise LookupError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    return OPS[op]


def register(op: str, backend_name: str, *, supports_out: bool = True):
    """Register `fn` as the kernel of `op` on `backend_name`; returns the checked launcher.

    The launcher takes the op's arrays positionally, its scalar params as keywords, and `out=`
    (an array, or a tuple of arrays for ops with several outputs) where the backend can write in
    place. It validates everything a user can get wrong, makes inputs contiguous, then calls `fn`.
    """
    spec = spec_of(op)

    def decorate(fn: Callable) -> Callable:
        be = backend(backend_name)

        @functools.wraps(fn)
        def launcher(*arrays, out=None, **params):
            arrays, params, layout = _check_call(spec, be, arrays, params)
            if out is not None:
                if not supports_out:
                    raise TypeError(f"{op} on {backend_name} cannot write in place; call it without out=")
                out = _check_out(spec, be, arrays, out, layout)
            return fn(*arrays, out=out, **params)

        launcher.op, launcher.backend = op, backend_name
        _KERNELS[(op, backend_name)] = Kernel(op, backend_name, launcher, fn, supports_out)
        return launcher

    return decorate


def _check_call(spec: OpSpec, be: Backend, arrays, params):
    """The inputs made contiguous, the params with their defaults, and the outputs' layout where
    the op's own check hook gave it (None for the elementwise rules), so that out= reuses it."""
    if len(arrays) != spec.n_inputs:
        raise TypeError(f"{spec.name}({', '.join(spec.inputs)}) takes {spec.n_inputs} arrays, got {len(arrays)}")
    unknown = set(params) - set(spec.params)
    if unknown:
        raise TypeError(f"{spec.name} got unexpected keyword(s) {', '.join(sorted(unknown))}; "
                        f"it takes {', '.join(spec.params) or 'none'}")
    params = {**spec.params, **params}
    for k, v in params.items():
        # numbers.Real: Python's and NumPy's floats and ints (np.float32(0.1) too), never a bool
        if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)) or not np.isfinite(v):
            raise TypeError(f"{spec.name}: {k} must be a finite real number, got {v!r}")
        params[k] = float(v)
    checked = []
    for name, a in zip(spec.inputs, arrays):
        if not be.is_native(a):
            raise TypeError(f"{spec.name} on {be.name}: {name} must be an array of the {be.name} backend, "
                            f"got {type(a).__module__}.{type(a).__name__}; move it with kernels.asarray({be.name!r}, a)")
        dt = dtype_name(a)
        if name == "mask" and spec.mask_input:
            if dt != "uint8":
                raise TypeError(f"{spec.name}: mask must be uint8 (packed bits), got {dt}")
        elif dt not in FLOAT_DTYPES:
            raise TypeError(f"{spec.name}: {name} must be a floating-point array "
                            f"({', '.join(be.dtypes)} on {be.name}), got {dt}")
        elif dt not in be.dtypes:
            raise TypeError(f"{spec.name}: {be.name} does not support {dt}; it supports {', '.join(be.dtypes)}")
        if be.contiguous is not None:
            a = be.contiguous(a)
        checked.append(a)
    first = checked[0]
    layout = None
    if spec.check is not None:
        layout = spec.check(*checked)        # the op's own rules for how its arrays relate
    elif spec.mask_input:
        mask = checked[1]
        n = math.prod(first.shape)
        if mask.ndim != 1 or mask.shape[0] != mask_nbytes(n):
            raise ValueError(f"{spec.name}: mask for {n} elements must have shape ({mask_nbytes(n)},), "
                             f"got {tuple(mask.shape)}")
    else:
        for name, a in zip(spec.inputs[1:], checked[1:]):
            if tuple(a.shape) != tuple(first.shape):
                raise ValueError(f"{spec.name}: {spec.inputs[0]} and {name} must have the same shape, "
                                 f"got {tuple(first.shape)} and {tuple(a.shape)}")
            if dtype_name(a) != dtype_name(first):
                raise TypeError(f"{spec.name}: {spec.inputs[0]} and {name} must have the same dtype, "
                                f"got {dtype_name(first)} and {dtype_name(a)}")
    return tuple(checked), params, layout


def output_layout(spec: OpSpec, first, *rest) -> list[tuple[tuple, str]]:
    """(shape, dtype) of each output of `spec` for inputs like `first, *rest` (the op's own
    `check` hook decides where it has one; else outputs are shaped like the first input)."""
    if spec.check is not None:
        return spec.check(first, *rest)
    shape, dt = tuple(first.shape), dtype_name(first)
    n = math.prod(shape)
    return [((mask_nbytes(n),), "uint8") if o == "mask" else (shape, dt) for o in spec.outputs]


def _check_out(spec: OpSpec, be: Backend, arrays, out, layout=None):
    outs = out if isinstance(out, tuple) else (out,)
    want = layout if layout is not None else output_layout(spec, *arrays)
    if len(outs) != len(want):
        raise TypeError(f"{spec.name}: out= must be {len(want)} array(s) ({', '.join(spec.outputs)})")
    for o, (shape, dt), name in zip(outs, want, spec.outputs):
        if not be.is_native(o):
            raise TypeError(f"{spec.name}: out {name} must be an array of the {be.name} backend")
        if tuple(o.shape) != shape or dtype_name(o) != dt:
            raise ValueError(f"{spec.name}: out {name} must be {dt} of shape {shape}, "
                             f"got {dtype_name(o)} of shape {tuple(o.shape)}")
        if not _is_c_contiguous(o):
            raise ValueError(f"{spec.name}: out {name} must be C-contiguous")
        if not _writeable(o):
            raise ValueError(f"{spec.name}: out {name} is a read-only array")
        if any(_shares_memory(o, a) for a in arrays):
            raise ValueError(f"{spec.name}: out {name} must not overlap an input (kernels never modify inputs)")
    return out


def _writeable(a) -> bool:
    """False for an array flagged read-only (NumPy's `writeable`); other libraries' arrays are."""
    flags = getattr(a, "flags", None)
    try:
        return bool(flags["WRITEABLE"]) if flags is not None else True
    except (KeyError, TypeError):
        return True


def _is_c_contiguous(a) -> bool:
    flags = getattr(a, "flags", None)
    if flags is not None:
        try:
            return bool(flags["C_CONTIGUOUS"])
        except (KeyError, TypeError):
            return bool(getattr(flags, "c_contiguous", True))
    is_contig = getattr(a, "is_contiguous", None)   # torch
    return bool(is_contig()) if callable(is_contig) else True


def _shares_memory(a, b) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.may_share_memory(a, b)      # bounds only: fast, and conservative
    span_a, span_b = _device_span(a), _device_span(b)
    if span_a and span_b:
        return span_a[0] < span_b[1] and span_b[0] < span_a[1]
    return False


def _device_span(a) -> tuple[int, int] | None:
    """[first byte, last byte + 1) of a device array's buffer (CuPy, numba, torch), when it has one."""
    ptr = getattr(a, "data_ptr", None)                       # torch
    if callable(ptr):
        start = ptr()
    else:
        cai = getattr(a, "__cuda_array_interface__", None)   # CuPy, numba
        if not cai:
            return None
        start = cai["data"][0]
    nbytes = math.prod(a.shape) * np.dtype(dtype_name(a)).itemsize
    return (start, start + nbytes) if nbytes and start else None
