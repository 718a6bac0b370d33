// __half for the actbench CUDA sources: the real <cuda_fp16.h>, or a minimal stand-in.
// cuda_fp16.h is not built into NVRTC: CuPy puts the folder that holds it on the include path
// itself (its compile options, which kernels/nvrtc/'s compile checks use too). The stand-in
// gives the only two things the kernels need from it, the float conversions, as the same PTX
// instructions (cvt); ACTBENCH_NO_CUDA_FP16 selects it, so that the tests compile both.
#pragma once

#if defined(ACTBENCH_HOST_EMULATION)
// tests only: kernels/cuda/host_shim.h runs these kernels on the CPU and provides __half
#elif !defined(ACTBENCH_NO_CUDA_FP16) && __has_include(<cuda_fp16.h>)
#include <cuda_fp16.h>
#else
#define ACTBENCH_FP16_STANDIN 1
struct __align__(2) __half {
    unsigned short x;
};
__device__ __forceinline__ float __half2float(__half h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.x));
    return f;
}
__device__ __forceinline__ __half __float2half_rn(float f) {
    __half h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.x) : "f"(f));
    return h;
}
#endif
