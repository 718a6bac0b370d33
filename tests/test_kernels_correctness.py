"""Every available (op, backend) against the float64 reference, through bench.measure.check.check_call.

Random normal inputs scaled by 1, 10 and 100 at awkward sizes, 2-D and 3-D shapes, non-contiguous
views, and the special values; every call also checks that inputs are left untouched and that a
preallocated out= is fully written. Simulated GPU backends get the small sizes only.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from bench.measure.check import check_call
from bench.measure.inputs import SCALES, op_inputs, random_array, random_inputs, special_inputs
from kernels.ops import LEAKY_SLOPE, OPS, pack_mask

from .conftest import dtypes_of, kernel_dtype_params, kernel_params, max_size

SIZES = (0, 1, 7, 31, 1000, 2**16 + 3)
SHAPES = ((37, 129), (3, 5, 67))

each_kernel = pytest.mark.parametrize("op,backend", kernel_params())
each_kernel_and_dtype = pytest.mark.parametrize("op,backend,dtype", kernel_dtype_params())


@each_kernel_and_dtype
def test_random_sizes_and_scales(op, backend, dtype, rng):
    limit = max_size(backend)
    for n in SIZES:
        if limit is not None and n > limit:
            continue
        for scale in SCALES:
            inputs = random_inputs(op, (n,), dtype, rng, scale)
            r = check_call(op, backend, inputs)
            assert r.ok, f"n={n} scale={scale}: {r.message}"


@each_kernel
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_multidimensional(op, backend, shape, rng):
    for dtype in dtypes_of(backend):
        r = check_call(op, backend, random_inputs(op, shape, dtype, rng, 10.0))
        assert r.ok, f"{dtype}: {r.message}"


@each_kernel_and_dtype
def test_special_values(op, backend, dtype, rng):
    for label, inputs in special_inputs(op, dtype, rng):
        r = check_call(op, backend, inputs)
        assert r.ok, f"{label}: {r.message}"


# relu_grad is torch's threshold_backward (0 where x <= 0, so a NaN x passes dy) and leaky_relu_grad
# its leaky_relu_backward (dy where x > 0, else slope * dy, so a NaN x gives slope * dy): which x
# pass dy. 1e-40 is 0 in float16 and passes nothing there.
SPECIAL_X = [np.nan, 0.0, -0.0, np.inf, -np.inf, 1.0, -1.0, 1e-40, -1e-40]
PASSES_DY = {"relu_grad": [1, 0, 0, 1, 0, 1, 0, 1, 0], "leaky_relu_grad": [0, 0, 0, 1, 0, 1, 0, 1, 0]}


@pytest.mark.parametrize("op,backend", [p for p in kernel_params() if p.values[0] in PASSES_DY])
def test_relu_gradients_follow_torch_at_special_x(op, backend):
    """Exact values on every backend, repeated so vector bodies and scalar tails both see them; dy
    powers of two, so slope * dy is exact whatever precision the slope is multiplied in."""
    for dtype in dtypes_of(backend):
        x = np.tile(np.array(SPECIAL_X, dtype=dtype), 7)
        dy = np.tile(2.0 ** np.arange(-4, 5), 7).astype(dtype)
        passes = np.tile(np.array(PASSES_DY[op], dtype=bool), 7) & (x != 0)     # (x != 0: float16's 1e-40)
        other = np.zeros_like(dy) if op == "relu_grad" else np.dtype(dtype).type(LEAKY_SLOPE) * dy
        dx = kernels.asnumpy(kernels.get(op, backend)(kernels.asarray(backend, dy), kernels.asarray(backend, x)))
        np.testing.assert_array_equal(dx, np.where(passes, dy, other), err_msg=f"{op} on {backend}, {dtype}")


@each_kernel
@pytest.mark.parametrize("layout", ["strided", "transposed"])
def test_non_contiguous(op, backend, layout, rng):
    """A strided 1-D view (every other element) and a transposed 2-D array give the right answer."""
    spec = OPS[op]
    for dtype in ("float32", "float64"):
        if layout == "strided":
            n = 2 * (min(max_size(backend) or 4099, 4099) // 2) + 1
            base_x = random_array((n,), dtype, rng, 10.0)
            def view(name, a):
                return a if name == "mask" else a[::2]
        else:
            base_x = random_array((33, 65), dtype, rng, 10.0)
            def view(name, a):
                return a if name == "mask" else a.T
        inputs = op_inputs(op, base_x, rng)
        if spec.mask_input:
            # the mask describes the view the kernel sees, and is itself contiguous
            inputs = (inputs[0], pack_mask(view("x", base_x)))
        r = check_call(op, backend, inputs, view=view)
        assert r.ok, f"{dtype}: {r.message}"
