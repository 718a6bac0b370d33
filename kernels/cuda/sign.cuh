// The sign tests of the ReLU family (x > 0, x < 0, x <= 0), decided from x's bits for float, so
// that they hold in any float mode. CuPy compiles every kernel with -ftz=true, under which a float
// compare reads a subnormal operand as zero (PTX setp.*.ftz.f32): `x > 0` would be false for
// x = 1e-40, and relu_grad would drop dy where PyTorch (compiled without ftz) passes it.
// NaN is neither above, below nor equal to zero, as IEEE compares say: relu_grad's `x <= 0` is
// false for NaN, so a NaN x passes dy (kernels/ops/). double is never flushed (-ftz
// concerns float only): plain compares. Included by common.cuh (RawKernels) and pasted into the
// ElementwiseKernels' preamble (kernels/backends/cupy/elementwise.py), so both families share one definition.
#pragma once

namespace act {

// +0 < x <= +inf: the bit patterns 0x00000001 .. 0x7f800000 (one unsigned compare)
__device__ __forceinline__ bool gt_zero(float v) {
    return static_cast<unsigned>(__float_as_int(v)) - 1u < 0x7f800000u;
}
// -inf <= x < -0: 0x80000001 .. 0xff800000
__device__ __forceinline__ bool lt_zero(float v) {
    return static_cast<unsigned>(__float_as_int(v)) - 0x80000001u < 0x7f800000u;
}
// x <= 0: +0, or -0 .. -inf (0x80000000 .. 0xff800000)
__device__ __forceinline__ bool le_zero(float v) {
    const unsigned b = static_cast<unsigned>(__float_as_int(v));
    return b == 0u || b - 0x80000000u <= 0x7f800000u;
}
__device__ __forceinline__ bool gt_zero(double v) { return v > 0.0; }
__device__ __forceinline__ bool lt_zero(double v) { return v < 0.0; }
__device__ __forceinline__ bool le_zero(double v) { return v <= 0.0; }

}  // namespace act
