"""How many ULPs each backend's sigmoid, tanh, silu and gelu are off: `make accuracy` (python -m bench.analysis.accuracy).

The correctness gate (check.py) asks "within tolerance?"; this asks "how many digits are lost?".
Each output is compared with the correctly rounded result, and its error is counted in ULPs of
that result: |y - ref| / ulp(round(ref)), with ref computed in a wider type (float64 for float32
inputs, long double for float64 inputs). Only inputs whose exact result is a finite normal number
count (a flush to zero below the normal range is the tolerance table's business, not this).

Inputs: every 16th float32 bit pattern (all 2**28 of them, finite ones, both signs); for float64,
a strided sample of the bit patterns of [-800, 800] (both signs), dense enough to step through
every binade. `BOUNDS` holds what numba_cpu promises; the table marks a cell above it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import kernels
from kernels.ops import reference
from kernels.ops.elementwise import GELU_C1, GELU_C2
from rich.console import Console
from rich.table import Table

# max ULP numba_cpu promises, by (op, dtype)
BOUNDS = {("sigmoid", "float32"): 3.0, ("tanh", "float32"): 2.0,
          ("sigmoid", "float64"): 3.0, ("tanh", "float64"): 3.0,
          ("silu", "float32"): 4.0, ("gelu", "float32"): 4.0,       # sigmoid's, and the product x * s
          ("silu", "float64"): 4.0, ("gelu", "float64"): 4.0}
OPS = ("sigmoid", "tanh", "silu", "gelu")
F64_LIMIT = 800.0           # beyond it sigmoid and tanh are constants in float64 (silu and gelu: x or 0)


def _wide_sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _wide_reference(op: str, x: np.ndarray) -> np.ndarray:
    """op(x) in a type wider than x's: float64 for float32 (kernels.ops), long double for
    float64 (on x86-64, 64 mantissa bits: 11 more than the result's)."""
    if x.dtype == np.float32:
        return reference(op)(x)
    w = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        if op == "sigmoid":
            return 1 / (1 + np.exp(-w))
        if op == "tanh":
            return np.tanh(w)
        if op == "silu":
            return w * _wide_sigmoid(w)
        if op == "gelu":       # x sigmoid(z), z = 2u with kernels.ops' float64 constants
            return w * _wide_sigmoid(w * (GELU_C1 + GELU_C2 * (w * w)))
    raise ValueError(f"no wide reference for {op!r}")


def ulp_errors(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|y - ref| in ULPs of ref correctly rounded to y's dtype, in the wide type of ref."""
    rounded = ref.astype(y.dtype)
    ulp = np.spacing(np.abs(rounded)).astype(ref.dtype)
    return np.abs(y.astype(ref.dtype) - ref) / ulp


def float32_inputs(step: int = 16, chunk: int = 1 << 24) -> Iterator[np.ndarray]:
    """Every `step`-th float32 bit pattern that is a finite number, in arrays of at most `chunk`."""
    span = chunk * step
    for lo in range(0, 1 << 32, span):
        bits = np.arange(lo, min(lo + span, 1 << 32), step, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        yield x[np.isfinite(x)]


def float64_inputs(samples: int = 1 << 24, limit: float = F64_LIMIT,
                   chunk: int = 1 << 22) -> Iterator[np.ndarray]:
    """About `samples` float64 inputs, evenly strided over the bit patterns of [0, limit] and
    negated: every binade from the smallest subnormal to `limit` gets its share."""
    top = int(np.array(limit).view(np.uint64))
    step = max(1, 2 * top // samples)
    for lo in range(0, top + 1, chunk * step):
        x = np.arange(lo, min(lo + chunk * step, top + 1), step, dtype=np.uint64).view(np.float64)
        yield np.concatenate([x, -x])


@dataclass(frozen=True)
class Worst:
    """The largest error of one op on one backend and dtype, and the input that shows it."""

    ulp: float
    x: float
    count: int            # inputs compared


def sweep(op: str, backends: list[str], inputs) -> dict[str, Worst]:
    """The worst error in ULPs of each backend's `op` over the arrays of `inputs` (one dtype)."""
    worst = {b: Worst(0.0, float("nan"), 0) for b in backends}
    for x in inputs:
        ref = _wide_reference(op, x)
        counted = np.isfinite(ref) & (np.abs(ref) >= np.finfo(x.dtype).tiny)
        xs, ref = x[counted], ref[counted]
        for b in backends:
            y = kernels.asnumpy(kernels.get(op, b)(kernels.asarray(b, xs)))
            err = ulp_errors(y, ref)
            i = int(np.argmax(err)) if err.size else 0
            w = worst[b]
            if err.size and (err[i] > w.ulp or np.isnan(err[i])):
                w = Worst(float(err[i]), float(xs[i]), w.count)
            worst[b] = Worst(w.ulp, w.x, w.count + xs.size)
    return worst


def _cpu_backends(op: str, dtype: str) -> list[str]:
    """Every available CPU backend that runs `op` in `dtype`, in registry order."""
    return [b.name for b in kernels.all_backends()
            if b.available and b.device == "cpu" and dtype in b.dtypes
            and any(k.op == op and k.backend == b.name for k in kernels.registry.kernels())]


def main(argv: list[str] | None = None) -> int:

    p = argparse.ArgumentParser(prog="python -m bench.analysis.accuracy", description=__doc__.splitlines()[0])
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated: sigmoid, tanh, silu, gelu (default all)")
    p.add_argument("--dtypes", default="float32,float64", help="float32 and/or float64")
    p.add_argument("--backends", help="comma-separated CPU backends (default: every available one)")
    p.add_argument("--step", type=int, default=16, help="float32: every STEP-th bit pattern (default 16)")
    p.add_argument("--f64-samples", type=int, default=1 << 24, help="float64 inputs (default 2**24)")
    args = p.parse_args(argv)

    console = Console()
    rows, failed = [], False
    for dtype in args.dtypes.split(","):
        for op in args.ops.split(","):
            names = args.backends.split(",") if args.backends else _cpu_backends(op, dtype)
            inputs = float32_inputs(args.step) if dtype == "float32" else float64_inputs(args.f64_samples)
            with console.status(f"{op} {dtype}: {', '.join(names)}"):
                rows.append((op, dtype, sweep(op, names, inputs)))
    backends = list(dict.fromkeys(b for _, _, w in rows for b in w))
    table = Table(title="max error in ULPs of the correctly rounded result, @ the input (normal outputs)")
    for col in ("op", "dtype", "inputs", "bound", *backends):
        table.add_column(col, justify="left" if col in ("op", "dtype") else "right")
    for op, dtype, worst in rows:
        bound = BOUNDS.get((op, dtype))
        cells = []
        for b in backends:
            w = worst.get(b)
            if w is None:
                cells.append("-")
                continue
            over = b == "numba_cpu" and bound is not None and not w.ulp <= bound
            failed |= over
            text = f"{w.ulp:.2f} @ {w.x:.4g}"
            cells.append(f"[bold red]{text}[/]" if over else text)
        count = max(w.count for w in worst.values()) if worst else 0
        table.add_row(op, dtype, f"{count:,}", f"{bound:g}" if bound else "-", *cells)
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
