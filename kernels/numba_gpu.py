"""numba.cuda backend (placeholder: kernels land with the numba_cuda work)."""
