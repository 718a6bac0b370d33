"""The correctness gate and its tolerance table: no kernel is timed before it passes here.

`compare` checks outputs against the float64 reference (kernels/ops/) computed from the
same input values. `check_call` runs a kernel the way the benchmark will time it: on its own
backend, into poisoned preallocated outputs, and once more allocating its own; then checks the
values, the dtypes and shapes, and that the inputs were left untouched. A kernel that returns
zeros, writes half its output, reuses an earlier result or mutates its input fails here.

Tolerance, for each output element (ref computed in float64):
    |out - ref| <= rtol * |ref| + atol                   forward ops
    |out - ref| <= rtol * (|ref| + |dy|) + atol          gradient ops (dy finite)
with rtol by dtype (RTOL) and atol the dtype's smallest normal number; NaN exactly where the
reference is NaN; +-inf exactly where the reference, rounded to the dtype, is +-inf.
Packed masks must match bit for bit.
A backend that declares it flushes subnormals for a dtype (`Backend.flushes_subnormals`: CuPy's
ufuncs, compiled with -ftz=true) is also right, where an input element is subnormal, with the
reference computed from its inputs flushed to (signed) zero; everywhere else it is held to the
exact reference.

Above SAMPLE_ABOVE elements (benchmark sizes; the tests stay below it) the float64 reference is
computed on a sample (both ends, random blocks, random elements) instead of every element, and
every element is still checked for the NaN poison: with finite inputs no op gives NaN, so a NaN
left in a preallocated output is an element the kernel never wrote. Masks are always compared whole.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from kernels import registry
from kernels.ops import OPS, pack_mask, reference

from bench.measure import devices

RTOL = {"float16": 2e-3, "float32": 1e-5, "float64": 1e-12}
SAMPLE_ABOVE = 2**22


def atol(dtype) -> float:
    """The smallest normal number of dtype: errors in the subnormal range are not counted."""
    return float(np.finfo(dtype).tiny)


@dataclass
class CheckResult:
    ok: bool
    message: str = ""
    worst: float = 0.0     # the largest error as a multiple of the allowed error (<= 1 passes)

    def __bool__(self) -> bool:
        return self.ok


OK = CheckResult(True)


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of a as unsigned integers, so that NaN == NaN and -0 != +0 when comparing
    inputs before and after a call."""
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


def _compare_values(name: str, out: np.ndarray, ref: np.ndarray, dtype: np.dtype,
                    dy: np.ndarray | None, flushed: tuple | None = None) -> CheckResult:
    """out against ref; `flushed` = (where an input is subnormal, the reference of the flushed
    inputs, their dy): also right there when it matches that reference."""
    bad, ratio, o = _wrong(out, ref, dtype, dy)
    if flushed is not None:
        subnormal, ref_flushed, dy_flushed = flushed
        bad_flushed, ratio_flushed, _ = _wrong(out, ref_flushed, dtype, dy_flushed)
        take = subnormal.reshape(bad.shape) & ~bad_flushed
        bad &= ~take
        ratio = np.where(take, ratio_flushed, ratio)
    worst = float(np.nanmax(ratio, initial=0.0)) if ratio.size else 0.0
    if not bad.any():
        return CheckResult(True, worst=worst)
    flat = np.flatnonzero(bad.ravel())
    i = int(flat[0])
    return CheckResult(False, f"{name}: {flat.size} of {bad.size} elements wrong; first at flat index {i}: "
                              f"got {o.ravel()[i]!r}, expected {ref.ravel()[i]!r}", worst=np.inf)


def _wrong(out: np.ndarray, ref: np.ndarray, dtype: np.dtype, dy: np.ndarray | None):
    """(wrong elements, error / allowed error, out in float64) of out against ref."""
    o = out.astype(np.float64)
    with np.errstate(over="ignore"):
        rounded = ref.astype(dtype).astype(np.float64)   # the correctly rounded answer; inf if it overflows
    ref_nan, out_nan = np.isnan(ref), np.isnan(o)
    bad = ref_nan != out_nan
    expect_inf = np.isinf(rounded) & ~ref_nan
    bad |= expect_inf & (o != rounded)
    finite = ~ref_nan & ~expect_inf
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(o - ref)
        scale = np.abs(ref)
        if dy is not None:
            dyf = np.abs(dy.astype(np.float64))
            scale = scale + np.where(np.isfinite(dyf), dyf, 0.0)
        allowed = RTOL[dtype.name] * scale + atol(dtype)
        ratio = np.where(finite, err / allowed, 0.0)
    bad |= finite & ~(err <= allowed)
    return bad, ratio, o


def subnormal(a: np.ndarray) -> np.ndarray:
    """Where a (a float array) holds a subnormal number of its dtype."""
    m = np.abs(a)
    return (m > 0) & (m < np.finfo(a.dtype).tiny)


def flush_subnormals(a: np.ndarray) -> np.ndarray:
    """a with its subnormal numbers as zero of their sign (what -ftz code reads)."""
    return np.where(subnormal(a), np.copysign(np.zeros((), a.dtype), a), a)


def sample_indices(n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sorted flat indices to check in an array of n elements: both ends, 16 random blocks of 4096
    and 2**18 random elements (about 2**19 in all)."""
    rng = rng or np.random.default_rng(n)
    edge = np.r_[0:min(n, 2**16), max(0, n - 2**16):n]
    starts = rng.integers(0, max(1, n - 4096), 16)
    blocks = (starts[:, None] + np.arange(4096)).ravel()
    return np.sort(np.concatenate([edge, blocks, rng.integers(0, n, 2**18)]).clip(0, n - 1))


def _unpacked(mask: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(mask, count=n, bitorder="little").astype(bool)


def _elementwise(spec, inputs, n):
    """Inputs as flat arrays of n elements each (a packed mask unpacked to booleans)."""
    return [np.unpackbits(a, count=n, bitorder="little").astype(bool) if name == "mask"
            else a.reshape(-1) for name, a in zip(spec.inputs, inputs)]


def compare(op: str, inputs: tuple[np.ndarray, ...], outputs, params: dict | None = None,
            sample: np.ndarray | None = None, flushes_subnormals: tuple[str, ...] = ()) -> CheckResult:
    """Check NumPy `outputs` of op on NumPy `inputs` against the float64 reference, on every
    element or only on the flat indices `sample` (masks are always compared whole). For a dtype in
    `flushes_subnormals` (the backend's declaration) an element with a subnormal input may also
    match the reference of the inputs flushed to zero."""
    spec = OPS[op]
    params = {**spec.params, **(params or {})}
    outs = outputs if isinstance(outputs, tuple) else (outputs,)
    if len(outs) != len(spec.outputs):
        return CheckResult(False, f"expected {len(spec.outputs)} output(s) ({', '.join(spec.outputs)}), got {len(outs)}")
    x = inputs[0]
    n = x.size
    want = registry.output_layout(spec, *inputs)
    for name, out, (shape, dt) in zip(spec.outputs, outs, want):
        if not isinstance(out, np.ndarray):
            return CheckResult(False, f"{name}: expected an array, got {type(out).__name__}")
        if out.dtype != np.dtype(dt) or out.shape != shape:
            return CheckResult(False, f"{name}: expected {dt} of shape {shape}, got {out.dtype} of shape {out.shape}")
    if spec.compare is not None:                # the op's own criterion (sparse_matmul's)
        ok, message, worst = spec.compare(outs, inputs)
        return CheckResult(ok, message, worst)
    flushes = x.dtype.name in flushes_subnormals
    if "mask" in spec.outputs:                  # bit for bit, always whole (packing is cheap)
        out, ref = outs[spec.outputs.index("mask")], pack_mask(x)
        if flushes and not np.array_equal(out, ref):     # a subnormal x's bit may be the flushed x's
            got, alt = _unpacked(out, n), _unpacked(pack_mask(flush_subnormals(x)), n)
            ref = np.packbits(np.where(subnormal(x.ravel()) & (got == alt), got, _unpacked(ref, n)),
                              bitorder="little")
        if not np.array_equal(out, ref):
            i = int(np.flatnonzero(out != ref)[0])
            return CheckResult(False, f"mask: byte {i} is {out[i]:#04x}, expected {ref[i]:#04x}")
    if sample is not None:
        flat = _elementwise(spec, inputs, n)
        inputs = tuple(np.packbits(a[sample], bitorder="little") if name == "mask" else a[sample]
                       for name, a in zip(spec.inputs, flat))
        outs = tuple(None if name == "mask" else o.reshape(-1)[sample] for name, o in zip(spec.outputs, outs))
    with np.errstate(all="ignore"):
        refs = reference(op)(*inputs, **params)
    refs = refs if isinstance(refs, tuple) else (refs,)
    flushed = [None] * len(refs)
    floats = [(name, a) for name, a in zip(spec.inputs, inputs) if name != "mask"]
    if flushes and any(subnormal(a).any() for _, a in floats):
        where = np.logical_or.reduce([subnormal(a).reshape(-1) for _, a in floats])
        inputs_flushed = tuple(a if name == "mask" else flush_subnormals(a) for name, a in zip(spec.inputs, inputs))
        with np.errstate(all="ignore"):
            refs_flushed = reference(op)(*inputs_flushed, **params)
        refs_flushed = refs_flushed if isinstance(refs_flushed, tuple) else (refs_flushed,)
        flushed = [(where, r, inputs_flushed[0] if spec.grad else None) for r in refs_flushed]
    worst = 0.0
    for name, out, ref, fl in zip(spec.outputs, outs, refs, flushed):
        if name == "mask":
            continue                            # checked above
        r = _compare_values(name, out, ref, x.dtype, inputs[0] if spec.grad else None, fl)
        if not r.ok:
            return r
        worst = max(worst, r.worst)
    return CheckResult(True, worst=worst)


def _unwritten(spec, inputs, outs) -> str | None:
    """With finite float inputs no op gives NaN: a NaN in the output is poison never overwritten."""
    floats = [a for name, a in zip(spec.inputs, inputs) if name != "mask"]
    if not all(np.isfinite(a).all() for a in floats):
        return None
    for name, o in zip(spec.outputs, outs):
        if name != "mask" and np.isnan(o).any():
            return f"{name}: {int(np.isnan(o).sum())} elements never written (NaN poison left in out)"
    return None


class Scratch:
    """What the gate keeps between the checks of one run: large poison buffers (a fresh 128 MiB
    array costs more in page faults than the kernel it checks) and the snapshot of each input
    (every backend and op of a benchmark size reads the same inputs). `close()` drops them; a check
    without a scratch of its own uses a fresh one."""

    MAX_BUFFERS = 4

    def __init__(self):
        self._poison: dict[tuple, np.ndarray] = {}
        self._snapshots: dict[int, np.ndarray] = {}

    def poison(self, be: registry.Backend, spec, *inputs) -> tuple:
        """Preallocated outputs full of values no right answer has in those places: NaN, and 0xA5
        bytes for masks."""
        outs = []
        for i, (shape, dt) in enumerate(registry.output_layout(spec, *inputs)):
            key = (i, shape, dt)
            buf = self._poison.get(key)
            if buf is None:
                buf = np.empty(shape, dtype=dt)
                if buf.size >= 2**20:
                    if len(self._poison) >= self.MAX_BUFFERS:
                        self._poison.clear()
                    self._poison[key] = buf
            buf.fill(0xA5 if dt == "uint8" else np.nan)
            outs.append(be.to_native(buf))
        return tuple(outs)

    def snapshot(self, a: np.ndarray) -> np.ndarray:
        """The bits of input `a` before any kernel saw it, taken once per array and kept while it lives."""
        key = id(a)
        if key not in self._snapshots:
            self._snapshots[key] = _bits(a).copy()
            weakref.finalize(a, self._snapshots.pop, key, None)
        return self._snapshots[key]

    def close(self) -> None:
        self._poison.clear()
        self._snapshots.clear()


def _restore(a: np.ndarray, snap: np.ndarray) -> None:
    """Undo a kernel's write into its input, so the next case gets the inputs it should."""
    if a.flags.writeable and a.flags.c_contiguous:
        np.copyto(a.view(snap.dtype), snap)


def check_call(op: str, backend: str, inputs: tuple[np.ndarray, ...], params: dict | None = None,
               use_out: bool = True, view=None, sample_above: int = SAMPLE_ABOVE,
               native: tuple | None = None, scratch: Scratch | None = None) -> CheckResult:
    """Run op on backend on (NumPy) `inputs` the way it is timed, and check everything.

    `native`, when given, holds the same inputs already moved to the backend (the benchmark moves
    them once and times the kernel on them too); `scratch`, the buffers a run reuses between checks.

    `view(name, array)`, when given, is applied to each input after it is moved to the backend (and
    to the NumPy input the reference sees), to hand the kernel non-contiguous views.
    """
    spec = registry.spec_of(op)
    be = registry.backend(backend)
    k = registry.kernel(op, backend)
    params = params or {}
    scratch = scratch or Scratch()
    before = [scratch.snapshot(a) for a in inputs]
    original = inputs
    bases = native if native is not None else tuple(be.to_native(a) for a in inputs)
    native = bases
    if view is not None:
        native = tuple(view(n, a) for n, a in zip(spec.inputs, bases))
        inputs = tuple(view(n, a) for n, a in zip(spec.inputs, inputs))
    calls = [None]
    if use_out and k.supports_out:
        calls.insert(0, scratch.poison(be, spec, *native))
        if inputs[0].size > sample_above:
            calls.pop()          # benchmark sizes: the timed path (out=) only; tests cover the other
    for poisoned in calls:
        out_arg = None if poisoned is None else (poisoned if len(poisoned) > 1 else poisoned[0])
        try:
            res = k.fn(*native, out=out_arg, **params)
        except Exception as exc:  # a crash is a failed check, with its reason
            if devices.is_out_of_memory(exc):
                raise                # not the kernel's fault: the caller skips the case
            return CheckResult(False, f"raised {type(exc).__name__}: {exc}")
        be.synchronize()
        res = res if isinstance(res, tuple) else (res,)
        if poisoned is not None:
            if len(res) != len(poisoned) or any(r is not p for r, p in zip(res, poisoned)):
                return CheckResult(False, "with out=, the kernel must return the out array(s) it was given")
        outs = tuple(be.to_numpy(r) for r in res)
        sample = None
        if inputs[0].size > sample_above:
            sample = sample_indices(inputs[0].size)
            bad = _unwritten(spec, inputs, outs) if poisoned is not None else None
            if bad:
                return CheckResult(False, f"{op} on {backend} (into preallocated out): {bad}")
        r = compare(op, inputs, outs if len(outs) > 1 else outs[0], params, sample=sample,
                    flushes_subnormals=be.flushes_subnormals)
        if not r.ok:
            how = "into preallocated out" if poisoned is not None else "allocating its output"
            return CheckResult(False, f"{op} on {backend} ({how}): {r.message}", r.worst)
        for name, a, host, b in zip(spec.inputs, bases, original, before):
            if not np.array_equal(_bits(be.to_numpy(a)), b):
                _restore(host, b)
                return CheckResult(False, f"{op} on {backend} modified its input {name}")
    return r
