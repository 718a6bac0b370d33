// tanh and its gradient as CUDA RawKernels (cupy_raw backend). Semantics are those of
// kernels/reference.py; common.cuh says how data moves.
// One extern "C" kernel per op and dtype: _<op>_kernel_f16 / _f32 / _f64 (__half, float, double).
#include "common.cuh"

namespace act {

__device__ __forceinline__ float tanh_(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_(double v) { return tanh(v); }

// tanh: CUDA's tanhf / tanh (within 2 ulp); +-inf -> +-1, NaN -> NaN.
struct Tanh {
    template <typename C> __device__ __forceinline__ C operator()(C x) const { return tanh_(x); }
};

// tanh_grad from the forward output: dy * (1 - y * y). With NVRTC's default --fmad=true,
// 1 - y * y becomes one fma(-y, y, 1): a single rounding, never worse than two.
struct TanhGrad {
    template <typename C> __device__ __forceinline__ C operator()(C dy, C y) const {
        return dy * (C(1) - y * y);
    }
};

}  // namespace act

// ---- tanh --------------------------------------------------------------------------------------

// reads 2 B + writes 2 B per element (__half); see bench/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_tanh_kernel_f16(const __half* __restrict__ x, __half* __restrict__ y, long long n) {
    act::map1(x, y, n, act::Tanh());
}

// reads 4 B + writes 4 B per element (float); see bench/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_tanh_kernel_f32(const float* __restrict__ x, float* __restrict__ y, long long n) {
    act::map1(x, y, n, act::Tanh());
}

// reads 8 B + writes 8 B per element (double); see bench/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_tanh_kernel_f64(const double* __restrict__ x, double* __restrict__ y, long long n) {
    act::map1(x, y, n, act::Tanh());
}

// ---- tanh_grad ---------------------------------------------------------------------------------

// reads 4 B + writes 2 B per element (__half); see bench/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_tanh_grad_kernel_f16(const __half* __restrict__ dy, const __half* __restrict__ y, __half* __restrict__ dx,
                      long long n) {
    act::map2(dy, y, dx, n, act::TanhGrad());
}

// reads 8 B + writes 4 B per element (float); see bench/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_tanh_grad_kernel_f32(const float* __restrict__ dy, const float* __restrict__ y, float* __restrict__ dx,
                      long long n) {
    act::map2(dy, y, dx, n, act::TanhGrad());
}

// reads 16 B + writes 8 B per element (double); see bench/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_tanh_grad_kernel_f64(const double* __restrict__ dy, const double* __restrict__ y, double* __restrict__ dx,
                      long long n) {
    act::map2(dy, y, dx, n, act::TanhGrad());
}
