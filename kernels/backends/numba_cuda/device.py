"""The device code of the numba_cuda backend (kernels/backends/numba_cuda/elementwise.py): the grid-stride drivers, the
relu_mask kernel and the warp ballot, as kernel factories.

It imports numba.cuda at its top, so kernels/backends/numba_cuda/elementwise.py imports it only once its probe has found
numba-cuda usable (never at `import kernels`). The kernels name `cuda` as a module global: numba
resolves it when it compiles them, and numba-cuda's simulator swaps it, in this module's globals,
for its per-thread stand-in while a kernel runs.

Arrays are 1-D and C-contiguous; typed constants (zero, one: dx.dtype.type(0), ...) keep float32
arithmetic in float32 (a bare 1.0 is a float64 in numba and would promote the whole expression).
Every thread loads UNROLL elements into a local array (registers on a GPU) before it computes and
stores any of them, so that a real GPU has UNROLL independent reads in flight per thread: numba
cannot tell that inputs and outputs do not overlap, so a plain loop would wait for each load in
turn. `if j < n` handles the tail of the last pass. What each kernel moves: bench/measure/roofline.py.
"""

from __future__ import annotations

from numba import cuda

from kernels.backends.numba_cuda.geometry import FULL_MASK, UNROLL, WARP


def map_driver(f, load, binary: bool):
    """out[j] = f(a[j], load(b, j), zero, one, p) when `binary`, else f(a[j], zero, one, p) (b is
    then not read: the unary kernels are passed their input twice), over a grid-stride loop with
    UNROLL loads per input in flight per thread. `load` reads b's value for element j: b[j], or bit
    j of a packed mask. `binary` is a constant of the closure: numba drops the branch not taken."""
    def kernel(a, b, out, p):
        n, step = a.shape[0], cuda.gridsize(1)
        zero, one = out.dtype.type(0), out.dtype.type(1)
        g = cuda.local.array(UNROLL, a.dtype)
        v = cuda.local.array(UNROLL, b.dtype)
        for i in range(cuda.grid(1), n, UNROLL * step):
            for k in range(UNROLL):
                j = i + k * step
                if j < n:
                    g[k] = a[j]
                    if binary:
                        v[k] = load(b, j)
            for k in range(UNROLL):
                j = i + k * step
                if j < n:
                    if binary:
                        out[j] = f(g[k], v[k], zero, one, p)
                    else:
                        out[j] = f(g[k], zero, one, p)
    return kernel


def element(a, j):
    return a[j]


def mask_bit(mask, j):
    """Bit j of a packed mask (little bit order): 8 neighbouring threads read the same byte."""
    return (mask[j >> 3] >> (j & 7)) & 1


def relu_mask_driver(ballot):
    """relu_mask's kernel, with `ballot` as the warp vote (cuda.ballot_sync, or the simulator's)."""
    def kernel(x, y, mask32, mask8, nfull):
        # Warp w of the grid handles words w, w + warps, ...: word w is elements 32w .. 32w + 31, one
        # per lane, and its 32 mask bits (little bit order: element 32w + k is bit k) come from one
        # ballot. The loop bound is the same for all 32 lanes, so every lane reaches every ballot.
        n = x.shape[0]
        words = (n + WARP - 1) // WARP
        warps = cuda.gridsize(1) // WARP
        lane = cuda.laneid
        zero = x.dtype.type(0)
        v = cuda.local.array(UNROLL, x.dtype)
        for w0 in range(cuda.grid(1) // WARP, words, UNROLL * warps):
            for k in range(UNROLL):
                j = (w0 + k * warps) * WARP + lane
                if j < n:
                    v[k] = x[j]
            for k in range(UNROLL):
                w = w0 + k * warps
                if w < words:                                    # the same for every lane of the warp
                    j = w * WARP + lane
                    keep = False
                    if j < n:
                        keep = v[k] > zero
                        y[j] = zero if v[k] < zero else v[k]
                    bits = ballot(FULL_MASK, keep)
                    if lane == 0:
                        if w < nfull:
                            mask32[w] = bits                     # one 4-byte store per 32 elements
                        else:                                    # the last word, or an unaligned mask
                            for b in range(4):
                                if 4 * w + b < mask8.shape[0]:
                                    mask8[4 * w + b] = (bits >> (8 * b)) & 0xFF
    return kernel


def gpu_ballot(mask, predicate):
    return cuda.ballot_sync(mask, predicate)


def simulated_ballot(block_threads: int = 1024):
    """A cuda.ballot_sync for numba-cuda's simulator, which has none, with vote slots of its own.

    Each thread posts its vote, the block synchronises, and each thread gathers the votes of its
    own warp's lanes. Votes alternate between two sets of slots, so one barrier per ballot is
    enough: a thread cannot overwrite a slot until every thread has passed the next barrier, that
    is, finished reading this round. A block-wide barrier stands in for the warp-wide one; that is
    exact here because the simulator runs one block at a time, releases a barrier once every thread
    still running has reached it, and every warp of relu_mask's kernel runs the same number of
    ballots on all its lanes."""
    votes = ([False] * block_threads, [False] * block_threads)   # two rounds of one slot per thread
    rounds = [0] * block_threads                                 # which of the two each thread votes in next

    def ballot(mask, predicate):
        t = cuda.threadIdx.x
        mine = votes[rounds[t]]
        rounds[t] ^= 1
        mine[t] = bool(predicate)
        cuda.syncthreads()
        base = t - t % WARP
        word = 0
        for lane in range(WARP):
            if (mask >> lane) & 1 and mine[base + lane]:
                word |= 1 << lane
        return word

    return ballot
