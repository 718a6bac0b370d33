"""CuPy: cupy (its own functions), cupy_elementwise (ElementwiseKernel), cupy_raw (RawKernel from
kernels/cuda/), cupyx_csr; their sparse matmuls."""

from kernels.backends.cupy import elementwise, expand, sparse  # noqa: F401  (declares and registers)
