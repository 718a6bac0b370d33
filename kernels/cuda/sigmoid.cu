// sigmoid and its gradient as CUDA RawKernels (cupy_raw backend). Semantics are those of
// kernels/ops/; common.cuh says how data moves.
// One extern "C" kernel per op and dtype, _<op>_kernel_f16 / _f32 / _f64, declared at the end.
#include "common.cuh"

namespace act {

__device__ __forceinline__ float exp_(float v) { return expf(v); }
__device__ __forceinline__ double exp_(double v) { return exp(v); }

// 1 / d for d in [1, 2]. float: __fdividef (MUFU.RCP and a multiply, within 2 ulp for any
// normal d) instead of the IEEE division, whose rarely taken slow path is a call that made
// ptxas spill under __launch_bounds__(256); double: the IEEE division.
__device__ __forceinline__ float recip_1_2(float d) { return __fdividef(1.0f, d); }
__device__ __forceinline__ double recip_1_2(double d) { return 1.0 / d; }

// sigmoid(x) = 1 / (1 + exp(-x)) without overflow: exp only ever sees -|x| <= 0, so e is in
// [0, 1] and r = 1 / (1 + e) in [0.5, 1]; for x < 0 the answer is e / (1 + e) = e * r.
// x = +inf -> e = 0 -> exactly 1; x = -inf -> exactly 0; NaN -> e = NaN -> NaN.
// expf, not the __expf intrinsic: __expf's error grows as 2 + 1.2 |x| ulp (about 100 ulp, 1.2e-5
// relative, near x = -87), over float32's rtol of 1e-5; expf is within 2 ulp everywhere, and
// with recip_1_2 the float result is within about 5 ulp (3e-7).
struct Sigmoid {
    template <typename C> __device__ __forceinline__ C operator()(C x) const {
        const C e = exp_(-fabs(x));
        const C r = recip_1_2(C(1) + e);
        return x >= C(0) ? r : e * r;
    }
};

// sigmoid_grad from the forward output, as PyTorch: dy * y * (1 - y), left to right. No a*b+c
// shape in it, so --fmad cannot change it.
struct SigmoidGrad {
    template <typename C> __device__ __forceinline__ C operator()(C dy, C y) const {
        return (dy * y) * (C(1) - y);
    }
};

}  // namespace act

// ---- the kernels (common.cuh: names and arguments) --------------------------------------------

ACT_MAP1_KERNELS(sigmoid, act::Sigmoid)
ACT_MAP2_KERNELS(sigmoid_grad, act::SigmoidGrad)
