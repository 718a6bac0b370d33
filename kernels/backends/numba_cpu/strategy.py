"""How numba_cpu writes a large output, chosen by measuring on this machine: streaming
(non-temporal) or ordinary stores, and the parallel block size, per kernel family and dtype.

Whether streaming pays is a property of the machine and of the kernel, not of one number: it
saves the read-for-ownership of every output line, which is most of a copy-like kernel's extra
traffic, but a kernel with an exp per element may lose more to the stores' ordering than it saves.
So at first use (the first output of at least `min_bytes`), a short probe runs the family's
representative kernel on an output of `PROBE_BYTES` (far beyond any cache a few cores get) with
each store strategy and block size, interleaved, and keeps the fastest; streaming must win by
`MARGIN` in two independent halves of the rounds (where they disagree, or the machine was too
busy to tell, the probe says so and the prior, streaming, holds until a process a day later
measures again). The choice is saved in
~/.cache/actbench/ (or $ACTBENCH_CACHE_DIR), keyed by CPU model, core and thread count, numba
version and a hash of this package's sources (a changed kernel is measured again), so later
processes skip the probe. $ACTBENCH_STORES (stream, ordinary or measure) and
$ACTBENCH_BLOCK override it. Outputs below `min_bytes`, the smaller of the last-level cache sysfs
reports and the probe's size, keep ordinary stores and the default block: they can stay in cache
for the next reader.

Below `min_bytes` the other choice is whether to run on the calling thread or wake the others:
waking them costs microseconds, which a small output never earns back, and where that crossover
lies depends on the machine, the op and the dtype (2**15 to 2**17 elements here). So at an op's
first call of at least `SPLIT_SIZES[0]` elements a second probe times its serial kernel and its
parallel driver side by side at the sizes of `SPLIT_SIZES`, keeping each one's fastest round (load
only adds time), and sets the op's `serial_max`: the smallest size from which the parallel driver
wins by `SPLIT_MARGIN` there and at every larger size probed. Cached in the same file, unless the
probe's even and odd rounds disagree or other work keeps the cores busy (`_other_work`: the
parallel driver then loses for the wrong reason): that process uses `SPLIT_PRIOR` and the next one
measures again.
$ACTBENCH_SERIAL_MAX (elements) overrides it for every op.

`StoreStrategy.report()` (kernels.backends.numba_cpu.store_strategy()) says what was chosen and why.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
import numba
import numpy as np
from kernels.machine import cpu_count
from kernels.backends.numba_cpu.kernels import FAMILIES as COMPILED
from kernels.machine import cpu_model
from kernels.backends.numba_cpu.jit import locked, source_stamp
from kernels.ops import mask_nbytes
import functools
from kernels.ops import OPS
from kernels.machine import last_level_cache_bytes

FAMILIES = ("memory", "exp", "mask")          # copy-like ops, ops with an exp, packed-mask ops
DTYPES = ("float32", "float64")
DEFAULT_BLOCK = 16384                          # elements; a multiple of 64 (whole mask bytes)
BLOCKS = (DEFAULT_BLOCK, 65536)                # candidates the probe tries
PROBE_BYTES = 64 * 2**20                       # output size of a probe
MARGIN = 1.03                                  # streaming (or another block) must be 3 % faster
PRIOR_STREAM = True                            # where the probe cannot tell: stream (x86-64 only)
NOISE = 1.25                                   # a variant's two halves further apart: too busy to tell
RETRY_S = 24 * 3600                            # an inconclusive probe is tried again after this
SCHEMA = 1
SPLIT_SIZES = tuple(2**k for k in range(13, 19))   # elements: where serial and parallel are compared
SPLIT_MARGIN = 1.10          # the parallel driver must be 10 % faster: it is the one load can stall
SPLIT_PRIOR = 2**15          # serial_max where the split probe could not tell (a busy machine)


@dataclass(frozen=True)
class Choice:
    """How a family writes outputs of at least `min_bytes` in one dtype."""

    stream: bool
    block: int
    source: str                      # measured, inconclusive, cached (...), environment or default
    speedup: float | None = None                # ordinary time / chosen time in the probe


# A probe: (family, dtype, nbytes, variants) -> the seconds of each round per variant, variants
# being (stream, block) pairs. The real one is `measure` below; tests pass fakes.
Probe = Callable[[str, str, int, list[tuple[bool, int]]], dict[tuple[bool, int], list[float]]]
# A split probe: (op, dtype, sizes) -> {size: (serial seconds per round, parallel seconds per round)}.
# The real one is `measure_split` below; tests pass fakes.
SplitProbe = Callable[[str, str, Sequence[int]], dict[int, tuple[Sequence[float], Sequence[float]]]]


@dataclass(frozen=True)
class Split:
    """Where an op stops running on the calling thread alone: outputs of fewer than `serial_max`
    elements do."""

    serial_max: int
    source: str                      # measured, cached, environment, inconclusive (not saved)


def decide_split(times: Mapping[int, tuple[Sequence[float], Sequence[float]]],
                 margin: float = SPLIT_MARGIN) -> int:
    """The smallest probed size from which the parallel driver's fastest round beats the serial
    kernel's by `margin` at that size and at every larger size probed; twice the largest size
    where it never does (above it, the parallel driver is assumed)."""
    sizes = sorted(times)
    wins = [min(times[n][1]) * margin < min(times[n][0]) for n in sizes]
    serial_max = 2 * sizes[-1]
    for n, win in zip(reversed(sizes), reversed(wins)):
        if not win:
            break
        serial_max = n
    return serial_max


def split_conclusive(times: Mapping[int, tuple[Sequence[float], Sequence[float]]],
                     margin: float = SPLIT_MARGIN) -> bool:
    """Whether a split probe's rounds agree with themselves: the even and the odd rounds alone
    give the same threshold, and no size's fastest even and odd rounds of either path are more
    than `NOISE` apart. A machine busy with other work fails one or the other (the parallel
    driver, which needs every core, is the one it stalls), and its threshold is not kept."""
    def half(k):
        return {n: (t[0][k::2] or t[0], t[1][k::2] or t[1]) for n, t in times.items()}

    noisy = any(_noisy(h) for pair in times.values() for h in pair)
    return not noisy and decide_split(half(0), margin) == decide_split(half(1), margin)


def check_environment(env: Mapping[str, str] = os.environ) -> None:
    """ValueError naming the variable when ACTBENCH_STORES, ACTBENCH_BLOCK or ACTBENCH_SERIAL_MAX
    holds a value no kernel can use (the CLI says it as a usage error before measuring)."""
    stores = env.get("ACTBENCH_STORES", "measure").strip().lower()
    if stores not in ("stream", "ordinary", "measure"):
        raise ValueError(f"ACTBENCH_STORES must be stream, ordinary or measure, not {stores!r}")
    block = env.get("ACTBENCH_BLOCK", "").strip()
    if block and not (block.isdigit() and _block_ok(int(block))):
        raise ValueError(f"ACTBENCH_BLOCK must be a positive multiple of 64, not {block!r}")
    serial = env.get("ACTBENCH_SERIAL_MAX", "").strip()
    if serial and not serial.isdigit():
        raise ValueError(f"ACTBENCH_SERIAL_MAX must be a number of elements, not {serial!r}")


def _block_ok(block) -> bool:
    """A block a parallel kernel can split work by: a positive multiple of 64 (whole mask bytes)."""
    return _count(block) and block > 0 and block % 64 == 0


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _entry_problem(entry) -> str | None:
    """Why a cached store choice cannot be used, or None."""
    if not isinstance(entry, dict):
        return f"{type(entry).__name__}, not an object"
    if not isinstance(entry.get("stream"), bool):
        return f"stream {entry.get('stream')!r} is not true or false"
    if not _block_ok(entry.get("block")):
        return f"block {entry.get('block')!r} is not a positive multiple of 64"
    if not isinstance(entry.get("inconclusive", False), bool):
        return f"inconclusive {entry.get('inconclusive')!r} is not true or false"
    if not _number(entry.get("time")):
        return f"time {entry.get('time')!r} is not a number"
    if entry.get("speedup") is not None and not _number(entry["speedup"]):
        return f"speedup {entry['speedup']!r} is not a number"
    return None


BUSY_SHARE = 0.8      # of the threads: below it, a parallel loop did not get its cores
_busy_seen: tuple[float, bool] | None = None     # (when, verdict): asked once per half minute


def _other_work(seconds: float = 0.01, cpu_clock: Callable[[], float] = time.process_time) -> bool:
    """Whether other processes keep this machine's cores busy, which the split probe's two halves
    cannot see when the load is steady (it slows them alike, the parallel driver most). Two signs:
    a 1-minute load average above the core count plus one half, or a parallel copy loop run for
    `seconds` that got less than `BUSY_SHARE` of a core per thread (process CPU time over wall
    time; here 1.8-2.2 of 2 when quiet, 1.4-1.6 beside one busy process, 1.0 beside two)."""

    global _busy_seen
    if _busy_seen and time.monotonic() - _busy_seen[0] < 30:
        return _busy_seen[1]
    try:
        busy = os.getloadavg()[0] > cpu_count() + 0.5
    except OSError:                                # no load average here
        busy = False
    if not busy and numba.get_num_threads() > 1:
        x = np.ones(1 << 16, np.float32)
        y = np.empty_like(x)
        run = COMPILED["copy"].parallel
        run(False, DEFAULT_BLOCK, x, None, 0.0, y)
        wall, cpu = time.perf_counter(), cpu_clock()
        while time.perf_counter() - wall < seconds:
            run(False, DEFAULT_BLOCK, x, None, 0.0, y)
        share = (cpu_clock() - cpu) / (time.perf_counter() - wall)
        busy = share < BUSY_SHARE * numba.get_num_threads()
    _busy_seen = (time.monotonic(), busy)
    return busy


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("ACTBENCH_CACHE_DIR"):
        return Path(env["ACTBENCH_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "actbench"


def machine_key(threads: int | None = None) -> str:
    """CPU model, logical cores, numba threads, numba version and the kernels' source stamp:
    what the choice depends on."""

    threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
    return (f"{cpu_model()} | {cpu_count()} cores | {threads} threads | numba {numba.__version__}"
            f" | kernels {source_stamp()[:12]}")


def _halves(t: Sequence[float]) -> tuple[float, float]:
    """The fastest of the even rounds and of the odd ones: two independent readings of a probe."""
    t = list(t)
    return min(t[0::2]), min(t[1::2] or t)


def _noisy(t: Sequence[float]) -> bool:
    """Whether a probe's two halves are more than `NOISE` apart: too busy to tell."""
    return max(_halves(t)) > NOISE * min(_halves(t))


def decide(times: Mapping[tuple[bool, int], Sequence[float]], margin: float = MARGIN) -> Choice:
    """The choice a probe's timings make: the fastest block with ordinary stores, unless a
    streaming variant beats it by `margin`; a block other than the default only where it beats the
    default by `margin` too. "Beats" must hold in the fastest of the even rounds and of the odd
    rounds alike, so that one quiet moment on a busy machine does not decide alone. Where the two
    halves disagree about streaming, or about any variant's time by more than `NOISE`, the probe
    was inconclusive (source "inconclusive"): the prior holds, streaming stores from `min_bytes`
    up, and a later process measures again once `RETRY_S` have passed."""
    def halves(v):
        return _halves(times[v])

    def beats(a, b):
        return all(x * margin < y for x, y in zip(halves(a), halves(b)))

    def best(stream: bool) -> tuple[bool, int]:
        default = (stream, DEFAULT_BLOCK)
        better = [v for v in times if v[0] == stream and v != default and beats(v, default)]
        return min(better, key=lambda v: min(times[v])) if better else default

    ordinary, streaming = best(False), best(True)
    speedup = min(times[ordinary]) / min(times[streaming])
    if any(_noisy(t) for t in times.values()):                      # a busy machine
        return Choice(PRIOR_STREAM, DEFAULT_BLOCK, "inconclusive", speedup)
    if beats(streaming, ordinary):
        return Choice(True, streaming[1], "measured", speedup)
    wins = [x * margin < y for x, y in zip(halves(streaming), halves(ordinary))]
    if any(wins):                                  # one half says stream, the other does not
        return Choice(PRIOR_STREAM, DEFAULT_BLOCK, "inconclusive", speedup)
    return Choice(False, ordinary[1], "measured", speedup)


class StoreStrategy:
    """The store strategy of every family and dtype on this machine: measured once, cached on disk."""

    def __init__(self, probe: Probe | None = None, *, llc_bytes: int | None = None,
                 env: Mapping[str, str] | None = None, key: str | None = None,
                 enabled: bool = True, split_probe: SplitProbe | None = None,
                 busy: Callable[[], bool] | None = None):
        self._probe = probe or measure
        self._split_probe = split_probe or measure_split
        self._busy = busy or _other_work
        self._splits: dict[tuple[str, str], Split] = {}
        self._env = os.environ if env is None else env
        self._key = key
        self.enabled = enabled                     # False where streaming stores are not x86's
        llc = last_level_cache_bytes() if llc_bytes is None else llc_bytes
        self.min_bytes = min(llc, PROBE_BYTES)
        self._choices: dict[tuple[str, str], Choice] = {}
        self._invalid: dict[str, str] = {}        # cache entries found unusable: why, for the note

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = machine_key()
        return self._key

    @property
    def path(self) -> Path:
        return cache_dir(self._env) / "numba_cpu-stores.json"

    def choose(self, family: str, dtype: str) -> Choice:
        """The choice for outputs of at least `min_bytes`: from the environment, this object,
        the disk cache, or a probe now (then saved)."""
        got = self._choices.get((family, dtype))
        if got is None:
            got = self._override() or self._cached(family, dtype) or self._measure(family, dtype)
            self._choices[(family, dtype)] = got
        return got

    def serial_max(self, op: str, dtype: str) -> int:
        """Elements below which op runs on the calling thread only: from the environment, this
        object, the disk cache, or a split probe now (then saved)."""
        got = self._splits.get((op, dtype))
        if got is None:
            got = self._split_override() or self._cached_split(op, dtype) or self._measure_split(op, dtype)
            self._splits[(op, dtype)] = got
        return got.serial_max

    def report(self, probe: bool = True) -> dict:
        """Every family's choice per dtype, JSON-ready: probing what was not chosen yet, or with
        probe=False only the choices this process has made (what a run actually used); and the
        serial thresholds of the ops this process has run (never probed for a report)."""
        if probe:
            choices = {(f, d): self.choose(f, d) for f in FAMILIES for d in DTYPES}
        else:
            choices = dict(sorted(self._choices.items()))
        return {"key": self.key, "min_bytes": self.min_bytes, "probe_bytes": PROBE_BYTES,
                "choices": {f"{f}/{d}": asdict(c) for (f, d), c in choices.items()},
                "serial_max": {f"{o}/{d}": asdict(c) for (o, d), c in sorted(self._splits.items())}}

    def _split_override(self) -> Split | None:
        check_environment(self._env)
        value = self._env.get("ACTBENCH_SERIAL_MAX", "").strip()
        return Split(int(value), "environment") if value else None

    def _cached_split(self, op: str, dtype: str) -> Split | None:
        entry = self._entry(f"split/{op}/{dtype}")
        if entry is None:
            return None
        n = entry.get("serial_max") if isinstance(entry, dict) else None
        if not _count(n):
            self._invalid[f"split/{op}/{dtype}"] = f"serial_max {n!r} is not a count of elements"
            return None
        return Split(n, "cached")

    def _measure_split(self, op: str, dtype: str) -> Split:
        times = self._split_probe(op, dtype, SPLIT_SIZES)
        if not split_conclusive(times) or self._busy():
            return Split(SPLIT_PRIOR, "inconclusive")      # not saved: a later process measures again
        split = Split(decide_split(times), self._noted("measured", f"split/{op}/{dtype}"))
        self._write(f"split/{op}/{dtype}", {"serial_max": split.serial_max, "time": time.time()})
        return split

    def _override(self) -> Choice | None:
        check_environment(self._env)
        stores = self._env.get("ACTBENCH_STORES", "measure").strip().lower()
        block = self._env.get("ACTBENCH_BLOCK", "").strip()
        if not self.enabled:
            return Choice(False, int(block or DEFAULT_BLOCK), "default (no streaming stores here)")
        if stores == "measure":
            return None
        return Choice(stores == "stream", int(block or DEFAULT_BLOCK), "environment")

    def _load(self) -> dict:
        return load_cache(self.path, SCHEMA)

    def _entry(self, name: str):
        """This machine's cached entry `name` (any JSON value: the caller validates it), or None."""
        return self._load().get("machines", {}).get(self.key, {}).get(name)

    def _cached(self, family: str, dtype: str) -> Choice | None:
        """The cached choice, validated as an environment override is: an entry a kernel cannot
        use (a block of 0 made relu return zeros) is noted and measured again, never used."""
        name = f"{family}/{dtype}"
        entry = self._entry(name)
        if entry is None:
            return None
        why = _entry_problem(entry)
        if why:
            self._invalid[name] = why
            return None
        if entry.get("inconclusive") and not time.time() - entry["time"] < RETRY_S:
            return None                            # a busy machine then: measure again now
        source = "cached (inconclusive)" if entry.get("inconclusive") else "cached"
        return Choice(entry["stream"], entry["block"], source, entry.get("speedup"))

    def _noted(self, source: str, name: str) -> str:
        """`source`, with why the cached entry `name` was measured again where it was invalid."""
        why = self._invalid.pop(name, None)
        return f"{source} (cached entry invalid: {why})" if why else source

    def _measure(self, family: str, dtype: str) -> Choice:
        variants = [(s, b) for s in (False, True) for b in BLOCKS]
        choice = decide(self._probe(family, dtype, PROBE_BYTES, variants))
        self._save(family, dtype, choice)
        return replace(choice, source=self._noted(choice.source, f"{family}/{dtype}"))

    def _save(self, family: str, dtype: str, choice: Choice) -> None:
        self._write(f"{family}/{dtype}", {
            "stream": choice.stream, "block": choice.block, "speedup": choice.speedup,
            "inconclusive": choice.source == "inconclusive", "time": time.time()})

    def _write(self, name: str, entry: dict) -> None:
        """Add an entry to the cache file (atomically: a reader never sees half a file)."""
        write_cache_entry(self.path, SCHEMA, self.key, name, entry)


def measure(family: str, dtype: str, nbytes: int, variants: list[tuple[bool, int]],
            budget: float = 0.5, rounds: tuple[int, int] = (6, 40)) -> dict[tuple[bool, int], list[float]]:
    """Seconds of each round of the family's representative kernel (relu, sigmoid, relu_mask) on
    an output of `nbytes`, per (stream, block) variant, the variants interleaved in every round so
    that a change of load hits them alike: at least rounds[0] rounds, more while under `budget`
    seconds, at most rounds[1]."""

    n = nbytes // np.dtype(dtype).itemsize
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    y = np.empty_like(x)
    if family == "mask":
        run, args = COMPILED["relu_mask"].parallel, (x, np.empty(mask_nbytes(n), np.uint8), 0.0, y)
    else:
        run, args = COMPILED["sigmoid" if family == "exp" else "relu"].parallel, (x, None, 0.0, y)
    times: dict[tuple[bool, int], list[float]] = {v: [] for v in variants}
    for v in variants:                             # compiles once, and touches every page
        run(*v, *args)
    start = time.perf_counter()
    for r in range(rounds[1]):
        if r >= rounds[0] and time.perf_counter() - start > budget:
            break
        for v in variants:
            t0 = time.perf_counter()
            run(*v, *args)
            times[v].append(time.perf_counter() - t0)
    return times


def measure_split(op: str, dtype: str, sizes: Sequence[int], rounds: int = 7,
                  min_seconds: float = 5e-5) -> dict[int, tuple[list[float], list[float]]]:
    """Seconds per call of op's serial kernel and its parallel driver (ordinary stores, the default
    block) at each size, the two interleaved round by round; each round repeats a call until it
    has run `min_seconds`, so that the clock's resolution does not decide."""


    family, spec = COMPILED[op], OPS[op]
    rng = np.random.default_rng(0)
    out: dict[int, tuple[list[float], list[float]]] = {}
    for n in sizes:
        x = rng.standard_normal(n).astype(dtype)
        if spec.mask_input or op == "relu_mask":
            b = rng.integers(0, 256, mask_nbytes(n)).astype(np.uint8)
        else:
            b = x.copy() if spec.n_inputs == 2 else None
        args = (x, b, 0.0, np.empty_like(x))
        calls = (functools.partial(family.kernel, *args),
                 functools.partial(family.parallel, False, DEFAULT_BLOCK, *args))
        for fn in calls:                           # compiled, and the arrays in cache
            fn()
        reps = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(reps):
                calls[0]()
            if time.perf_counter() - t0 >= min_seconds or reps >= 1024:
                break
            reps *= 2
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(rounds):
            for k, fn in enumerate(calls):
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                times[k].append((time.perf_counter() - t0) / reps)
        out[n] = times
    return out


def load_cache(path: Path, schema: int) -> dict:
    """A per-machine cache file's content, {"schema", "machines": {key: {name: entry}}}: empty where
    the file is missing, not JSON or not of this structure (it is rewritten whole next time), and
    without machines whose value is not an object. The store strategy's and the sparse method's."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != schema or not isinstance(data.get("machines"), dict):
        return {}
    return dict(data, machines={k: v for k, v in data["machines"].items() if isinstance(v, dict)})


def write_cache_entry(path: Path, schema: int, machine: str, name: str, entry: dict) -> None:
    """Add one entry for `machine` to a cache file, atomically (a reader never sees half a file) and
    under the file's lock: two processes probing at once (pytest-xdist, a run beside a test) each
    read, add and write the whole file, and without the lock one's entry was lost. A read-only
    home or a full disk is no error (no half-written file is left): the choice is measured again
    next time."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(str(path) + ".lock"):
            data = load_cache(path, schema) or {"schema": schema, "machines": {}}
            data["machines"].setdefault(machine, {})[name] = entry
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
