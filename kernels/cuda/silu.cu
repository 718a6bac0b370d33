// SiLU and its gradient as CUDA RawKernels (cupy_raw backend), PyTorch's semantics (kernels/ops/);
// common.cuh says how data moves, logistic.cuh holds the sigmoid pieces.
#include "common.cuh"
#include "logistic.cuh"

namespace act {

// silu(x) = x * sigmoid(x): +inf at +inf, NaN at -inf and NaN.
struct Silu {
    template <typename C> __device__ __forceinline__ C operator()(C x) const { return x_sigmoid(x, x); }
};

// aten's silu_backward(dy, x): dy * s * (1 + x * (1 - s)), with 1 - s from exp(-|x|) (no
// cancellation); NaN at x = +-inf, as PyTorch's.
struct SiluGrad {
    template <typename C> __device__ __forceinline__ C operator()(C dy, C x) const {
        C s, c;
        sigmoid_parts(x, s, c);
        return dy * (s * (C(1) + x * c));
    }
};

}  // namespace act

ACT_MAP1_KERNELS(silu, act::Silu)
ACT_MAP2_KERNELS(silu_grad, act::SiluGrad)
