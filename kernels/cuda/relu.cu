// The ReLU family as CUDA RawKernels (cupy_raw backend): relu, relu_grad, leaky_relu,
// leaky_relu_grad, and relu_mask / relu_grad_mask, which keep the sign of x packed 1 bit per
// element. Semantics are those of kernels/ops/; common.cuh says how data moves. Every
// decision on the sign of x goes through sign.cuh (x's bits), never a float compare: CuPy
// compiles with -ftz=true, which would read a subnormal x as zero.
// One extern "C" kernel per op and dtype, _<op>_kernel_f16 / _f32 / _f64, declared at the end.
#include "common.cuh"

namespace act {

// relu: max(x, 0) with NaN kept. Not fmaxf(x, 0), which returns 0 for NaN.
struct Relu {
    template <typename C> __device__ __forceinline__ C operator()(C x) const {
        return lt_zero(x) ? C(0) : x;               // NaN < 0 is false: NaN passes through
    }
};

// relu_grad: dy unless x <= 0, as torch's threshold_backward (0 at x == +-0; a NaN x passes dy).
struct ReluGrad {
    template <typename C> __device__ __forceinline__ C operator()(C dy, C x) const {
        return le_zero(x) ? C(0) : dy;
    }
};

// leaky_relu: x where x > 0, else slope * x (NaN -> slope * NaN = NaN).
template <typename C> struct LeakyRelu {
    C slope;
    __device__ __forceinline__ C operator()(C x) const { return gt_zero(x) ? x : slope * x; }
};

// leaky_relu_grad: dy where x > 0, else slope * dy (a NaN x gives slope * dy, as torch's
// leaky_relu_backward).
template <typename C> struct LeakyReluGrad {
    C slope;
    __device__ __forceinline__ C operator()(C dy, C x) const { return gt_zero(x) ? dy : slope * dy; }
};

// relu_mask: y = relu(x) and mask bit i (bit i % 8 of byte i / 8) = x[i] > 0, as
// np.packbits(x.ravel() > 0, bitorder="little"). 32 mask bits are one little-endian 32-bit word,
// so a warp builds whole words and one lane stores each word (4 bytes, 4-byte aligned).
//   Vector body (x, y 16-byte aligned, mask 4-byte aligned): a warp takes 32 * N consecutive
// elements, N = 16 / sizeof(T) per lane; each lane's N bits are shifted to their place in the
// word and OR-ed across the G = 32 / N lanes of a word by shuffles; lane 0 of each group stores.
//   Word loop (the rest, or everything when misaligned): a warp takes one word of 32 elements,
// one per lane, and __ballot_sync builds the word; the last, partial word is stored byte by
// byte, as the mask has exactly ceil(n / 8) bytes.
// Every loop bound is the same for all lanes of a warp, so whole warps enter the shuffles and
// ballots (the launcher's block size is a multiple of 32).
template <typename T>
__device__ __forceinline__ void relu_mask(const T* __restrict__ x, T* __restrict__ y,
                                          unsigned char* __restrict__ mask, idx_t n) {
    typedef Pack<T> P;
    typedef typename Compute<T>::type C;
    constexpr int N = P::N;                       // elements per lane in the vector body
    constexpr int G = 32 / N;                     // lanes per 32-bit mask word
    const Grid g;
    const int lane = threadIdx.x & 31;
    const idx_t warp = g.tid >> 5, nwarps = g.stride >> 5;
    const bool words_aligned = (reinterpret_cast<unsigned long long>(mask) & 3u) == 0;
    const bool vec = misalign16(x) == 0 && misalign16(y) == 0 && words_aligned;
    const idx_t nchunks = vec ? n / (32 * N) : 0;  // warp steps of the vector body
    const typename Vec<T>::type* xv = reinterpret_cast<const typename Vec<T>::type*>(x);
    typename Vec<T>::type* yv = reinterpret_cast<typename Vec<T>::type*>(y);
    unsigned* mask_words = reinterpret_cast<unsigned*>(mask);
#pragma unroll 1
    for (idx_t c = warp; c < nchunks; c += nwarps) {
        P a, r;
        a.raw = xv[c * 32 + lane];
        unsigned bits = 0;
#pragma unroll
        for (int k = 0; k < N; ++k) {
            const C v = to_c(a.v[k]);
            r.v[k] = from_c<T>(Relu()(v));
            bits |= static_cast<unsigned>(gt_zero(v)) << k;
        }
        yv[c * 32 + lane] = r.raw;
        unsigned word = bits << (N * (lane % G));
#pragma unroll
        for (int s = 1; s < G; s <<= 1) word |= __shfl_xor_sync(ACT_FULL_WARP, word, s);
        if (lane % G == 0) mask_words[c * N + lane / G] = word;
    }
    const idx_t nwords = (n + 31) >> 5;
#pragma unroll 1
    for (idx_t w = nchunks * N + warp; w < nwords; w += nwarps) {
        const idx_t i = (w << 5) + lane;
        const bool in = i < n;
        const C v = in ? to_c(x[i]) : C(0);
        if (in) y[i] = from_c<T>(Relu()(v));
        const unsigned word = __ballot_sync(ACT_FULL_WARP, gt_zero(v));
        const idx_t left = n - (w << 5);          // elements from this word's first to the end
        if (left >= 32 && words_aligned) {
            if (lane == 0) mask_words[w] = word;
        } else {
            const idx_t nbytes = left >= 32 ? 4 : (left + 7) >> 3;
            if (lane < nbytes) mask[(w << 2) + lane] = static_cast<unsigned char>(word >> (8 * lane));
        }
    }
}

// relu_grad_mask: dx = dy where mask bit i is set, else 0. In the vector body (dy, dx 16-byte
// aligned) a lane's N elements start at a multiple of N, and N divides 8: its N bits lie in one
// mask byte. Otherwise the scalar loop reads one bit per element.
template <typename T>
__device__ __forceinline__ void relu_grad_mask(const T* __restrict__ dy, const unsigned char* __restrict__ mask,
                                               T* __restrict__ dx, idx_t n) {
    typedef Pack<T> P;
    typedef typename Compute<T>::type C;
    const Grid g;
    const bool vec = misalign16(dy) == 0 && misalign16(dx) == 0;
    const idx_t nvec = vec ? n / P::N : 0;
    const typename Vec<T>::type* dyv = reinterpret_cast<const typename Vec<T>::type*>(dy);
    typename Vec<T>::type* dxv = reinterpret_cast<typename Vec<T>::type*>(dx);
#pragma unroll 1
    for (idx_t i = g.tid; i < nvec; i += g.stride) {
        const idx_t first = i * P::N;
        const unsigned bits = static_cast<unsigned>(mask[first >> 3]) >> (first & 7);
        P a, r;
        a.raw = dyv[i];
#pragma unroll
        for (int k = 0; k < P::N; ++k) r.v[k] = from_c<T>((bits >> k) & 1u ? to_c(a.v[k]) : C(0));
        dxv[i] = r.raw;
    }
#pragma unroll 1
    for (idx_t i = nvec * P::N + g.tid; i < n; i += g.stride) {
        const bool keep = (mask[i >> 3] >> (i & 7)) & 1u;
        dx[i] = from_c<T>(keep ? to_c(dy[i]) : C(0));
    }
}

}  // namespace act

// ---- the kernels (common.cuh: names and arguments) --------------------------------------------

ACT_MAP1_KERNELS(relu, act::Relu)
ACT_MAP2_KERNELS(relu_grad, act::ReluGrad)
ACT_MAP1_SCALAR_KERNELS(leaky_relu, act::LeakyRelu)           // slope: float for __half and float
ACT_MAP2_SCALAR_KERNELS(leaky_relu_grad, act::LeakyReluGrad)
ACT_MASK_OUT_KERNELS(relu_mask, act::relu_mask)
ACT_MASK_IN_KERNELS(relu_grad_mask, act::relu_grad_mask)
