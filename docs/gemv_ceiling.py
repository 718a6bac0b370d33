"""Issue 22's ceiling of batch-1 sparse_matmul on this machine: how close to the copy peak can a
kernel that only reads w get, and how close does numba_cpu's get.

    python docs/gemv_ceiling.py [--rounds 5] [--shape 8192x8192]

The copy peak: bench/measure/roofline.py's `cpu_copy_peak` (read + write bytes, the fastest of its
four copies), as `python -m bench run` measures it, at the start and at the end. A VM's memory
bandwidth moves by 1.5x from one minute to the next, so every timed call below is also read
against a copy probe run just before it (numba_cpu's streaming-store copy of w's size, the copy
that wins `cpu_copy_peak` here and the probe `bench run` interleaves with CPU cases). Each round:
- pure read bandwidth: a numba parallel sum over a 1 GiB float32 array, whole (one contiguous
  stream per thread, every numba thread and one thread), and over rows of the shape's width
  gathered at random (sorted, as the kernel reads the present rows; 50 % and 10 % of the K rows of
  a w-sized window: the bytes of a kernel call at s = 0.5 and 0.9), one row at a time and 8 rows
  at a time (the kernel's ROWS streams);
- numba_cpu's sparse_matmul at batch 1, float32, "relu" activations at s = 0, 0.5, 0.9, with cold
  weights: every call reads another copy of w, and more than twice the last-level cache is read
  between two uses of one copy. GB/s counts the needed weights only (4 B x N x non-zero
  activations), the figure the bench prints.

Per item: GB/s (median of the rounds' medians), % of the copy probe beside each call (median of
the rounds' medians [the best round's median]), and % of the larger `cpu_copy_peak`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels  # noqa: E402,F401  (registers the kernels)
from bench.kinds.matmul import activations  # noqa: E402
from bench.measure import roofline, timing  # noqa: E402
from kernels import ops as R  # noqa: E402
from kernels.backends.numba_cpu import stream_copy  # noqa: E402
from kernels import registry  # noqa: E402
from kernels.machine import last_level_cache_bytes  # noqa: E402

READ_BYTES = 2**30
SPARSITIES = (0.0, 0.5, 0.9)


@njit(parallel=True, fastmath=True)
def _read_rows(x2, rows, nthreads):
    """Sum of the rows x2[rows] (a read probe: fastmath lets the sum vectorise), thread t the t-th
    contiguous share of `rows`, one row at a time."""
    n = rows.size
    tot = np.zeros(nthreads, np.float32)
    for t in prange(nthreads):
        s = np.float32(0)
        for j in range(n * t // nthreads, n * (t + 1) // nthreads):
            r = x2[rows[j]]
            for c in range(r.size):
                s += r[c]
        tot[t] = s
    return tot.sum()


@njit(parallel=True, fastmath=True)
def _read_rows8(x2, rows, nthreads):
    """As `_read_rows`, 8 rows at a time (8 streams per thread, as the kernel reads them)."""
    n = rows.size
    tot = np.zeros(nthreads, np.float32)
    for t in prange(nthreads):
        s = np.float32(0)
        j, j1 = n * t // nthreads, n * (t + 1) // nthreads
        while j + 8 <= j1:
            r0, r1, r2, r3 = x2[rows[j]], x2[rows[j + 1]], x2[rows[j + 2]], x2[rows[j + 3]]
            r4, r5, r6, r7 = x2[rows[j + 4]], x2[rows[j + 5]], x2[rows[j + 6]], x2[rows[j + 7]]
            for c in range(r0.size):
                s += ((r0[c] + r1[c]) + (r2[c] + r3[c])) + ((r4[c] + r5[c]) + (r6[c] + r7[c]))
            j += 8
        while j < j1:
            r = x2[rows[j]]
            for c in range(r.size):
                s += r[c]
            j += 1
        tot[t] = s
    return tot.sum()


def _paired(fn, make_args, nbytes, calls: int, copy) -> tuple[float, float, float]:
    """`calls` calls of fn(*make_args()), each timed alone right after one call of copy() (which
    returns its GB/s): (median GB/s, median of GB/s / the copy's GB/s)."""
    g, ratio = [], []
    for _ in range(calls):
        peak = copy()
        args = make_args()
        t0 = time.perf_counter()
        fn(*args)
        g.append(nbytes(args) / (time.perf_counter() - t0) / 1e9)
        ratio.append(g[-1] / peak)
    return float(np.median(g)), float(np.median(ratio))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shape", default="8192x8192")
    args = ap.parse_args(argv)
    k, n = (int(v) for v in args.shape.lower().split("x"))
    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    llc = last_level_cache_bytes()

    x = np.ones(READ_BYTES // 4, np.float32)
    x2 = x.reshape(-1, n)
    all_rows = np.arange(x2.shape[0])
    row_bytes = n * 4
    window = min(k, x2.shape[0])                # rows of a w-sized window of x

    def gathered(frac):
        """Rows of a w-sized window of x (K rows at a random place), frac of them: the bytes and
        the length of a kernel call at sparsity 1 - frac."""
        def make():
            start = int(rng.integers(0, x2.shape[0] - window + 1))
            return x2, start + np.sort(rng.choice(window, int(window * frac), replace=False)), threads
        return make

    w0 = (rng.standard_normal((k, n), dtype=np.float32) / math.sqrt(k))
    needed_min = (1 - max(SPARSITIES)) * w0.nbytes
    copies = max(4, math.ceil(2 * llc / needed_min) + 2)       # > 2x LLC between two uses of a copy
    ws = [w0] + [w0.copy() for _ in range(copies - 1)]
    acts = {s: [activations(1, k, s, "relu", "float32", rng)[0] for _ in range(4)] for s in SPARSITIES}
    kernel = registry.kernel("sparse_matmul", "numba_cpu").raw
    y = np.empty(n, np.float32)
    turn = [0]

    def next_pair(s):
        i = turn[0]
        turn[0] += 1
        return acts[s][i % 4], ws[i % copies], y

    def call(a, w, out):
        kernel(a, w, out=out)

    for s in SPARSITIES:                                  # compile, and check once
        a = acts[s][0]
        call(a, w0, y)
        assert R.sparse_matmul_error(y, a, w0) <= R.sparse_matmul_tolerance("float32", k), "wrong result"
    _read_rows(x2, all_rows[:8], threads)
    _read_rows8(x2, all_rows[:16], threads)

    src = np.ones(w0.size, np.float32)          # the copy probe beside every sample: w's size,
    dst = np.zeros_like(src)                    # streaming stores (as `bench run`'s probe)
    stream_copy(src, dst)

    def copy() -> float:
        t0 = time.perf_counter()
        stream_copy(src, dst)
        return 2 * src.nbytes / (time.perf_counter() - t0) / 1e9

    sampling = timing.Sampling(min_samples=10, max_samples=20, budget_s=1.0, rel_tol=0.02, warmup_s=0.05)
    print(f"{os.popen('uptime').read().strip()}; {threads} numba threads, w {k}x{n} float32, "
          f"{copies} copies of w, LLC {llc // 2**20} MiB")
    peaks = [roofline.cpu_copy_peak(sampling)]
    rows = []
    for r in range(args.rounds):
        row = {}
        row["copy probe (streaming, w's size)"] = (float(np.median([copy() for _ in range(8)])), 1.0)
        row["read 1 GiB"] = _paired(_read_rows, lambda: (x2, all_rows, threads), lambda a: READ_BYTES, 6, copy)
        row["read 1 GiB, 1 thread"] = _paired(_read_rows, lambda: (x2, all_rows, 1), lambda a: READ_BYTES, 4, copy)
        for frac in (0.5, 0.1):
            nb = lambda a: a[1].size * row_bytes   # noqa: E731
            row[f"read {frac:.0%} rows"] = _paired(_read_rows, gathered(frac), nb, 8, copy)
            row[f"read {frac:.0%} rows, 8 at a time"] = _paired(_read_rows8, gathered(frac), nb, 8, copy)
        for s in SPARSITIES:
            row[f"kernel s={s:g}"] = _paired(call, lambda s=s: next_pair(s),
                                             lambda a: 4 * n * int(np.count_nonzero(a[0])), 20 if s < 0.9 else 40, copy)
        rows.append(row)
        print(f"round {r + 1}: " + "; ".join(f"{name} {m:.1f} ({100 * q:.0f}%)" for name, (m, q) in row.items()),
              flush=True)
    peaks.append(roofline.cpu_copy_peak(sampling))
    peak = max(p["gbps"] for p in peaks)
    print(f"{os.popen('uptime').read().strip()}")
    figures = ", ".join(f"{p['gbps']:.1f}" for p in peaks)
    print(f"\ncpu_copy_peak (bench run's limit): {figures} GB/s (start, end; {peaks[0]['method']})")
    print("over rounds: GB/s, % of the copy probe beside each call (median of the rounds' medians "
          "[the best round's]), % of the larger cpu_copy_peak:")
    for name in rows[0]:
        g = float(np.median([r[name][0] for r in rows]))
        q = float(np.median([r[name][1] for r in rows]))
        best = max(r[name][1] for r in rows)
        print(f"  {name:34s} {g:6.1f} GB/s  {100 * q:4.0f}% [{100 * best:4.0f}%]  {100 * g / peak:4.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
