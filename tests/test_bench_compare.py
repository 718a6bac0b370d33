"""bench compare: verdicts on recorded sample sets (equal, shifted 5 %, 30 %, 2x, wide noise,
machine-wide drift), the table, geometric means and Markdown, environment warnings, and bad input
(missing, corrupt, truncated, other-schema files, no case in common) as one line and exit code 2.

Every sample set is drawn from a fixed seed, so nothing here depends on how busy the machine is.
"""

from __future__ import annotations

import copy
import os
import dataclasses
import json
import math

import numpy as np
import pytest

from bench.cli import check as check_cmd
from bench.cli import main as cli
from bench.analysis import compare
from bench.model import results, stats
from bench.model.cases import UsageError


def samples(median: float, rel_sd: float, n: int = 60, seed: int = 0) -> list[float]:
    """Timing-like samples: log-normal around `median`, with a few slow outliers as real runs have."""
    rng = np.random.default_rng(seed)
    x = median * np.exp(rng.normal(0, rel_sd, n))
    x[rng.choice(n, n // 20, replace=False)] *= 1.5
    return x.tolist()


def judge(base, new, **kw):
    return compare.judge(base, new, **kw).verdict


# ------------------------------------------------------------------------------ one case

def test_equal_distributions_are_the_same():
    assert judge(samples(1e-3, 0.02, seed=1), samples(1e-3, 0.02, seed=2)) == compare.SAME


def test_a_5_percent_shift_is_below_the_threshold_even_when_significant():
    base, new = samples(1e-3, 0.01, n=400, seed=1), samples(1.05e-3, 0.01, n=400, seed=2)
    c = compare.judge(base, new)
    assert c.p < 1e-6                 # Mann-Whitney alone would call it
    assert c.verdict == compare.SAME
    assert c.ratio == pytest.approx(1.05, rel=0.01)


def test_a_30_percent_shift_is_slower_and_the_reverse_faster():
    base, new = samples(1e-3, 0.02, seed=1), samples(1.3e-3, 0.02, seed=2)
    assert judge(base, new) == compare.SLOWER
    assert judge(new, base) == compare.FASTER


def test_2x_is_slower():
    c = compare.judge(samples(1e-3, 0.05, seed=3), samples(2e-3, 0.05, seed=4))
    assert c.verdict == compare.SLOWER and c.ratio == pytest.approx(2, rel=0.05)


def test_threshold_alone_is_not_enough_mann_whitney_must_agree():
    # medians 20 % apart but only 3 samples each: the test cannot reject equality at alpha 0.01
    c = compare.judge([1.0, 1.01, 0.99], [1.2, 1.21, 1.19])
    assert c.ratio > 1.1 and c.p > 0.01 and c.verdict == compare.SAME


def test_wide_noise_is_noisy_unless_the_change_is_wider_still():
    base = samples(1e-3, 0.25, n=200, seed=5)
    assert stats.summarize(base).rel_iqr > 0.10
    assert judge(base, samples(1e-3, 0.25, n=200, seed=6)) == compare.NOISY
    assert judge(base, samples(1.15e-3, 0.25, n=200, seed=7)) == compare.NOISY
    assert judge(base, samples(2e-3, 0.25, n=200, seed=8)) == compare.SLOWER


def test_threshold_is_symmetric_in_log_space():
    base = samples(1e-3, 0.005, n=100, seed=1)
    assert judge(base, samples(1e-3 / 1.12, 0.005, n=100, seed=2)) == compare.FASTER
    assert judge(base, samples(1e-3 / 1.08, 0.005, n=100, seed=2)) == compare.SAME
    assert judge(base, samples(1e-3 / 1.08, 0.005, n=100, seed=2), threshold=0.05) == compare.FASTER


def test_identical_constant_samples_do_not_crash():
    c = compare.judge([1e-3] * 20, [1e-3] * 20)
    assert c.verdict == compare.SAME and c.p == 1.0 and c.ratio == 1.0


# ------------------------------------------------------------------------------ run files

CPU = {"model": "AMD EPYC", "cores": 2, "llc_bytes": 2**25}


def env(**over) -> dict:
    e = {"host": "vm", "python": "3.11.7", "profile": "quick", "cpu": dict(CPU), "gpu": None,
         "numpy": {"version": "2.4.6", "blas": [{"user_api": "blas", "internal_api": "openblas",
                                                 "version": "0.3.30", "architecture": "Haswell", "num_threads": 2}]},
         "numba": {"version": "0.68.1", "threads": 2}, "packages": {"numpy": "2.4.6", "numba": "0.68.1"},
         "git": {"commit": "abc", "dirty": False}}
    e.update(over)
    return e


def entry(op, backend, size, s, status="ok", device="cpu") -> results.CaseResult:
    if status != "ok":
        return results.CaseResult(op, backend, device, "float32", size, status, reason="broken")
    return results.CaseResult(op, backend, device, "float32", size, status, samples_s=s, median_s=float(np.median(s)),
                              n=len(s))


def make_run(cases: dict, peak: float = 40.0, created="2026-11-28T12:00:00+00:00", **env_over) -> results.Run:
    """cases: (op, backend, size) -> samples."""
    return results.Run(env=env(**env_over), peaks={"cpu": {"gbps": peak, "method": "copy"}}, created=created,
                       results=[entry(op, be, n, s) for (op, be, n), s in cases.items()])


CASES = [("relu", "numpy", 2**12, 2e-6), ("relu", "numba_cpu", 2**12, 7e-7), ("relu", "numpy", 2**25, 1e-2),
         ("relu", "numba_cpu", 2**25, 3e-3), ("sigmoid", "numpy", 2**25, 3e-2), ("sigmoid", "numba_cpu", 2**25, 3e-3)]


def base_cases(seed=0, scale=1.0, rel_sd=0.02):
    return {(op, be, n): samples(t * scale, rel_sd, seed=seed + i) for i, (op, be, n, t) in enumerate(CASES)}


def save(tmp_path, name, run) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(run if isinstance(run, dict) else run.to_json()))
    return str(p)


def test_a_planted_regression_among_equal_cases(tmp_path, capsys):
    base = make_run(base_cases(seed=0))
    new_cases = base_cases(seed=100)
    new_cases[("relu", "numba_cpu", 2**25)] = samples(3e-3 * 1.3, 0.02, seed=999)
    rc = cli.main(["compare", save(tmp_path, "a.json", base), save(tmp_path, "b.json", make_run(new_cases)),
                   "--markdown", str(tmp_path / "cmp.md")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "1 slower, 0 faster, 0 noisy, 5 same" in out
    # sorted by change: the slower case is the first row of the table
    first_row = next(line for line in out.splitlines() if "slower" in line and "relu" in line)
    assert "numba_cpu" in first_row and "2^25" in first_row
    md = (tmp_path / "cmp.md").read_text()
    assert md.startswith("### actbench compare: **1 slower**")
    assert "| 🔴 slower | relu numba_cpu float32 2^25 (33.6M) |" in md
    assert "| cpu | numba_cpu | 3 |" in md and "| cpu | numpy | 3 |" in md


def test_nothing_slower_exits_0(tmp_path, capsys):
    rc = cli.main(["compare", save(tmp_path, "a.json", make_run(base_cases(0))),
                   save(tmp_path, "b.json", make_run(base_cases(100)))])
    assert rc == 0
    assert "0 slower" in capsys.readouterr().out


def test_machine_wide_drift_cancels_when_normalised_by_the_copy_peak(tmp_path):
    base = compare.from_run(make_run(base_cases(0), peak=40.0))
    # the whole machine 15 % slower: every kernel and the copy peak measured in the same run
    drifted = compare.from_run(make_run(base_cases(100, scale=1.15), peak=40.0 / 1.15))
    raw = compare.compare_runs(base, drifted, normalise="raw")
    peak = compare.compare_runs(base, drifted, normalise="peak")
    assert len(raw.slower) == len(CASES)
    assert peak.slower == [] and peak.counts()[compare.SAME] == len(CASES)
    assert peak.drift["cpu"] == pytest.approx(1 / 1.15)
    # and a real 2x regression still shows through the drift
    cases = base_cases(100, scale=1.15)
    cases[("relu", "numpy", 2**12)] = samples(2e-6 * 2 * 1.15, 0.02, seed=7)
    peak = compare.compare_runs(base, compare.from_run(make_run(cases, peak=40.0 / 1.15)), normalise="peak")
    assert [compare.case_label(r.key) for r in peak.slower] == ["relu numpy float32 2^12 (4.10k)"]


def test_auto_normalises_by_the_probe_beside_a_case_and_leaves_the_others_raw():
    big = [k for k in base_cases(0) if k[2] == 2**25]

    def run(seed, scale_big, probe_gbps, run_peak):
        cases = {k: [t * (scale_big if k in big else 1.0) for t in v] for k, v in base_cases(seed).items()}
        r = make_run(cases, peak=run_peak)
        return dataclasses.replace(r, results=tuple(
            dataclasses.replace(e, peak_gbps=probe_gbps) if (e.op, e.backend, e.size) in big else e for e in r.results))

    # memory bandwidth 40 % lower while the large cases ran, and their probes saw it; the run's own
    # peak (the fastest probe of the run) did not move
    base, busy = compare.from_run(run(0, 1.0, 30.0, 40.0)), compare.from_run(run(100, 1 / 0.6, 18.0, 40.0))
    auto = compare.compare_runs(base, busy)
    assert auto.normalise == "auto" and auto.slower == []
    assert {r.change.ratio == r.change.raw_ratio for r in auto.rows if r.key[4] != 2**25} == {True}
    assert len(compare.compare_runs(base, busy, normalise="raw").slower) == len(big)
    assert len(compare.compare_runs(base, busy, normalise="peak").slower) == len(big)


def test_auto_pairs_each_sample_with_the_probe_of_its_round():
    # A VM whose memory switches between a fast and a slow phase (1.7x, as seen here) in the middle
    # of the new run: the case and the probe beside it slow down in the same rounds. The probe's
    # median alone (peak_gbps) cannot undo a split sample set; dividing round by round can.
    rng = np.random.default_rng(5)
    n, t, copy = 60, 1e-2, 3e-3

    def case(phase, work=1.0, seed=0):
        r = np.random.default_rng(seed)
        probe = copy * phase * np.exp(r.normal(0, 0.02, n))
        return (t * work * phase * np.exp(r.normal(0, 0.02, n))).tolist(), probe.tolist()

    def run(phase, work=1.0, seed=0):
        s, p = case(phase, work, seed)
        e = results.CaseResult("relu", "numpy", "cpu", "float32", 2**25, "ok", samples_s=s, median_s=float(np.median(s)),
                               n=n, peak_gbps=2 * 2**27 / float(np.median(p)) / 1e9, probe_samples_s=p)
        return compare.from_run(results.Run(env=env(), peaks={"cpu": {"gbps": 40.0, "method": "copy"}},
                                            created="2026-11-28T12:00:00+00:00", results=[e]))

    steady = np.ones(n)
    split = np.where(rng.permutation(n) < n // 2, 1.0, 1.7)       # half the rounds in the slow phase
    base = run(steady)
    same = compare.compare_runs(base, run(split, seed=1))
    assert same.rows[0].change.verdict == compare.SAME, same.rows[0].change
    assert same.rows[0].change.raw_ratio > 1.1                     # the raw medians did move
    # without the pairs (a file from before them), the same runs are not "same"
    unpaired = [dataclasses.replace(x, probe_samples={}) for x in (base, run(split, seed=1))]
    assert compare.compare_runs(*unpaired).rows[0].change.verdict != compare.SAME
    # a case without pairs in a file that has them (a kernel on one thread) is compared raw, not
    # by the probe's median
    with_one = [dataclasses.replace(x, samples={**x.samples, ("relu", "numpy2") + k[2:]: np.ones(20) * f},
                                    case_peaks={**x.case_peaks, ("relu", "numpy2") + k[2:]: g})
                for x, f, g in ((base, 1.0, 10.0), (run(split, seed=1), 1.0, 20.0)) for k in [next(iter(x.samples))]]
    row = [r for r in compare.compare_runs(*with_one).rows if r.key[1] == "numpy2"][0]
    assert row.change.ratio == row.change.raw_ratio == 1.0 and row.change.verdict == compare.SAME
    # and a real 1.3x regression still shows through the phase change
    slower = compare.compare_runs(base, run(split, work=1.3, seed=2))
    assert slower.rows[0].change.verdict == compare.SLOWER
    assert slower.rows[0].change.ratio == pytest.approx(1.3, rel=0.03)


def _probed(samples_s, probe_s, backend="numba_cpu", peak_gbps=None):
    """A compare.Loaded of one relu 2^25 case with the copy probe's samples beside it (None: a
    file from before them, with only the probe's median as peak_gbps)."""
    e = results.CaseResult("relu", backend, "cpu", "float32", 2**25, "ok", samples_s=samples_s,
                           median_s=float(np.median(samples_s)), n=len(samples_s), probe_samples_s=probe_s,
                           peak_gbps=peak_gbps)
    return compare.from_run(results.Run(env=env(), peaks={"cpu": {"gbps": 40.0, "method": "copy"}},
                                        created="2026-11-28T12:00:00+00:00", results=[e]))


def test_each_sample_is_divided_by_the_probe_sample_of_its_own_round():
    # Each round's case sample is exactly 2 (base) or 2.6 (new) copies of that round's probe sample,
    # the probe's time changing from round to round (the memory phases): divided round by round, the
    # ratio is exactly 1.3 with no spread at all. Divided by another round's probe (the previous
    # one, say), the rounds' changes no longer cancel: the medians may still agree, the spread not.
    rounds = np.array([1.0, 1.7, 1.1, 1.6, 1.0, 1.8, 1.2, 1.7, 1.05, 1.65] * 3) * 3e-3
    base = _probed((2.0 * rounds).tolist(), rounds.tolist())
    new_probe = rounds[::-1]
    new = _probed((2.6 * new_probe).tolist(), new_probe.tolist())
    c = compare.compare_runs(base, new).rows[0].change
    assert c.ratio == pytest.approx(1.3, rel=1e-12)
    assert c.spread == pytest.approx(0.0, abs=1e-12)
    assert c.verdict == compare.SLOWER


def test_an_old_baseline_against_a_run_with_per_round_probes_is_compared_raw():
    # The baseline is a file from before the per-round samples (only the probe's median, 10 GB/s);
    # the new run has them but the case has no pairs in both: it is compared on its raw times, never
    # scaled by the two probes' medians (which would read the 2x faster probe as a 2x slowdown).
    s = samples(1e-2, 0.02, seed=1)
    base = _probed(s, None, peak_gbps=10.0)
    new = _probed(samples(1e-2, 0.02, seed=2), samples(5e-3, 0.02, seed=3), peak_gbps=20.0)
    assert not compare.median_scaled(base, new) and compare.median_scaled(base, base)
    c = compare.compare_runs(base, new).rows[0].change
    assert c.ratio == c.raw_ratio
    assert c.verdict == compare.SAME


def test_a_normalised_change_the_measured_times_do_not_show_is_noisy():
    # A/A across a memory phase change, as from a fresh clone here: the probe ran 38 % faster in the
    # new run, the kernel (not bound by memory like the copy) 32 % faster: normalised +10 %, raw
    # -32 %; or a kernel the phase did not touch at all (torch's matmul: raw -2 %, normalised -40 %)
    base, new = samples(1.0, 0.02, seed=1), samples(1.0, 0.02, seed=2)
    assert compare.judge(base, [t * 1.10 for t in new], raw_ratio=0.68).verdict == compare.NOISY
    assert compare.judge(base, [t * 0.60 for t in new], raw_ratio=0.98).verdict == compare.NOISY
    # a change the measured times show too stands, normalised or not
    assert compare.judge(base, [t * 1.30 for t in new], raw_ratio=1.25).verdict == compare.SLOWER
    assert compare.judge(base, [t * 1.30 for t in new]).verdict == compare.SLOWER


def test_probe_samples_that_do_not_pair_are_bad_input(tmp_path):
    e = results.CaseResult("relu", "numpy", "cpu", "float32", 2**25, "ok", samples_s=[1.0, 1.1], median_s=1.05, n=2,
                           probe_samples_s=[0.5])
    with pytest.raises(UsageError, match="do not pair"):
        compare.from_run(results.Run(env=env(), peaks={}, created="x", results=[e]))


def test_geometric_means_per_device_and_backend():
    base = compare.from_run(make_run({("relu", "numpy", 1024): [1.0] * 10, ("sigmoid", "numpy", 1024): [1.0] * 10,
                                      ("relu", "numba_cpu", 1024): [1.0] * 10}))
    new = compare.from_run(make_run({("relu", "numpy", 1024): [2.0] * 10, ("sigmoid", "numpy", 1024): [0.5] * 10,
                                     ("relu", "numba_cpu", 1024): [1.21] * 10}))
    g = compare.compare_runs(base, new).geomeans()
    assert g[("cpu", "numpy")] == pytest.approx((1.0, 1.0, 2))
    assert g[("cpu", "numba_cpu")][0] == pytest.approx(1.21)


def test_cases_in_only_one_run_are_listed(tmp_path, capsys):
    a, b = base_cases(0), base_cases(100)
    del a[("relu", "numpy", 2**12)]
    del b[("sigmoid", "numpy", 2**25)]
    rc = cli.main(["compare", save(tmp_path, "a.json", make_run(a)), save(tmp_path, "b.json", make_run(b))])
    out = capsys.readouterr().out
    assert rc == 0
    assert "only in the base run: sigmoid numpy float32 2^25 (33.6M)" in out
    assert "only in the new run: relu numpy float32 2^12 (4.10k)" in out


def test_a_case_that_failed_in_the_new_run_is_a_warning(tmp_path):
    new = make_run(base_cases(100))
    new = dataclasses.replace(new, results=(entry("relu", "numpy", 2**12, None, status="failed"), *new.results[1:]))
    rep = compare.compare_runs(compare.from_run(make_run(base_cases(0))), compare.from_run(new))
    assert any("ok in the base run, failed in the new one" in w for w in rep.warnings)
    assert len(rep.rows) == len(CASES) - 1


# ------------------------------------------------------------------------------ environments

def test_different_blas_and_packages_are_warnings(tmp_path, capsys):
    other = env()
    other["numpy"]["blas"][0]["version"] = "0.3.31"
    b = make_run(base_cases(100), packages={"numpy": "2.4.6", "numba": "0.69.0"}, numpy=other["numpy"])
    rc = cli.main(["compare", save(tmp_path, "a.json", make_run(base_cases(0))), save(tmp_path, "b.json", b)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "warning: BLAS differs: openblas 0.3.30 Haswell 2 threads -> openblas 0.3.31 Haswell 2 threads" in out
    assert "warning: numba differs: 0.68.1 -> 0.69.0" in out


def test_another_cpu_model_refuses_without_force(tmp_path, capsys):
    b = make_run(base_cases(100), cpu={"model": "Intel Xeon", "cores": 2})
    paths = [save(tmp_path, "a.json", make_run(base_cases(0))), save(tmp_path, "b.json", b)]
    assert cli.main(["compare", *paths]) == 2
    err = capsys.readouterr().err
    assert "cpu model differs: AMD EPYC -> Intel Xeon" in err and "--force" in err
    assert err.count("\n") == 1
    assert cli.main(["compare", *paths, "--force"]) == 0
    assert "warning: cpu model differs" in capsys.readouterr().out


def test_another_gpu_model_refuses_but_a_missing_gpu_only_warns():
    gpu = {"name": "NVIDIA H100", "driver": 12080, "cuda_runtime": 12080}
    a = compare.from_run(make_run(base_cases(0), gpu=gpu))
    with pytest.raises(UsageError, match="gpu model differs: NVIDIA H100 -> NVIDIA A100"):
        compare.compare_runs(a, compare.from_run(make_run(base_cases(1), gpu=dict(gpu, name="NVIDIA A100"))))
    rep = compare.compare_runs(a, compare.from_run(make_run(base_cases(1))))
    assert "gpu model differs: NVIDIA H100 -> none" in rep.warnings


# ------------------------------------------------------------------------------ bad input

def _good(tmp_path) -> str:
    return save(tmp_path, "good.json", make_run(base_cases(0)))


def _truncated(tmp_path) -> str:
    text = json.dumps(make_run(base_cases(0)).to_json())
    p = tmp_path / "truncated.json"
    p.write_text(text[: len(text) // 2])
    return str(p)


def _corrupt(tmp_path) -> str:
    p = tmp_path / "corrupt.json"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    return str(p)


def _other_schema(tmp_path) -> str:
    return save(tmp_path, "other.json", {"machine_info": {}, "benchmarks": []})   # a pytest-benchmark file


def _bad_samples(tmp_path) -> str:
    run = make_run(base_cases(0)).to_json()
    run["results"][0]["samples_s"] = [1e-3, -1.0]
    return save(tmp_path, "bad_samples.json", run)


def _unknown_field(tmp_path) -> str:
    run = make_run(base_cases(0)).to_json()
    run["results"][0]["colour"] = "red"
    return save(tmp_path, "unknown_field.json", run)


def _nothing_in_common(tmp_path) -> str:
    return save(tmp_path, "disjoint.json", make_run({("tanh", "numpy", 7): samples(1e-3, 0.01)}))


@pytest.mark.parametrize("make,message", [
    (lambda t: str(t / "missing.json"), "no such file"),
    (_corrupt, "not valid JSON"),
    (_truncated, "not valid JSON"),
    (_other_schema, "not an actbench results file"),
    (_bad_samples, "malformed case entry"),
    (_unknown_field, "unknown fields ['colour']"),
    (_nothing_in_common, "no measured case in common"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    assert cli.main(["compare", _good(tmp_path), make(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--threshold", "ten"], "malformed threshold 'ten'"),
    (["--threshold", "0%"], "threshold must be above 0"),
    (["--alpha", "2"], "--alpha must be between 0 and 1"),
    (["--normalise", "cpu"], "invalid choice"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    good = _good(tmp_path)
    assert cli.main(["compare", good, good, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_threshold_parsing():
    assert compare.parse_threshold("10%") == pytest.approx(0.10)
    assert compare.parse_threshold("0.15") == pytest.approx(0.15)
    assert compare.parse_threshold(" 25 % ".replace(" ", "")) == pytest.approx(0.25)


def test_the_committed_example_run_compares_with_itself(capsys):
    from pathlib import Path
    example = sorted(Path("reports/example").glob("*.json"))
    assert example, "reports/example holds a run"
    assert cli.main(["compare", str(example[0]), str(example[0])]) == 0
    out = capsys.readouterr().out
    assert " 0 slower, 0 faster" in out


def test_as_dict_is_json():
    rep = compare.compare_runs(compare.from_run(make_run(base_cases(0))), compare.from_run(make_run(base_cases(1))))
    d = json.loads(compare.dumps(rep))
    assert d["counts"]["slower"] == 0 and len(d["rows"]) == len(CASES)
    assert all(math.isfinite(r["ratio"]) for r in d["rows"])
    assert copy.deepcopy(d) == d


# ------------------------------------------------------------------------------ history (the CI gate's memory)

def test_machine_names_say_cpu_cores_and_gpu_not_the_host():
    from bench.analysis import history
    assert history.machine_name(env()) == "amd-epyc-2c"
    e = env(cpu={"model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "cores": 16},
            gpu={"name": "NVIDIA H100 80GB HBM3"}, host="vm")
    assert history.machine_name(e) == "intel-xeon-platinum-8480-16c-nvidia-h100-80gb-hbm3"
    assert str(history.baseline_path(env(), "reports/baselines")) == "reports/baselines/amd-epyc-2c.json"


def test_history_rows_append_read_and_plot(tmp_path):
    from bench.analysis import history
    path = tmp_path / "history.jsonl"
    run = make_run(base_cases(0))
    run = run.adding(entry("tanh", "numpy", 64, None, status="skipped"))
    assert history.append(run, path) == len(CASES)          # one row per measured case
    later = make_run(base_cases(1), created="2026-11-29T12:00:00+00:00")
    history.append(later, path)
    with path.open("a") as f:
        f.write('{"op": "relu", "median_')                  # a check killed mid-write
    rows = history.read(path)
    assert len(rows) == 2 * len(CASES)
    r = rows[0]
    assert (r["commit"], r["machine"], r["op"], r["backend"], r["size"]) == ("abc", "amd-epyc-2c", "relu", "numpy", 4096)
    assert r["median_s"] == pytest.approx(np.median(base_cases(0)[("relu", "numpy", 4096)]))
    images = history.plot(rows, tmp_path / "plots")
    assert sorted(p.name for p in images) == ["relu.png", "sigmoid.png"]
    assert all(p.stat().st_size > 1000 for p in images)


def test_confirm_keeps_the_fastest_measurement_of_a_slower_case(monkeypatch):
    from bench.analysis import history
    from bench.run import runner
    slow_key = ("relu", "numba_cpu", 2**25)
    transient, real = base_cases(100), base_cases(100)
    transient[slow_key] = samples(3e-3 * 3, 0.02, seed=11)        # met a busy moment
    base = compare.from_run(make_run(base_cases(0)))
    measured = []

    def again(prof, todo, seed=0, interleave=True):
        measured.append([c.name for c in todo])
        return make_run({(c.op, c.backend, c.size): samples(3e-3, 0.02, seed=12) for c in todo})

    monkeypatch.setattr(runner, "run_cases", again)
    new = make_run(transient)
    rep = compare.compare_runs(base, compare.from_run(new))
    assert [r.key[:2] for r in rep.slower] == [("relu", "numba_cpu")]
    fixed = history.confirm(base, new, rep, "quick", 0, attempts=2)
    assert measured == [["relu numba_cpu float32 2**25"]]          # once: no longer slower after it
    assert compare.compare_runs(base, compare.from_run(fixed)).slower == []

    # a real regression stays slower however often it is measured again
    real[slow_key] = samples(3e-3 * 1.5, 0.02, seed=13)
    monkeypatch.setattr(runner, "run_cases", lambda prof, todo, seed=0, interleave=True: make_run(
        {(c.op, c.backend, c.size): samples(3e-3 * 1.5, 0.02, seed=14) for c in todo}))
    new = make_run(real)
    rep = compare.compare_runs(base, compare.from_run(new))
    kept = history.confirm(base, new, rep, "quick", 0, attempts=2)
    assert len(compare.compare_runs(base, compare.from_run(kept)).slower) == 1


def test_the_planted_backend_is_correct_and_registers_in_its_own_process():
    # a subprocess: registering a backend here would change the kernel matrix of every other test
    import subprocess
    import sys
    code = ("import numpy as np, kernels, tests.planted; x = np.linspace(-3, 3, 1001).astype('float32'); "
            "assert np.array_equal(kernels.get('relu', 'planted')(x), np.maximum(x, 0)); "
            "assert np.allclose(kernels.get('sigmoid', 'planted')(x), 1 / (1 + np.exp(-x)), rtol=1e-6); print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env={**os.environ, "ACTBENCH_PLANTED_FACTOR": "1.3"})
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_the_planted_slowdown_is_the_factor_of_the_call_it_follows():
    # a fake clock: the NumPy call takes 5 ticks; the wait lasts until factor x 5 ticks after the
    # start, whatever the size (the extra pass it replaced was 1.08x at 2**12 for factor 1.3)
    import subprocess
    import sys
    code = ("import itertools, numpy as np, tests.planted as P\n"
            "for f, want in ((1.0, 3), (1.3, 4), (2.0, 7)):\n"
            "    ticks = iter([0] + list(range(5, 100)))\n"
            "    reads = []\n"
            "    def clock():\n"
            "        t = next(ticks); reads.append(t); return t\n"
            "    k = P._slowed('relu', f, clock)\n"
            "    assert np.array_equal(k(np.array([-1.0, 2.0], 'float32')), [0, 2])\n"
            "    assert len(reads) == want and reads[-1] >= f * 5, (f, reads)\n"
            "print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_sparse_matmul_cases_are_told_apart_by_shape_batch_sparsity_and_pattern():
    from bench.analysis import history
    from bench.model.cases import Case

    def mm(sparsity, s):
        return results.CaseResult("sparse_matmul", "scipy_csr", "cpu", "float32", 2**24, "ok", samples_s=s,
                                  median_s=float(np.median(s)), n=len(s), kind="matmul",
                                  axes={"shape": "4096x4096", "batch": 64, "sparsity": sparsity, "pattern": "relu"})
    base = compare.from_run(results.Run(env=env(), results=[mm(0.5, samples(1e-3, 0.01)), mm(0.9, samples(4e-4, 0.01))]))
    new = compare.from_run(results.Run(env=env(), results=[mm(0.5, samples(1e-3, 0.01, seed=3)),
                                                           mm(0.9, samples(8e-4, 0.01, seed=4))]))
    rep = compare.compare_runs(base, new)
    assert [r.label for r in rep.slower] == ["sparse_matmul scipy_csr float32 shape 4096x4096 batch 64 sparsity 0.9 "
                                             "pattern relu"]
    case = history._case(Case, rep.slower[0].key)
    assert case.axis("shape") == "4096x4096" and case.axis("sparsity") == 0.9 and case.axis("pattern") == "relu"


def test_confirm_judges_fastest_as_compare_will_with_the_probe_beside():
    from bench.analysis import history
    slow_mem = results.CaseResult("relu", "numpy", "cpu", "float32", 2**25, "ok", median_s=2e-2, peak_gbps=10.0)
    fast_raw = results.CaseResult("relu", "numpy", "cpu", "float32", 2**25, "ok", median_s=1.5e-2, peak_gbps=30.0)
    # raw, 15 ms is faster; normalised by the memory bandwidth each met, 20 ms x 10 GB/s is the better run
    assert history._cost(fast_raw, slow_mem, "raw") < history._cost(slow_mem, fast_raw, "raw")
    assert history._cost(slow_mem, fast_raw, "auto") < history._cost(fast_raw, slow_mem, "auto")


def test_update_baseline_replaces_case_by_case_but_not_slower_or_noisy_cases(tmp_path, monkeypatch):
    noisy_key, slow_key = ("relu", "numpy", 2**25), ("sigmoid", "numba_cpu", 2**25)
    second = base_cases(1)
    second[noisy_key] = samples(1e-2, 0.3, seed=7)                    # 30 % spread: noisy
    second[slow_key] = samples(3e-3 * 2, 0.02, seed=8)                # 2x: slower
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), make_run(second))
    kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p", confirm_attempts=0,
              update_baseline=True)
    assert check_cmd.check(out=tmp_path / "r0.json", **kw) == 0             # no baseline yet: made
    base_file = next((tmp_path / "b").glob("*.json"))
    first = {compare.case_key(e): e for e in results.load(base_file).results}
    assert check_cmd.check(out=tmp_path / "r1.json", **kw) == 1             # the 2x case: exit 1
    now = {compare.case_key(e): e for e in results.load(base_file).results}
    new = {compare.case_key(e): e for e in results.load(tmp_path / "r1.json").results}
    assert set(now) == set(first)
    for k, e in now.items():
        keep = k[:2] + (k[4],) in (noisy_key, slow_key)
        assert e == (first[k] if keep else new[k]), k


def test_confirm_keeps_the_first_measurement_when_the_again_is_worse_and_noisier(monkeypatch):
    # A real 1.3x regression, measured again at 1.35x with a 30 % spread: the fastest measurement
    # (the first) stays and the case stays slower. Keeping the latest would make it noisy (its spread
    # wider than the change) and let CI pass.
    from bench.analysis import history
    from bench.run import runner
    slow_key = ("relu", "numba_cpu", 2**25)
    base = compare.from_run(make_run(base_cases(0)))
    cases = base_cases(100)
    cases[slow_key] = samples(3e-3 * 1.3, 0.02, seed=11)
    new = make_run(cases)
    worse = samples(3e-3 * 1.35, 0.3, seed=12)
    assert compare.judge(base.samples[slow_key[:2] + ("cpu", "float32", 2**25, ())],
                         worse).verdict == compare.NOISY
    again = []

    def run_cases(prof, todo, seed=0, interleave=True):
        again.append([c.name for c in todo])
        return make_run({(c.op, c.backend, c.size): worse for c in todo})

    monkeypatch.setattr(runner, "run_cases", run_cases)
    rep = compare.compare_runs(base, compare.from_run(new))
    assert [r.key[:2] for r in rep.slower] == [slow_key[:2]]
    kept = history.confirm(base, new, rep, "quick", 0, attempts=2)
    assert len(again) == 2                                            # still slower after the first
    assert kept.results == new.results                                # the fastest: the first measurement
    final = compare.compare_runs(base, compare.from_run(kept))
    assert [r.key[:2] for r in final.slower] == [slow_key[:2]]


def _fake_check_runs(monkeypatch, *runs) -> list:
    """check_cmd.check's own `bench run` replaced by the given runs, one per call, each saved where
    check asks (as the real one does), and its plots by a record of what it was asked to draw
    (returned: one (rows, folder) per call). matplotlib's PNGs cost a second per check, and `make
    mutate` runs these tests for every mutant of check(); test_history_rows_append_read_and_plot
    draws them."""
    from bench.analysis import history
    todo = iter(runs)
    drawn = []

    def fake_run(profile, out, run_args):
        r = next(todo)
        results.save(r, out)
        return r
    monkeypatch.setattr(check_cmd, "_run", fake_run)
    monkeypatch.setattr(history, "plot", lambda rows, folder: drawn.append((rows, folder)) or [])
    return drawn


def test_check_exits_with_the_verdict_after_confirm(tmp_path, monkeypatch):
    # check() through confirm: a case that met a busy moment (3x) is measured again, recovers, and the
    # exit code is the final verdict's (0), not the first comparison's (1).
    from bench.run import runner
    slow_key = ("relu", "numba_cpu", 2**25)
    transient = base_cases(100)
    transient[slow_key] = samples(3e-3 * 3, 0.02, seed=11)
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), make_run(transient))
    monkeypatch.setattr(runner, "run_cases", lambda prof, todo, seed=0, interleave=True: make_run(
        {(c.op, c.backend, c.size): samples(3e-3, 0.02, seed=12) for c in todo}))
    kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p")
    assert check_cmd.check(out=tmp_path / "r0.json", update_baseline=True, **kw) == 0     # no baseline yet: made
    report = tmp_path / "verdicts.json"
    assert check_cmd.check(out=tmp_path / "r1.json", report_json=report, **kw) == 0
    verdicts = json.loads(report.read_text())
    assert verdicts["before_confirm"]["counts"]["slower"] == 1 and verdicts["final"]["counts"]["slower"] == 0
    # the saved run holds the measurement that cleared it
    saved = {compare.case_key(e): e for e in results.load(tmp_path / "r1.json").results}
    assert saved[("relu", "numba_cpu", "cpu", "float32", 2**25) + ((),)].samples_s == \
        tuple(samples(3e-3, 0.02, seed=12))


def test_update_baseline_after_a_subset_run_keeps_the_cases_it_did_not_measure(tmp_path, monkeypatch):
    # `bench-check --run-args "--ops relu"` on main: the sigmoid cases of the baseline were not
    # measured; they stay in it as they were, the relu cases are replaced.
    relu_only = {k: v for k, v in base_cases(1).items() if k[0] == "relu"}
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), make_run(relu_only))
    kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p", confirm_attempts=0,
              update_baseline=True)
    assert check_cmd.check(out=tmp_path / "r0.json", **kw) == 0
    base_file = next((tmp_path / "b").glob("*.json"))
    first = {compare.case_key(e): e for e in results.load(base_file).results}
    assert check_cmd.check(out=tmp_path / "r1.json", **kw) == 0
    now = {compare.case_key(e): e for e in results.load(base_file).results}
    subset = {compare.case_key(e): e for e in results.load(tmp_path / "r1.json").results}
    assert set(now) == set(first) and len(subset) == 4
    for k, e in now.items():
        assert e == (subset[k] if k[0] == "relu" else first[k]), k


def test_confirm_judges_fastest_round_by_round_where_both_have_probe_samples():
    from bench.analysis import history
    # the same median (20 ms), but one met a memory phase twice as slow in every round: in copies of
    # its own round's probe it is the faster run (auto); raw, neither is; the peak is ignored when
    # both have samples
    slow_phase = results.CaseResult("relu", "numba_cpu", "cpu", "float32", 2**25, "ok", median_s=2e-2,
                                    samples_s=[2e-2] * 3, probe_samples_s=[2e-2] * 3, peak_gbps=1.0)
    fast_phase = results.CaseResult("relu", "numba_cpu", "cpu", "float32", 2**25, "ok", median_s=2e-2,
                                    samples_s=[2e-2] * 3, probe_samples_s=[1e-2] * 3, peak_gbps=100.0)
    assert history._cost(slow_phase, fast_phase, "auto") == 1.0 and history._cost(fast_phase, slow_phase, "auto") == 2.0
    assert history._cost(slow_phase, fast_phase, "raw") == history._cost(fast_phase, slow_phase, "raw") == 2e-2
    # without samples in both, the probe's median where the runs have no per-round samples at all
    alone = dataclasses.replace(fast_phase, probe_samples_s=None)
    assert history._cost(alone, slow_phase, "auto") == pytest.approx(2e-2 * 100.0)
    assert history._cost(alone, slow_phase, "auto", median_scale=False) == 2e-2


# ------------------------------------------------------------------ judge at its boundaries (make mutate)

def test_a_change_exactly_at_the_threshold_is_not_beyond_it():
    # log(1.25) == log1p(0.25) in floating point: a 25 % change is not more than a 25 % threshold
    base, new = [1.0] * 20, [1.25] * 20
    assert compare.judge(base, new, threshold=0.25).verdict == compare.SAME
    assert compare.judge(base, new, threshold=0.2).verdict == compare.SLOWER


def test_a_p_value_equal_to_alpha_is_not_significant():
    base, new = samples(1.0, 0.02, n=8, seed=1), samples(1.3, 0.02, n=8, seed=2)
    p = compare.judge(base, new).p
    assert compare.judge(base, new, alpha=p).verdict == compare.SAME
    assert compare.judge(base, new, alpha=p * 1.01).verdict == compare.SLOWER


def test_a_change_exactly_as_wide_as_the_spread_is_noisy():
    # 1.25x, and the new samples' relative IQR is exactly 0.25 (above the 10 % threshold): the
    # change must be wider than the spread, not as wide
    new = [1.0, 1.09375, 1.25, 1.40625, 1.5] * 4
    c = compare.judge([1.0] * 20, new)
    assert (c.ratio, c.spread, c.verdict) == (1.25, 0.25, compare.NOISY)


def test_a_drift_scaled_change_the_raw_times_do_not_show_is_noisy():
    # scale 2 (peak normalisation): 2x after scaling, unchanged measured: the case did not follow
    c = compare.judge([1.0] * 20, [1.0] * 20, scale=2.0)
    assert (c.ratio, c.raw_ratio, c.verdict) == (2.0, 1.0, compare.NOISY)


@pytest.mark.parametrize("share, verdict", [(0.3, compare.NOISY), (0.7, compare.SLOWER)])
def test_a_normalised_change_counts_where_the_raw_times_moved_half_the_threshold(share, verdict):
    # normalised 2x; measured, the times moved `share` of the 10 % threshold (in log space)
    raw = math.exp(share * math.log1p(0.1))
    assert compare.judge([1.0] * 20, [2.0] * 20, raw_ratio=raw).verdict == verdict


def test_a_raw_move_of_exactly_half_the_threshold_follows():
    # log(1.25) == 0.5 * log1p(0.5625) in floating point: exactly half counts
    assert compare.judge([1.0] * 20, [2.0] * 20, threshold=0.5625, raw_ratio=1.25).verdict == compare.SLOWER


def test_a_normalised_faster_case_that_was_faster_measured_too_is_faster():
    assert compare.judge([1.0] * 20, [0.5] * 20, raw_ratio=0.8).verdict == compare.FASTER
    assert compare.judge([1.0] * 20, [0.5] * 20, raw_ratio=1.25).verdict == compare.NOISY


def test_identical_samples_have_p_1():
    c = compare.judge([2e-3] * 12, [2e-3] * 12)
    assert (c.p, c.verdict) == (1.0, compare.SAME)


def test_an_unknown_normalisation_is_named_with_the_valid_ones():
    base = compare.from_run(make_run(base_cases(0)))
    with pytest.raises(UsageError) as err:
        compare.compare_runs(base, base, normalise="median")
    assert str(err.value) == "unknown normalisation 'median'; valid: auto, peak, raw"


def test_peak_normalisation_without_peaks_warns_once_and_compares_raw():
    nopeak = dataclasses.replace(make_run(base_cases(0)), peaks={})
    rep = compare.compare_runs(compare.from_run(nopeak), compare.from_run(nopeak), normalise="peak")
    assert rep.warnings == ["no cpu peak in both runs: its cases are compared raw"]
    assert len(rep.rows) == len(CASES) and all(r.change.ratio == 1.0 for r in rep.rows)


def test_a_threshold_of_1000_percent_or_more_is_refused():
    assert compare.parse_threshold("999%") == pytest.approx(9.99)
    for text in ("1000%", "10", "10.5"):
        with pytest.raises(UsageError, match="below 1000%"):
            compare.parse_threshold(text)


# ------------------------------------------------------------------ loading a run (make mutate)

def test_from_run_names_the_file_and_the_case_of_bad_samples():
    ok = entry("relu", "numpy", 2**12, [1e-3, 2e-3])
    bad = dataclasses.replace(ok, samples_s=(1e-3, 0.0))
    with pytest.raises(UsageError) as err:
        compare.from_run(results.Run(env=env(), results=[bad]))
    label = compare.case_label(compare.case_key(ok))
    assert str(err.value) == f"<run>: malformed case entry (bad samples for {label})"
    bad_probe = dataclasses.replace(ok, probe_samples_s=(1e-3, -1.0))
    with pytest.raises(UsageError) as err:
        compare.from_run(results.Run(env=env(), results=[bad_probe]), "r.json")
    assert str(err.value) == f"r.json: malformed case entry (bad samples for {label})"


@pytest.mark.parametrize("values", [[], [1e-3, 0.0], [1e-3, -1e-3], [1e-3, float("nan")], [1e-3, float("inf")],
                                    [[1e-3, 2e-3]]])
def test_samples_must_be_a_nonempty_list_of_positive_finite_times(values):
    with pytest.raises(UsageError, match="bad samples for relu"):
        compare._positive(values, "r.json", ("relu", "numpy", "cpu", "float32", 2**12) + ((),))
    assert list(compare._positive([1e-3, 2e-3], "r.json", ())) == [1e-3, 2e-3]


def test_from_run_keeps_positive_numeric_peaks_and_the_creation_date():
    run = results.Run(env=env(), created="2026-11-28T12:00:00+00:00", results=[entry("relu", "numpy", 2**12, [1e-3])],
                      peaks={"cpu": {"gbps": 0.5}, "gpu": {"gbps": 0}, "npu": {"gbps": None}, "tpu": "fast"})
    loaded = compare.from_run(run)
    assert loaded.peaks == {"cpu": 0.5} and loaded.created == "2026-11-28T12:00:00+00:00"
    assert compare.from_run(dataclasses.replace(run, created=None)).created == ""


def test_case_key_of_a_record_without_the_sparse_fields_fills_them_with_none():
    class Old:            # an elementwise record as older code gives it: no shape, batch, ...
        op, backend, device, dtype, size = "relu", "numpy", "cpu", "float32", 4096
    assert compare.case_key(Old()) == ("relu", "numpy", "cpu", "float32", 4096) + ((),)


def test_a_spread_equal_to_the_threshold_is_not_noisy():
    new = [0.9, 0.95, 1.0, 1.05, 1.1] * 4
    spread = compare.judge([1.0] * 20, new).spread
    assert compare.judge([1.0] * 20, new, threshold=spread).verdict == compare.SAME


def test_an_unfollowed_change_at_p_equal_to_alpha_is_not_noisy():
    base, new = samples(1.0, 0.02, n=8, seed=1), samples(2.0, 0.02, n=8, seed=2)
    p = compare.judge(base, new).p
    assert compare.judge(base, new, raw_ratio=1.0, alpha=p).verdict == compare.SAME
    assert compare.judge(base, new, raw_ratio=1.0, alpha=p * 1.01).verdict == compare.NOISY


def test_compare_runs_rows_hold_both_medians_slowest_first_and_the_paths():
    base, new = base_cases(0), base_cases(1)
    new[("relu", "numpy", 2**25)] = samples(2e-2, 0.02, seed=9)
    new[("sigmoid", "numpy", 2**25)] = samples(1.5e-2, 0.02, seed=10)
    rep = compare.compare_runs(compare.from_run(make_run(base), "b.json"), compare.from_run(make_run(new), "n.json"))
    assert (rep.base, rep.new) == ("b.json", "n.json")
    ratios = [r.change.ratio for r in rep.rows]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > 1.9 and ratios[-1] < 0.6
    for r in rep.rows:
        k = (r.key[0], r.key[1], r.key[4])
        assert (r.base_median, r.new_median) == (float(np.median(base[k])), float(np.median(new[k])))


def test_a_starved_case_is_noisy_whichever_way_it_moved_with_one_warning_naming_each():
    # 3x slower, starved in the new run; 10x faster, starved in the base; the same, starved in both
    slow, fast, same = ("relu", "numba_cpu", 2**25), ("sigmoid", "numba_cpu", 2**25), ("relu", "numpy", 2**12)
    new_cases = base_cases(1)
    new_cases[slow] = samples(3e-3 * 3, 0.02, seed=9)
    new_cases[fast] = samples(3e-4, 0.02, seed=10)

    def starving(run, keys):
        return dataclasses.replace(run, results=tuple(
            dataclasses.replace(e, marks=(results.STARVED,)) if (e.op, e.backend, e.size) in keys else e
            for e in run.results))
    base = starving(make_run(base_cases(0)), {fast, same})
    new = starving(make_run(new_cases), {slow, same})
    rep = compare.compare_runs(compare.from_run(base), compare.from_run(new))
    verdicts = {(r.key[0], r.key[1], r.key[4]): r.change for r in rep.rows}
    assert verdicts[slow].verdict == verdicts[fast].verdict == compare.NOISY
    assert verdicts[slow].ratio > 2.5 and verdicts[fast].ratio < 0.2          # the figures are kept
    assert verdicts[same].verdict == compare.SAME
    labels = [compare.case_label(k) for k in compare.from_run(base).samples if (k[0], k[1], k[4]) in (slow, fast)]
    assert rep.warnings == ["2 case(s) whose threads waited for a core in one of the runs (marked starved) "
                            "moved no more than that wait explains: called noisy, not slower or faster: " + ", ".join(labels)]
    assert compare.from_run(new).starved == {compare.case_key(e) for e in new.results if e.marks}
