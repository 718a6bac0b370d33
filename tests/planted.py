"""A test-only backend with a planted slowdown, for proving that `bench compare` catches one.

Importing this module declares the backend `planted`: NumPy's own kernels for relu and sigmoid,
each call followed by a busy wait of (factor - 1) times that call's own duration, so the planted
case is `factor` times slower at every size (ACTBENCH_PLANTED_FACTOR, 1.0 to 2.0, read at import;
at 1.0 there is no wait, and the two clock readings cost the same at every factor). The wait scales
with the call it follows, so a call that met a busy moment is slowed in proportion, as a kernel
doing `factor` times the work would be. An extra pass over part of the data was tried first: its
call overhead made a 2**12 relu only 1.08x slower at factor 1.3, a regression no gate with a 10 %
threshold could be asked to see. Never imported by the package itself: only by
tests/compare_method.py, which runs the A/A and planted-slowdown experiments.
"""

from __future__ import annotations

import dataclasses
import os
import time

from kernels import registry

FACTOR = float(os.environ.get("ACTBENCH_PLANTED_FACTOR", "1.0"))
if not 1.0 <= FACTOR <= 2.0:
    raise ValueError(f"ACTBENCH_PLANTED_FACTOR must be within [1, 2], got {FACTOR}")
OPS = ("relu", "sigmoid")

registry.declare_backend(dataclasses.replace(
    registry.backend("numpy"), name="planted",
    probe=lambda: registry.Available(
        description=f"test only: NumPy's kernels, {FACTOR:g}x as slow (a busy wait after each call)")))


def _slowed(op: str, factor: float = FACTOR, clock=time.perf_counter):
    raw = registry.kernel(op, "numpy").raw

    def kernel(x, out=None):
        t0 = clock()
        out = raw(x, out=out)
        end = t0 + factor * (clock() - t0)
        while clock() < end:
            pass
        return out
    kernel.__name__ = f"{op}_planted"
    return kernel


for _op in OPS:
    registry.register(_op, "planted")(_slowed(_op))
