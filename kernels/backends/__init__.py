"""The backends, one package per library family, each holding its elementwise and sparse kernels.

The list below is the one place that names them: importing it declares every backend and
registers its kernels, in this order (the order of `kernels.all_backends()`, of the columns of every
table). A new backend is one package here and one line in this list (and, for a new array library,
one adapter in bench/measure/devices.py). Each package imports its optional library lazily or
behind a probe, so a machine without it simply has fewer available backends, each with the reason.
"""

from kernels.backends import numpy, numba_cpu, cupy, numba_cuda, torch, scipy  # noqa: F401  (the order)

MODULES = (numpy, numba_cpu, cupy, numba_cuda, torch, scipy)
