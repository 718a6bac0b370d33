"""kernels/backends/numba_cpu/strategy.py: the measured store strategy. Fake probes drive every branch (a
machine where streaming wins, one where it loses, a tie, a better block), the disk cache is
written and read back under its machine key, the environment overrides, and the launchers follow
the choice of their op's family. No timing is asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kernels
import kernels.backends.numba_cpu as K
from kernels.backends.numba_cpu import strategy as S
from kernels.ops import ELEMENTWISE_OPS, OPS

BIG = 65536


def _times(ordinary, streaming, big_block=None):
    """Probe timings, two rounds alike: the default block at these times, the big block at the
    same unless given."""
    big = big_block or (ordinary, streaming)
    return {(False, S.DEFAULT_BLOCK): [ordinary] * 2, (True, S.DEFAULT_BLOCK): [streaming] * 2,
            (False, BIG): [big[0]] * 2, (True, BIG): [big[1]] * 2}


class FakeProbe:
    """Canned timings per family (AMD-like: streaming wins for copy-like kernels and masks, loses
    for exp kernels); records what it was asked."""

    def __init__(self, table=None):
        self.table = table or {"memory": _times(1.0, 0.7), "exp": _times(1.0, 1.4), "mask": _times(1.0, 0.9)}
        self.calls = []

    def __call__(self, family, dtype, nbytes, variants):
        self.calls.append((family, dtype))
        assert nbytes == S.PROBE_BYTES and set(variants) <= set(self.table[family])
        return self.table[family]


def _strategy(tmp_path, probe, key="cpu A | 2 cores", **env):
    return S.StoreStrategy(probe, llc_bytes=32 * 2**20, key=key,
                           env={"ACTBENCH_CACHE_DIR": str(tmp_path), **env})


def test_decide_streams_only_when_it_wins_by_the_margin():
    assert S.decide(_times(1.0, 0.7)) == S.Choice(True, S.DEFAULT_BLOCK, "measured", pytest.approx(1 / 0.7))
    assert S.decide(_times(1.0, 1.4)) == S.Choice(False, S.DEFAULT_BLOCK, "measured", pytest.approx(1 / 1.4))
    assert not S.decide(_times(1.0, 0.99)).stream                 # within the noise margin
    assert not S.decide(_times(1.0, 1.0)).stream


def test_an_inconclusive_probe_keeps_the_prior_and_is_retried_a_day_later(tmp_path, monkeypatch):
    """A busy machine: streaming looked 30 % faster in one half of the rounds, not in the other."""
    times = _times(1.0, 1.0)
    times[(True, S.DEFAULT_BLOCK)] = [0.7, 1.05, 0.72, 1.02]
    choice = S.decide(times)
    assert choice.source == "inconclusive" and choice.stream == S.PRIOR_STREAM
    probe = FakeProbe({"memory": times})
    assert _strategy(tmp_path, probe).choose("memory", "float32").source == "inconclusive"
    assert _strategy(tmp_path, probe).choose("memory", "float32").source == "cached (inconclusive)"
    assert len(probe.calls) == 1
    now = S.time.time()
    monkeypatch.setattr(S.time, "time", lambda: now + S.RETRY_S + 1)
    assert _strategy(tmp_path, probe).choose("memory", "float32").source == "inconclusive"
    assert len(probe.calls) == 2                                   # measured again


def test_a_variant_whose_halves_disagree_makes_the_probe_inconclusive():
    times = _times(1.0, 0.5)
    times[(False, BIG)] = [1.0, 2.0]                               # one slow half: a busy machine
    assert S.decide(times).source == "inconclusive"


def test_decide_takes_a_larger_block_only_when_it_wins_too():
    assert S.decide(_times(1.0, 0.8, big_block=(1.0, 0.6))) == S.Choice(True, BIG, "measured", pytest.approx(1 / 0.6))
    assert S.decide(_times(1.0, 1.5, big_block=(0.8, 1.5))).block == BIG
    assert S.decide(_times(1.0, 1.5, big_block=(0.99, 1.5))).block == S.DEFAULT_BLOCK


def test_measured_once_then_cached_on_disk_per_machine(tmp_path):
    probe = FakeProbe()
    st = _strategy(tmp_path, probe)
    assert st.choose("memory", "float32").stream and st.choose("memory", "float32").source == "measured"
    assert not st.choose("exp", "float32").stream
    st.choose("memory", "float32")
    assert probe.calls == [("memory", "float32"), ("exp", "float32")]      # once per family and dtype

    saved = json.loads((tmp_path / "numba_cpu-stores.json").read_text())
    assert saved["machines"]["cpu A | 2 cores"]["memory/float32"]["stream"] is True

    again = FakeProbe()
    st2 = _strategy(tmp_path, again)                               # a later process, same machine
    assert st2.choose("memory", "float32") == S.Choice(True, S.DEFAULT_BLOCK, "cached", pytest.approx(1 / 0.7))
    assert again.calls == []
    other = FakeProbe({"memory": _times(1.0, 1.2), "exp": _times(1.0, 1.2), "mask": _times(1.0, 1.2)})
    st3 = _strategy(tmp_path, other, key="cpu B | 2 cores")        # another CPU: its own probe
    assert not st3.choose("memory", "float32").stream and other.calls == [("memory", "float32")]
    saved = json.loads((tmp_path / "numba_cpu-stores.json").read_text())
    assert set(saved["machines"]) == {"cpu A | 2 cores", "cpu B | 2 cores"}


def test_a_corrupt_cache_is_measured_again(tmp_path):
    (tmp_path / "numba_cpu-stores.json").write_text("{not json")
    probe = FakeProbe()
    assert _strategy(tmp_path, probe).choose("mask", "float64").stream
    assert probe.calls == [("mask", "float64")]


def test_environment_overrides_without_measuring(tmp_path):
    probe = FakeProbe()
    st = _strategy(tmp_path, probe, ACTBENCH_STORES="ordinary", ACTBENCH_BLOCK="4096")
    assert st.choose("memory", "float32") == S.Choice(False, 4096, "environment")
    assert _strategy(tmp_path, probe, ACTBENCH_STORES="stream").choose("exp", "float64").stream
    assert probe.calls == []
    with pytest.raises(ValueError, match="ACTBENCH_STORES"):
        _strategy(tmp_path, probe, ACTBENCH_STORES="sometimes").choose("exp", "float64")
    with pytest.raises(ValueError, match="ACTBENCH_BLOCK"):
        _strategy(tmp_path, probe, ACTBENCH_BLOCK="1000").choose("exp", "float64")


def test_no_streaming_where_the_stores_are_not_x86(tmp_path):
    probe = FakeProbe()
    st = S.StoreStrategy(probe, llc_bytes=2**20, key="arm", enabled=False,
                         env={"ACTBENCH_CACHE_DIR": str(tmp_path)})
    assert not st.choose("memory", "float32").stream and probe.calls == []


def test_min_bytes_is_not_a_sysfs_figure_alone(tmp_path):
    """A VM that reports its host's 480 MiB L3 still gets the measured choice from 64 MiB up."""
    assert S.StoreStrategy(FakeProbe(), llc_bytes=480 * 2**20, key="k").min_bytes == S.PROBE_BYTES
    assert S.StoreStrategy(FakeProbe(), llc_bytes=32 * 2**20, key="k").min_bytes == 32 * 2**20


def test_report_is_json_and_covers_every_family_and_dtype(tmp_path):
    report = _strategy(tmp_path, FakeProbe()).report()
    json.dumps(report)
    assert set(report["choices"]) == {f"{f}/{d}" for f in S.FAMILIES for d in S.DTYPES}
    assert report["choices"]["memory/float64"]["stream"] is True
    assert report["choices"]["exp/float32"]["stream"] is False


def test_every_op_follows_a_family():
    """Each elementwise op's spec names a cost class that numba_cpu measures a strategy for."""
    assert {OPS[op].tuning for op in ELEMENTWISE_OPS} == set(S.FAMILIES)


def test_launchers_follow_their_familys_choice(tmp_path, monkeypatch):
    """With the fake AMD-like choices and a 4 KiB threshold: relu streams, sigmoid does not, and
    an output below the threshold never asks the strategy."""
    probe = FakeProbe()
    st = S.StoreStrategy(probe, llc_bytes=4096, key="fake", env={"ACTBENCH_CACHE_DIR": str(tmp_path)})
    monkeypatch.setattr(K, "STRATEGY", st)
    seen = []
    for op in ("relu", "sigmoid"):
        fam = K.FAMILIES[op]

        def spy(stream, block, *args, _fam=fam, _op=op):
            seen.append((_op, stream, block))
            return _fam.parallel(stream, block, *args)
        monkeypatch.setitem(K.FAMILIES, op, K.streaming.Family(fam.kernel, spy))
    x = np.linspace(-3, 3, 4096, dtype=np.float32)
    np.testing.assert_array_equal(kernels.get("relu", "numba_cpu")(x), np.maximum(x, 0))
    kernels.get("sigmoid", "numba_cpu")(x)
    kernels.get("relu", "numba_cpu")(x[:100])                      # 400 B: serial, not asked
    assert seen == [("relu", True, S.DEFAULT_BLOCK), ("sigmoid", False, S.DEFAULT_BLOCK)]
    assert probe.calls == [("memory", "float32"), ("exp", "float32")]


def test_the_real_probe_times_every_variant():
    variants = [(False, S.DEFAULT_BLOCK), (True, S.DEFAULT_BLOCK), (True, BIG)]
    for family in S.FAMILIES:
        times = S.measure(family, "float32", 2**20, variants, budget=0.0, rounds=(2, 3))
        assert set(times) == set(variants)
        assert all(len(t) == 2 and all(0 < s < 10 for s in t) for t in times.values())


def test_report_without_probing_lists_only_what_this_process_chose(tmp_path):
    probe = FakeProbe()
    st = _strategy(tmp_path, probe)
    assert st.report(probe=False)["choices"] == {} and probe.calls == []
    st.choose("exp", "float32")
    report = st.report(probe=False)
    assert list(report["choices"]) == ["exp/float32"] and probe.calls == [("exp", "float32")]
    assert report["choices"]["exp/float32"]["stream"] is False


# --- serial or parallel below min_bytes ----------------------------------------------------------

def _split_times(crossing, sizes=S.SPLIT_SIZES, overhead=3.0):
    """Serial time grows with n; the parallel driver pays `overhead` and halves the work. With
    `crossing` None the parallel driver never wins; the rounds repeat each figure twice."""
    out = {}
    for n in sizes:
        serial = n / crossing * 2 * overhead if crossing else 1e-9 * n
        out[n] = ([serial] * 2, [overhead + serial / 2] * 2 if crossing else [1.0] * 2)
    return out


class FakeSplit:
    def __init__(self, crossing=2**16):
        self.crossing, self.calls = crossing, []

    def __call__(self, op, dtype, sizes):
        self.calls.append((op, dtype))
        assert tuple(sizes) == S.SPLIT_SIZES
        return _split_times(self.crossing)


def test_decide_split_finds_where_the_parallel_driver_wins_for_good():
    # serial = parallel at the crossing; the margin moves the switch to the next probed size
    assert S.decide_split(_split_times(2**15)) == 2**16
    assert S.decide_split(_split_times(2**15), margin=1.0) == 2**16      # a tie is not a win
    assert S.decide_split(_split_times(2**14 - 1)) == 2**15
    assert S.decide_split(_split_times(None)) == 2 * S.SPLIT_SIZES[-1]   # never: above the range
    assert S.decide_split(_split_times(1)) == S.SPLIT_SIZES[0]           # always
    # a stalled parallel round at one size does not decide (the fastest round does), but a size
    # where it loses in every round keeps the smaller sizes serial
    t = _split_times(2**13)
    t[2**15] = (t[2**15][0], [1e9, t[2**15][1][0]])
    assert S.decide_split(t) == S.decide_split(_split_times(2**13))
    t[2**15] = (t[2**15][0], [1e9, 1e9])
    assert S.decide_split(t) == 2**16


def test_serial_max_is_measured_once_cached_and_overridden(tmp_path):
    split = FakeSplit(2**15)
    st = S.StoreStrategy(FakeProbe(), llc_bytes=32 * 2**20, key="cpu A", split_probe=split, busy=lambda: False,
                         env={"ACTBENCH_CACHE_DIR": str(tmp_path)})
    assert st.serial_max("tanh", "float32") == 2**16 and st.serial_max("tanh", "float32") == 2**16
    assert split.calls == [("tanh", "float32")]
    again = S.StoreStrategy(FakeProbe(), llc_bytes=32 * 2**20, key="cpu A", split_probe=FakeSplit(), busy=lambda: False,
                            env={"ACTBENCH_CACHE_DIR": str(tmp_path)})
    assert again.serial_max("tanh", "float32") == 2**16                 # from the disk cache
    assert again.report(probe=False)["serial_max"] == {"tanh/float32": {"serial_max": 2**16, "source": "cached"}}
    env = S.StoreStrategy(FakeProbe(), llc_bytes=32 * 2**20, key="cpu A", split_probe=FakeSplit(), busy=lambda: False,
                          env={"ACTBENCH_CACHE_DIR": str(tmp_path), "ACTBENCH_SERIAL_MAX": "1000"})
    assert env.serial_max("relu", "float64") == 1000
    with pytest.raises(ValueError, match="ACTBENCH_SERIAL_MAX"):
        S.StoreStrategy(FakeProbe(), env={"ACTBENCH_SERIAL_MAX": "lots"}).serial_max("relu", "float32")


def test_a_split_probe_that_disagrees_with_itself_is_not_kept(tmp_path):
    """Even and odd rounds that put the crossing at different sizes, a size whose rounds scatter,
    or other work on the machine: the prior serves this process and nothing is saved, so the next
    process measures again."""
    even, odd = _split_times(2**13), _split_times(2**16)
    disagree = {n: ([even[n][0][0], odd[n][0][0]], [even[n][1][0], odd[n][1][0]]) for n in even}
    assert S.split_conclusive(_split_times(2**14)) and not S.split_conclusive(disagree)
    noisy = _split_times(2**14)
    noisy[2**13] = (noisy[2**13][0], [noisy[2**13][1][0], 1.5 * noisy[2**13][1][0]])
    assert S.decide_split(noisy) == S.decide_split(_split_times(2**14)) and not S.split_conclusive(noisy)

    class Probe:
        def __init__(self, times):
            self.times, self.calls = times, 0

        def __call__(self, op, dtype, sizes):
            self.calls += 1
            return self.times
    env = {"ACTBENCH_CACHE_DIR": str(tmp_path)}
    for times, busy in ((disagree, False), (noisy, False), (_split_times(2**14), True)):
        probe = Probe(times)
        st = S.StoreStrategy(FakeProbe(), llc_bytes=2**30, key="k", split_probe=probe, env=env, busy=lambda b=busy: b)
        assert st.serial_max("relu", "float32") == S.SPLIT_PRIOR
        assert st.report(probe=False)["serial_max"]["relu/float32"]["source"] == "inconclusive"
        assert not (tmp_path / "numba_cpu-stores.json").exists()
    again = Probe(_split_times(2**14))
    st = S.StoreStrategy(FakeProbe(), llc_bytes=2**30, key="k", split_probe=again, env=env, busy=lambda: False)
    assert st.serial_max("relu", "float32") == 2**15 and again.calls == 1     # measured, and kept
    assert (tmp_path / "numba_cpu-stores.json").exists()


def test_a_load_average_above_the_cores_is_other_work(monkeypatch):
    from kernels.machine import cpu_count
    monkeypatch.setattr(S, "_busy_seen", None)
    monkeypatch.setattr(S.os, "getloadavg", lambda: (cpu_count() + 1.0, 0.0, 0.0))
    assert S._other_work() is True
    monkeypatch.setattr(S.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert S._other_work() is True                     # the verdict holds for half a minute
    # measured now, a parallel loop's CPU time over wall time, against a CPU clock that says
    # the threads got no core, or every one (the real clock's verdict depends on the machine)
    import numba
    import time
    if numba.get_num_threads() > 1:
        monkeypatch.setattr(S, "_busy_seen", None)
        assert S._other_work(cpu_clock=lambda: 0.0) is True
        monkeypatch.setattr(S, "_busy_seen", None)
        assert S._other_work(cpu_clock=lambda: numba.get_num_threads() * time.perf_counter()) is False


def test_launchers_run_serially_below_their_ops_threshold(tmp_path, monkeypatch):
    split = FakeSplit(2**14)                                           # serial_max 2**15
    st = S.StoreStrategy(FakeProbe(), llc_bytes=2**30, key="fake", split_probe=split, busy=lambda: False,
                         env={"ACTBENCH_CACHE_DIR": str(tmp_path)})
    monkeypatch.setattr(K, "STRATEGY", st)
    monkeypatch.setattr(K, "SERIAL_MAX", None)
    paths = []
    fam = K.FAMILIES["relu"]
    monkeypatch.setitem(K.FAMILIES, "relu", K.streaming.Family(
        lambda *a: paths.append("serial") or fam.kernel(*a),
        lambda *a: paths.append("parallel") or fam.parallel(*a)))
    relu = kernels.get("relu", "numba_cpu")
    for n in (100, S.SPLIT_SIZES[0], 2**15 - 1, 2**15, 2**17):
        x = np.linspace(-3, 3, n, dtype=np.float32)
        np.testing.assert_array_equal(relu(x), np.maximum(x, 0))
    assert paths == ["serial", "serial", "serial", "parallel", "parallel"]
    assert split.calls == [("relu", "float32")]                        # not asked below SERIAL_MIN


def test_the_real_split_probe_times_both_paths():
    times = S.measure_split("relu_grad", "float32", (2**13, 2**14), rounds=2)
    assert set(times) == {2**13, 2**14}
    assert all(len(a) == len(b) == 2 and all(0 < s < 1 for s in (*a, *b)) for a, b in times.values())
