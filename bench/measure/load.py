"""What the machine gave a measurement: the CPU its threads got, and the load of everything else.

One rule, used by `bench run` and `bench claims` alike (`starved`): a timing is starved when the
threads it ran on were ready to run but waited for a core, so that its time measures the
scheduler, not the kernel (a fork-join kernel whose second thread waits a whole time slice for
a core took milliseconds instead of microseconds, with a small spread). Two signs, either enough:

- the CPU its threads got (`Tally.got`): of the time the process's threads were runnable during
  the samples, the fraction they ran; from the kernel's per-thread scheduler statistics
  (/proc/self/task/*/schedstat: time on a CPU, time waiting on a run queue). Where those cannot
  be read, process CPU time over wall time per thread the caller expects (time.process_time);
  below GOT_MIN it is starved;
- its time against NumPy's (what `bench claims` judged alone before): STARVED_SLOWER times slower
  than the one-thread NumPy baseline on every op of one size.

The run's load (`LoadLog`): the load average and the share of the machine's CPU time that other
processes used (/proc/stat's busy time less this process's own CPU time), before, during (one
reading per case) and after a run; `busy` says when to warn. Every clock is a parameter, so the
tests drive the rules with fakes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

GOT_MIN = 0.8          # threads that ran less than this share of their runnable time were starved
STARVED_SLOWER = 10.0  # a backend this many times slower than NumPy on every op of a size: starved
BUSY_OTHERS = 0.25     # other processes used more than this share of the machine's CPU: busy
BUSY_LOAD = 0.5        # ... or (no /proc/stat) a 1-minute load above this many per core before the run


def starved(got: float | None = None, slower: float | None = None) -> bool:
    """The one judgement of a starved timing: its threads got less than GOT_MIN of their runnable
    time (`got`, Tally.got), or it was at least STARVED_SLOWER times NumPy's time on every op of
    its size (`slower`: the smallest of those ratios). Unknown signs (None) say nothing."""
    return (got is not None and got < GOT_MIN) or (slower is not None and slower >= STARVED_SLOWER)


def slowest_vs_baseline(times: dict, backend: str, size, ops: Iterable[str], baseline: str = "numpy") -> float | None:
    """The smallest ratio, over `ops`, of `backend`'s time to `baseline`'s at `size` (times keyed
    (backend, size, op)); None for the baseline itself or when an op is missing."""
    ops = list(ops)
    if backend == baseline or not ops or not all((b, size, op) in times for b in (backend, baseline) for op in ops):
        return None
    return min(times[backend, size, op] / times[baseline, size, op] for op in ops)


# ---------------------------------------------------------------------------- per-thread clocks

class ThreadClock:
    """(seconds on a CPU, seconds waiting for one), summed over this process's threads, from
    /proc/self/task/*/schedstat; read() is None where the kernel does not give them. The files are
    kept open: one reading costs tens of microseconds, and it is taken once per sample."""

    def __init__(self, root: str = "/proc/self/task"):
        self._root = root
        self._fds: dict[str, int] = {}
        self.available = os.path.isdir(root) and self.read() is not None

    def read(self) -> tuple[float, float] | None:
        try:
            tids = os.listdir(self._root)
        except OSError:
            return None
        run = wait = 0
        for tid in tids:
            try:
                fd = self._fds.get(tid)
                if fd is None:
                    fd = self._fds[tid] = os.open(f"{self._root}/{tid}/schedstat", os.O_RDONLY)
                r, w = os.pread(fd, 128, 0).split()[:2]
            except (OSError, ValueError):      # a thread that ended, or no schedstat at all
                self._forget(tid)
                continue
            run += int(r)
            wait += int(w)
        return (run / 1e9, wait / 1e9) if tids and (run or wait) else None

    def _forget(self, tid: str) -> None:
        fd = self._fds.pop(tid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for tid in list(self._fds):
            self._forget(tid)


_THREAD_CLOCK: ThreadClock | None = None


def thread_clock() -> Callable[[], tuple[float, float] | None]:
    """The process's ThreadClock.read, made once."""
    global _THREAD_CLOCK
    if _THREAD_CLOCK is None:
        _THREAD_CLOCK = ThreadClock()
    return _THREAD_CLOCK.read


@dataclass
class Tally:
    """Wall, process CPU, and the threads' run and wait seconds accumulated over a timing's samples."""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    run_s: float | None = None        # None: the per-thread clock could not be read
    wait_s: float | None = None
    threads: int = 1                  # threads the caller expects (the process-CPU fallback only)

    def add(self, wall: float, cpu: float, run: float | None, wait: float | None) -> None:
        self.wall_s += wall
        self.cpu_s += cpu
        if run is not None and wait is not None:
            self.run_s = (self.run_s or 0.0) + run
            self.wait_s = (self.wait_s or 0.0) + wait

    @property
    def got(self) -> float | None:
        """The fraction of their runnable time the threads ran (run / (run + wait)); without the
        per-thread clock, process CPU over wall time per expected thread; None with nothing timed."""
        if self.run_s is not None and self.wait_s is not None and self.run_s + self.wait_s > 0:
            return self.run_s / (self.run_s + self.wait_s)
        if self.wall_s > 0:
            return min(1.0, self.cpu_s / self.wall_s / max(1, self.threads))
        return None


class Clocks:
    """Wall, process CPU and per-thread clocks read together; `lap()` is what passed since the last
    lap (or `start()`), so samples taken back to back share one reading between them."""

    def __init__(self, wall: Callable[[], float] = time.perf_counter,
                 cpu: Callable[[], float] = time.process_time,
                 threads: Callable[[], tuple[float, float] | None] | None = None):
        self._wall, self._cpu = wall, cpu
        self._threads = threads if threads is not None else thread_clock()
        self._last = None

    def _now(self):
        return self._wall(), self._cpu(), self._threads()

    def start(self) -> None:
        self._last = self._now()

    def lap(self) -> tuple[float, float, float | None, float | None]:
        now = self._now()
        last = self._last if self._last is not None else now
        self._last = now
        run = wait = None
        if now[2] is not None and last[2] is not None:
            run, wait = now[2][0] - last[2][0], now[2][1] - last[2][1]
        return now[0] - last[0], now[1] - last[1], run, wait

    def into(self, tally: Tally) -> None:
        tally.add(*self.lap())


def remeasured(measure: Callable[[float], object], starved_count: Callable[[object], int], budget_s: float,
               clock: Callable[[], float] = time.perf_counter) -> tuple[object, int]:
    """measure(budget_s), and when `starved_count` of it is above zero, once more with what is left
    of the budget (the sampler still takes its minimum samples): the pass with fewer starved
    timings (the later one on a tie: it is the newer look). Returns (the pass, passes taken)."""
    t0 = clock()
    first = measure(budget_s)
    n_first = starved_count(first)
    if not n_first:
        return first, 1
    again = measure(max(0.0, budget_s - (clock() - t0)))
    return (again if starved_count(again) <= n_first else first), 2


# ---------------------------------------------------------------------------- the machine's load

USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_stat(path: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy seconds, total seconds) of all CPUs together since boot, from /proc/stat's 'cpu' line
    (busy: all but idle and iowait); None where there is no such file."""
    try:
        with open(path) as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    v = [int(x) for x in first[1:9]]       # user nice system idle iowait irq softirq steal
    total = sum(v)
    return (total - v[3] - v[4]) / USER_HZ, total / USER_HZ


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


class LoadLog:
    """The run's load: readings before, during (`mark`, once per case) and after. Each reading has
    the load average and, since the previous reading, the share of the machine's CPU time that
    other processes used (`others`: /proc/stat's busy time less this process's CPU time, over the
    wall time times the cores)."""

    def __init__(self, cores: int | None = None, wall=time.monotonic, cpu=time.process_time,
                 stat=proc_stat, loadavg=_loadavg):
        self.cores = cores or os.cpu_count() or 1
        self._wall, self._cpu, self._stat, self._loadavg = wall, cpu, stat, loadavg
        self._t0 = wall()
        self._last = self._read()
        self.before = self._entry(None)
        self.during: list[dict] = []
        self.after: dict | None = None

    def _read(self):
        return self._wall(), self._cpu(), self._stat()

    def _entry(self, others):
        return {"t_s": round(self._wall() - self._t0, 3), "loadavg": self._loadavg(),
                "others": None if others is None else round(others, 3)}

    def _others(self) -> float | None:
        now = self._read()
        last, self._last = self._last, now
        wall = now[0] - last[0]
        if now[2] is None or last[2] is None or wall <= 0:
            return None
        busy = (now[2][0] - last[2][0]) - (now[1] - last[1])
        return max(0.0, min(1.0, busy / (wall * self.cores)))

    def mark(self) -> None:
        self.during.append(self._entry(self._others()))

    def finish(self) -> dict:
        self.after = self._entry(self._others())
        return self.as_dict()

    def as_dict(self) -> dict:
        readings = self.during + ([self.after] if self.after else [])
        others = [r["others"] for r in readings if r["others"] is not None]
        d = {"cores": self.cores, "before": self.before, "during": self.during, "after": self.after,
             "others_max": max(others) if others else None,
             "others_mean": sum(others) / len(others) if others else None}
        d["busy"] = busy(d)
        return d


def busy(load: dict | None) -> str | None:
    """Why a run's load (LoadLog.as_dict) calls for a warning, or None: other processes used more
    than BUSY_OTHERS of the machine's CPU during the run on average or in a reading, or (without
    those readings) the 1-minute load average before the run was above BUSY_LOAD per core."""
    if not load:
        return None
    cores = load.get("cores") or 1
    mean, peak = load.get("others_mean"), load.get("others_max")
    if mean is not None or peak is not None:
        if (mean or 0) > BUSY_OTHERS or (peak or 0) > 2 * BUSY_OTHERS:
            return (f"other processes used {100 * (mean or 0):.0f} % of the {cores} cores on average "
                    f"(up to {100 * (peak or 0):.0f} %) while it ran")
        return None
    before = ((load.get("before") or {}).get("loadavg") or [None])[0]
    if before is not None and before > BUSY_LOAD * cores:
        return f"1-minute load {before:.1f} on {cores} cores before it ran"
    return None
