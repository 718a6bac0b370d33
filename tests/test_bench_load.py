"""Issue 17, figures that are physically wrong: the rules that mark them, driven by fake clocks,
fake CPU and thread clocks, fake /proc files and recorded samples (no test here times anything).

bench/measure/load.py (what the threads got, the one starvation rule, the run's load), its use by the
timers and the runner (re-measure, marks), bench/measure/roofline.py's sound peaks, the marks derived in
bench/model/results.py and how the tables, Markdown and claims show them."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from bench.measure import case as measure_case
from bench.model import results
from bench.report import formatting
from bench.measure import interleave, load, roofline, timing
from bench.report import markdown, tables
from bench.run import runner
from bench.model.results import ABOVE_PEAK, MARKED_BASELINE, STARVED, CaseResult, Run, Status


# ------------------------------------------------------------------------------ fake clocks

class FakeMachine:
    """Wall, process-CPU and per-thread (run, wait) clocks that move only when told: `work(wall,
    cpu, run, wait)` is what one sample costs."""

    def __init__(self):
        self.wall = self.cpu = self.run = self.wait = 0.0

    def work(self, wall, cpu=None, run=None, wait=0.0):
        self.wall += wall
        self.cpu += wall if cpu is None else cpu
        self.run += wall if run is None else run
        self.wait += wait

    def clocks(self, threads=True):
        return load.Clocks(wall=lambda: self.wall, cpu=lambda: self.cpu,
                           threads=(lambda: (self.run, self.wait)) if threads else (lambda: None))


# ------------------------------------------------------------------------------ the one rule

def test_starved_by_the_cpu_its_threads_got_or_by_its_slowdown_everywhere():
    assert load.starved(got=0.5) and load.starved(got=load.GOT_MIN - 1e-9)
    assert not load.starved(got=load.GOT_MIN) and not load.starved(got=1.0)
    assert load.starved(slower=load.STARVED_SLOWER) and not load.starved(slower=9.9)
    assert not load.starved() and not load.starved(None, None)       # unknown says nothing
    assert load.starved(got=0.99, slower=50.0)


def test_slowdown_is_the_smallest_over_every_op():
    t = {("numpy", 8, "a"): 1.0, ("numpy", 8, "b"): 2.0, ("x", 8, "a"): 30.0, ("x", 8, "b"): 4.0}
    assert load.slowest_vs_baseline(t, "x", 8, ["a", "b"]) == 2.0
    assert load.slowest_vs_baseline(t, "x", 8, ["a"]) == 30.0
    assert load.slowest_vs_baseline(t, "numpy", 8, ["a"]) is None
    assert load.slowest_vs_baseline(t, "x", 8, ["a", "c"]) is None


# ------------------------------------------------------------------------------ what the threads got

def test_tally_prefers_run_and_wait_and_falls_back_to_cpu_over_wall_per_thread():
    t = load.Tally()
    assert t.got is None
    t.add(wall=1.0, cpu=1.0, run=1.0, wait=1.0)          # the stall: one thread waited throughout
    assert t.got == 0.5
    f = load.Tally(threads=2)
    f.add(wall=1.0, cpu=1.2, run=None, wait=None)        # no schedstat: 1.2 cores of 2 expected
    assert f.got == pytest.approx(0.6)
    f1 = load.Tally()
    f1.add(wall=1.0, cpu=3.0, run=None, wait=None)
    assert f1.got == 1.0                                  # never above all of it


def test_thread_clock_sums_every_thread_of_a_fake_proc_tree(tmp_path):
    for tid, (run, wait) in {"11": (2_000_000_000, 500_000_000), "12": (1_000_000_000, 0)}.items():
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "schedstat").write_text(f"{run} {wait} 7\n")
    clock = load.ThreadClock(str(tmp_path))
    assert clock.available and clock.read() == (3.0, 0.5)
    (tmp_path / "12" / "schedstat").write_text("3000000000 1000000000 9\n")      # a thread ran on
    assert clock.read() == (5.0, 1.5)
    clock.close()
    assert load.ThreadClock(str(tmp_path / "nothing")).read() is None


def test_thread_clock_says_none_without_schedstat(tmp_path):
    (tmp_path / "11").mkdir()
    clock = load.ThreadClock(str(tmp_path))
    assert not clock.available and clock.read() is None


def test_sampling_tallies_what_each_sample_got():
    m = FakeMachine()
    costs = itertools.cycle([(0.01, 0.0), (0.01, 0.01)])      # every other sample waits as long as it runs

    def measure():
        wall, wait = next(costs)
        m.work(wall + wait, cpu=wall, run=wall, wait=wait)
        return wall + wait

    tally = load.Tally()
    sampling = timing.Sampling(min_samples=4, max_samples=4, rel_tol=0.0)
    samples, _ = timing.sample(measure, sampling, clock=lambda: m.wall, tally=tally, clocks=m.clocks())
    assert len(samples) == 4
    assert tally.run_s == pytest.approx(0.04) and tally.wait_s == pytest.approx(0.02)
    assert tally.got == pytest.approx(2 / 3) and load.starved(tally.got)


def test_round_robin_tallies_each_member_apart():
    m = FakeMachine()

    def member(name, wait):
        def measure():
            m.work(0.001 + wait, cpu=0.001, run=0.001, wait=wait)
            return 0.001 + wait
        return interleave.Member(name, measure, "perf_counter_ns")

    sampling = timing.Sampling(min_samples=5, max_samples=5, rel_tol=0.0)
    times = interleave.round_robin([member("calm", 0.0), member("waits", 0.003)], sampling, random.Random(1),
                                   clock=lambda: m.wall, clocks=m.clocks())
    assert times["calm"].tally.got == pytest.approx(1.0)
    assert times["waits"].tally.got == pytest.approx(0.25)


# ------------------------------------------------------------------------------ re-measure within budget

def test_a_starved_pass_is_measured_again_with_what_is_left_of_the_budget():
    now = [0.0]
    asked = []

    def measure(budget):
        asked.append(budget)
        now[0] += 0.3
        return {"starved": 2 if len(asked) == 1 else 0}

    best, passes = load.remeasured(measure, lambda r: r["starved"], 1.0, clock=lambda: now[0])
    assert passes == 2 and best == {"starved": 0} and asked == [1.0, pytest.approx(0.7)]


def test_a_sound_pass_is_not_measured_again_and_a_worse_again_is_dropped():
    assert load.remeasured(lambda b: 0, lambda r: r, 1.0, clock=lambda: 0.0) == (0, 1)
    passes = iter([1, 3])
    best, n = load.remeasured(lambda b: next(passes), lambda r: r, 1.0, clock=lambda: 0.0)
    assert (best, n) == (1, 2)
    over = iter([1, 1])                         # budget spent: the sampler still takes its minimum
    assert load.remeasured(lambda b: next(over), lambda r: r, 0.1, clock=itertools.count().__next__)[1] == 2


def test_the_runner_marks_a_case_whose_threads_stayed_starved(monkeypatch):
    tallies = iter([0.5, 0.6])

    def fake_time_cpu(fn, args, kwargs, sampling, *a, **k):
        t = timing.Timing([1e-3] * 10, True, "perf_counter_ns", 1, load.Tally())
        t.tally.add(1.0, 1.0, next(tallies), 0.4)    # got = run / (run + wait)
        return t

    monkeypatch.setattr(timing, "time_cpu", fake_time_cpu)
    ready = _ready("numba_cpu", "cpu")
    t, passes = measure_case.time_alone(ready, timing.Sampling(budget_s=0.1))
    assert passes == 2 and t.tally.got == pytest.approx(0.6 / 1.0)
    e = measure_case.timed(ready, t, passes=passes)
    assert e.marks == (STARVED,) and e.remeasured is True and e.cpu_got == pytest.approx(0.6)


def test_the_runner_leaves_a_case_that_got_its_cores_unmarked_and_never_judges_a_gpu_host_thread():
    t = timing.Timing([1e-3] * 10, True, "perf_counter_ns", 1, load.Tally())
    t.tally.add(1.0, 1.0, 0.99, 0.01)
    e = measure_case.timed(_ready("numba_cpu", "cpu"), t)
    assert e.marks is None and e.remeasured is None and e.cpu_got == pytest.approx(0.99)
    g = timing.Timing([1e-3] * 10, True, "cuda_event", 1, load.Tally())
    g.tally.add(1.0, 0.01, 0.01, 0.99)             # the host thread sleeps on the event: not starved
    e = measure_case.timed(_ready("cupy", "gpu"), g)
    assert e.marks is None and e.cpu_got is None


def _ready(backend, device):
    be = type("Be", (), {"device": device, "name": backend})()
    base = dict(op="relu", backend=backend, device=device, dtype="float32", size=4096, bytes=32768, flops=4096)
    return measure_case.Ready(None, be, None, lambda: None, (), {}, 0.0, "", base)


# ------------------------------------------------------------------------------ sound peaks

def _peak(memory=(30.0, 31.0), cache=(300.0,)):
    measured = [{"method": "copy", "gbps": g, "probe": i} for i, g in enumerate(memory)]
    return {"gbps": max(memory), "method": "copy", "measured": measured, "samples_s": [1.0, 1.0],
            "cache": {"gbps": max(cache), "repeats": list(cache), "samples_s": [1.0], "applies_below_bytes": 2**20,
                      "sweep": [{"working_set_bytes": 2**20, "gbps": 200.0}]}}


def test_peak_faults_cache_below_memory_and_a_fastest_probe_far_from_its_repeats():
    assert roofline.peak_faults(_peak()) == []
    assert roofline.peak_faults(_peak(cache=(0.53,)))[0].startswith("cache peak 0.53 GB/s at or below")
    far = roofline.peak_faults(_peak(cache=(0.53, 310.0)))
    assert len(far) == 1 and "fastest cache probe has no repeat" in far[0]
    assert roofline.peak_faults(_peak(cache=(0.53, 310.0, 305.0))) == []       # confirmed by a repeat
    assert "fastest memory probe" in roofline.peak_faults(_peak(memory=(0.5, 30.0)))[0]


def test_a_repeat_of_the_cache_probe_joins_and_the_faster_counts_keeping_the_sweeps_boundary():
    p = roofline.with_cache_repeat(_peak(cache=(0.53,)), {"gbps": 310.0, "samples_s": [2.0], "sweep": [],
                                                           "applies_below_bytes": 99})
    assert p["cache"]["gbps"] == 310.0 and p["cache"]["repeats"] == [0.53, 310.0]
    assert p["cache"]["applies_below_bytes"] == 2**20 and p["cache"]["sweep"]


def test_an_unsound_peak_is_probed_again_and_refused_if_it_stays_wrong():
    calls = []

    def still_wrong(p):
        calls.append(1)
        return roofline.with_cache_repeat(p, {"gbps": 0.9})

    p = runner._sound_peak(_peak(cache=(0.53,)), still_wrong)
    assert calls == [1]
    assert "gbps" not in p["cache"] and p["cache"]["refused_gbps"] == 0.9
    assert p["cache"]["applies_below_bytes"] == 2**20            # the runner still knows where it ends
    assert any(n.startswith("probed again: cache peak 0.53") for n in p["notes"])
    assert any("the memory peak judges every case" in n for n in p["notes"])
    assert results.peak_for(p, 1024) == ("memory", 31.0)
    assert "cache peak refused" in formatting.peak_label(Run(env={}, peaks={"cpu": p}), "cpu")


def test_an_unsound_peak_that_a_new_probe_fixes_keeps_its_levels_with_a_note():
    p = runner._sound_peak(_peak(cache=(0.53, 310.0)), lambda p: roofline.with_cache_repeat(p, {"gbps": 305.0}))
    assert p["cache"]["gbps"] == 310.0 and "refused_gbps" not in p["cache"]
    assert p["notes"] == ["probed again: the fastest cache probe has no repeat within 2x of it: 310, 0.53 GB/s"]
    # one probe below memory, one above after probing again: kept, and said to stand alone
    p = runner._sound_peak(_peak(cache=(0.53,)), lambda p: roofline.with_cache_repeat(p, {"gbps": 320.0}))
    assert p["cache"]["gbps"] == 320.0 and "refused_gbps" not in p["cache"]
    assert p["notes"][0] == "probed again: cache peak 0.53 GB/s at or below the memory peak 31 GB/s"
    assert p["notes"][1].endswith("after probing again: the fastest counts")
    sound = _peak()
    assert runner._sound_peak(sound, lambda p: pytest.fail("probed again")) is sound


def test_the_run_probes_the_cache_twice_and_notes_a_peak_it_refused(monkeypatch):
    from tests.fakes import patch_peaks
    patch_peaks(monkeypatch, gbps=10.0, cache_gbps=5.0)          # a cache peak below memory, every time
    from bench.run import plan
    prof, todo, _ = plan.build("quick", "relu", "numpy", None, "2**10", "cpu", 0.01)
    run = runner.run_cases(prof, todo)
    cpu = run.peaks["cpu"]
    assert len(cpu["cache"]["repeats"]) >= 3 and cpu["cache"]["refused_gbps"] == 5.0
    assert any("memory peak judges every case" in n for n in cpu["notes"])
    e = run.results[0]
    assert e.peak_level == "memory" and (e.pct_peak or 0) > 0
    assert ABOVE_PEAK not in (e.marks or ())              # in a refused cache: faster than memory is no fault
    assert set(run.env["load"]) >= {"before", "during", "after", "cores", "busy"}
    assert len(run.env["load"]["during"]) >= 1


# ------------------------------------------------------------------------------ marks in the results

def _case(backend, median, **kw):
    return CaseResult(op="relu", backend=backend, device="cpu", dtype="float32", size=2**25, status=Status.OK,
                      median_s=median, bytes=10**9, stable=True, **kw)


def _run(*cases, spread_samples=(1.0, 1.0, 1.0, 1.0)):
    peak = {"gbps": 10.0, "samples_s": list(spread_samples),
            "cache": {"gbps": 100.0, "applies_below_bytes": 2**20, "samples_s": [1.0]}}
    return results.derive(Run(env={}, peaks={"cpu": peak}, results=cases))


def test_a_case_above_its_peak_by_more_than_the_peaks_spread_is_marked():
    run = _run(_case("numpy", 0.1), _case("numba_cpu", 0.095), _case("torch", 0.05))
    by = {e.backend: e for e in run.results}
    assert by["numpy"].marks is None                        # exactly at the peak
    assert ABOVE_PEAK in by["torch"].marks                  # 200 % of the memory peak
    # 105 % of a peak whose samples do not spread: marked; of one whose IQR is 10 % of its median: not
    assert ABOVE_PEAK in by["numba_cpu"].marks
    wide = _run(_case("numba_cpu", 0.095), spread_samples=(0.9, 0.95, 1.0, 1.05, 1.1)).results[0]
    assert wide.marks is None


def test_the_probe_beside_a_case_gives_the_spread():
    e = _case("numba_cpu", 0.09, peak_gbps=10.0, probe_samples_s=(1.0, 1.0, 1.0))
    assert ABOVE_PEAK in _run(e).results[0].marks
    wide = _case("numba_cpu", 0.09, peak_gbps=10.0, probe_samples_s=(0.8, 1.0, 1.2))
    assert _run(wide).results[0].marks is None


def test_a_speed_up_over_a_marked_or_unstable_numpy_is_marked():
    run = _run(_case("numpy", 0.2, marks=(STARVED,)), _case("numba_cpu", 0.1))
    nb = next(e for e in run.results if e.backend == "numba_cpu")
    assert nb.marks == (MARKED_BASELINE,) and results.speedup_marked(nb) and not results.is_marked(nb)
    run = _run(dataclasses.replace(_case("numpy", 0.2), stable=False), _case("numba_cpu", 0.1))
    assert next(e for e in run.results if e.backend == "numba_cpu").marks == (MARKED_BASELINE,)
    again = results.derive(run)                               # derived marks are recomputed, not stacked
    assert next(e for e in again.results if e.backend == "numba_cpu").marks == (MARKED_BASELINE,)


def test_a_schema_2_cpu_run_without_a_cache_peak_marks_nothing_above_the_memory_peak():
    run = results.derive(Run(env={}, peaks={"cpu": {"gbps": 1.0, "samples_s": [1.0]}}, results=(_case("numpy", 0.1),)))
    assert run.results[0].pct_peak == pytest.approx(1000) and run.results[0].marks is None


def test_marks_and_cpu_share_survive_json_and_old_files_have_none(tmp_path, example_run):
    e = _case("numba_cpu", 0.1, cpu_got=0.42, remeasured=True, marks=(STARVED, ABOVE_PEAK))
    back = results.load(results.save(Run(env={}, results=(e,)), tmp_path / "r.json"))
    assert back.results[0] == e
    plain = _case("numpy", 0.1).to_json()
    assert not {"cpu_got", "remeasured", "marks"} & set(plain)
    assert all(x.marks is None and x.cpu_got is None for x in example_run.results)


# ------------------------------------------------------------------------------ the run's load

def test_load_log_counts_the_cpu_others_used_beside_this_process():
    clock = {"wall": 0.0, "cpu": 0.0, "busy": 0.0}

    def stat():
        return clock["busy"], 1e6

    log = load.LoadLog(cores=2, wall=lambda: clock["wall"], cpu=lambda: clock["cpu"], stat=stat,
                       loadavg=lambda: [0.5, 0.4, 0.3])
    clock.update(wall=1.0, cpu=1.0, busy=1.2)       # we used 1 s of CPU, the machine 1.2: others 0.2 of 2
    log.mark()
    clock.update(wall=2.0, cpu=2.0, busy=3.2)       # others used a whole core
    d = log.finish()
    assert [r["others"] for r in d["during"]] == [0.1] and d["after"]["others"] == 0.5
    assert d["others_max"] == 0.5 and d["others_mean"] == pytest.approx(0.3)
    assert "30 % of the 2 cores" in d["busy"]
    assert d["before"]["loadavg"] == [0.5, 0.4, 0.3]


def test_busy_rule_quiet_and_without_proc_stat():
    assert load.busy({"cores": 2, "others_mean": 0.05, "others_max": 0.2}) is None
    assert load.busy({"cores": 2, "others_mean": 0.1, "others_max": 0.6})       # one busy stretch
    assert load.busy({"cores": 2, "others_mean": None, "others_max": None, "before": {"loadavg": [1.5]}})
    assert load.busy({"cores": 2, "others_mean": None, "others_max": None, "before": {"loadavg": [0.5]}}) is None
    assert load.busy(None) is None and load.busy({}) is None


def test_proc_stat_reads_busy_and_total_seconds(tmp_path):
    f = tmp_path / "stat"
    f.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
    busy, total = load.proc_stat(str(f))
    assert (busy, total) == (150 / load.USER_HZ, 1000 / load.USER_HZ)
    assert load.proc_stat(str(tmp_path / "none")) is None


# ------------------------------------------------------------------------------ how they are shown

def _marked_run(busy=True):
    env = {"load": {"cores": 2, "before": {"loadavg": [2.5]}, "after": {"loadavg": [3.0]},
                    "others_mean": 0.6 if busy else 0.0, "others_max": 0.9 if busy else 0.0}}
    run = _run(_case("numpy", 0.1), _case("numba_cpu", 0.2, marks=(STARVED,), cpu_got=0.5), _case("torch", 0.05))
    return dataclasses.replace(run, env=env)


def test_cells_carry_their_marks():
    run = _marked_run()
    by = {e.backend: e for e in run.results}
    nb = formatting.ok_lines(by["numba_cpu"], False)
    assert nb[0].startswith(formatting.STARVED_MARK) and nb[3].startswith(formatting.MARKED_MARK)
    assert formatting.ok_lines(by["torch"], False)[2].endswith(formatting.ABOVE_MARK)
    assert formatting.ok_lines(by["numpy"], False) == [
        formatting.fmt_time(0.1), "10.0 GB/s", "100% mem peak", "x 1.00"]


def test_a_busy_run_warns_first_in_the_terminal_and_the_markdown():
    from rich.console import Console
    run = _marked_run()
    console = Console(record=True, width=200)
    tables.print_run(run, console)
    text = console.export_text()
    assert text.startswith("WARNING: the machine was busy: other processes used 60 %")
    assert "2 case(s) are marked" in text
    assert "its threads were starved" in text and "above its level's peak" in text
    md = markdown.markdown(run)
    assert md.splitlines()[2].startswith("> **WARNING: the machine was busy")
    assert "its threads were starved" in md and "- **load**: 2.50 -> 3.00" in md


def test_a_quiet_run_has_no_warning():
    run = _marked_run(busy=False)
    assert formatting.busy_warning(run) is None
    assert "WARNING" not in markdown.markdown(run)


def test_plots_ring_the_marked_cases_once_in_the_legend():
    from bench.report import plots
    run = _marked_run()
    assert plots.marked_points(list(run.results), "numba_cpu") == [(2**25, 0.2, pytest.approx(50.0))]
    assert plots.marked_points(list(run.results), "numpy") == []
    fig = plots.figure(run, "relu")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels.count("marked (see the table)") == 1


def test_the_load_experiment_counts_moved_cells_with_and_without_a_mark():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("load_experiment",
                                                  Path(__file__).resolve().parent.parent / "docs/load_experiment.py")
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    quiet = _run(_case("numpy", 0.1), _case("numba_cpu", 0.1), _case("torch", 0.1))
    loaded = _run(_case("numpy", 0.1), _case("numba_cpu", 0.2, marks=(STARVED,)), _case("torch", 0.15))
    assert exp.moved(quiet, loaded, 0.2) == {"cells": 2, "moved_unmarked": 1, "moved_marked": 1, "marked": 1}
