"""NumPy: the baseline every speed-up is over; its expressions serve CuPy too (`ArrayModuleOps`)."""

from kernels.backends.numpy import elementwise  # noqa: F401  (declares and registers)
