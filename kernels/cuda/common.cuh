// Shared device code of the actbench RawKernels (kernels/cuda/*.cu): the 16-byte vector type of
// each dtype, the half <-> float conversions, and the grid-stride drivers every elementwise kernel
// is built from. Compiled by NVRTC, through cupy.RawModule on a GPU and kernels/nvrtc/ in
// `make test`, both with this folder on the include path (-I kernels/cuda) and --std=c++17.
//
// How every kernel moves its data:
//   * a grid-stride loop with 64-bit indices (sizes >= 2**31 elements are fine); the launcher
//     (kernels/backends/cupy/elementwise.py) sizes the grid to the device (SMs x resident blocks), not to n;
//   * 16-byte vector loads and stores (float4, double2, 8 halves) when every array the kernel
//     touches has the same alignment modulo 16 bytes: a short scalar head brings them to a
//     16-byte boundary, then the vector body, then a scalar tail of fewer than one vector per
//     array; arrays with different alignments take the scalar loop all the way. These are
//     grid-uniform branches, taken the same way by every thread;
//   * per element only selects (`c ? a : b`): no data-dependent branch, so no divergence.
// Arithmetic is done in the compute type of the dtype (float for __half). NVRTC's default
// --fmad=true is kept: a*b+c may become one FMA (only tanh_grad's 1 - y*y has that shape), which
// is at least as accurate as two roundings; the tolerances in bench/measure/check.py allow either.
// CuPy compiles every module with -ftz=true (kernels/nvrtc/ checks with it too): float32
// subnormal results flush to 0, an error below the tolerance's atol (float32's smallest normal);
// but a compare reads a subnormal operand as 0 too, so decisions on a sign use sign.cuh's bit tests.
#pragma once

#include "fp16.cuh"
#include "sign.cuh"

#define ACT_BLOCK 256                 // threads per block; kernels/backends/cupy/elementwise.py launches with this
#define ACT_FULL_WARP 0xffffffffu

namespace act {

typedef long long idx_t;              // every index is 64-bit

// ---- element types: compute type, conversions, the 16-byte vector -------------------------

template <typename T> struct Compute { typedef T type; };
template <> struct Compute<__half> { typedef float type; };

__device__ __forceinline__ float to_c(float v) { return v; }
__device__ __forceinline__ double to_c(double v) { return v; }
__device__ __forceinline__ float to_c(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_c(typename Compute<T>::type v) { return v; }
template <> __device__ __forceinline__ __half from_c<__half>(float v) { return __float2half_rn(v); }

template <typename T> struct Vec;                                      // the 16-byte load/store type
template <> struct Vec<float>  { typedef float4  type; };
template <> struct Vec<double> { typedef double2 type; };
template <> struct Vec<__half> { typedef uint4   type; };              // 8 halves

// One 16-byte vector, seen as N elements.
template <typename T> union Pack {
    static constexpr int N = 16 / sizeof(T);
    typename Vec<T>::type raw;
    T v[N];
};

__device__ __forceinline__ unsigned misalign16(const void* p) {
    return static_cast<unsigned>(reinterpret_cast<unsigned long long>(p) & 15u);
}

struct Grid {                          // this thread's place in the grid-stride loops
    idx_t tid, stride;
    __device__ __forceinline__ Grid()
        : tid(static_cast<idx_t>(blockIdx.x) * blockDim.x + threadIdx.x),
          stride(static_cast<idx_t>(gridDim.x) * blockDim.x) {}
};

// Where the vector body starts and how many vectors it has, for arrays that share x's
// alignment (`same`); otherwise head = n and no vectors: the scalar head loop does it all.
template <typename T> struct Split {
    idx_t head, nvec;
    __device__ __forceinline__ Split(const T* x, bool same, idx_t n) {
        const unsigned mis = misalign16(x);
        const idx_t to_boundary = static_cast<idx_t>(((16u - mis) & 15u) / sizeof(T));
        const bool vec = same && mis % sizeof(T) == 0;
        head = vec ? (to_boundary < n ? to_boundary : n) : n;
        nvec = (n - head) / Pack<T>::N;
    }
};

// ---- drivers ----------------------------------------------------------------------------------

// y[i] = f(x[i]); f maps the compute type to itself.
template <typename T, typename F>
__device__ __forceinline__ void map1(const T* __restrict__ x, T* __restrict__ y, idx_t n, F f) {
    typedef Pack<T> P;
    const Grid g;
    const Split<T> s(x, misalign16(y) == misalign16(x), n);
#pragma unroll 1
    for (idx_t i = g.tid; i < s.head; i += g.stride) y[i] = from_c<T>(f(to_c(x[i])));
    const typename Vec<T>::type* xv = reinterpret_cast<const typename Vec<T>::type*>(x + s.head);
    typename Vec<T>::type* yv = reinterpret_cast<typename Vec<T>::type*>(y + s.head);
#pragma unroll 1
    for (idx_t i = g.tid; i < s.nvec; i += g.stride) {
        P a, r;
        a.raw = xv[i];
#pragma unroll
        for (int k = 0; k < P::N; ++k) r.v[k] = from_c<T>(f(to_c(a.v[k])));
        yv[i] = r.raw;
    }
#pragma unroll 1
    for (idx_t i = s.head + s.nvec * P::N + g.tid; i < n; i += g.stride) y[i] = from_c<T>(f(to_c(x[i])));
}

// y[i] = f(a[i], b[i]).
template <typename T, typename F>
__device__ __forceinline__ void map2(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,
                                     idx_t n, F f) {
    typedef Pack<T> P;
    const Grid g;
    const unsigned mis = misalign16(a);
    const Split<T> s(a, misalign16(b) == mis && misalign16(y) == mis, n);
#pragma unroll 1
    for (idx_t i = g.tid; i < s.head; i += g.stride) y[i] = from_c<T>(f(to_c(a[i]), to_c(b[i])));
    const typename Vec<T>::type* av = reinterpret_cast<const typename Vec<T>::type*>(a + s.head);
    const typename Vec<T>::type* bv = reinterpret_cast<const typename Vec<T>::type*>(b + s.head);
    typename Vec<T>::type* yv = reinterpret_cast<typename Vec<T>::type*>(y + s.head);
#pragma unroll 1
    for (idx_t i = g.tid; i < s.nvec; i += g.stride) {
        P pa, pb, r;
        pa.raw = av[i];
        pb.raw = bv[i];
#pragma unroll
        for (int k = 0; k < P::N; ++k) r.v[k] = from_c<T>(f(to_c(pa.v[k]), to_c(pb.v[k])));
        yv[i] = r.raw;
    }
#pragma unroll 1
    for (idx_t i = s.head + s.nvec * P::N + g.tid; i < n; i += g.stride)
        y[i] = from_c<T>(f(to_c(a[i]), to_c(b[i])));
}

}  // namespace act

// ---- extern "C" entry points ----------------------------------------------------------------------

// Each op's kernels are _<op>_kernel_f16 / _f32 / _f64 (__half, float, double: the names
// kernels/cuda/build.py's raw_kernel_name gives), with the arguments in the order the cupy_raw
// launcher passes them: inputs, outputs, n, then the op's scalar in the compute type C. A .cu file
// declares an op's three kernels in one line, by the shape of its arguments:
//   ACT_MAP1_KERNELS(op, F)            (x, y, n)            y = F()(x), elementwise
//   ACT_MAP2_KERNELS(op, F)            (dy, v, dx, n)       dx = F()(dy, v)
//   ACT_MAP1_SCALAR_KERNELS(op, F)     (x, y, n, p)         y = F<C>{p}(x)
//   ACT_MAP2_SCALAR_KERNELS(op, F)     (dy, v, dx, n, p)    dx = F<C>{p}(dy, v)
//   ACT_MASK_OUT_KERNELS(op, f)        (x, y, mask, n)      f(x, y, mask, n)
//   ACT_MASK_IN_KERNELS(op, f)         (dy, mask, dx, n)    f(dy, mask, dx, n)
// (the mask: ceil(n / 8) bytes, 1 bit per element). What each kernel moves is bench/measure/roofline.py's.
#define ACT_FOR_DTYPES(DEFINE, ...)                                                                \
    DEFINE(f16, __half, float, __VA_ARGS__)                                                        \
    DEFINE(f32, float, float, __VA_ARGS__)                                                         \
    DEFINE(f64, double, double, __VA_ARGS__)

#define ACT_ENTRY(op, sfx) extern "C" __global__ void __launch_bounds__(ACT_BLOCK) _##op##_kernel_##sfx

#define ACT_MAP1_(sfx, T, C, op, F)                                                                \
    ACT_ENTRY(op, sfx)(const T* __restrict__ x, T* __restrict__ y, long long n) {                  \
        act::map1(x, y, n, F());                                                                   \
    }
#define ACT_MAP2_(sfx, T, C, op, F)                                                                \
    ACT_ENTRY(op, sfx)(const T* __restrict__ dy, const T* __restrict__ v, T* __restrict__ dx,      \
                       long long n) {                                                              \
        act::map2(dy, v, dx, n, F());                                                              \
    }
#define ACT_MAP1_SCALAR_(sfx, T, C, op, F)                                                         \
    ACT_ENTRY(op, sfx)(const T* __restrict__ x, T* __restrict__ y, long long n, C p) {             \
        act::map1(x, y, n, F<C>{p});                                                               \
    }
#define ACT_MAP2_SCALAR_(sfx, T, C, op, F)                                                         \
    ACT_ENTRY(op, sfx)(const T* __restrict__ dy, const T* __restrict__ v, T* __restrict__ dx,      \
                       long long n, C p) {                                                         \
        act::map2(dy, v, dx, n, F<C>{p});                                                          \
    }
#define ACT_MASK_OUT_(sfx, T, C, op, f)                                                            \
    ACT_ENTRY(op, sfx)(const T* __restrict__ x, T* __restrict__ y, unsigned char* __restrict__ mask, \
                       long long n) {                                                              \
        f(x, y, mask, n);                                                                          \
    }
#define ACT_MASK_IN_(sfx, T, C, op, f)                                                             \
    ACT_ENTRY(op, sfx)(const T* __restrict__ dy, const unsigned char* __restrict__ mask,           \
                       T* __restrict__ dx, long long n) {                                          \
        f(dy, mask, dx, n);                                                                        \
    }

#define ACT_MAP1_KERNELS(op, F) ACT_FOR_DTYPES(ACT_MAP1_, op, F)
#define ACT_MAP2_KERNELS(op, F) ACT_FOR_DTYPES(ACT_MAP2_, op, F)
#define ACT_MAP1_SCALAR_KERNELS(op, F) ACT_FOR_DTYPES(ACT_MAP1_SCALAR_, op, F)
#define ACT_MAP2_SCALAR_KERNELS(op, F) ACT_FOR_DTYPES(ACT_MAP2_SCALAR_, op, F)
#define ACT_MASK_OUT_KERNELS(op, f) ACT_FOR_DTYPES(ACT_MASK_OUT_, op, f)
#define ACT_MASK_IN_KERNELS(op, f) ACT_FOR_DTYPES(ACT_MASK_IN_, op, f)
