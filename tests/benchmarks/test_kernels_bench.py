"""One pytest-benchmark per available (op, backend) at a mid size: 2**22 elements on the CPU,
2**26 on a GPU (beyond every cache, so the figure is the memory-bound one); and sparse_matmul at
one weight shape, batch 64, 50 % and 90 % ReLU zeros.

`make bench-pytest` runs and saves them (--benchmark-only --benchmark-autosave); `make
bench-pytest-compare` compares with the last saved run and fails on a median 15 % slower. In `make
test` they are collected and skipped (pyproject's --benchmark-skip), so a broken one still fails at
import. The group of each is its (op, dtype, size): pytest-benchmark's own table then puts the
backends of one op side by side.

pytest-benchmark times with a host clock and knows nothing of GPU streams, so each benchmark runs
in pedantic mode: the setup synchronises the device (no earlier work leaks into the round), and the
timed call ends by synchronising too (the round covers the kernel, not only its launch). Pedantic
mode calibrates nothing, so the rounds come from a few timed calls by pytest-benchmark's own rule
(tests/benchmarks/rounds.py): --benchmark-max-time and --benchmark-min-rounds still apply.

Each saved benchmark's extra_info carries `bytes`, what an ideal kernel moves per call (the op's
spec, bench/measure/roofline.py; for sparse_matmul the rows of w its activations need), and `gbps`, those
bytes over the median: throughput that pytest-benchmark's own files and `compare --json` keep.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from bench.measure import inputs, roofline
from bench.kinds import matmul as sparse
from kernels import registry
from kernels.ops import OPS

from .rounds import call_time, limits, rounds_for

SIZES = {"cpu": 2**22, "gpu": 2**26}
MATMUL = {"cpu": (2048, 2048), "gpu": (8192, 8192)}     # w's K x N
BATCH, SPARSITIES = 64, (0.5, 0.9)
DTYPE = "float32"


def _skip(be) -> list:
    if not be.available:
        return [pytest.mark.skip(reason=f"{be.name}: {be.reason}")]
    if be.simulated:
        return [pytest.mark.skip(reason=f"{be.name} runs on the CUDA simulator here: never timed")]
    if DTYPE not in be.dtypes:
        return [pytest.mark.skip(reason=f"{be.name} does not support {DTYPE}")]
    return []


def _params(kind: str):
    out = []
    for k in registry.kernels():
        if OPS[k.op].kind != kind:
            continue
        be = registry.backend(k.backend)
        if kind == "matmul":
            out += [pytest.param(k.op, k.backend, s, id=f"{k.op}-{k.backend}-{int(100 * s)}", marks=_skip(be))
                    for s in SPARSITIES]
        else:
            out.append(pytest.param(k.op, k.backend, id=f"{k.op}-{k.backend}", marks=_skip(be)))
    return out


def _bench(benchmark, config, op: str, backend: str, host: tuple[np.ndarray, ...], nbytes: int):
    """Time op on backend with host's arrays moved there, outputs preallocated where it can, for
    as many rounds as fill --benchmark-max-time at the call time measured first; `nbytes`, what
    one call moves, goes to extra_info with the GB/s of the median."""
    be = registry.backend(backend)
    args = tuple(be.to_native(a) for a in host)
    kernels.get(op, backend)(*args)          # the checked call once; the raw launcher is timed
    fn, kwargs = registry.timed_call(op, backend, args)
    sync = be.synchronize

    def call():
        fn(*args, **kwargs)
        sync()

    call()                    # compile (numba), first touch of the outputs
    duration = call_time(call)
    rounds = rounds_for(duration, *limits(config))
    benchmark.extra_info["calibration_call_s"] = duration
    benchmark.pedantic(call, setup=sync, rounds=rounds, iterations=1)   # warm: the probes were
    benchmark.extra_info.update(_throughput(nbytes, benchmark.stats.stats.median))


def _throughput(nbytes: int, median_s: float) -> dict:
    """extra_info's bytes per call and GB/s (1e9 bytes per second, as bench run counts them)."""
    return {"bytes": int(nbytes), "gbps": nbytes / median_s / 1e9 if median_s > 0 else None}


@pytest.mark.parametrize("op,backend", _params("elementwise"))
def test_kernel(benchmark, pytestconfig, op, backend):
    dev = registry.backend(backend).device
    n = SIZES[dev]
    benchmark.group = f"{op} {DTYPE} 2**{n.bit_length() - 1}"
    benchmark.extra_info.update(op=op, backend=backend, device=dev, dtype=DTYPE, size=n)
    _bench(benchmark, pytestconfig, op, backend, inputs.random_inputs(op, (n,), DTYPE, np.random.default_rng(0)),
           roofline.traffic(op, n, DTYPE))


@pytest.mark.parametrize("op,backend,sparsity", _params("matmul"))
def test_sparse_matmul(benchmark, pytestconfig, op, backend, sparsity):
    dev = registry.backend(backend).device
    k, n = MATMUL[dev]
    rng = np.random.default_rng(0)
    a = sparse.activations(BATCH, k, sparsity, "relu", DTYPE, rng)
    w = inputs.random_array((k, n), DTYPE, rng)
    benchmark.group = f"{op} {DTYPE} {k}x{n} batch {BATCH} {100 * sparsity:g}% zeros"
    benchmark.extra_info.update(op=op, backend=backend, device=dev, dtype=DTYPE, shape=f"{k}x{n}", batch=BATCH,
                                sparsity=sparsity, pattern="relu")
    _bench(benchmark, pytestconfig, op, backend, (a, w),
           roofline.matmul_traffic(sparse.needed_rows(a), BATCH, k, n, DTYPE))
