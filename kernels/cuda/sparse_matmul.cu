// sparse_matmul as CUDA RawKernels (cupy_raw backend): y = a @ w reading only the rows of w whose
// activation is non-zero. a is batch x K, w is K x N row-major, y is batch x N, all of dtype T
// (__half, float, double); arithmetic in the compute type (float for __half and float). Semantics
// are those of kernels/ops/: a zero activation is absent, its row of w never read.
//
// Two kernels per dtype, launched by kernels/backends/cupy/sparse.py:
//  * _sparse_matmul_partial_kernel_*: split-K. The grid's warps each own one work item: a tile of
//    32 * VEC output columns (VEC = 16 / sizeof(T): one 16-byte load per lane, so a warp reads 512
//    contiguous bytes of a row of w), a group of up to ACT_SM_GROUP batch rows, and one of S
//    slices of K. The warp walks its slice 32 activations at a time: each lane reads one
//    activation per batch row, __ballot_sync makes the tile's mask of rows present in any row of
//    the group (per-tile detection), and only those rows of w are loaded, UNROLL at a time
//    so that several loads are in flight. A present row adds into each batch row whose own
//    activation is non-zero (a zero one is skipped, not multiplied: no 0 * inf). The warp writes
//    its partial sums (compute type) to part[s][b][n] with 16-byte stores.
//  * _sparse_matmul_reduce_kernel_*: y[b][n] = sum over s of part[s][b][n], rounded to T.
// Warps never talk to each other (no shared memory, no __syncthreads), so the kernels also run on
// the CPU under kernels/cuda/host_shim.h. Index arithmetic of the work split is 32-bit (no 64-bit
// division; the launcher refuses a grid of 2**32 threads or more); offsets into the arrays are 64-bit. The vector path needs N % VEC == 0 and w, part
// and y 16-byte aligned (a grid-uniform choice); otherwise each lane loads its VEC columns one by
// one, with bounds checks.
#include "common.cuh"

#define ACT_SM_GROUP 4        // batch rows per work item (accumulators: ACT_SM_GROUP x VEC)
#define ACT_SM_UNROLL 4       // present rows of w loaded together per step (2 for double: registers)

#if defined(ACTBENCH_HOST_EMULATION)
#define ACT_FFS(x) __builtin_ffs(static_cast<int>(x))
#else
#define ACT_FFS(x) __ffs(x)
#endif

namespace act {

template <typename T> struct SparseTile {
    typedef typename Compute<T>::type C;
    static constexpr int VEC = Pack<T>::N;                  // columns per lane
    static constexpr int CPACK = 16 / sizeof(C);            // compute-type elements per 16 bytes
    static constexpr int UNROLL = sizeof(T) == 8 ? 2 : ACT_SM_UNROLL;
};

// Load this lane's VEC weights of row `row`: one 16-byte load (vec) or VEC bounded scalar loads.
template <typename T>
__device__ __forceinline__ void load_row(const T* __restrict__ w, idx_t row, idx_t n, idx_t c0, bool vec,
                                         typename Compute<T>::type (&out)[Pack<T>::N]) {
    typedef typename Compute<T>::type C;
    constexpr int VEC = Pack<T>::N;
    const T* p = w + row * n + c0;
    if (vec) {
        Pack<T> v;
        v.raw = *reinterpret_cast<const typename Vec<T>::type*>(p);
#pragma unroll
        for (int e = 0; e < VEC; ++e) out[e] = to_c(v.v[e]);
    } else {
#pragma unroll
        for (int e = 0; e < VEC; ++e) out[e] = c0 + e < n ? to_c(p[e]) : C(0);
    }
}

template <typename T>
__device__ __forceinline__ void sparse_partial(const T* __restrict__ a, const T* __restrict__ w,
                                               typename Compute<T>::type* __restrict__ part,
                                               idx_t batch, idx_t k, idx_t n, unsigned ntiles,
                                               unsigned splits, unsigned ngroups, idx_t kchunk) {
    typedef typename Compute<T>::type C;
    constexpr int VEC = SparseTile<T>::VEC;
    constexpr int CPACK = SparseTile<T>::CPACK;
    constexpr int UNROLL = SparseTile<T>::UNROLL;
    const unsigned lane = threadIdx.x & 31u;
    const unsigned item = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;   // this warp's work item
    if (item >= ntiles * splits * ngroups) return;                         // the whole warp leaves
    const unsigned tile = item % ntiles;
    const unsigned rest = item / ntiles;
    const unsigned split = rest % splits;
    const unsigned group = rest / splits;
    const idx_t b0 = static_cast<idx_t>(group) * ACT_SM_GROUP;
    const idx_t k0 = static_cast<idx_t>(split) * kchunk;
    const idx_t k1 = k0 + kchunk < k ? k0 + kchunk : k;
    const idx_t c0 = (static_cast<idx_t>(tile) * 32 + lane) * VEC;
    const bool vec = n % VEC == 0 && misalign16(w) == 0 && misalign16(part) == 0;
    const bool mine = c0 < n;                       // lanes past the last column load nothing

    C acc[ACT_SM_GROUP][VEC];
#pragma unroll
    for (int g = 0; g < ACT_SM_GROUP; ++g)
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[g][e] = C(0);

#pragma unroll 1
    for (idx_t kb = k0; kb < k1; kb += 32) {
        // per-tile detection: bit j of `present` = row kb + j has a non-zero activation in the group
        const idx_t kk = kb + lane;
        bool nz = false;
#pragma unroll
        for (int g = 0; g < ACT_SM_GROUP; ++g)
            if (kk < k1 && b0 + g < batch) nz |= to_c(a[(b0 + g) * k + kk]) != C(0);
        unsigned present = __ballot_sync(ACT_FULL_WARP, nz);
#pragma unroll 1
        while (present) {                           // the same on every lane: no divergence
            idx_t rows[UNROLL];
            int nrows = 0;
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                rows[u] = kb + (present ? ACT_FFS(present) - 1 : 0);
                nrows += present != 0;
                present &= present - 1;
            }
            C wv[UNROLL][VEC];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                if (u < nrows && mine) {
                    load_row(w, rows[u], n, c0, vec, wv[u]);
                } else {
#pragma unroll
                    for (int e = 0; e < VEC; ++e) wv[u][e] = C(0);
                }
            }
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                if (u >= nrows) continue;
#pragma unroll
                for (int g = 0; g < ACT_SM_GROUP; ++g) {
                    if (b0 + g >= batch) continue;
                    const C v = to_c(a[(b0 + g) * k + rows[u]]);   // one address per warp: a broadcast
                    if (v == C(0)) continue;                       // absent: skipped, never 0 * w
#pragma unroll
                    for (int e = 0; e < VEC; ++e) acc[g][e] += v * wv[u][e];
                }
            }
        }
    }

    if (!mine) return;                              // no warp collective below
#pragma unroll
    for (int g = 0; g < ACT_SM_GROUP; ++g) {
        const idx_t b = b0 + g;
        if (b >= batch) break;
        C* dst = part + (static_cast<idx_t>(split) * batch + b) * n + c0;
        if (vec) {
#pragma unroll
            for (int q = 0; q < VEC / CPACK; ++q) {
                Pack<C> p;
#pragma unroll
                for (int e = 0; e < CPACK; ++e) p.v[e] = acc[g][q * CPACK + e];
                reinterpret_cast<typename Vec<C>::type*>(dst)[q] = p.raw;
            }
        } else {
#pragma unroll
            for (int e = 0; e < VEC; ++e)
                if (c0 + e < n) dst[e] = acc[g][e];
        }
    }
}

// y[i] = sum over s < splits of part[s * total + i], rounded to T; VEC outputs per thread and
// iteration (16-byte loads and stores) when total % VEC == 0 and the arrays are 16-byte aligned.
template <typename T>
__device__ __forceinline__ void sparse_reduce(const typename Compute<T>::type* __restrict__ part,
                                              T* __restrict__ y, idx_t total, unsigned splits) {
    typedef typename Compute<T>::type C;
    constexpr int VEC = SparseTile<T>::VEC;
    constexpr int CPACK = SparseTile<T>::CPACK;
    const Grid g;
    const bool vec = total % VEC == 0 && misalign16(part) == 0 && misalign16(y) == 0;
    const idx_t nvec = vec ? total / VEC : 0;
#pragma unroll 1
    for (idx_t i = g.tid; i < nvec; i += g.stride) {
        C s[VEC];
#pragma unroll
        for (int e = 0; e < VEC; ++e) s[e] = C(0);
#pragma unroll 1
        for (unsigned sp = 0; sp < splits; ++sp) {
            const C* src = part + static_cast<idx_t>(sp) * total + i * VEC;
#pragma unroll
            for (int q = 0; q < VEC / CPACK; ++q) {
                Pack<C> p;
                p.raw = reinterpret_cast<const typename Vec<C>::type*>(src)[q];
#pragma unroll
                for (int e = 0; e < CPACK; ++e) s[q * CPACK + e] += p.v[e];
            }
        }
        Pack<T> r;
#pragma unroll
        for (int e = 0; e < VEC; ++e) r.v[e] = from_c<T>(s[e]);
        reinterpret_cast<typename Vec<T>::type*>(y)[i] = r.raw;
    }
#pragma unroll 1
    for (idx_t i = nvec * VEC + g.tid; i < total; i += g.stride) {
        C s = C(0);
#pragma unroll 1
        for (unsigned sp = 0; sp < splits; ++sp) s += part[static_cast<idx_t>(sp) * total + i];
        y[i] = from_c<T>(s);
    }
}

}  // namespace act

// ---- partial sums (split-K) --------------------------------------------------------------------
// "Element" below: one weight of a present row; each kernel also reads a (batch x K) once per
// column tile and writes S x batch x N partial sums (compute type), as bench/measure/roofline.py counts.

// __launch_bounds__(..., 1): no occupancy target for ptxas, whose default one spilled the double
// kernel's accumulators. The registers ptxas then uses decide how many blocks an SM holds (two to
// four, by arch and dtype): kernels/backends/cupy/sparse.py sizes the split from the occupancy API on this
// kernel, so that the grid fits one wave.

// reads 2 B + writes 0 B per element (__half); see bench/measure/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK, 1)
_sparse_matmul_partial_kernel_f16(const __half* __restrict__ a, const __half* __restrict__ w,
                                  float* __restrict__ part, long long batch, long long k, long long n,
                                  unsigned ntiles, unsigned splits, unsigned ngroups, long long kchunk) {
    act::sparse_partial(a, w, part, batch, k, n, ntiles, splits, ngroups, kchunk);
}

// reads 4 B + writes 0 B per element (float); see bench/measure/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK, 1)
_sparse_matmul_partial_kernel_f32(const float* __restrict__ a, const float* __restrict__ w,
                                  float* __restrict__ part, long long batch, long long k, long long n,
                                  unsigned ntiles, unsigned splits, unsigned ngroups, long long kchunk) {
    act::sparse_partial(a, w, part, batch, k, n, ntiles, splits, ngroups, kchunk);
}

// reads 8 B + writes 0 B per element (double); see bench/measure/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK, 1)
_sparse_matmul_partial_kernel_f64(const double* __restrict__ a, const double* __restrict__ w,
                                  double* __restrict__ part, long long batch, long long k, long long n,
                                  unsigned ntiles, unsigned splits, unsigned ngroups, long long kchunk) {
    act::sparse_partial(a, w, part, batch, k, n, ntiles, splits, ngroups, kchunk);
}

// ---- reduction of the partial sums -------------------------------------------------------------
// "Element" below: one output; S partial sums (compute type) read per output.

// reads 4 B + writes 2 B per element (__half); see bench/measure/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_sparse_matmul_reduce_kernel_f16(const float* __restrict__ part, __half* __restrict__ y, long long total,
                                 unsigned splits) {
    act::sparse_reduce(part, y, total, splits);
}

// reads 4 B + writes 4 B per element (float); see bench/measure/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_sparse_matmul_reduce_kernel_f32(const float* __restrict__ part, float* __restrict__ y, long long total,
                                 unsigned splits) {
    act::sparse_reduce(part, y, total, splits);
}

// reads 8 B + writes 8 B per element (double); see bench/measure/roofline.py
extern "C" __global__ void __launch_bounds__(ACT_BLOCK)
_sparse_matmul_reduce_kernel_f64(const double* __restrict__ part, double* __restrict__ y, long long total,
                                 unsigned splits) {
    act::sparse_reduce(part, y, total, splits);
}
