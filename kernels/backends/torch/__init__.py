"""PyTorch (CPU build, and CUDA where present): the peer to beat, through its own kernels."""

from kernels.backends.torch import elementwise  # noqa: F401  (declares and registers)
