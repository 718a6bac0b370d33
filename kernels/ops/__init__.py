"""The definition of every op: float64 NumPy oracles and the specs that describe each op, one module
per op kind (elementwise.py, matmul.py; spec.py: the record they share).

Semantics live here and only here. The tests and the benchmark's correctness gate compare every
backend against these functions, computed in float64 from the same input values.
"""

from __future__ import annotations

from kernels.ops import elementwise, matmul
from kernels.ops.elementwise import LEAKY_SLOPE, pack_mask, unpack_mask  # noqa: F401  (the public API)
from kernels.ops.matmul import (  # noqa: F401  (the public API)
    OUTPUT_ROUNDING,
    RTOL_SQRT_K,
    SAMPLE_COLUMNS_ABOVE,
    as_rows,
    compare_sparse_matmul,
    matmul_operands,
    matmul_result,
    sparse_matmul,
    sparse_matmul_error,
    sparse_matmul_layout,
    sparse_matmul_magnitude,
    sparse_matmul_tolerance,
)
from kernels.ops.spec import FLOAT_DTYPES, OpSpec, dtype_name, mask_nbytes  # noqa: F401  (the public API)

KINDS = (elementwise, matmul)       # one module per op kind, each with its SPECS
OPS: dict[str, OpSpec] = {s.name: s for kind in KINDS for s in kind.SPECS}
_ORACLES = {s.name: getattr(kind, s.name) for kind in KINDS for s in kind.SPECS}

# The ops whose outputs are shaped like their inputs (everything but the matmuls).
ELEMENTWISE_OPS: tuple[str, ...] = tuple(name for name, s in OPS.items() if s.kind == "elementwise")


def reference(op: str):
    """The float64 oracle of an op."""
    if op not in OPS:
        raise LookupError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    return _ORACLES[op]
