"""A user's own kernel, checked and timed by actbench beside the built-in ones: a parallel numba ReLU.

    python -m bench run --plugin examples/my_relu.py --ops relu

It declares the backend "my_numba" and registers a kernel for the existing op "relu" on it, through
the public API of `kernels` only (docs/plugins.md). actbench then treats it as any backend: checked
against the float64 reference before it is timed (FAILED and never timed if wrong), timed with the
same clock and read against the same copy peak, and shown in the tables, the JSON and `bench compare`.
"""

import numba
import numpy as np

import kernels

# The backend: its name, where it runs, and how arrays move to and from it. Its arrays are NumPy
# arrays on the host, so moving them is np.asarray (no copy) and the host's clock times it.
kernels.declare_backend(kernels.Backend(
    name="my_numba",
    library="numpy",
    default_device="cpu",
    # the probe says whether it can run here: Available(...), or a string saying why not
    probe=lambda: kernels.Available(description=f"a user's numba {numba.__version__} relu"),
    to_native=np.asarray,
    to_numpy=np.asarray,
    is_native=lambda a: type(a) is np.ndarray,
    empty=np.empty,
    dtypes=("float32", "float64"),
    # inputs are made C-contiguous before the kernel sees them (a copy only where they are not)
    contiguous=lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a),
))


@numba.njit(parallel=True)
def _relu_kernel(x, out):
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = 0 if v < 0 else v        # a NaN is not < 0: it passes through, as np.maximum(x, 0)


# The launcher: actbench has checked the dtype and shape, and `out` (when given, as the timed call
# does: outputs preallocated) is a C-contiguous array of x's shape and dtype that it may overwrite.
@kernels.register("relu", "my_numba")
def relu(x, out=None):
    y = np.empty(x.shape, x.dtype) if out is None else out
    _relu_kernel(x.reshape(-1), y.reshape(-1))     # flat views: both are C-contiguous
    return y
