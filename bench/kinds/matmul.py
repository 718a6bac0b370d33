"""The matmul op kind (sparse_matmul): its flags, cases, inputs with cold weights, checked and timed
call, derived figures, tables, Markdown and plot. Each case goes through the gate and timers every
case goes through (bench/measure/case.py).

Cases: shape K x N of w, batch (rows of a), sparsity s (the fraction of exact zeros in a) and the
activation pattern:
- `relu` (default, the realistic one): a = relu(z + b), z standard normal per element, b one bias
  per unit (input activation), drawn so that the fraction of zeros is s; units with a low bias are
  zero in most rows of the batch, as in a trained network;
- `iid`: each activation zero with probability s, independently;
- `correlated`: the same units are zero in every row of the batch.

Cold weights, as in a network where the layers before evicted this layer's, as far as rotation
gets there: every sample reads another activation matrix from a pool (same sparsity, other
non-zero rows), a copy of w serves one pass over the pool before the next takes over, and copies
and pool are large enough that the bytes read between two uses of the same (activation, copy) pair
exceed twice the last-level cache (`Rotation`). That is not every weight read cold: the pool's
matrices share non-zero rows (the relu pattern most), and rows one sample needs can still be in
cache from the sample before on the same copy (an ideal LRU model of a 32 MiB cache puts it at
8 % of the weight bytes for 8192x8192 at batch 1 and s = 0.9, up to 35 % for 4096x4096; only a
cache flush between samples would make it 0). The GPU flushes its L2 before each sample as for
every op.

Figures per case: time; speed-up over the best dense backend (numpy, torch, cupy) of the same run
and case; that speed-up as % of the ideal 1 / (1 - s); GB/s of the weights actually needed (rows
of present activations) against the run's copy peak; for scipy_csr, the share of the time its
conversion of a to CSR takes. Per backend, the crossover sparsity: the lowest measured s at which
it is at least CROSSOVER_SPEEDUP times as fast as the best dense backend.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from kernels import registry
from kernels.backends.scipy import sparse as scipy_csr
from kernels.machine import last_level_cache_bytes

from bench.measure import blas, check, devices, inputs
from bench.measure import interleave as _interleave
from bench.measure.case import ALLOCATES, Context, Ready, gate, guarded, round_robin_again, time_alone, timed
from bench.measure.roofline import matmul_flops, matmul_traffic
from bench.model.cases import Case, Profile, UsageError
from bench.model.display import ABOVE_MARK, fmt_time, peak_mark, style, time_marks
from bench.model.results import CaseResult
from scipy.special import ndtr

NAME = "matmul"
OP = "sparse_matmul"
DENSE = ("numpy", "torch", "cupy")                # IEEE a @ w: the baselines
PATTERNS = ("relu", "iid", "correlated")
SHAPES = ((4096, 4096), (8192, 8192), (4096, 11008))
BATCHES = (1, 8, 64)
SPARSITIES = (0.0, 0.25, 0.5, 0.7, 0.9, 0.95, 0.99)
QUICK = {"shapes": ((8192, 8192),), "batches": (1, 64), "sparsities": (0.0, 0.5, 0.9)}
FULL = {"shapes": SHAPES, "batches": BATCHES, "sparsities": SPARSITIES}
POOL_MIN, POOL_MAX = 4, 64                        # activation matrices in a case's pool


# ---------------------------------------------------------------------------------- command line

def parse_shapes(text: str) -> tuple[tuple[int, int], ...]:
    """'8192x8192,4096x11008' -> ((8192, 8192), (4096, 11008))."""
    out = []
    for part in text.split(","):
        p = part.strip().lower()
        try:
            k, n = (int(v) for v in p.split("x"))
        except ValueError:
            raise UsageError(f"malformed shape {part.strip()!r} in --shapes: use KxN, e.g. 8192x8192,4096x11008") from None
        if k < 1 or n < 1:
            raise UsageError(f"shape {part.strip()!r} in --shapes must have K and N of at least 1")
        out.append((k, n))
    return tuple(dict.fromkeys(out))


def _numbers(text: str, convert, flag: str, use: str) -> tuple:
    """The comma-separated values of a flag, each through convert; UsageError saying what to use."""
    try:
        return tuple(convert(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"malformed {flag} {text!r}: use {use}") from None


def parse_batches(text: str) -> tuple[int, ...]:
    out = _numbers(text, int, "--batch", "positive integers, e.g. 1,8,64")
    if not out or min(out) < 1:
        raise UsageError(f"--batch {text!r}: every batch must be at least 1")
    return tuple(dict.fromkeys(out))


def parse_sparsities(text: str) -> tuple[float, ...]:
    out = _numbers(text, float, "--sparsity", "fractions in [0, 1), e.g. 0,0.5,0.9")
    if not out or not all(0.0 <= s < 1.0 for s in out):
        raise UsageError(f"--sparsity {text!r}: every sparsity must be in [0, 1) (1 would leave nothing to read)")
    return tuple(sorted(dict.fromkeys(out)))


def parse_patterns(text: str) -> tuple[str, ...]:
    out = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in out if v not in PATTERNS]
    if bad or not out:
        raise UsageError(f"unknown --pattern {', '.join(bad) or repr(text)}; valid: {', '.join(PATTERNS)}")
    return tuple(dict.fromkeys(out))


# Its flags: (dest, help), added to `bench run` (bench/cli/main.py) and passed to `options`
FLAGS = (
    ("shapes", "sparse_matmul: comma-separated KxN weight shapes, e.g. 8192x8192,4096x11008"),
    ("batch", "sparse_matmul: comma-separated batch sizes (rows of a), e.g. 1,64"),
    ("sparsity", "sparse_matmul: comma-separated fractions of zero activations in [0, 1)"),
    ("pattern", "sparse_matmul: relu (default), iid or correlated (comma-separated)"),
)


def axes(profile: str, shapes: str | None, batch: str | None, sparsity: str | None,
         pattern: str | None) -> list[tuple[tuple[int, int], int, float, str]]:
    """(shape, batch, sparsity, pattern) of every case: the profile's, narrowed by the flags."""
    base = FULL if profile == "full" else QUICK
    sh = parse_shapes(shapes) if shapes else base["shapes"]
    ba = parse_batches(batch) if batch else base["batches"]
    sp = parse_sparsities(sparsity) if sparsity else base["sparsities"]
    pa = parse_patterns(pattern) if pattern else ("relu",)
    return [(s, b, x, p) for s in sh for b in ba for p in pa for x in sp]


def options(profile: Profile, given: dict) -> list:
    """Its flags checked (UsageError), as the axes of every case."""
    return axes(profile.name, *(given.get(dest) for dest, _ in FLAGS))


def profile_dtypes(profile: str, device: str) -> tuple[str, ...]:
    """float32 everywhere; the full profile adds float16 on the GPU."""
    return ("float32", "float16") if profile == "full" and device == "gpu" else ("float32",)


def case_axes(shape, batch: int, sparsity: float, pattern: str) -> tuple:
    """A case's axes as a Case and its results record keep them (the shape as "KxN")."""
    return (("shape", f"{shape[0]}x{shape[1]}"), ("batch", batch), ("sparsity", sparsity), ("pattern", pattern))


def cases(op: str, be: registry.Backend, profile: Profile, dtypes: list[str], dtypes_given: bool,
          sizes, opts: list) -> list[Case]:
    """op on backend `be` at every (shape, batch, sparsity, pattern) of `opts`, at the given dtypes
    or the profile's (`profile_dtypes`); --sizes does not apply (the shape sets the size)."""
    return [Case(op, be.name, be.device, dt, shape[0] * shape[1], case_axes(shape, bt, sp, pat))
            for dt in (dtypes if dtypes_given else profile_dtypes(profile.name, be.device))
            for shape, bt, sp, pat in opts]


def shape_of(case) -> tuple[int, int]:
    """(K, N) of a case's weights, from its "KxN" axis."""
    k, n = str(case.axis("shape")).split("x")
    return int(k), int(n)


def order(case: Case) -> tuple[tuple, tuple]:
    """Its place within the cases of one (device, dtype, size, op): one backend's sparsities in a
    row (a BLAS's threads spin for a while after each call, and would take the cores from the next
    backend's first samples), batch and pattern before the backend, sparsity after it."""
    return (case.axis("batch"), case.axis("pattern")), (case.axis("sparsity"),)


def group_key(case: Case):
    """None: every case alone, on inputs of its own (never sampled round-robin with others)."""
    return None


def working_set(case: Case) -> None:
    """None: its weights rotate through copies larger than twice the cache (`Rotation`), so no
    probe of the memory peak is needed before it."""
    return None


# ---------------------------------------------------------------------------------------- inputs

def activations(batch: int, k: int, sparsity: float, pattern: str, dtype: str,
                rng: np.random.Generator) -> np.ndarray:
    """A batch x K ReLU-like activation matrix with about `sparsity` exact zeros, of `pattern`."""
    z = rng.standard_normal((batch, k), dtype=np.float32)
    if pattern == "iid":
        a = np.abs(z)
        a[rng.random((batch, k)) < sparsity] = 0
    elif pattern == "correlated":
        a = np.abs(z)
        a[:, rng.random(k) < sparsity] = 0
    elif pattern == "relu":
        # one bias per unit, spread so that units differ (some almost always off, some almost
        # always on), shifted so that the overall fraction of z + b <= 0 is `sparsity`
        spread = rng.standard_normal(k, dtype=np.float32)
        shift = _relu_shift(spread, sparsity)
        a = np.maximum(z + (spread - shift), 0)
    else:
        raise UsageError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")
    return a.astype(dtype)


def _relu_shift(spread: np.ndarray, sparsity: float) -> float:
    """The shift c at which P(z + spread - c <= 0) = sparsity, z ~ N(0, 1), averaged over units:
    the mean of Phi(c - spread) over units is increasing in c; bisection."""
    lo, hi = -12.0, 12.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(np.mean(ndtr(mid - spread))) < sparsity:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def needed_rows(a: np.ndarray) -> int:
    """Rows of w a sparse-aware kernel must read for activations a: those of units present in
    any row of the batch."""
    return int(np.count_nonzero((a.reshape(-1, a.shape[-1]) != 0).any(axis=0)))


@dataclass
class Rotation:
    """The inputs of successive samples: activation matrix i % len(pool) with weight copy
    (i // len(pool)) % copies... so that the same pair comes back only after every pair has been
    used once, with more than 2x the last-level cache read in between (see `pool_size`)."""

    pool: list
    weights: list
    i: int = 0

    def next(self) -> tuple:
        p = len(self.pool)
        a, w = self.pool[self.i % p], self.weights[(self.i // p) % len(self.weights)]
        self.i += 1
        return a, w

    @property
    def period(self) -> int:
        return len(self.pool) * len(self.weights)

    def pairs(self) -> list[tuple]:
        """One period of (a, w) pairs in the order next() gives them, prepared before timing."""
        return [self.next() for _ in range(self.period)]


def weight_copies(w_bytes: int, llc: int) -> int:
    """Copies of w to rotate through: at least 2, and together more than 2x the LLC."""
    return max(2, math.ceil(2 * llc / max(w_bytes, 1)) + 1)


def pool_size(needed_bytes: float, llc: int) -> int:
    """Activation matrices in a pool: enough that the weights read by one pass over the pool
    (each sample reads about `needed_bytes`) exceed 2x the LLC, within [POOL_MIN, POOL_MAX]."""
    want = math.ceil(2 * llc / max(needed_bytes, 1.0)) + 1
    return max(POOL_MIN, min(POOL_MAX, want))


class Inputs:
    """Host inputs of the sparse cases of one run: weight copies per (dtype, shape), activation
    pools per (dtype, shape, batch, sparsity, pattern). One shape is kept at a time."""

    def __init__(self, seed: int):
        self.seed = seed
        self.llc = last_level_cache_bytes()
        self._w: dict = {}
        self._pools: dict = {}
        self._moved = inputs.Moved()

    def weights(self, dtype: str, shape) -> list[np.ndarray]:
        key = (dtype, shape)
        if key not in self._w:
            self._w.clear()
            self._pools.clear()
            self._moved.clear()
            rng = np.random.default_rng([self.seed, *shape, np.dtype(dtype).num])
            w = (rng.standard_normal(shape, dtype=np.float32) / math.sqrt(shape[0])).astype(dtype)
            self._w[key] = [w] + [w.copy() for _ in range(weight_copies(w.nbytes, self.llc) - 1)]
        return self._w[key]

    def pool(self, dtype: str, shape, batch: int, sparsity: float, pattern: str) -> list[np.ndarray]:
        key = (dtype, shape, batch, sparsity, pattern)
        if key not in self._pools:
            rng = np.random.default_rng([self.seed, batch, int(sparsity * 1e6), PATTERNS.index(pattern), *shape])
            first = activations(batch, shape[0], sparsity, pattern, dtype, rng)
            per_sample = needed_rows(first) * shape[1] * np.dtype(dtype).itemsize
            n = pool_size(per_sample, self.llc)
            self._pools[key] = [first] + [activations(batch, shape[0], sparsity, pattern, dtype, rng)
                                          for _ in range(n - 1)]
        return self._pools[key]

    def on(self, be, arrays: list) -> list:
        """`arrays` moved to be's array library, once per library."""
        return self._moved.on(be, arrays)

    def forget_moved(self) -> None:
        self._moved.clear()


# ------------------------------------------------------------------------------------- one case

def traffic(a_list: list, shape, dtype: str) -> int:
    """bench/measure/roofline.py's bytes of the op, averaged over the pool's activation matrices."""
    k, n = shape
    batch = a_list[0].reshape(-1, k).shape[0]
    return matmul_traffic(float(np.mean([needed_rows(a) for a in a_list])), batch, k, n, dtype)


def useful_flops(a_list: list, n: int) -> int:
    """bench/measure/roofline.py's useful flops of the op, averaged over the pool."""
    return matmul_flops(float(np.mean([np.count_nonzero(a) for a in a_list])), n)


def small_check(backend: str, dtype: str, seed: int, scratch):
    """Fresh random trials at awkward sizes before the first timing of a (backend, dtype)."""
    rng = np.random.default_rng([seed, 8])
    for batch, k, n in ((1, 1031, 517), (7, 257, 129)):
        for pattern in PATTERNS:
            a = activations(batch, k, 0.6, pattern, dtype, rng)
            w = rng.standard_normal((k, n), dtype=np.float32).astype(dtype)
            r = check.check_call(OP, backend, (a, w), scratch=scratch)
            if not r.ok:
                return check.CheckResult(False, f"{batch}x{k} @ {k}x{n} {pattern}: {r.message}")
    return check.OK


def conversion_s(be_name: str, pool: list) -> float | None:
    """scipy_csr: median time of converting one activation matrix of the pool to CSR."""
    if be_name != "scipy_csr":
        return None
    times = []
    for a in pool * max(1, 10 // len(pool)):
        t0 = time.perf_counter_ns()
        scipy_csr.to_csr(a)
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return float(np.median(times))


# ------------------------------------------------------------------------------------- measuring

class Session:
    """The matmul cases of one run: their weight copies and activation pools (`Inputs`)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.host = Inputs(ctx.seed)

    def run(self, group: list[Case], beyond: bool) -> list[CaseResult]:
        return [_run_case(case, self.host, self.ctx) for case in group]

    def release(self) -> None:
        """Drop the weights and pools (the next case of this kind builds them again)."""
        self.host = Inputs(self.ctx.seed)


def _run_case(case: Case, host: Inputs, ctx: Context) -> CaseResult:
    """One case on its own inputs. A CPU case is judged by a copy of its weights' size measured with
    it (peak_gbps, the memory level: its weights are cold): in interleaved runs, where its backend
    uses every core, sampled in rounds beside it, whose samples `bench compare` divides by (the VM's
    memory phases moved these cases 1.2-1.6x between runs of the same code); else right after it."""
    base = dict(op=case.op, kind=NAME, backend=case.backend, device=case.device, dtype=case.dtype,
                size=case.size, axes=dict(case.axes))
    be = registry.backend(case.backend)
    sampling = ctx.sampling

    def measure(device, base):
        ready = _check(case, be, device, host, ctx, base)
        if isinstance(ready, CaseResult):
            return ready
        beside, peak = None, None
        if case.device != "cpu":
            t, passes = time_alone(ready, sampling)
        else:
            # the case's % of the copy peak is of a copy of w's size measured with it: the weights
            # are cold whatever their bytes (a case needing 27.6 MB was judged by the cache peak),
            # and the VM's memory phases moved the run's own peak 1.5x from minute to minute
            probe, moved = ctx.probe.member(case.dtype, case.size, sampling)
            if ctx.interleave and case.op not in be.one_thread_ops:
                member = _interleave.cpu_member("case", ready.fn, ready.native, ready.kwargs, sampling)
                times, passes = round_robin_again([member, probe], sampling, ctx.seed, {})
                t, beside = times["case"], times[_interleave.PROBE]      # paired round by round
                copy = beside
            else:                   # one after the other: a one-thread kernel, or --no-interleave
                t, passes = time_alone(ready, sampling)
                copy = round_robin_again([probe], sampling, ctx.seed, {})[0][_interleave.PROBE]
            peak = moved / float(np.median(copy.samples_s)) / 1e9
        pool = host.pool(case.dtype, shape_of(case), case.axis("batch"), case.axis("sparsity"), case.axis("pattern"))
        conv = conversion_s(case.backend, [a[0] if case.axis("batch") == 1 else a for a in pool])
        return timed(ready, t, peak_gbps=peak, probe=beside, passes=passes,
                     figures={"conversion_s": conv} if conv is not None else None)

    return guarded(case, be, base, host, ctx.scope, measure)


def _check(case: Case, be: registry.Backend, device: devices.HostAdapter, host: Inputs,
           ctx: Context, base: dict) -> CaseResult | Ready:
    """The gate (on the first matrix of the case's pool), then its timed call: each call takes the
    next (activation, weight copy) pair of the rotation (the cold weights of this module's top)."""
    shape, batch = shape_of(case), case.axis("batch")
    weights = host.weights(case.dtype, shape)
    pool = host.pool(case.dtype, shape, batch, case.axis("sparsity"), case.axis("pattern"))
    base = dict(base, bytes=traffic(pool, shape, case.dtype), flops=useful_flops(pool, shape[1]))
    native_w = host.on(be, weights)
    native_a = host.on(be, pool)
    a0 = pool[0][0] if batch == 1 else pool[0]
    na0 = native_a[0][0] if batch == 1 else native_a[0]
    scratch = ctx.scope.scratch
    r = gate(case, ctx.checked, lambda: small_check(case.backend, case.dtype, ctx.seed, scratch),
             lambda: check.check_call(case.op, case.backend, (a0, weights[0]), native=(na0, native_w[0]),
                                      scratch=scratch),
             host, base)
    if isinstance(r, CaseResult):
        return r
    k = registry.kernel(case.op, case.backend)
    if batch == 1:                          # a K-vector, the GEMV every inference step runs
        native_a = [a[0] for a in native_a]
    out_shape = (shape[1],) if batch == 1 else (batch, shape[1])
    out = be.empty(out_shape, case.dtype) if k.supports_out else None
    pairs = itertools.cycle(Rotation(native_a, native_w).pairs())   # no index arithmetic while timed

    def call(out=None):
        return k.raw(*next(pairs), out=out)

    return Ready(case, be, device, call, (), {"out": out}, r.worst, "" if k.supports_out else ALLOCATES, base)


# ------------------------------------------------------------------------------- derived figures

def case_key(e) -> tuple:
    return (e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('sparsity'), e.axis('pattern'))


FLOP_BOUND_BATCH = 8      # from this batch on a case is judged by FLOP rate, below it by bandwidth
IDEAL_SHOWN_ABOVE = 90.0  # % of the copy peak the dense reference must reach for % of ideal to mean much


def _group(e) -> tuple:
    return (e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern'))


def dense_flop_rate(e) -> float:
    """A dense product's FLOP rate: it multiplies every activation, zero or not (2 x batch x K x N)."""
    k, n = shape_of(e)
    return 2 * e.axis('batch') * k * n / e.median_s


def derive(results) -> list:
    """The figures of every timed case of this kind: speedup_vs_dense (best dense median of the same
    case / this median), pct_of_ideal (that speed-up as % of 1 / (1 - s)) and pct_of_limit, the
    physical measure: below FLOP_BOUND_BATCH the bandwidth of the weights it needs as % of the copy
    peak (pct_peak; a GEMV is memory-bound), from it on its useful FLOP rate as % of the best dense
    BLAS's FLOP rate measured in the same run (all shapes and sparsities of the group)."""
    best: dict = {}
    rate: dict = {}
    for e in results:
        if e.kind == NAME and e.backend in DENSE and e.timed:
            k = case_key(e)
            best[k] = min(best.get(k, math.inf), e.median_s)
            rate[_group(e)] = max(rate.get(_group(e), 0.0), dense_flop_rate(e))
    out = []
    for e in results:
        if e.kind == NAME and e.timed:
            figures = dict(e.figures or {})
            if case_key(e) in best:
                sp = best[case_key(e)] / e.median_s
                figures.update(speedup_vs_dense=sp, pct_of_ideal=100 * sp * (1 - e.axis('sparsity')))
            if e.axis('batch') < FLOP_BOUND_BATCH:
                if e.pct_peak is not None:
                    figures["pct_of_limit"] = e.pct_peak
            elif rate.get(_group(e)) and e.flops:
                figures["pct_of_limit"] = 100 * e.flops / e.median_s / rate[_group(e)]
            e = replace(e, figures=figures or None)
        out.append(e)
    return out


def limit_name(batch: int) -> str:
    """What pct_of_limit is of, for a case of this batch."""
    return "copy peak" if batch < FLOP_BOUND_BATCH else "dense FLOP/s"


def limit_mark(e) -> str:
    """' !' where a case's % of its limit is one physics forbids: above the copy peak by more than the
    peak's spread (results' ABOVE_PEAK mark, batch < 8), or above the best dense BLAS's FLOP rate."""
    if e.axis('batch') < FLOP_BOUND_BATCH:
        return peak_mark(e)
    return f" {ABOVE_MARK}" if (e.figure('pct_of_limit') or 0) > 100 else ""


def ideal_meaningful(entries) -> bool:
    """Whether % of ideal 1/(1-s) says something of a group's cases: only where its best dense
    reference at s = 0 itself streams at IDEAL_SHOWN_ABOVE % of the copy peak (a weak reference
    makes any kernel look above ideal)."""
    dense0 = [e for e in entries if e.backend in DENSE and e.timed and e.axis('sparsity') == 0 and e.pct_peak]
    return bool(dense0) and max(e.pct_peak for e in dense0) >= IDEAL_SHOWN_ABOVE


# "Beats the best dense" means by 10 %: numba_cpu's batched product may run BLAS itself (a tie by
# construction), and a shared VM moves one median by more than 1 %; a 1.04x there read as a crossover
CROSSOVER_SPEEDUP = 1.1


def crossovers(entries) -> dict[tuple, dict[str, float | None]]:
    """{(device, dtype, shape, batch, pattern): {backend: lowest measured s at which it is at least
    CROSSOVER_SPEEDUP times as fast as the best dense backend, or None}} for the non-dense backends."""
    groups: dict = {}
    for e in entries:
        if e.kind != NAME or e.backend in DENSE or not e.timed or e.figure('speedup_vs_dense') is None:
            continue
        group = (e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern'))
        g = groups.setdefault(group, {}).setdefault(e.backend, [])
        g.append((e.axis('sparsity'), e.figure('speedup_vs_dense')))
    return {k: {b: next((s for s, sp in sorted(v) if sp >= CROSSOVER_SPEEDUP), None) for b, v in bs.items()}
            for k, bs in groups.items()}


def crossover_line(cross: dict[str, float | None]) -> str:
    """The line under a table: each backend's crossover sparsity ('-' where it never crosses)."""
    return (f"crossover sparsity (lowest s at least {CROSSOVER_SPEEDUP:g}x as fast as the best dense): "
            + (", ".join(f"{b} {'-' if s is None else f'{s:g}'}" for b, s in cross.items()) or "-"))

# ------------------------------------------------------------------------------------ tables, plot

def tables(run, narrow: bool = False) -> list:
    """A rich Table per (device, dtype, shape, batch, pattern): rows sparsity, columns backends;
    each cell: time, x speed-up over the best dense, % of ideal, GB/s of needed weights (% of the
    copy peak); the crossover sparsity of each backend below. `narrow`: the same tables, in the
    same order, as a row per (sparsity, backend) and a column per figure (an 80-column terminal)."""
    entries = [e for e in run.results if e.kind == NAME]
    groups: dict = {}
    for e in entries:
        groups.setdefault((e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern')), []).append(e)
    cross = crossovers(entries)
    out = []
    for (device, dtype, shape, batch, pattern), es in groups.items():
        backends = list(dict.fromkeys([b for b in DENSE if any(e.backend == b for e in es)]
                                      + [e.backend for e in es if e.backend not in DENSE]))
        if narrow:
            out.append(_narrow_table(run, (device, dtype, shape, batch, pattern), es, backends,
                                     cross.get((device, dtype, shape, batch, pattern), {})))
            continue
        ideal = ideal_meaningful(es)
        t = Table(title=f"sparse_matmul {shape} batch {batch} {dtype} on {device}, pattern {pattern}: "
                        f"time · speed-up over the best dense{' · % of ideal 1/(1-s)' if ideal else ''} · "
                        f"% of the {limit_name(batch)} · GB/s of needed weights",
                  title_justify="left", show_lines=True)
        t.add_column("sparsity", no_wrap=True)
        for b in backends:
            t.add_column(b, justify="right")
        for sp in sorted({e.axis('sparsity') for e in es}):
            row = []
            for b in backends:
                e = next((x for x in es if x.backend == b and x.axis('sparsity') == sp), None)
                if e is None:
                    row.append("")
                elif not e.timed:
                    row.append(f"{e.status}: {(e.reason or '')[:40]}")
                else:
                    lines = [time_marks(e) + fmt_time(e.median_s)]
                    if e.figure('speedup_vs_dense') is not None:
                        lines.append(f"x{e.figure('speedup_vs_dense'):.2f}"
                                     + (f" · {e.figure('pct_of_ideal'):.0f}% ideal" if ideal else ""))
                    if e.figure('pct_of_limit') is not None:
                        lines.append(f"{e.figure('pct_of_limit'):.0f}% of {limit_name(batch)}{limit_mark(e)}")
                    if e.gbps is not None:
                        lines.append(f"{e.gbps:.1f} GB/s")
                    if e.figure('conversion_s') is not None:
                        lines.append(f"CSR conversion {100 * e.figure('conversion_s') / e.median_s:.0f}%")
                    row.append("\n".join(lines))
            t.add_row(f"{sp:g}", *row)
        cr = cross.get((device, dtype, shape, batch, pattern), {})
        t.caption = "\n".join([crossover_line(cr), *baseline_notes(run, device)])
        out.append(t)
    return out


NARROW_HELP = ("sparse_matmul: time · vs dense: speed-up over the best dense · % ideal: of 1/(1-s), shown where "
               "the dense reference streams at 90 % of the copy peak · % limit: batch < 8, the needed weights' "
               "bandwidth of the copy peak; batch >= 8, the useful FLOP rate of the best dense BLAS's · GB/s of "
               "the weights needed · CSR conv.: the conversion's share of the time")


def _narrow_table(run, group: tuple, es: list, backends: list, cross: dict):
    device, dtype, shape, batch, pattern = group
    ideal = ideal_meaningful(es)
    t = Table(title=f"sparse_matmul {shape} batch {batch} {dtype} on {device}, pattern {pattern} "
                    f"(% limit: of the {limit_name(batch)})",
              title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("zeros", no_wrap=True)
    t.add_column("backend", no_wrap=True)
    for name in ("time", "vs dense", "% ideal", "% limit", "GB/s", "CSR conv."):
        t.add_column(name, justify="right", no_wrap=True)
    sparsities = sorted({e.axis('sparsity') for e in es})
    for i, sp in enumerate(sparsities):
        present = [x for b in backends for x in es if x.backend == b and x.axis('sparsity') == sp]
        for j, e in enumerate(present):
            if not e.timed:
                cells = [f"{e.status}: {(e.reason or '')[:30]}", "", "", "", "", ""]
            else:
                cells = [time_marks(e) + fmt_time(e.median_s),
                         f"x{e.figure('speedup_vs_dense'):.2f}" if e.figure('speedup_vs_dense') is not None else "-",
                         f"{e.figure('pct_of_ideal'):.0f}%" if ideal and e.figure('pct_of_ideal') is not None else "-",
                         f"{e.figure('pct_of_limit'):.0f}%{limit_mark(e)}" if e.figure('pct_of_limit') is not None else "-",
                         f"{e.gbps:.1f}" if e.gbps is not None else "-",
                         f"{100 * e.figure('conversion_s') / e.median_s:.0f}%" if e.figure('conversion_s') is not None else ""]
            t.add_row(f"{sp:g}" if j == 0 else "", e.backend, *cells,
                      end_section=j == len(present) - 1 and i < len(sparsities) - 1)
    t.caption = "\n".join([crossover_line(cross), *baseline_notes(run, device)])
    return t


def baseline_notes(run, device: str) -> list[str]:
    """Under every table: which BLAS kernel the dense CPU baseline ran (threadpoolctl's record in
    the run's env), and the warning where an environment variable forced an older one than the CPU
    has (bench/measure/blas.py): every speed-up over dense rests on that baseline."""
    if device != "cpu":
        return []
    kernels_ = dict.fromkeys(f"{b.get('internal_api', '?')} {b.get('architecture') or ''}".strip()
                             for b in blas.numpy_own(((run.env or {}).get("numpy") or {}).get("blas") or []))
    notes = [f"dense baseline numpy's BLAS: {', '.join(kernels_)}"] if kernels_ else []
    return notes + blas.warnings(run.env or {})


def markdown(run) -> str:
    """The same tables as Markdown (time, speed-up, % of ideal, GB/s), crossovers below each."""
    entries = [e for e in run.results if e.kind == NAME]
    if not entries:
        return ""
    groups: dict = {}
    for e in entries:
        groups.setdefault((e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern')), []).append(e)
    cross = crossovers(entries)
    lines = ["## sparse_matmul", "",
             "Each cell: median time, speed-up over the best dense backend of the same case (and that "
             "speed-up as % of the ideal 1 / (1 - s) where the dense reference streams at 90 % of the copy "
             "peak), % of the limit (batch < 8: the needed weights' bandwidth of the copy peak; batch >= 8: "
             "the useful FLOP rate of the best dense BLAS's), GB/s of the weights actually needed.", ""]
    for (device, dtype, shape, batch, pattern), es in groups.items():
        backends = list(dict.fromkeys([b for b in DENSE if any(e.backend == b for e in es)]
                                      + [e.backend for e in es if e.backend not in DENSE]))
        ideal = ideal_meaningful(es)
        lines += [f"### {shape} batch {batch} {dtype} on {device}, pattern {pattern}", "",
                  "| sparsity | " + " | ".join(backends) + " |", "|---" * (len(backends) + 1) + "|"]
        for sp in sorted({e.axis('sparsity') for e in es}):
            cells = []
            for b in backends:
                e = next((x for x in es if x.backend == b and x.axis('sparsity') == sp), None)
                if e is None or not e.timed:
                    cells.append("" if e is None else str(e.status))
                    continue
                c = f"{time_marks(e)}{e.median_s * 1e3:.3g} ms"
                if e.figure('speedup_vs_dense') is not None:
                    c += f" · x{e.figure('speedup_vs_dense'):.2f}"
                    c += f" · {e.figure('pct_of_ideal'):.0f}% ideal" if ideal else ""
                if e.figure('pct_of_limit') is not None:
                    c += f" · {e.figure('pct_of_limit'):.0f}% of {limit_name(batch)}{limit_mark(e)}"
                if e.gbps is not None:
                    c += f" · {e.gbps:.1f} GB/s"
                cells.append(c)
            lines.append(f"| {sp:g} | " + " | ".join(cells) + " |")
        cr = cross.get((device, dtype, shape, batch, pattern), {})
        line = crossover_line(cr)
        lines += ["", line[0].upper() + line[1:], ""]
        lines += [f"> {note}" + "\n" for note in baseline_notes(run, device)]
    return "\n".join(lines)


def figure(run, device: str, dtype: str, shape: str, batch: int, pattern: str):
    """Speed-up over the best dense backend against sparsity, one line per backend, with the
    ideal 1 / (1 - s) drawn."""
    from matplotlib.figure import Figure
    es = [e for e in run.results if e.kind == NAME and e.timed and e.figure('speedup_vs_dense') is not None
          and (e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern')) == (device, dtype, shape, batch, pattern)]
    fig = Figure(figsize=(6.5, 4.2))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.88)
    ax = fig.subplots()
    ss = sorted({e.axis('sparsity') for e in es}) or [0.0]
    grid = np.linspace(0, max(ss), 200)
    # black: scipy_csr's colour (tab10's C7) is the grey this line had, and the two read as one
    ax.plot(grid, 1 / (1 - grid), color="black", linestyle="--", label="ideal 1/(1-s)")
    ax.axhline(1, color="0.6", linewidth=0.8)
    for b in dict.fromkeys(e.backend for e in es):
        pts = sorted((e.axis('sparsity'), e.figure('speedup_vs_dense')) for e in es if e.backend == b)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=b, **style(b))
    ax.set_yscale("log")
    ax.set_xlabel("sparsity s (fraction of zero activations)")
    ax.set_ylabel("speed-up over the best dense backend")
    ax.set_title(f"sparse_matmul {shape} batch {batch} {dtype} ({device}, {pattern})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_plots(run, folder, dpi: int = 100) -> list:
    """Speed-up against sparsity, a PNG per (device, dtype, shape, batch, pattern): the paths."""
    folder = Path(folder)
    keys = dict.fromkeys((e.device, e.dtype, e.axis('shape'), e.axis('batch'), e.axis('pattern')) for e in run.results
                         if e.kind == NAME and e.timed and e.figure('speedup_vs_dense') is not None)
    paths = []
    for device, dtype, shape, batch, pattern in keys:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"sparse_matmul-{shape}-b{batch}-{dtype}-{device}-{pattern}.png"
        figure(run, device, dtype, shape, batch, pattern).savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def summary_line(op: str, entries: list, width: int) -> str | None:
    """The run's closing line for this kind: the best speed-up over the best dense product, with
    the sparsity and shape where it was reached."""
    timed_ = [e for e in entries if e.timed and e.figure('speedup_vs_dense') is not None]
    if not timed_:
        return None
    e = max(timed_, key=lambda x: x.figure('speedup_vs_dense'))
    return (f"{op:<{width}} {e.backend:<11} x {e.figure('speedup_vs_dense'):.2f} over dense at "
            f"{100 * (e.axis('sparsity') or 0):g}% zeros, {e.axis('shape')} batch {e.axis('batch')}")
