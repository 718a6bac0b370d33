"""SciPy: scipy_csr, the sparse matmul through a CSR matrix (its conversion timed with it)."""

from kernels.backends.scipy import sparse  # noqa: F401  (declares and registers)
