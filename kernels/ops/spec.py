"""What an op is, in one record (`OpSpec`): its arrays, parameters, kind, cost and, where the
elementwise rules do not fit, its own checks. Shared by the op kinds' modules beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

FLOAT_DTYPES = ("float16", "float32", "float64")


@dataclass(frozen=True)
class OpSpec:
    """What an op takes and gives; enough to validate a call and to count its bytes."""

    name: str
    inputs: tuple[str, ...]                 # array arguments, in call order
    outputs: tuple[str, ...] = ("y",)       # arrays returned (a tuple when more than one)
    params: dict = field(default_factory=dict)   # scalar keywords and their defaults
    grad: bool = False                      # a backward op: first input is dy, tolerance scales with |dy|
    forward: str | None = None              # for a gradient: the forward op it differentiates
    grad_of_output: bool = False            # the second input is the forward output y, not x
    mask_input: bool = False                # the second input is a packed bit mask (uint8)
    kind: str = "elementwise"               # "elementwise" (outputs shaped like the inputs) or "matmul"
    # Arithmetic per element (elementwise ops), a transcendental (exp, tanh) counted as one: the
    # flops a run reports (bench/measure/roofline.py)
    flops_per_element: int = 0
    # The cost class a backend tunes by: "memory" (a few flops per element: memory-bound), "exp"
    # (a transcendental per element), "mask" (packs or unpacks a bit mask); numba_cpu measures its
    # store strategy per class (kernels/backends/numba_cpu/strategy.py)
    tuning: str = "memory"
    # Per-op hooks where the elementwise rules do not fit (None: those rules). check(*arrays)
    # validates how the arrays relate (ValueError for shapes, TypeError for dtypes) and returns the
    # (shape, dtype) of each output; compare(outputs, inputs) -> (ok, message, worst) is the op's
    # own correctness criterion (worst: the largest error as a multiple of the allowed one).
    check: Callable | None = None
    compare: Callable | None = None

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)


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


# The ops whose outputs are shaped like their inputs (everything but the matmuls).


def mask_nbytes(n: int) -> int:
    """Bytes of a packed 1-bit-per-element mask of n elements."""
    return (n + 7) // 8
