"""Which method numba_cpu's sparse_matmul uses, measured on this machine per case class.

Three methods compute a batch (kernels/backends/numba_cpu/sparse.py):
- "sparse": numba's kernel, which reads only the rows of w that some row of the batch needs and
  multiplies only the present activations: its work falls with every zero, but its inner loop
  runs well below the FLOP rate of a tuned GEMM;
- "blas": NumPy's BLAS on the whole of w, at its FLOP rate: every zero activation costs full
  FLOPs (and its row of w is read);
- "blas_gather": the same on the rows of w some row of the batch needs, gathered into a compact
  block first: fewer FLOPs and reads in the product, for a copy of the needed rows.

Which is faster depends on the batch (a GEMM's efficiency grows with it), on the fraction of
zeros, on the BLAS the process loaded (its kernel: bench/blas.py) and on the machine, so it is
measured, never assumed: at the first call of a case class (`key`: dtype, batch rounded down to a
power of two, the fraction of present activations and of needed rows in tenths, and whether w
exceeds the last-level cache) the methods run on the caller's own arguments, interleaved,
`ROUNDS` times each, and the fastest (fastest round of each) is kept for the class. One quiet or
busy moment must not decide for good, so the probe is held to strategy.py's discipline: the even
and the odd rounds alone must name the same method (or the two they name be within `TIE` of each
other), and no method's two halves be more than strategy.NOISE apart. A probe that fails this is
"inconclusive": this process uses its fastest method, nothing is saved, and the next process
measures again. Conclusive choices are saved in ~/.cache/actbench/numba_cpu-sparse.json (or
$ACTBENCH_CACHE_DIR), keyed by CPU, threads, numba, NumPy and its BLAS kernel, and the kernels'
source, so later processes skip the probe. A run records the choices it used (env.settings).
The batch-1 kernel's width is chosen the same way among `ROW_METHODS`: "rows8" adds 8 present
rows of w per pass over its partial sum, "rows4" 4 (fewer read streams for the prefetchers to
follow, the partial read and written twice as often): on the machine this was written on the two
were within 0-5 % of each other, with 8 ahead, which says nothing of the next machine.
$ACTBENCH_SPARSE_METHOD (sparse, blas, blas_gather, rows8, rows4 or measure) overrides it for the
calls it names a method of.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numba
import numpy as np

from kernels.backends.numba_cpu.strategy import NOISE, cache_dir, load_cache, write_cache_entry
from kernels.machine import cpu_count, cpu_model

METHODS = ("sparse", "blas", "blas_gather")
ROW_METHODS = ("rows8", "rows4")      # batch 1 (sparse.ROWS)
ROUNDS = 4              # timed runs of each method in a probe: two halves of 2 (the fastest counts)
TIE = 1.03              # two methods within 3 % of each other: either is a right choice
SCHEMA = 1
_HERE = Path(__file__).resolve().parent


def check_environment(env: Mapping[str, str] = os.environ) -> None:
    """ValueError naming the variable when ACTBENCH_SPARSE_METHOD holds a value no call can use."""
    value = env.get("ACTBENCH_SPARSE_METHOD", "measure").strip().lower()
    if value not in (*METHODS, *ROW_METHODS, "measure"):
        raise ValueError(f"ACTBENCH_SPARSE_METHOD must be one of {', '.join(METHODS)} or measure (batch 1: "
                         f"{' or '.join(ROW_METHODS)}), not {value!r}")


@functools.lru_cache(maxsize=4096)      # at every call: a batch-1 call's whole cost is a few us
def key(dtype, batch: int, k: int, n: int, present: int, needed: int, itemsize: int,
        llc_bytes: int) -> str:
    """The case class a choice holds for: 'float32/b64/p0.5/r1.0/memory' (dtype: a NumPy dtype or
    its name; the callers pass the dtype, whose str() alone cost 5 us a call)."""
    b = 2 ** int(math.log2(max(batch, 1)))
    p = round(present / max(batch * k, 1), 1)
    r = round(needed / max(k, 1), 1)
    where = "memory" if k * n * itemsize > llc_bytes else "cache"
    return f"{dtype}/b{b}/p{p:g}/r{r:g}/{where}"


def machine_key() -> str:
    """What a choice depends on beyond the case: CPU, cores, numba threads and version, NumPy and
    the kernel of its BLAS, and this module's and the kernels' sources."""
    try:
        from threadpoolctl import threadpool_info   # gpu-check's machines lack it
        blas = ",".join(f"{i.get('internal_api')}:{i.get('architecture')}:{i.get('num_threads')}"
                        for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "?"
    h = hashlib.sha256()
    for name in ("sparse.py", "sparse_method.py"):
        h.update((_HERE / name).read_bytes())
    return (f"{cpu_model()} | {cpu_count()} cores | {numba.get_num_threads()} threads | numba "
            f"{numba.__version__} | numpy {np.__version__} {blas} | kernels {h.hexdigest()[:12]}")


def order(r: int, methods: tuple[str, ...] = METHODS) -> tuple[str, ...]:
    """The methods in round r of a probe: `methods` rotated by r."""
    k = r % len(methods)
    return methods[k:] + methods[:k]


def conclusive(times: Mapping[str, list[float]]) -> bool:
    """Whether a probe's rounds agree with themselves: the fastest even round and the fastest odd
    round name the same method (or two within `TIE`), and no method's two halves are more than
    strategy.NOISE apart (a machine too busy to tell)."""
    halves = {m: (min(t[0::2]), min(t[1::2] or t)) for m, t in times.items()}
    if any(max(h) > NOISE * min(h) for h in halves.values()):
        return False
    even = min(halves, key=lambda m: halves[m][0])
    odd = min(halves, key=lambda m: halves[m][1])
    best = {m: min(t) for m, t in times.items()}
    return even == odd or max(best[even], best[odd]) <= TIE * min(best[even], best[odd])


class MethodChoice:
    """The method of each case class: from the environment, this object, the disk cache, or a
    probe on the first call of the class (then saved)."""

    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.perf_counter):
        self._env = os.environ if env is None else env
        self._clock = clock
        self._choices: dict[str, dict] = {}
        self._machine: str | None = None
        self._forced: str | None = None

    def _forced_method(self) -> str:
        """ACTBENCH_SPARSE_METHOD, checked and read at this object's first call and kept: it steers
        a whole process, and reading the environment cost most of a microsecond a call, which a
        batch-1 call of a few microseconds shows (tests give each case an object of its own)."""
        if self._forced is None:
            check_environment(self._env)
            self._forced = self._env.get("ACTBENCH_SPARSE_METHOD", "measure").strip().lower()
        return self._forced

    @property
    def machine(self) -> str:
        if self._machine is None:
            self._machine = machine_key()
        return self._machine

    @property
    def path(self) -> Path:
        return cache_dir(self._env) / "numba_cpu-sparse.json"

    def choose(self, case: str, run: Mapping[str, Callable[[], None]]) -> str:
        """The method for `case`, one of `run`'s names; where none is known yet, every `run` callable
        (each computes the whole product) is timed now and the fastest is kept."""
        known = self.known(case, run)
        if known is not None:
            return known
        got = self._cached(case, run)
        if got is None:
            got = self._probe(run)
            if got["source"] == "measured":
                self._save(case, got)
        self._choices[case] = got
        return got["method"]

    def known(self, case: str, names) -> str | None:
        """The method for `case` among `names` where this process knows it already (forced by the
        environment, or chosen before), without the callables a probe needs; None where not."""
        forced = self._forced_method()
        if forced in names:
            return forced
        got = self._choices.get(case)
        return None if got is None else got["method"]

    def report(self) -> dict:
        """The choices this process has made, with the probe's times: JSON-ready."""
        return {"key": self.machine, "choices": dict(sorted(self._choices.items()))}

    def _probe(self, run: Mapping[str, Callable[[], None]]) -> dict:
        methods = tuple(run)
        times: dict[str, list[float]] = {m: [] for m in methods}
        for r in range(ROUNDS):
            # each method first in turn: a BLAS call right after numba's parallel kernel met its
            # threads still spinning, and the same call, timed second or third, differed by 25 %
            for m in order(r, methods):
                t0 = self._clock()
                run[m]()
                times[m].append(self._clock() - t0)
        best = {m: min(t) for m, t in times.items()}
        method = min(methods, key=lambda m: best[m])
        source = "measured" if conclusive(times) else "inconclusive"
        return {"method": method, "seconds": best, "source": source, "time": time.time(),
                "rounds": {m: t for m, t in times.items()}}

    def _load(self) -> dict:
        return load_cache(self.path, SCHEMA)

    def _cached(self, case: str, run: Mapping[str, Callable[[], None]]) -> dict | None:
        entry = (self._load().get("machines", {}).get(self.machine) or {}).get(case)
        if not isinstance(entry, dict) or entry.get("method") not in run:
            return None                              # missing or unusable: measured again
        return dict(entry, source="cached")

    def _save(self, case: str, entry: dict) -> None:
        write_cache_entry(self.path, SCHEMA, self.machine, case, entry)
