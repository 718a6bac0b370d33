// Tests only: compile the CUDA sources of kernels/cuda (and the ElementwiseKernels as CuPy
// generates them, kernels/backends/cupy/expand.py) as C++20 for the CPU, so that a machine without a GPU runs the kernels'
// index arithmetic, alignment paths, tails and mask packing. Force-included by
// tests/test_kernels_cupy.py (g++ -include host_shim.h -DACTBENCH_HOST_EMULATION).
//
// A launch runs the warps one at a time on 32 std::threads, one per lane (the kernels never talk
// across warps); __ballot_sync and __shfl_xor_sync meet at a barrier of the warp's lanes.
// The math is the host's libm (expf, tanhf): this checks logic, not CUDA's last-ulp numerics.
//
// The float mode: CuPy compiles every kernel with -ftz=true, so on the GPU float arithmetic flushes
// subnormal results to zero and reads subnormal operands as zero, compares included. A test that
// runs GPU code compiled that way sets act_host_flush_to_zero(1): the lanes then run with x86
// MXCSR's FTZ (subnormal results flushed) and DAZ (subnormal inputs read as zero) bits set, which
// do the same to SSE/AVX arithmetic and compares. DAZ flushes double too, which the GPU never
// does: the tests use it for kernels on float16 and float32 only. 0 (the default) is IEEE, as
// numba-cuda compiles.
#pragma once

#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>       // the float overloads of fabs, exp, tanh in the global namespace
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define ACT_HOST_MXCSR 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };

struct alignas(2) __half { unsigned short x; };
inline float __half2float(__half h) { _Float16 f; std::memcpy(&f, &h, 2); return static_cast<float>(f); }
inline __half __float2half_rn(float v) { _Float16 f = static_cast<_Float16>(v); __half h; std::memcpy(&h, &f, 2); return h; }
inline float __fdividef(float a, float b) { return a / b; }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline float __int_as_float(int v) { return std::bit_cast<float>(v); }

namespace act_host {
// The lanes of the running warp meet here for each collective. A lane that does not arrive within
// 10 s means the lanes of a warp diverged around a collective (a bug that hangs a GPU): abort.
struct Warp {
    std::mutex m;
    std::condition_variable cv;
    int arrived = 0;
    unsigned long long generation = 0;
    unsigned long long slot[32];

    void meet() {
        std::unique_lock<std::mutex> lock(m);
        const unsigned long long gen = generation;
        if (++arrived == 32) {
            arrived = 0;
            ++generation;
            cv.notify_all();
            return;
        }
        if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return generation != gen; })) {
            std::fprintf(stderr, "host_shim: lanes of a warp diverged around a warp collective\n");
            std::abort();
        }
    }
};
inline Warp* warp = nullptr;
inline thread_local int lane = 0;
inline bool flush_to_zero = false;         // the lanes' float mode, set by act_host_flush_to_zero

#if defined(ACT_HOST_MXCSR)
constexpr unsigned MXCSR_FTZ = 0x8000u, MXCSR_DAZ = 0x0040u;
inline void enter_float_mode() {               // on each lane's thread (MXCSR is per thread)
    const unsigned csr = _mm_getcsr() & ~(MXCSR_FTZ | MXCSR_DAZ);
    _mm_setcsr(flush_to_zero ? csr | MXCSR_FTZ | MXCSR_DAZ : csr);
}
#else
inline void enter_float_mode() {}
#endif

template <typename F> void launch(unsigned grid, unsigned block, F body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    Warp shared;
    warp = &shared;
    std::vector<std::thread> lanes;
    for (int l = 0; l < 32; ++l)
        lanes.emplace_back([=, &body, &shared] {          // lane l of every warp, one warp at a time
            lane = l;
            enter_float_mode();
            for (unsigned b = 0; b < grid; ++b)
                for (unsigned w = 0; w < (block + 31) / 32; ++w) {
                    blockIdx = {b, 1, 1};
                    threadIdx = {w * 32 + l, 1, 1};
                    body();
                    shared.meet();                         // the whole warp is done: next warp
                }
        });
    for (auto& t : lanes) t.join();
}
}  // namespace act_host

// The lanes' float mode for the launches that follow: 1 flush to zero (FTZ + DAZ), 0 IEEE. Returns
// whether the mode is in force: 0 when asked for flushing on a host without MXCSR.
extern "C" int act_host_flush_to_zero(int on) {
#if defined(ACT_HOST_MXCSR)
    act_host::flush_to_zero = on != 0;
    return 1;
#else
    act_host::flush_to_zero = false;
    return on == 0;
#endif
}

inline unsigned __ballot_sync(unsigned, bool pred) {
    act_host::Warp& w = *act_host::warp;
    w.slot[act_host::lane] = pred;
    w.meet();
    unsigned word = 0;
    for (int l = 0; l < 32; ++l) word |= static_cast<unsigned>(w.slot[l] != 0) << l;
    w.meet();                                    // nobody overwrites a slot before all have read
    return word;
}

inline unsigned __shfl_xor_sync(unsigned, unsigned v, int lane_mask) {
    act_host::Warp& w = *act_host::warp;
    w.slot[act_host::lane] = v;
    w.meet();
    const unsigned theirs = static_cast<unsigned>(w.slot[act_host::lane ^ lane_mask]);
    w.meet();
    return theirs;
}
