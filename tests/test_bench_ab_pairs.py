"""bench ab's rule (bench/analysis/pairs.py): one ratio per pair of runs, judged across the pairs. Synthetic
per-pair samples only, nothing timed: an offset that one process gives all its samples, flipping
sign from process to process, is spread and not a change; a consistent 1.3x is called; too few
pairs is a verdict of its own and never a pass; a case missing from some pairs; starved runs; the
copy probe's normalisation; and bench ab itself on recorded runs (run_side replaced)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from bench.analysis import ab, compare, pairs
from bench.model import results
from tests.test_bench_compare import make_run, samples

KEY = ("sigmoid", "numpy", "cpu", "float32", 2**18, None, None, None, None)
OTHER = ("relu", "numpy", "cpu", "float32", 2**18, None, None, None, None)


def run(cases: dict, *, probes: dict | None = None, starved: dict | None = None, label: str = "run") -> compare.Loaded:
    """A Loaded run: cases key -> samples; probes key -> probe samples; starved key -> cpu_got."""
    starved = starved or {}
    return compare.Loaded(label, {}, {"cpu": 40.0}, {k: np.asarray(v) for k, v in cases.items()},
                          {k: "ok" for k in cases}, "", {}, {k: np.asarray(v) for k, v in (probes or {}).items()},
                          frozenset(starved), {k: v for k, v in starved.items() if v is not None})


def process(median: float, offset: float, seed: int, key=KEY, **kw) -> compare.Loaded:
    """One process's samples of a case: 2 % noise around median x exp(offset) (the process's own
    offset, shared by all its samples)."""
    return run({key: samples(median * math.exp(offset), 0.02, n=40, seed=seed)}, **kw)


def verdict(prs, **kw) -> pairs.PairChange:
    rep = pairs.compare_pairs(prs, **kw)
    (row,) = [r for r in rep.rows if r.key == KEY]
    return row.change


def test_a_per_process_offset_that_flips_sign_is_spread_not_a_change():
    # each process is +-25 % off at random, as NumPy's sigmoid at 2^18 is here from process to process;
    # the head's draws happen to be slow more often, so its pooled samples are slower as a whole
    head_off = [0.25, 0.25, -0.25, 0.25, 0.25, -0.25, 0.25, 0.0]
    base_off = [0.0, -0.25, 0.0, -0.25, 0.25, 0.0, 0.0, 0.0]
    prs = [(process(1e-4, b, seed=2 * i), process(1e-4, h, seed=2 * i + 1)) for i, (b, h) in enumerate(zip(base_off, head_off))]
    pooled_base = np.concatenate([b.samples[KEY] for b, _ in prs])
    pooled_head = np.concatenate([h.samples[KEY] for _, h in prs])
    assert compare.judge(pooled_base, pooled_head).verdict == compare.SLOWER     # the pooled rule of before
    c = verdict(prs)
    assert c.ratio > 1.1 and c.p > 0.01                   # beyond the threshold, but not across the pairs
    assert c.verdict == compare.NOISY and c.pairs == 8 and c.low < 1 < c.high


def test_a_consistent_1_3x_across_pairs_is_called_though_each_process_has_its_own_offset():
    rng = random.Random(3)
    prs = [(process(1e-4, rng.gauss(0, 0.03), seed=2 * i), process(1.3e-4, rng.gauss(0, 0.03), seed=2 * i + 1))
           for i in range(5)]
    c = verdict(prs)
    assert c.verdict == compare.SLOWER and 1.2 < c.ratio < 1.4 and c.p < 0.01 and c.low > 1.1
    rep = pairs.compare_pairs(prs)
    assert rep.exit_code == 1 and "1 slower" in pairs.markdown(rep)
    # the same the other way round is faster, and no exit 1
    c = verdict([(h, b) for b, h in prs])
    assert c.verdict == compare.FASTER and pairs.compare_pairs([(h, b) for b, h in prs]).exit_code == 0


def test_no_change_with_little_spread_is_the_same():
    prs = [(process(1e-4, 0, seed=2 * i), process(1e-4, 0, seed=2 * i + 1)) for i in range(5)]
    c = verdict(prs)
    assert c.verdict == compare.SAME and 0.97 < c.ratio < 1.03
    rep = pairs.compare_pairs(prs)
    assert rep.exit_code == 0 and "nothing slower" in pairs.markdown(rep)


def test_fewer_pairs_than_the_rule_needs_is_not_a_pass():
    prs = [(process(1e-4, 0, seed=2 * i), process(2e-4, 0, seed=2 * i + 1)) for i in range(pairs.MIN_PAIRS - 1)]
    rep = pairs.compare_pairs(prs)
    (row,) = rep.rows
    assert row.change.verdict == pairs.TOO_FEW and row.change.pairs == pairs.MIN_PAIRS - 1
    assert math.isnan(row.change.p) and 1.9 < row.change.ratio < 2.1      # the ratio is still shown
    assert rep.exit_code == 4 and not rep.slower
    md = pairs.markdown(rep)
    assert "not judged (too few pairs)" in md and "too few pairs" in rep.warnings[0]
    assert pairs.compare_pairs([]).exit_code == 0 and not pairs.compare_pairs([]).rows


def test_a_case_missing_from_some_pairs_is_judged_on_the_pairs_that_have_it():
    prs = []
    for i in range(6):
        base = run({KEY: samples(1e-4, 0.02, seed=4 * i), OTHER: samples(1e-5, 0.02, seed=4 * i + 1)})
        head_cases = {KEY: samples(1e-4, 0.02, seed=4 * i + 2)}
        if i < 3:                                  # OTHER failed or was skipped in the other three head runs
            head_cases[OTHER] = samples(1e-5, 0.02, seed=4 * i + 3)
        prs.append((base, run(head_cases)))
    rep = pairs.compare_pairs(prs)
    by_key = {r.key: r.change for r in rep.rows}
    assert by_key[KEY].verdict == compare.SAME and by_key[KEY].pairs == 6
    assert by_key[OTHER].verdict == pairs.TOO_FEW and by_key[OTHER].pairs == 3
    assert rep.exit_code == 4 and compare.case_label(OTHER) in rep.warnings[0]
    # with enough pairs left, a case missing from some is judged on the rest
    rep = pairs.compare_pairs(prs, min_pairs=3)
    assert {r.key: r.change.verdict for r in rep.rows}[OTHER] == compare.SAME and rep.exit_code == 0


def test_starved_pairs_are_left_out_where_enough_clean_ones_remain():
    prs = [(process(1e-4, 0, seed=2 * i), process(1e-4, 0, seed=2 * i + 1)) for i in range(6)]
    # two head runs whose threads waited for a core: 30x slower
    prs += [(process(1e-4, 0, seed=20 + i), process(3e-3, 0, seed=30 + i, starved={KEY: 0.1})) for i in range(2)]
    c = verdict(prs)
    assert c.verdict == compare.SAME and c.pairs == 6 and c.starved_pairs == 0


def test_with_starved_runs_in_most_pairs_only_a_change_beyond_the_wait_is_called():
    def starved_pairs(factor, got):
        return [(process(1e-4, 0, seed=2 * i), process(factor * 1e-4, 0, seed=2 * i + 1, starved={KEY: got}))
                for i in range(5)]
    # threads that ran half their ready time may be 2x slower for that alone
    c = verdict(starved_pairs(1.5, 0.5))
    assert c.verdict == compare.NOISY and c.waited and c.starved_pairs == 5
    rep = pairs.compare_pairs(starved_pairs(1.5, 0.5))
    assert rep.exit_code == 0 and any("waited for a core" in w for w in rep.warnings)
    assert verdict(starved_pairs(30, 0.5)).verdict == compare.SLOWER
    assert verdict(starved_pairs(30, None)).verdict == compare.NOISY      # no share recorded: any wait
    # both sides waited alike in every pair (a machine busy all along): that explains no change
    both = [(process(1e-4, 0, seed=2 * i, starved={KEY: 0.5}), process(2e-4, 0, seed=2 * i + 1, starved={KEY: 0.5}))
            for i in range(5)]
    assert verdict(both).verdict == compare.SLOWER
    # the head waited more than the base (0.35 against 0.5 of their time): 1.3x is within that, 2x beyond
    def uneven(factor):
        return [(process(1e-4, 0, seed=2 * i, starved={KEY: 0.5}),
                 process(factor * 1e-4, 0, seed=2 * i + 1, starved={KEY: 0.35})) for i in range(5)]
    assert verdict(uneven(1.3)).waited and verdict(uneven(2.0)).verdict == compare.SLOWER


def test_ratios_are_normalised_by_the_probe_of_the_same_round():
    def pair(i, head_factor, probe_factor, followed=True):
        b = samples(1e-3, 0.02, n=30, seed=3 * i)
        p = samples(1e-3, 0.02, n=30, seed=3 * i + 1)
        h = (np.asarray(samples(1e-3, 0.02, n=30, seed=3 * i + 2)) * head_factor).tolist()
        return run({KEY: b}, probes={KEY: p}), run({KEY: h}, probes={KEY: (np.asarray(p) * probe_factor).tolist()})
    # a memory phase: the head's kernel and its probe both 2x slower: no change
    c = verdict([pair(i, 2.0, 2.0) for i in range(5)])
    assert c.verdict == compare.SAME and 1.9 < c.raw_ratio < 2.1 and 0.95 < c.ratio < 1.05
    # the kernel 1.3x slower while the probe did not move: called
    assert verdict([pair(i, 1.3, 1.0) for i in range(5)]).verdict == compare.SLOWER
    # normalised 1.3x slower, but the measured times did not move (the probe got faster): noisy
    c = verdict([pair(i, 1.0, 1 / 1.3) for i in range(5)])
    assert c.verdict == compare.NOISY and 1.25 < c.ratio < 1.35 and 0.95 < c.raw_ratio < 1.05


def test_the_report_renders_every_verdict(capsys):
    from rich.console import Console
    prs = [(process(1e-4, 0, seed=2 * i), process(1.5e-4, 0, seed=2 * i + 1)) for i in range(4)]
    for v in (pairs.compare_pairs(prs), pairs.compare_pairs(prs, min_pairs=3)):
        pairs.print_report(v, Console(width=200))
        md = pairs.markdown(v)
        assert compare.case_label(KEY) in md and compare.case_label(KEY) in capsys.readouterr().out
        d = pairs.as_dict(v)
        assert d["rows"][0]["verdict"] in pairs.VERDICTS and len(d["rows"][0]["ratios"]) == 4
        pairs.dumps(v)


# ------------------------------------------------------------------------ bench ab on recorded runs

@pytest.fixture
def scratch_repo(tmp_path):
    import subprocess
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n')
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "base"], cwd=repo, check=True)
    return repo


def _recorded(head_factor: float, offsets: list[float]):
    """run_side replaced: each call writes a run of two cases; the head's relu numba_cpu at 2^25
    `head_factor` times slower, every run's sigmoid numpy 2^18 off by its own offset."""
    state = {"i": 0}

    def run_side(code, out, run_args, log):
        i = state["i"]
        state["i"] += 1
        head = "-head" in out.name
        cases = {("relu", "numba_cpu", 2**25): samples(3e-3 * (head_factor if head else 1.0), 0.02, seed=i),
                 ("sigmoid", "numpy", 2**18): samples(1e-4 * math.exp(offsets[i % len(offsets)]), 0.02, seed=100 + i)}
        results.save(make_run(cases), out)
        log.write_text("recorded\n")
        return 0
    return run_side


def test_bench_ab_judges_its_runs_pair_by_pair(scratch_repo, tmp_path, monkeypatch):
    offsets = [0.3, -0.3, 0.3, 0.0, -0.3, 0.3, 0.0, 0.3, 0.3, -0.3]
    monkeypatch.setattr(ab, "run_side", _recorded(1.3, offsets))
    out = ab.ab("HEAD", run_args=[], pairs=5, out=tmp_path / "out", seed=0, root=scratch_repo, say=lambda s: None)
    verdicts = {r.key[:2]: r.change for r in out.report.rows}
    assert verdicts[("relu", "numba_cpu")].verdict == compare.SLOWER
    assert verdicts[("relu", "numba_cpu")].pairs == 5
    assert verdicts[("sigmoid", "numpy")].verdict != compare.SLOWER
    assert out.exit_code == 1 and len(out.runs["base"]) == len(out.runs["head"]) == 5
    md = ab.markdown(out, "HEAD", None, 5)
    assert "5 pair(s)" in md and "relu numba_cpu" in md and "slower" in md


def test_bench_ab_refuses_fewer_pairs_than_the_rule_needs(scratch_repo, tmp_path):
    from bench.model.cases import UsageError
    with pytest.raises(UsageError, match=f"at least {pairs.MIN_PAIRS}"):
        ab.ab("HEAD", run_args=[], pairs=pairs.MIN_PAIRS - 1, out=tmp_path / "out", root=scratch_repo)
