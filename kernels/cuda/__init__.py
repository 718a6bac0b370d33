"""CUDA C sources (*.cu, *.cuh) beside their build options (build.py), the NVRTC compile that
checks them without a GPU (nvrtc.py) and the register/spill report (resources.py)."""
