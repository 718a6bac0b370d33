"""CuPy's own expansion of the cupy_elementwise kernels, run without a GPU.

A cupy.ElementwiseKernel call resolves its type placeholders from the arrays it is given
(`_decide_params_type`), generates CUDA C (`_get_elementwise_kernel_code`), prepends CuPy's headers
and compiles with the options `assemble_cupy_compiler_options` gives plus -ftz=true and the arch.
Only the last steps (compile, load, launch) need a device, so the tests and `make resources` run
CuPy's own steps here and hand the result to NVRTC (kernels/nvrtc/__init__.py), instead of an imitation:
an imitation bound a placeholder CuPy never binds and hid a KeyError on every call.

The arguments are the ones the launcher passes (kernels/backends/cupy/elementwise.py `Elementwise.arguments`),
with NumPy arrays standing in for CuPy's (only their dtype, size and shape are read).
Needs cupy importable (the dev extra installs cupy-cuda13x, which imports without a GPU).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from kernels.backends.cupy.elementwise import ELEMENTWISE, Elementwise
from kernels.ops import OPS
from kernels.cuda.build import DTYPES

STAND_IN_SIZE = 16       # elements of the stand-in arrays (any size below 2**31 gives 32-bit indexing)


def reason() -> str | None:
    """Why CuPy's expansion cannot run here (None when it can)."""
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed (the dev extra installs cupy-cuda13x, which imports without a GPU)"
    try:
        import cupy  # noqa: F401
    except Exception as exc:
        return f"cupy failed to import: {type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class Expanded:
    """One ElementwiseKernel for one dtype, as CuPy would compile it."""

    op: str
    dtype: str
    name: str                  # the kernel's name in the source
    source: str                # CuPy's headers + CuPy's generated code
    options: tuple[str, ...]   # CuPy's NVRTC options, without the arch


def kernel(ew: Elementwise):
    """The cupy.ElementwiseKernel the launcher builds (constructing one needs no device)."""
    import cupy
    return ew.build(cupy)


def stand_in_call(ew: Elementwise, dtype: str) -> tuple[list, list]:
    """(inputs, outputs) the launcher passes to the kernel, with NumPy arrays for CuPy's."""
    spec = OPS[ew.op]
    n = STAND_IN_SIZE
    arrays = [np.zeros(n if name != "mask" else (n + 7) // 8, np.uint8 if name == "mask" else dtype)
              for name in spec.inputs]
    outs = [np.zeros(n if name != "mask" else (n + 7) // 8, np.uint8 if name == "mask" else dtype)
            for name in spec.outputs]
    args = ew.arguments(arrays, outs, dict(spec.params))
    nin = len(ew.in_params.split(","))
    return args[:nin], args[nin:]


def resolve(ew: Elementwise, dtype: str):
    """CuPy's type resolution for the launcher's call: (in_types, out_types, type_map). Raises
    what the call would raise on a GPU (a KeyError for a placeholder nothing binds)."""
    k = kernel(ew)
    ins, outs = stand_in_call(ew, dtype)
    # as ElementwiseKernel.__call__: arrays give their dtype, scalars None
    in_types = tuple(a.dtype if isinstance(a, np.ndarray) else None for a in ins)
    out_types = tuple(a.dtype for a in outs)
    return k._decide_params_type(in_types, out_types)


def expand(ew: Elementwise, dtype: str) -> Expanded:
    """CuPy's generated source and options for the launcher's call on contiguous arrays of dtype."""
    import cupy
    from cupy._core import _carray, _kernel, _scalar, core
    k = kernel(ew)
    ins, outs = stand_in_call(ew, dtype)
    in_types, out_types, type_map = resolve(ew, dtype)
    ndarray, indexer, scalar = 1, 2, 3          # cupy/_core/_kernel.pxd _ArgKind
    infos = []
    for a, t in zip(ins + outs, in_types + out_types):
        if isinstance(a, np.ndarray):
            # reduce_dims makes a contiguous array 1-D; below 2**31 elements CuPy indexes in 32 bits
            infos.append(_kernel._ArgInfo(ndarray, cupy.ndarray, a.dtype, 1, True, True))
        else:       # a scalar takes the dtype its parameter resolved to (CScalar.apply_dtype)
            infos.append(_kernel._ArgInfo(scalar, _scalar.CScalar, np.dtype(t), 0, True, True))
    infos.append(_kernel._ArgInfo(indexer, _carray.Indexer, None, 1, True, True))
    code = _kernel._get_elementwise_kernel_code(tuple(infos), type_map, k.params, k.operation, k.name,
                                                k.preamble, **k.kwargs)
    header = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    return Expanded(ew.op, dtype, ew.name, header + code, options(tuple(k.kwargs.get("options", ()))))


def options(given: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The NVRTC options CuPy compiles a kernel with, `given` its user's, the arch left out:
    `assemble_cupy_compiler_options` (CCCL's, CuPy's and the CUDA headers' folders, C++17 unless
    given), then what cupy/cuda/compiler.py adds (-ftz=true, the default execution space)."""
    from cupy._core import core
    return (*core.assemble_cupy_compiler_options(tuple(given)), "-ftz=true", "--device-as-default-execution-space")


def expand_all() -> list[Expanded]:
    return [expand(ew, dtype) for ew in ELEMENTWISE.values() for dtype in DTYPES]
