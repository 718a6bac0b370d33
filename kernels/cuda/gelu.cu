// GELU (PyTorch's approximate="tanh") and its gradient as CUDA RawKernels (cupy_raw backend),
// PyTorch's semantics (kernels/ops/); common.cuh says how data moves, logistic.cuh holds z and
// the sigmoid pieces: 0.5 x (1 + tanh(u)) = x sigmoid(z), z = 2u, without 1 + tanh's cancellation.
#include "common.cuh"
#include "logistic.cuh"

namespace act {

struct Gelu {
    template <typename C> __device__ __forceinline__ C operator()(C x) const { return x_sigmoid(x, gelu_z(x)); }
};

// aten's gelu_backward(dy, x, approximate="tanh") = dy s (1 + x (1 - s) z'): NaN at x = +-inf
// and where x * x overflows ((x * c) * z' = 0 * inf), as PyTorch's.
struct GeluGrad {
    template <typename C> __device__ __forceinline__ C operator()(C dy, C x) const {
        C s, c;
        sigmoid_parts(gelu_z(x), s, c);
        const C x2 = x * x;
        return dy * (s * (C(1) + (x * c) * (C(ACT_GELU_C1) + C(3.0 * ACT_GELU_C2) * x2)));
    }
};

}  // namespace act

ACT_MAP1_KERNELS(gelu, act::Gelu)
ACT_MAP2_KERNELS(gelu_grad, act::GeluGrad)
