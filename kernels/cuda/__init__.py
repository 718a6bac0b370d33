"""CUDA C sources (*.cu, *.cuh) beside their build options (build.py): what the CuPy backends compile
at run time. kernels/nvrtc/ compiles every one of them without a GPU and reports their resources."""
