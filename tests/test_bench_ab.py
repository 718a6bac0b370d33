"""`bench ab` (bench/analysis/ab.py), the pull-request gate: the run order, the pooling of each side's runs,
git refs and dependency changes on a scratch repository; and bench-check's no-baseline and
accepted-slowdown paths (bench/analysis/history.py). Recorded samples only: nothing here is timed (the
end-to-end run through the workflow's own steps is tests/test_workflows.py)."""

from __future__ import annotations

import random
import subprocess

import numpy as np
import pytest

from bench.cli import check as check_cmd
from bench.analysis import ab, compare, history
from bench.model import results
from bench.model.cases import UsageError
from tests.ab_method import pool
from tests.test_bench_compare import _fake_check_runs, base_cases, make_run, samples


def test_runs_alternate_and_the_first_pair_is_drawn():
    firsts = set()
    for seed in range(20):
        seq = ab.order(3, random.Random(seed))
        assert len(seq) == 6 and seq.count("base") == 3
        assert all(a != b for a, b in zip(seq, seq[1:]))           # A B A B ...: never twice in a row
        firsts.add(seq[0])
    assert firsts == {"base", "head"}


def _with_probes(run: results.Run, probe: float) -> results.Run:
    import dataclasses
    return dataclasses.replace(run, results=tuple(
        dataclasses.replace(e, probe_samples_s=tuple([probe * (1 + i) for i in range(len(e.samples_s))]))
        for e in run.results))


def test_a_side_pools_its_runs_case_by_case_with_probes_paired_round_for_round():
    one, two = make_run(base_cases(0)), make_run(base_cases(1), peak=60.0)
    one, two = _with_probes(one, 1e-3), _with_probes(two, 2e-3)
    pooled = pool([one, two], "base")
    k = compare.case_key(one.results[0])
    assert np.array_equal(pooled.samples[k], np.concatenate([one.results[0].samples_s, two.results[0].samples_s]))
    assert np.array_equal(pooled.probe_samples[k],
                          np.concatenate([one.results[0].probe_samples_s, two.results[0].probe_samples_s]))
    assert pooled.peaks == {"cpu": 50.0}                            # the median of the runs' peaks
    # a case probed in one run only keeps no probe samples: they would not pair with its samples
    mixed = pool([one, make_run(base_cases(1))], "base")
    assert k not in mixed.probe_samples and mixed.samples[k].size == 2 * len(one.results[0].samples_s)


def test_pooled_sides_are_judged_by_compares_rule():
    base = [make_run(base_cases(s)) for s in (0, 1)]
    slow = base_cases(2)
    key = ("relu", "numba_cpu", 2**25)
    slow[key] = samples(3e-3 * 1.3, 0.02, seed=50)
    head = [make_run(slow), make_run(base_cases(3))]
    slow2 = base_cases(4)
    slow2[key] = samples(3e-3 * 1.3, 0.02, seed=51)
    head[1] = make_run(slow2)
    rep = compare.compare_runs(pool(base, "base"), pool(head, "head"))
    assert [r.key[:2] for r in rep.slower] == [key[:2]] and rep.exit_code == 1
    aa = compare.compare_runs(pool(base, "base"), pool([make_run(base_cases(s)) for s in (5, 6)], "head"))
    assert not aa.slower and aa.exit_code == 0


@pytest.fixture
def scratch_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["numpy>=2.4"]\n')
    git("add", ".")
    git("commit", "-q", "-m", "base")
    return repo, git


def test_refs_resolve_to_commits_and_bad_ones_are_one_line(scratch_repo):
    repo, git = scratch_repo
    sha = git("rev-parse", "HEAD")
    assert ab.resolve("HEAD", repo) == sha
    for bad in ("no-such-branch", "", "--all"):
        with pytest.raises(UsageError):
            ab.resolve(bad, repo)


def test_a_dependency_change_between_the_sides_stops_the_gate(scratch_repo, tmp_path):
    repo, git = scratch_repo
    base = git("rev-parse", "HEAD")
    (repo / "README").write_text("docs only\n")
    assert not ab.dependency_change(base, repo, None)                 # the working tree: same dependencies
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["numpy>=2.5"]\n')
    assert ab.dependency_change(base, repo, None)
    with pytest.raises(UsageError, match="other dependencies"):
        ab.ab(base, run_args=[], pairs=5, out=tmp_path / "out", root=repo)
    git("commit", "-qam", "numpy 2.5")
    assert ab.dependency_change(base, repo, git("rev-parse", "HEAD"))


def test_worktree_is_a_checkout_of_the_commit_and_goes_away(scratch_repo):
    repo, git = scratch_repo
    base = git("rev-parse", "HEAD")
    (repo / "pyproject.toml").write_text("changed in the working tree\n")
    with ab.worktree(base, repo) as folder:
        assert "numpy>=2.4" in (folder / "pyproject.toml").read_text()
    assert not folder.exists() and str(folder) not in git("worktree", "list")


# ------------------------------------------------------------------------ bench-check's gate paths

@pytest.fixture
def no_plots(monkeypatch):
    monkeypatch.setattr(history, "plot", lambda *a, **k: [])      # seconds of matplotlib per check


def test_no_baseline_is_never_a_silent_pass(tmp_path, monkeypatch, no_plots):
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), make_run(base_cases(1)))
    kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p", confirm_attempts=0,
              markdown=tmp_path / "check.md")
    assert check_cmd.check(out=tmp_path / "r0.json", **kw) == check_cmd.NOTHING_COMPARED
    assert "nothing compared" in (tmp_path / "check.md").read_text()
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").glob("*.json"))
    # on main (--update-baseline) the run makes the baseline, and says that nothing was compared
    assert check_cmd.check(out=tmp_path / "r1.json", update_baseline=True, **kw) == 0
    assert "now its baseline" in (tmp_path / "check.md").read_text()
    assert len(list((tmp_path / "b").glob("*.json"))) == 1


def test_an_accepted_slowdown_becomes_the_baseline(tmp_path, monkeypatch, no_plots):
    slow_key = ("sigmoid", "numba_cpu", 2**25)
    slower = base_cases(1)
    slower[slow_key] = samples(3e-3 * 2, 0.02, seed=8)
    again = base_cases(2)
    again[slow_key] = samples(3e-3 * 2, 0.02, seed=9)
    _fake_check_runs(monkeypatch, make_run(base_cases(0)), make_run(slower), make_run(slower), make_run(again))
    kw = dict(baselines=tmp_path / "b", history=tmp_path / "h.jsonl", plots=tmp_path / "p", confirm_attempts=0,
              update_baseline=True)
    assert check_cmd.check(out=tmp_path / "r0.json", **kw) == 0
    assert check_cmd.check(out=tmp_path / "r1.json", **kw) == 1          # not accepted: the old one stays
    assert check_cmd.check(out=tmp_path / "r2.json", accept_slower=True, **kw) == 0
    base_file = next((tmp_path / "b").glob("*.json"))
    now = {compare.case_key(e)[:2] + (compare.case_key(e)[4],): e for e in results.load(base_file).results}
    assert now[slow_key].samples_s == tuple(slower[slow_key])
    assert check_cmd.check(out=tmp_path / "r3.json", **kw) == 0          # the next run of main is green again


def test_accept_slower_needs_update_baseline(capsys):
    assert check_cmd.main(["check", "--accept-slower"]) == 2
    assert "--update-baseline" in capsys.readouterr().err


def test_ctrl_c_or_sigterm_stops_the_gate_and_removes_its_worktrees(scratch_repo, tmp_path, monkeypatch, capsys):
    import argparse
    repo, git = scratch_repo
    calls = []

    def run_side(code, out, run_args, log):
        calls.append(code)
        if len(calls) == 2:
            raise KeyboardInterrupt          # what SIGTERM becomes inside sigterm_as_ctrl_c
        out.write_text("{}")
        return 0
    monkeypatch.setattr(ab, "run_side", run_side)
    monkeypatch.chdir(repo)
    args = argparse.Namespace(base="HEAD", head="HEAD", cases="pr", run_args="", pairs=5, threshold="10%",
                              alpha=0.01, seed=0, out=tmp_path / "out", markdown=None,
                              allow_dependency_change=False)
    assert ab.run_command(args, _Console()) == 130
    assert all(not c.exists() for c in calls)                    # both worktrees are gone
    assert git("worktree", "list").count("\n") == 0              # and git forgot them
    assert "interrupted" in capsys.readouterr().out


class _Console:
    def print(self, text, **kw):
        print(text)


def _starved(run, key, cpu_got):
    import dataclasses
    return dataclasses.replace(run, results=tuple(
        dataclasses.replace(e, marks=("starved",), cpu_got=cpu_got) if (e.op, e.backend, e.size) == key else e
        for e in run.results))


def test_a_starved_case_is_slower_only_beyond_what_the_wait_explains():
    key = ("relu", "numba_cpu", 2**25)
    base = make_run(base_cases(0))

    def slowed(factor):
        cases = base_cases(1)
        cases[key] = samples(3e-3 * factor, 0.02, seed=9)
        return make_run(cases)

    def verdict(b, n):
        rep = compare.compare_runs(compare.from_run(b), compare.from_run(n))
        row = next(r for r in rep.rows if r.key[:2] == key[:2] and r.key[4] == key[2])
        return row.change.verdict, rep
    assert verdict(base, slowed(30))[0] == compare.SLOWER
    # threads that ran half their ready time may be 2x slower for that alone: 30x stays slower,
    # 1.5x is noisy (said in a warning), and with no share recorded any move is noisy
    assert verdict(base, _starved(slowed(30), key, 0.5))[0] == compare.SLOWER
    v, rep = verdict(base, _starved(slowed(1.5), key, 0.5))
    assert v == compare.NOISY and any("starved" in w for w in rep.warnings) and not rep.slower
    assert verdict(base, _starved(slowed(30), key, None))[0] == compare.NOISY
    # a starved base only hides a slowdown: the slower verdict stands
    assert verdict(_starved(base, key, 0.5), slowed(1.5))[0] == compare.SLOWER


def test_bench_ab_pools_a_case_from_the_runs_where_its_threads_got_their_cores():
    key = ("relu", "numba_cpu", 2**25)
    clean, busy = make_run(base_cases(0)), _starved(make_run(base_cases(1)), key, 0.4)
    k = compare.case_key(next(e for e in clean.results if (e.op, e.backend, e.size) == key))
    pooled = pool([busy, clean], "head")
    assert k not in pooled.starved
    assert np.array_equal(pooled.samples[k], np.asarray(next(e for e in clean.results if compare.case_key(e) == k).samples_s))
    other = compare.case_key(clean.results[0])
    assert pooled.samples[other].size == 2 * len(clean.results[0].samples_s)       # the rest from both runs
    both = pool([busy, _starved(make_run(base_cases(2)), key, 0.6)], "head")
    assert k in both.starved and both.cpu_got[k] == 0.6 and both.samples[k].size == 2 * pooled.samples[k].size
