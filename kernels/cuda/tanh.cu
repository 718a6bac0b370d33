// tanh and its gradient as CUDA RawKernels (cupy_raw backend). Semantics are those of
// kernels/ops/; common.cuh says how data moves.
// One extern "C" kernel per op and dtype, _<op>_kernel_f16 / _f32 / _f64, declared at the end.
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

// ---- the kernels (common.cuh: names and arguments) --------------------------------------------

ACT_MAP1_KERNELS(tanh, act::Tanh)
ACT_MAP2_KERNELS(tanh_grad, act::TanhGrad)
