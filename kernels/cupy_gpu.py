"""CuPy backends (placeholder: kernels land with the CUDA work)."""
