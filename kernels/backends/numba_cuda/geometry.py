"""The launch geometry the numba_cuda kernels share: warp width, the ballot's lane mask and how many
elements each thread has in flight. Apart from the kernels (device.py, which imports numba.cuda)
so that the launchers (elementwise.py) read it without importing numba-cuda."""

WARP = 32                # threads per warp: bits per word of the relu_mask mask
FULL_MASK = 0xFFFFFFFF   # every lane of a warp takes part in each ballot
UNROLL = 4               # elements each thread loads before it stores any (reads in flight)
