"""One pytest-benchmark per available (op, backend) at a mid size: 2**22 elements on the CPU,
2**26 on a GPU (beyond every cache, so the figure is the memory-bound one).

`make bench-pytest` runs and saves them (--benchmark-only --benchmark-autosave); `make
bench-pytest-compare` compares with the last saved run and fails on a median 15 % slower. In `make
test` they are collected and skipped (pyproject's --benchmark-skip), so a broken one still fails at
import. The group of each is its (op, dtype, size): pytest-benchmark's own table then puts the
backends of one op side by side.

pytest-benchmark times with a host clock and knows nothing of GPU streams, so each benchmark runs
in pedantic mode: the setup synchronises the device (no earlier work leaks into the round), and the
timed call ends by synchronising too (the round covers the kernel, not only its launch).
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from bench import inputs
from kernels import registry
from kernels.reference import OPS

SIZES = {"cpu": 2**22, "gpu": 2**26}
DTYPE = "float32"
ROUNDS = {"cpu": 40, "gpu": 100}


def _params():
    out = []
    for k in registry.kernels():
        be = registry.backend(k.backend)
        spec = OPS[k.op]
        marks = []
        if not be.available:
            marks.append(pytest.mark.skip(reason=f"{be.name}: {be.reason}"))
        elif be.simulated:
            marks.append(pytest.mark.skip(reason=f"{be.name} runs on the CUDA simulator here: never timed"))
        elif DTYPE not in be.dtypes:
            marks.append(pytest.mark.skip(reason=f"{be.name} does not support {DTYPE}"))
        if getattr(spec, "inputs", None) is None or not set(spec.inputs) <= {"x", "dy", "y", "mask"}:
            marks.append(pytest.mark.skip(reason=f"{k.op}: no pytest-benchmark inputs for this op yet"))
        out.append(pytest.param(k.op, k.backend, id=f"{k.op}-{k.backend}", marks=marks))
    return out


@pytest.mark.parametrize("op,backend", _params())
def test_kernel(benchmark, op, backend):
    be = registry.backend(backend)
    n = SIZES[be.device]
    benchmark.group = f"{op} {DTYPE} 2**{n.bit_length() - 1}"
    benchmark.extra_info.update(op=op, backend=backend, device=be.device, dtype=DTYPE, size=n)
    rng = np.random.default_rng(0)
    host = inputs.random_inputs(op, (n,), DTYPE, rng)
    args = tuple(be.to_native(a) for a in host)
    k = registry.kernel(op, backend)
    fn = kernels.get(op, backend)
    kwargs = {}
    if k.supports_out:
        outs = tuple(be.empty(shape, dt) for shape, dt in registry.output_layout(OPS[op], args[0]))
        kwargs["out"] = outs if len(outs) > 1 else outs[0]
    sync = be.synchronize

    def call():
        fn(*args, **kwargs)
        sync()

    call()                    # compile (numba), first touch of the outputs
    benchmark.pedantic(call, setup=sync, rounds=ROUNDS[be.device], iterations=1, warmup_rounds=3)
