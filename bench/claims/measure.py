"""Timing for the claims that are about speed (1, 5, 9), with bench/measure/timing.py's clocks.

Each op is timed on each available (not simulated) backend with its output preallocated where the
kernel takes `out=`, the calls compared with each other sampled in turns as `bench run --interleave`
samples them (bench/measure/interleave.py): CPU backends with perf_counter_ns, GPU backends with CUDA
events (L2 flushed before each sample). Claims compare times within one run, as ratios of the
fastest samples: on a shared machine interference only ever adds time, and the minimum is the
estimate it disturbs least (medians are kept beside them).
"""

from __future__ import annotations

import contextlib

import numpy as np

import kernels
from kernels import registry

from bench.measure import inputs, interleave, timing
from bench.kinds import matmul as sparse
from bench.measure import devices
import numba

# Dense matmul backends of the `sparse_matmul` op; every other backend of the op skips zeros.
DENSE_MATMUL_BACKENDS = sparse.DENSE


def timeable_backends(ops: list[str]) -> list[kernels.Backend]:
    """Backends that run every op in `ops` here, on real hardware (no simulator)."""
    out = []
    for be in kernels.all_backends():
        if not be.available or be.simulated:
            continue
        try:
            for op in ops:
                kernels.get(op, be.name)
        except LookupError:
            continue
        out.append(be)
    return out


def _has(op: str, backend: str) -> bool:
    try:
        kernels.get(op, backend)
    except LookupError:
        return False
    return True


def op_inputs(ops: list[str], n: int, rng: np.random.Generator, dtype="float32") -> dict[str, tuple]:
    """Host inputs of each elementwise op (bench.measure.inputs.op_inputs), built around one x ~ N(0, 1)
    and one dy ~ N(0, 1) shared by every op."""
    x = rng.standard_normal(n, dtype=np.float32).astype(dtype, copy=False)
    dy = rng.standard_normal(n, dtype=np.float32).astype(dtype, copy=False)
    return {op: inputs.op_inputs(op, x, rng, dy=dy) for op in ops}


def time_interleaved(calls: list[tuple], sampling: timing.Sampling) -> list[dict]:
    """Time each (fn, args, kwargs, backend) of `calls`, taking their samples in turns (bench/measure/interleave.py's
    round_robin, the stop rule and budget of `bench run --interleave`): calls that are compared with
    each other thus meet the same moments of a shared machine's load. CPU calls are sampled with
    perf_counter_ns, GPU calls with CUDA events through their backend's device adapter."""
    members, adapters = [], []
    try:
        for i, (fn, args, kwargs, be) in enumerate(calls):
            if be is not None and be.device == "gpu":
                adapters.append(devices.adapter_for(be))
                members.append(interleave.gpu_member(str(i), fn, args, kwargs, adapters[-1]))
            else:
                members.append(interleave.cpu_member(str(i), fn, args, kwargs, sampling))
        times = interleave.round_robin(members, sampling)
    finally:
        for device in adapters:
            device.close()
    out = []
    for m in members:
        t = times[m.name]
        s = t.summary
        # the CPU its threads got (bench/measure/load.py); a GPU call's host thread waits on events: not judged
        got = t.tally.got if t.timer != "cuda_event" and t.tally is not None else None
        out.append({"median_s": s.median, "min_s": s.min, "rel_iqr": s.rel_iqr, "n": s.n, "timer": t.timer,
                    "cpu_got": got})
    return out


def time_ops(ops: list[str], sizes: list[int], sampling: timing.Sampling, seed: int,
             optional: tuple[str, ...] = ()) -> list[dict]:
    """Every op on every backend that has them all (and each `optional` op where the backend has
    it), at every size: one row per (backend, size, op). The ops of one backend and size are timed
    in turns (time_interleaved)."""
    rows = []
    backends = timeable_backends(ops)
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        host = op_inputs([*ops, *optional], n, rng)
        for be in backends:
            here = list(ops) + [o for o in optional if _has(o, be.name)]
            calls = [_timed_call(op, be, host[op]) for op in here]
            for op, r in zip(here, time_interleaved(calls, sampling)):
                rows.append({"backend": be.name, "device": be.device, "size": n, "op": op, **r})
            del calls
    return rows


def _timed_call(op: str, be: kernels.Backend, host: tuple) -> tuple:
    """(launcher, args, kwargs, backend) as bench run times it (registry.timed_call): the raw
    launcher with its outputs preallocated, the host arrays moved to the backend first."""
    native = tuple(kernels.asarray(be.name, a) for a in host)
    fn, kwargs = registry.timed_call(op, be.name, native)
    return fn, native, kwargs, be


@contextlib.contextmanager
def one_thread():
    """BLAS (threadpoolctl) and numba's parallel loops on one thread each, restored after."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits   # gpu-check's machines lack it
        with threadpool_limits(1):
            yield
    finally:
        numba.set_num_threads(before)


def relu_like_activations(batch: int, k: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """relu(z - t) with z ~ N(0, 1) and t the sparsity-quantile of z: exactly that fraction of zeros
    (up to rounding), at positions a ReLU layer would give."""
    z = rng.standard_normal((batch, k), dtype=np.float32)
    t = np.float32(np.quantile(z, sparsity)) if sparsity > 0 else z.min() - np.float32(1.0)
    return np.where(z > t, z - t, np.float32(0)).astype(np.float32)


def sparse_matmul_impls() -> list[tuple[str, object, kernels.Backend]]:
    """(name, function(a, w), backend record) of the project's `sparse_matmul` op: a dense
    baseline first (numpy's when timeable), then each sparse implementation (CPU, then GPU)."""
    bes = timeable_backends(["sparse_matmul"])
    cpu = [b for b in bes if b.device == "cpu"]
    dense = [b for b in cpu if b.name in DENSE_MATMUL_BACKENDS]
    sparse = [b for b in cpu if b.name not in DENSE_MATMUL_BACKENDS]
    gpu_sparse = [b for b in bes if b.device == "gpu" and b.name not in DENSE_MATMUL_BACKENDS]
    if not dense or not sparse:
        raise LookupError("sparse_matmul needs a dense and a sparse CPU backend timeable here; have "
                          f"dense {[b.name for b in dense]}, sparse {[b.name for b in sparse]} "
                          f"(dense ones: {', '.join(DENSE_MATMUL_BACKENDS)})")
    base = next((b for b in dense if b.name == "numpy"), dense[0])
    impls = [(base.name, kernels.get("sparse_matmul", base.name), base)]
    return impls + [(b.name, kernels.get("sparse_matmul", b.name), b) for b in sparse + gpu_sparse]


def time_matmuls(impls: list[tuple], a: np.ndarray, w: np.ndarray, sampling: timing.Sampling) -> dict[str, float]:
    """Fastest sample's seconds per call of each (name, fn(a, w), backend) in `impls`, timed in
    turns; inputs moved to each backend first, never timed."""
    calls = [_timed_call("sparse_matmul", be, (a, w)) for _, _, be in impls]
    return {name: r["min_s"] for (name, _, _), r in zip(impls, time_interleaved(calls, sampling))}
