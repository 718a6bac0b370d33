// The logistic pieces SiLU and GELU share (silu.cu, gelu.cu, and cupy_elementwise's preamble):
// sigmoid(z) and 1 - sigmoid(z) without overflow or cancellation, x * sigmoid(z) where
// sigmoid(z) underflows, and GELU's z. Float arithmetic is compiled with -ftz=true (CuPy adds it).
#pragma once

namespace act {

// GELU's tanh approximation as a sigmoid: 1 + tanh(u) = 2 sigmoid(z), z = 2u = x (C1 + C2 x^2),
// dz/dx = C1 + 3 C2 x^2 (kernels/ops/elementwise.py's GELU_C1 and GELU_C2).
#define ACT_GELU_C1 1.5957691216057308
#define ACT_GELU_C2 0.07135481627260025

__device__ __forceinline__ float logistic_exp(float v) { return expf(v); }
__device__ __forceinline__ double logistic_exp(double v) { return exp(v); }
__device__ __forceinline__ float logistic_recip(float d) { return __fdividef(1.0f, d); }   // d in [1, 2]
__device__ __forceinline__ double logistic_recip(double d) { return 1.0 / d; }

// s = sigmoid(z), c = 1 - sigmoid(z): exp of -|z| only, e in [0, 1]. NaN gives NaN in both.
// +inf: s = 1, c = 0; -inf: s = 0, c = 1.
template <typename C> __device__ __forceinline__ void sigmoid_parts(C z, C& s, C& c) {
    const C e = logistic_exp(-fabs(z));
    const C r = logistic_recip(C(1) + e);
    const C er = e * r;
    const bool pos = z >= C(0);
    s = pos ? r : er;
    c = pos ? er : r;
}

// x * sigmoid(z). In float, sigmoid(z) is subnormal for z < -87.3 and -ftz=true flushes it,
// where x * sigmoid(z) is still a normal number (silu(-89) = -2e-37): there exp is taken of
// 64 ln2 - |z| and the product scaled by 2**-64 (a relative error of about 2e-6 from rounding
// the argument). -inf * 0 is NaN at z = -inf, as PyTorch's x / (1 + exp(-x)).
__device__ __forceinline__ float x_sigmoid(float x, float z) {
    const float a = fabsf(z);
    const bool deep = a > 64.0f;
    const float e = expf(deep ? 44.361419677734375f - a : -a);    // exp(-a) * (deep ? 2**64 : 1)
    const float r = __fdividef(1.0f, 1.0f + (deep ? 0.0f : e));
    if (z >= 0.0f) return x * r;
    return deep ? (x * e) * 0x1p-64f : x * (e * r);
}
__device__ __forceinline__ double x_sigmoid(double x, double z) {
    double s, c;
    sigmoid_parts(z, s, c);
    return x * s;
}

// GELU's z from x: in float through double, rounded once (gelu(x) ~ x exp(z) carries z's
// relative error times |z|, up to 87, which float's own roundings took past the gate's 1e-5
// near x = -9.5); x2 = x * x in x's type (inf where it overflows, as PyTorch's).
__device__ __forceinline__ float gelu_z(float x) {
    const double w = x;
    return static_cast<float>(w * (ACT_GELU_C1 + ACT_GELU_C2 * (w * w)));
}
__device__ __forceinline__ double gelu_z(double x) { return x * (ACT_GELU_C1 + ACT_GELU_C2 * (x * x)); }

}  // namespace act
