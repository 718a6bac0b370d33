"""A test-only backend with a planted slowdown, for proving that `bench compare` catches one.

Importing this module declares the backend `planted`: NumPy's own kernels for relu and sigmoid,
followed by a second pass of the same kernel over the first (factor - 1) of the array, so the work
grows by `factor` (ACTBENCH_PLANTED_FACTOR, 1.0 to 2.0, read at import). At factor 1.0 the second
call still happens on an empty slice, so the fixed cost of a call is the same at every factor
and only the work differs. Never imported by the package itself: only by
tests/compare_method.py, which runs the A/A and planted-slowdown experiments.
"""

from __future__ import annotations

import dataclasses
import os

from kernels import registry

FACTOR = float(os.environ.get("ACTBENCH_PLANTED_FACTOR", "1.0"))
if not 1.0 <= FACTOR <= 2.0:
    raise ValueError(f"ACTBENCH_PLANTED_FACTOR must be within [1, 2], got {FACTOR}")
OPS = ("relu", "sigmoid")

registry.declare_backend(dataclasses.replace(
    registry.backend("numpy"), name="planted",
    probe=lambda: registry.Available(
        description=f"test only: NumPy's kernels with {FACTOR:g}x the work (an extra pass over part of the data)")))


def _slowed(op: str):
    raw = registry.kernel(op, "numpy").raw

    def kernel(x, out=None):
        out = raw(x, out=out)
        k = round((FACTOR - 1.0) * x.shape[0])      # the extra pass: the first k elements again
        raw(x[:k], out=out[:k])
        return out
    kernel.__name__ = f"{op}_planted"
    return kernel


for _op in OPS:
    registry.register(_op, "planted")(_slowed(_op))
