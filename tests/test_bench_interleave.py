"""bench run --interleave: round-robin sampling in a shuffled order, its stopping rule and budget,
the grouping of cases by (op, dtype, size), and the copy probe beside the CPU cases beyond the
cache (peak_gbps, which % of peak then uses). Fake members and clocks: nothing here is timed."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random

import numpy as np
import pytest

from bench.kinds import elementwise
from bench.cli import main as cli
from bench.measure import interleave, timing
from bench.run import runner
from bench.model.cases import PROFILES, Case
from tests.fakes import interrupt_on_call, patch_peaks


# the memory peak judges cases of 16 KiB and more
@pytest.fixture(autouse=True)
def fake_peaks(monkeypatch):
    patch_peaks(monkeypatch, applies_below=2**14)


class Recorder:
    """Members that log the order they are sampled in; each returns a fixed value plus jitter."""

    def __init__(self, values: dict[str, float], jitter: float = 0.0):
        self.log: list[str] = []
        self.rng = random.Random(1)
        self.members = [interleave.Member(k, self._measure(k, v, jitter), "fake") for k, v in values.items()]

    def _measure(self, name, value, jitter):
        def measure():
            self.log.append(name)
            return value * (1 + jitter * self.rng.random())
        return measure


def test_every_round_samples_each_member_once_in_a_shuffled_order():
    rec = Recorder({"a": 1.0, "b": 2.0, "c": 3.0}, jitter=0.5)
    sampling = timing.Sampling(min_samples=10, rel_tol=1e-9, budget_s=1e9, max_samples=30)
    out = interleave.round_robin(rec.members, sampling, random.Random(0))
    rounds = [rec.log[i:i + 3] for i in range(0, len(rec.log), 3)]
    assert len(rounds) == 30 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1                    # the order changes between rounds
    assert {k: len(t.samples_s) for k, t in out.items()} == {"a": 30, "b": 30, "c": 30}


def test_stops_once_every_member_is_stable():
    rec = Recorder({"a": 1.0, "b": 2.0})                        # constant: stable at min_samples
    out = interleave.round_robin(rec.members, timing.Sampling(min_samples=10, rel_tol=0.01), random.Random(0))
    assert all(t.stable and len(t.samples_s) == 10 for t in out.values())


def test_the_budget_is_per_member():
    ticks = itertools.count()
    rec = Recorder({"a": 1.0, "b": 2.0}, jitter=1.0)
    sampling = timing.Sampling(min_samples=10, rel_tol=1e-9, budget_s=20.0)
    out = interleave.round_robin(rec.members, sampling, random.Random(0), clock=lambda: float(next(ticks)))
    # the fake clock advances 1 s per reading; it is read at the start and after each round from
    # the tenth on: 2 members x 20 s = 40 s of budget end after round 10 + 39
    assert len(out["a"].samples_s) == 49 and not out["a"].stable


def test_cases_group_by_op_dtype_and_size_only_when_interleaving():
    cases = [Case("relu", b, "cpu", "float32", n) for n in (64, 128) for b in ("numpy", "numba_cpu")]
    cases.append(Case("sigmoid", "numpy", "cpu", "float32", 128))
    assert [len(g) for g in runner._groups(cases, True)] == [2, 2, 1]
    assert [len(g) for g in runner._groups(cases, False)] == [1] * 5


def test_an_interleaved_run_end_to_end_with_a_probe_beside_the_large_cases(tmp_path):
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu,sigmoid", "--backends", "numpy,numba_cpu", "--sizes", "2**10,2**12",
                   "--budget", "0.01", "--interleave", "--out", str(out), "--no-plots"])
    assert rc == 0
    doc = json.loads(out.read_text())
    by = {(e["op"], e["backend"], e["size"]): e for e in doc["results"]}
    assert len(by) == 8 and all(e["status"] == "ok" for e in by.values())
    # backends of one group were sampled in the same rounds: the same number of samples
    for op, n in itertools.product(("relu", "sigmoid"), (2**10, 2**12)):
        assert by[(op, "numpy", n)]["n"] == by[(op, "numba_cpu", n)]["n"] >= 10
    small, large = by[("relu", "numpy", 2**10)], by[("relu", "numpy", 2**12)]    # 8 KiB and 32 KiB moved
    assert "peak_gbps" not in small and small["peak_level"] == "cache"
    assert small["pct_peak"] == pytest.approx(100 * small["gbps"] / 100.0)
    assert large["peak_gbps"] > 0 and large["peak_level"] == "memory"
    assert large["pct_peak"] == pytest.approx(100 * large["gbps"] / large["peak_gbps"])
    assert large["peak_gbps"] == by[("relu", "numba_cpu", 2**12)]["peak_gbps"]
    # the probe's own samples, one per round, paired with numba_cpu's (compare divides them); not
    # with NumPy's one-thread ufunc, which the all-core probe does not track
    assert "probe_samples_s" not in small and "probe_samples_s" not in large
    every = by[("relu", "numba_cpu", 2**12)]["probe_samples_s"]
    assert len(every) == by[("relu", "numba_cpu", 2**12)]["n"]
    assert large["peak_gbps"] == pytest.approx(large["bytes"] / np.median(every) / 1e9)


def test_a_case_measured_alone_keeps_its_probe():
    # bench-check measures a suspect again on its own: beyond the cache it still gets a probe
    profile = dataclasses.replace(PROFILES["quick"], sampling=timing.Sampling(budget_s=0.01))
    run = runner.run_cases(profile, [Case("relu", "numpy", "cpu", "float32", 2**12)], interleave=True)
    assert run.results[0].peak_gbps > 0
    run = runner.run_cases(profile, [Case("relu", "numpy", "cpu", "float32", 2**12)], interleave=False)
    assert run.results[0].peak_gbps is None


def test_ctrl_c_in_an_interleaved_run_saves_the_groups_measured(tmp_path, monkeypatch, capsys):
    interrupt_on_call(monkeypatch, elementwise, "_run_group", 3)      # Ctrl-C during the third group
    out = tmp_path / "r.json"
    rc = cli.main(["run", "--ops", "relu", "--backends", "numpy,numba_cpu", "--sizes", "100,200,300",
                   "--budget", "0.01", "--out", str(out), "--no-plots"])
    assert rc == 130
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and len(doc["results"]) == 4       # two groups of two backends


def test_round_robin_returns_each_members_samples_timer_reps_and_its_own_tally():
    # fake members and clocks (no timing): each member's Timing keeps its timer and reps, and the
    # tally the clocks filled after each of that member's samples, not another member's
    class Clocks:
        def __init__(self):
            self.into_calls = []

        def start(self):
            pass

        def into(self, tally):
            self.into_calls.append(tally)

    values = {"a": iter([1.0, 2.0, 3.0]), "b": iter([5.0, 6.0, 7.0])}
    members = [interleave.Member("a", lambda: next(values["a"]), "perf_counter_ns", 3),
               interleave.Member("b", lambda: next(values["b"]), "cuda_event", 1)]
    clocks = Clocks()
    out = interleave.round_robin(members, timing.Sampling(min_samples=3, max_samples=3), clocks=clocks)
    assert [(out[k].samples_s, out[k].timer, out[k].reps) for k in "ab"] == \
        [([1.0, 2.0, 3.0], "perf_counter_ns", 3), ([5.0, 6.0, 7.0], "cuda_event", 1)]
    assert out["a"].tally is not out["b"].tally
    assert [id(t) for t in clocks.into_calls].count(id(out["a"].tally)) == 3
    assert [id(t) for t in clocks.into_calls].count(id(out["b"].tally)) == 3
