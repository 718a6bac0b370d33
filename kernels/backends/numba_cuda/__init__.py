"""numba-cuda: the numba_cuda backend's elementwise kernels (`device`: the warp-level helpers they
share) and its sparse matmul."""

from kernels.backends.numba_cuda import elementwise, sparse  # noqa: F401  (declares and registers)
