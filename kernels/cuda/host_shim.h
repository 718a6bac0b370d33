// Tests only: compile the CUDA sources of kernels/cuda (and the ElementwiseKernels as CuPy
// generates them, kernels/cupy_expand.py) as C++20 for the CPU, so that a machine without a GPU runs the kernels'
// index arithmetic, alignment paths, tails and mask packing. Force-included by
// tests/test_kernels_cupy.py (g++ -include host_shim.h -DACTBENCH_HOST_EMULATION).
//
// A launch runs the warps one at a time on 32 std::threads, one per lane (the kernels never talk
// across warps); __ballot_sync and __shfl_xor_sync meet at a barrier of the warp's lanes.
// The math is the host's libm (expf, tanhf): this checks logic, not CUDA's last-ulp numerics.
#pragma once

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

template <typename F> void launch(unsigned grid, unsigned block, F body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    Warp shared;
    warp = &shared;
    std::vector<std::thread> lanes;
    for (int l = 0; l < 32; ++l)
        lanes.emplace_back([=, &body, &shared] {          // lane l of every warp, one warp at a time
            lane = l;
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
