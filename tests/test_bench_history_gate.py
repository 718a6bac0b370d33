"""bench/analysis/history.py's verdict paths with fake runs and exact values: confirm (which measurement of
a slower case is kept, what the re-measurement is asked for, when it stops), check (its defaults,
what it passes on, the no-baseline paths, its messages) and next_baseline. Each test pins a
behaviour that a mutant `make mutate` found surviving changed (docs/mutation.md); no test times
anything.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench.cli import check as check_cmd
from bench.model import cases as model_cases
from bench.run import runner
from bench.analysis import compare, history
from bench.model import results
from bench.model.cases import UsageError

from .test_bench_compare import env

KEY = ("relu", "numba_cpu", "cpu", "float32", 2**25) + ((),)
OTHER = ("sigmoid", "numba_cpu", "cpu", "float32", 2**25) + ((),)


def case(key, s, **kw) -> results.CaseResult:
    s = list(s)
    return results.CaseResult(*key[:5], "ok", samples_s=s, median_s=sorted(s)[len(s) // 2], n=len(s), **kw)


def run(*entries, **env_over) -> results.Run:
    return results.Run(env=env(**env_over), created="2026-11-28T12:00:00+00:00", results=list(entries))


def tight(t, n=10):
    """n samples within +-1 % of t: a spread no threshold calls noisy."""
    return [t * (1 + 0.02 * (i / (n - 1) - 0.5)) for i in range(n)]


class Console:
    """Records what is printed (history._say prints with highlight and markup off)."""

    def __init__(self):
        self.said = []

    def print(self, text, **kw):
        if kw == {"highlight": False, "markup": False}:     # not the report's tables
            self.said.append(text)


class Again:
    """runner.run_cases replaced: records each call and answers with the given runs in turn (the
    last one again when they run out)."""

    def __init__(self, monkeypatch, *runs):
        self.runs, self.calls = list(runs), []
        monkeypatch.setattr(runner, "run_cases", self)

    def __call__(self, prof, todo, **kw):
        self.calls.append((prof, [c.name for c in todo], kw))
        return self.runs.pop(0) if len(self.runs) > 1 else self.runs[0]


def confirm(base_run, new_run, again=None, attempts=2, rep_kw=None, **kw):
    base = compare.from_run(base_run, "base.json")
    rep = compare.compare_runs(base, compare.from_run(new_run, "new.json"), **(rep_kw or {}))
    return history.confirm(base, new_run, rep, kw.pop("profile", "quick"), kw.pop("seed", 0), attempts, **kw)


# ------------------------------------------------------------------------------------ confirm

def test_confirm_asks_the_runner_for_the_slower_cases_with_the_profile_seed_and_rounds(monkeypatch):
    again = Again(monkeypatch, run(case(KEY, tight(3e-3))))
    con = Console()
    confirm(run(case(KEY, tight(3e-3)), case(OTHER, tight(1e-3))),
            run(case(KEY, tight(9e-3)), case(OTHER, tight(1e-3))), profile="full", seed=7, console=con)
    assert again.calls == [(model_cases.PROFILES["full"], ["relu numba_cpu float32 2**25"], {"seed": 7, "interleave": True})]
    assert con.said == ["measuring 1 slower case(s) again (1 of 2)"]
    history.confirm(compare.from_run(run(case(KEY, tight(3e-3)))), run(case(KEY, tight(9e-3))),
                    compare.compare_runs(compare.from_run(run(case(KEY, tight(3e-3)))),
                                         compare.from_run(run(case(KEY, tight(9e-3))))),
                    "quick", 3, 1, interleave=False)
    assert again.calls[-1][2] == {"seed": 3, "interleave": False}


def test_confirm_says_each_attempt_and_stops_after_attempts(monkeypatch):
    again = Again(monkeypatch, run(case(KEY, tight(9e-3))))            # still 3x slower every time
    con = Console()
    confirm(run(case(KEY, tight(3e-3))), run(case(KEY, tight(9e-3))), attempts=3, console=con)
    assert len(again.calls) == 3
    assert con.said == [f"measuring 1 slower case(s) again ({i} of 3)" for i in (1, 2, 3)]


def test_confirm_keeps_the_first_measurement_between_equal_costs(monkeypatch):
    # the same median, other samples: the first measurement stays (only a faster one replaces it)
    first = case(KEY, tight(9e-3))
    same_median = case(KEY, [first.samples_s[0] / 2, *first.samples_s[1:]])      # only its fastest differs
    assert same_median.median_s == first.median_s and same_median.samples_s != first.samples_s
    Again(monkeypatch, run(same_median))
    kept = confirm(run(case(KEY, tight(3e-3))), run(first), attempts=1)
    assert kept.results == (first,)


@pytest.mark.parametrize("normalise, kept_first", [("auto", True), ("raw", False)])
def test_confirm_judges_fastest_by_the_peak_beside_where_no_run_has_per_round_samples(monkeypatch, normalise,
                                                                                    kept_first):
    # 9 ms beside a 10 GB/s copy (cost 0.09) against 6 ms beside 20 GB/s (0.12): normalised the first
    # is faster; raw, the second
    first = case(KEY, tight(9e-3), peak_gbps=10.0)
    Again(monkeypatch, run(case(KEY, tight(6e-3), peak_gbps=20.0)))
    kept = confirm(run(case(KEY, tight(3e-3), peak_gbps=10.0)), run(first), attempts=1,
                   rep_kw={"normalise": normalise})
    assert (kept.results[0] is first) == kept_first


def test_confirm_keeps_a_measurement_faster_beside_the_same_peak(monkeypatch):
    # both beside 10 GB/s: 6 ms (cost 0.06) beats 9 ms (0.09), both costs normalised alike
    faster = case(KEY, tight(6e-3), peak_gbps=10.0)
    Again(monkeypatch, run(faster))
    kept = confirm(run(case(KEY, tight(3e-3), peak_gbps=10.0)), run(case(KEY, tight(9e-3), peak_gbps=10.0)),
                   attempts=1)
    assert kept.results == (faster,)


def test_confirm_judges_by_the_median_where_another_case_has_per_round_samples(monkeypatch):
    # the base has probe samples (for another case): compare divides round by round where it can
    # and never scales by the probe's median, so neither does confirm: 6 ms beats 9 ms, whatever
    # the copy beside each (scaled, 9 ms x 0.1 GB/s would beat 6 ms x 20 GB/s)
    first = case(KEY, tight(9e-3), peak_gbps=0.1)
    faster = case(KEY, tight(6e-3), peak_gbps=20.0)
    Again(monkeypatch, run(faster))
    base = run(case(KEY, tight(3e-3), peak_gbps=10.0), case(OTHER, tight(1e-3), probe_samples_s=tight(1e-2)))
    kept = confirm(base, run(first), attempts=1)
    assert kept.results == (faster,)


def test_confirm_judges_round_by_round_where_both_measurements_have_probe_samples(monkeypatch):
    # 9 ms in rounds whose probe took 3 ms (3 copies) against 6 ms in rounds of a 1 ms probe (6 copies)
    first = case(KEY, tight(9e-3), probe_samples_s=tight(3e-3), peak_gbps=1.0)
    Again(monkeypatch, run(case(KEY, tight(6e-3), probe_samples_s=tight(1e-3), peak_gbps=100.0)))
    base = run(case(KEY, tight(3e-3), probe_samples_s=tight(3e-3), peak_gbps=1.0))
    kept = confirm(base, run(first), attempts=1)
    assert kept.results == (first,)


def test_confirm_judges_again_with_the_reports_threshold_alpha_and_normalisation(monkeypatch):
    # threshold 50 %: measured again at 1.3x the case is the same, and one attempt is enough
    again = Again(monkeypatch, run(case(KEY, tight(3.9e-3))))
    confirm(run(case(KEY, tight(3e-3))), run(case(KEY, tight(6e-3))), rep_kw={"threshold": 0.5})
    assert len(again.calls) == 1
    # alpha 0.05 with 4 samples a side: a 2x change is slower (Mann-Whitney's p is 2/70, above the
    # default 0.01), and stays slower when measured again
    again = Again(monkeypatch, run(case(KEY, tight(6e-3, 4))))
    confirm(run(case(KEY, tight(3e-3, 4))), run(case(KEY, tight(6e-3, 4))), rep_kw={"alpha": 0.05})
    assert len(again.calls) == 2
    # raw: 2x slower; the copy beside it was half as fast, so normalised (auto) it would be the same
    again = Again(monkeypatch, run(case(KEY, tight(6e-3), peak_gbps=5.0)))
    confirm(run(case(KEY, tight(3e-3), peak_gbps=10.0)), run(case(KEY, tight(6e-3), peak_gbps=5.0)),
            rep_kw={"normalise": "raw"})
    assert len(again.calls) == 2


def test_confirm_compares_again_with_force_as_the_check_did(monkeypatch):
    # `bench-check --force` against a baseline of another CPU model: measuring again must not refuse
    again = Again(monkeypatch, run(case(KEY, tight(9e-3))))
    base = run(case(KEY, tight(3e-3)), cpu={"model": "AMD EPYC 7B13", "cores": 2})
    kept = confirm(base, run(case(KEY, tight(9e-3))), rep_kw={"force": True})
    assert len(again.calls) == 2 and len(kept.results) == 1


@pytest.mark.parametrize("error, code, message", [
    ("ValueError in relu numba_cpu", history.EXIT_ERROR,
     "measuring 1 slower case(s) again stopped at ValueError in relu numba_cpu; "
     "the baseline and the history are left as they were"),
    (None, history.EXIT_INTERRUPTED,
     "interrupted while measuring 1 slower case(s) again; the baseline and the history are left as they were"),
])
def test_an_interrupted_remeasurement_stops_with_its_code_and_one_line(monkeypatch, error, code, message):
    Again(monkeypatch, dataclasses.replace(run(case(KEY, tight(3e-3))), interrupted=True, error=error))
    with pytest.raises(history.Stopped) as stopped:
        confirm(run(case(KEY, tight(3e-3))), run(case(KEY, tight(9e-3))))
    assert stopped.value.code == code and str(stopped.value) == message


# -------------------------------------------------------------------------------------- check

class Check:
    """check_cmd.check with its `bench run` (the given runs, in turn, saved where check asks), the
    re-measurement (`again`) and the plots faked; paths under tmp_path."""

    def __init__(self, tmp_path, monkeypatch, *runs, again=None):
        self.tmp, self.runs, self.asked, self.drawn = tmp_path, list(runs), [], []
        monkeypatch.setattr(check_cmd, "_run", self._run)
        monkeypatch.setattr(history, "plot", lambda rows, folder: self.drawn.append((rows, folder)) or ["x.png"])
        monkeypatch.setattr(check_cmd, "CHECKS", tmp_path / "checks")
        self.again = Again(monkeypatch, again or run(case(KEY, tight(3e-3))))
        self.kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p")

    def _run(self, profile, out, run_args):
        self.asked.append((profile, out, run_args))
        r = self.runs.pop(0)
        results.save(r, out)
        return r

    def __call__(self, **kw):
        return check_cmd.check(**{**self.kw, **kw})

    def baseline(self, r):
        path = history.baseline_path(r.env, self.tmp / "b")
        results.save(r, path)
        return path


def test_check_runs_the_profile_and_run_args_it_is_given_into_a_dated_file(tmp_path, monkeypatch):
    chk = Check(tmp_path, monkeypatch, run(case(KEY, tight(3e-3))))
    chk(profile="full", run_args=("--ops", "relu"), update_baseline=True)
    (profile, out, run_args), = chk.asked
    assert profile == "full" and run_args == ["--ops", "relu"]
    assert out.parent == tmp_path / "checks" and out.name.endswith("-check.json") and out.exists()


def test_check_without_a_baseline_compares_nothing_and_says_so(tmp_path, monkeypatch):
    first = run(case(KEY, tight(3e-3)))
    chk = Check(tmp_path, monkeypatch, first, first)
    con = Console()
    md = tmp_path / "md" / "deeper" / "bench-check.md"              # parents made
    assert chk(out=tmp_path / "r0.json", markdown=md, console=con) == check_cmd.NOTHING_COMPARED
    said = f"no baseline for amd-epyc-2c in {tmp_path / 'b'}: nothing was compared " \
           "(make baseline, or --update-baseline on the main branch, makes one)"
    assert con.said == [said]
    assert md.read_text() == f"### actbench bench-check: nothing compared\n\n> ⚠️ {said}.\n"
    assert not (tmp_path / "b").exists()                              # no baseline made
    rows = history.read(tmp_path / "h.jsonl")
    assert len(rows) == 1 and chk.drawn == [(rows, tmp_path / "p")]
    assert chk(out=tmp_path / "r1.json", markdown=md) == check_cmd.NOTHING_COMPARED   # the folder exists
    assert len(history.read(tmp_path / "h.jsonl")) == 2


def test_check_with_update_baseline_and_no_baseline_makes_it(tmp_path, monkeypatch):
    first = run(case(KEY, tight(3e-3)))
    chk = Check(tmp_path, monkeypatch, first)
    con = Console()
    md = tmp_path / "md" / "bench-check.md"
    assert chk(out=tmp_path / "r0.json", markdown=md, console=con, update_baseline=True) == 0
    path = tmp_path / "b" / "amd-epyc-2c.json"
    said = f"no baseline for amd-epyc-2c: this run is now its baseline ({path}); nothing was compared"
    assert con.said == [said] and md.read_text().endswith(f"> ⚠️ {said}.\n")
    assert results.load(path).results == first.results


def test_check_defaults_measure_twice_again_with_seed_0_and_refuse_another_cpu(tmp_path, monkeypatch):
    # defaults: confirm_attempts 2, seed 0, force off
    chk = Check(tmp_path, monkeypatch, run(case(KEY, tight(9e-3))), again=run(case(KEY, tight(9e-3))))
    chk.baseline(run(case(KEY, tight(3e-3))))
    assert chk(out=tmp_path / "r1.json") == 1
    assert [c[2]["seed"] for c in chk.again.calls] == [0, 0]
    other_cpu = run(case(KEY, tight(3e-3)), cpu={"model": "AMD EPYC 7B13 @ 2.45GHz", "cores": 2})
    new = run(case(KEY, tight(3e-3)), cpu={"model": "AMD EPYC 7B13", "cores": 2})
    chk = Check(tmp_path, monkeypatch, new, new)
    chk.baseline(other_cpu)                       # the same machine name: '@ ...' is dropped from it
    with pytest.raises(UsageError, match="cpu model differs"):
        chk(out=tmp_path / "r2.json")
    assert chk(out=tmp_path / "r3.json", force=True) == 0


def test_check_passes_threshold_alpha_normalise_and_its_file_to_both_comparisons(tmp_path, monkeypatch):
    # 4 samples a side, 2x slower raw beside a copy half as fast: slower with alpha 0.05, raw
    slow = run(case(KEY, tight(6e-3, 4), peak_gbps=5.0))
    chk = Check(tmp_path, monkeypatch, slow, again=slow)
    chk.baseline(run(case(KEY, tight(3e-3, 4), peak_gbps=10.0)))
    out, report = tmp_path / "r1.json", tmp_path / "verdicts.json"
    assert chk(out=out, report_json=report, threshold=0.25, alpha=0.05, normalise="raw", seed=5) == 1
    assert [c[2]["seed"] for c in chk.again.calls] == [5, 5]
    for verdict in json.loads(report.read_text()).values():
        assert (verdict["new"], verdict["threshold"], verdict["alpha"], verdict["normalise"]) == \
            (str(out), 0.25, 0.05, "raw")
        assert verdict["counts"]["slower"] == 1


def test_check_says_what_it_appended_and_drew(tmp_path, monkeypatch):
    chk = Check(tmp_path, monkeypatch, run(case(KEY, tight(3e-3)), case(OTHER, tight(1e-3))))
    chk.baseline(run(case(KEY, tight(3e-3)), case(OTHER, tight(1e-3))))
    con = Console()
    assert chk(out=tmp_path / "r1.json", console=con, confirm_attempts=0) == 0
    assert con.said[-1] == f"history: 2 rows appended to {tmp_path / 'h.jsonl'}; 1 plots in {tmp_path / 'p'}"
    rows = history.read(tmp_path / "h.jsonl")
    assert len(rows) == 2 and chk.drawn == [(rows, tmp_path / "p")]


# ------------------------------------------------------------------------------ next_baseline

def test_next_baseline_keeps_slower_and_noisy_cases_unless_slower_ones_are_accepted():
    base = run(case(KEY, tight(3e-3)), case(OTHER, tight(1e-3)))
    new = run(case(KEY, tight(9e-3)), case(OTHER, tight(1e-3)[::-1]))
    rep = compare.compare_runs(compare.from_run(base), compare.from_run(new))
    assert [r.key for r in rep.slower] == [KEY]
    merged, kept = history.next_baseline(base, new, rep)
    assert merged.results == (base.results[0], new.results[1]) and kept == 1
    merged, kept = history.next_baseline(base, new, rep, accept_slower=True)
    assert merged.results == new.results and kept == 0


def test_check_measures_again_with_its_console_and_rounds_and_compares_again_with_force(tmp_path, monkeypatch):
    # a baseline of another CPU model (--force), a case 3x slower that recovers when measured again
    # on its own (--no-interleave: without the probe beside it)
    new = run(case(KEY, tight(9e-3)), cpu={"model": "AMD EPYC 7B13", "cores": 2})
    chk = Check(tmp_path, monkeypatch, new, again=run(case(KEY, tight(3e-3))))
    chk.baseline(run(case(KEY, tight(3e-3)), cpu={"model": "AMD EPYC 7B13 @ 2.45GHz", "cores": 2}))
    con = Console()
    assert chk(out=tmp_path / "r1.json", force=True, console=con, run_args=("--no-interleave",)) == 0
    assert [c[2]["interleave"] for c in chk.again.calls] == [False]
    assert "measuring 1 slower case(s) again (1 of 2)" in con.said


def test_check_measures_again_beside_the_probe_by_default(tmp_path, monkeypatch):
    chk = Check(tmp_path, monkeypatch, run(case(KEY, tight(9e-3))), again=run(case(KEY, tight(3e-3))))
    chk.baseline(run(case(KEY, tight(3e-3))))
    assert chk(out=tmp_path / "r1.json", run_args=("--ops", "relu")) == 0
    assert [c[2]["interleave"] for c in chk.again.calls] == [True]


def test_check_writes_the_markdown_and_the_verdicts_where_asked_twice_over(tmp_path, monkeypatch):
    r = run(case(KEY, tight(3e-3)), case(OTHER, tight(1e-3)))
    chk = Check(tmp_path, monkeypatch, r, r)
    base_path = chk.baseline(r)
    md, report = tmp_path / "a" / "b" / "check.md", tmp_path / "c" / "d" / "verdicts.json"   # parents made
    for i in range(2):                                                                  # then they exist
        con = Console()
        out = tmp_path / f"r{i}.json"
        assert chk(out=out, markdown=md, report_json=report, console=con) == 0
        rep = compare.compare_runs(compare.load(base_path), compare.from_run(r, str(out)))
        assert md.read_text() == compare.markdown(rep)
        assert f"wrote {md}" in con.said
        text = report.read_text()
        assert text == json.dumps({"before_confirm": compare.as_dict(rep), "final": compare.as_dict(rep)}, indent=1)


def test_check_update_baseline_says_what_it_kept_or_accepted(tmp_path, monkeypatch):
    slow = run(case(KEY, tight(9e-3)), case(OTHER, tight(1e-3)[::-1]))
    base = run(case(KEY, tight(3e-3)), case(OTHER, tight(1e-3)))
    chk = Check(tmp_path, monkeypatch, slow, slow, again=slow)
    path = chk.baseline(base)
    con = Console()
    assert chk(out=tmp_path / "r1.json", update_baseline=True, console=con) == 1
    assert con.said[-1] == (f"this run is the new baseline ({path}), but for 1 slower or noisy case(s), "
                            "whose earlier measurement stays")
    assert results.load(path).results == (base.results[0], slow.results[1])
    con = Console()
    assert chk(out=tmp_path / "r2.json", update_baseline=True, accept_slower=True, console=con) == 0
    assert con.said[-1] == (f"this run is the new baseline ({path}), its 1 slower case(s) accepted (an "
                            "intentional slowdown); 0 noisy case(s) keep their earlier measurement")
    assert results.load(path).results == slow.results
