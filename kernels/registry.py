"""Kernel and Backend records, the @register decorator, and availability probing with reasons.

A backend module declares its backend once (`declare_backend`) with the functions that move data
to and from it, then registers one launcher per op with `@register(op, backend)`. Registration
wraps the launcher in the argument checks every kernel shares (dtype, shape, mask, out=), so a
kernel body only ever sees valid, contiguous arrays of its own kind.

Probing is lazy: importing a backend module never touches a device. `Backend.available` runs the
probe once, on first use, and keeps the reason when the backend cannot run here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .reference import OPS, OpSpec, mask_nbytes

FLOAT_DTYPES = ("float16", "float32", "float64")


@dataclass(eq=False)
class Backend:
    """One way of running kernels: a library on a device, and how to move arrays to and from it."""

    name: str
    device: str                                   # "cpu" or "gpu"
    probe: Callable[[], str | None]               # None when usable here, else the reason why not
    to_native: Callable[[np.ndarray], Any]        # NumPy array -> this backend's array (host: no copy)
    to_numpy: Callable[[Any], np.ndarray]         # this backend's array -> NumPy array (a copy)
    is_native: Callable[[Any], bool]              # is this an array of this backend's kind?
    empty: Callable[[tuple, str], Any]            # uninitialised array of this backend's kind
    dtypes: tuple[str, ...] = ("float32", "float64")
    synchronize: Callable[[], None] = lambda: None
    contiguous: Callable[[Any], Any] | None = None  # a C-contiguous version of an array (copy if needed)
    description: str = ""
    simulated: bool = False                        # runs, but on a simulator: correct, never timed
    _reason: str | None = field(default=None, repr=False)
    _probed: bool = field(default=False, repr=False)

    @property
    def reason(self) -> str:
        """Why this backend cannot run here ('' when it can)."""
        if not self._probed:
            try:
                self._reason = self.probe()
            except Exception as exc:  # a probe must never take the caller down
                self._reason = f"probe failed: {type(exc).__name__}: {exc}"
            self._probed = True
        return self._reason or ""

    @property
    def available(self) -> bool:
        return not self.reason


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
        have = sorted(b for (o, b) in _KERNELS if o == op)
        raise LookupError(f"op {op!r} has no kernel on backend {backend_name!r}; it has: {', '.join(have)}")
    return _KERNELS[(op, backend_name)]


def kernels() -> list[Kernel]:
    return list(_KERNELS.values())


def spec_of(op: str) -> OpSpec:
    if op not in OPS:
        raise LookupError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    return OPS[op]


_DTYPE_NAMES: dict = {}


def dtype_name(a) -> str:
    """'float32' for a NumPy, CuPy, numba or torch array of float32 (torch spells it torch.float32).
    Cached per dtype object: NumPy's dtype.name costs microseconds, on every call of every kernel."""
    dt = a.dtype
    try:
        return _DTYPE_NAMES[dt]
    except KeyError:
        name = str(dt).removeprefix("torch.")
        _DTYPE_NAMES[dt] = name
        return name


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
            arrays, params = _check_call(spec, be, arrays, params)
            if out is not None:
                if not supports_out:
                    raise TypeError(f"{op} on {backend_name} cannot write in place; call it without out=")
                out = _check_out(spec, be, arrays, out)
            return fn(*arrays, out=out, **params)

        launcher.op, launcher.backend = op, backend_name
        _KERNELS[(op, backend_name)] = Kernel(op, backend_name, launcher, fn, supports_out)
        return launcher

    return decorate


def _check_call(spec: OpSpec, be: Backend, arrays, params):
    if len(arrays) != spec.n_inputs:
        raise TypeError(f"{spec.name}({', '.join(spec.inputs)}) takes {spec.n_inputs} arrays, got {len(arrays)}")
    unknown = set(params) - set(spec.params)
    if unknown:
        raise TypeError(f"{spec.name} got unexpected keyword(s) {', '.join(sorted(unknown))}; "
                        f"it takes {', '.join(spec.params) or 'none'}")
    params = {**spec.params, **params}
    for k, v in params.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
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
    if spec.mask_input:
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
    return tuple(checked), params


def output_layout(spec: OpSpec, first) -> list[tuple[tuple, str]]:
    """(shape, dtype) of each output of `spec` for a first input like `first`."""
    shape, dt = tuple(first.shape), dtype_name(first)
    n = math.prod(shape)
    return [((mask_nbytes(n),), "uint8") if o == "mask" else (shape, dt) for o in spec.outputs]


def _check_out(spec: OpSpec, be: Backend, arrays, out):
    outs = out if isinstance(out, tuple) else (out,)
    want = output_layout(spec, arrays[0])
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
        if any(_shares_memory(o, a) for a in arrays):
            raise ValueError(f"{spec.name}: out {name} must not overlap an input (kernels never modify inputs)")
    return out


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
