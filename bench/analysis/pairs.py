"""`bench ab`'s rule: the pair of processes, not the sample, is the unit of evidence.

Samples taken in one process are not independent draws of the kernel's time: a case can be
consistently faster or slower in one process than in the next (where glibc put its temporaries,
whether NumPy's sigmoid page-faults a fresh `-x` every call, the serial/parallel split a numba
probe chose, how the pages of its arrays landed), and that offset is shared by all its samples.
Pooling each side's samples and testing them (Mann-Whitney on a few thousand samples) then calls
such an offset a change with great confidence: 12 of 48 cases of A/A runs here, all at 2^18.

So each case gets one number per pair of runs (a base run and the head run next to it): the ratio
head / base of the medians of its samples, each sample first divided by the copy probe's sample of
its round where both runs have one (compare's normalisation), and the verdict comes from those
ratios, as Kalibera and Jones advise for any benchmark whose processes differ ("Rigorous
benchmarking in reasonable time", 2013): their geometric mean is the change, and a one-sample t-test
on their logarithms (scipy.stats.ttest_1samp) says whether it differs from no change. A per-process
offset then shows as spread between the pairs and widens the interval instead of moving the verdict.

A case is
- *slower* (*faster*): the geometric mean ratio passes the threshold, the t-test rejects "no
  change" at alpha, and, where the ratios were normalised, the measured times moved the same way
  by at least half the threshold (compare's rule: else the machine changed, not the case);
- *noisy*: not called, and its (1 - alpha) confidence interval reaches beyond the threshold on a
  side: these pairs cannot rule out a change of the threshold's size;
- *same*: the interval lies within the threshold;
- *too few pairs*: timed in fewer pairs than the rule needs (`MIN_PAIRS`; a case that failed or
  was skipped in some runs): not judged, and never a pass.
A run in which a case's threads waited for a core (`bench run`'s starved mark) times the wait too:
a case keeps only its pairs with no such run where there are enough of them; otherwise all its
pairs count, and a slower (faster) verdict stands only beyond what the wait could explain: a run
whose threads ran a share c of their ready time may be up to 1/c slower for that alone, so the
head's (base's) mean log(1/c) over the pairs, less the other side's, is taken off the change. On a
machine busy all along both sides wait alike and that explains nothing (compare's rule for two
single runs takes the whole 1/c off: here it hid a planted 2x on every numba_cpu case at 2^25).
docs/bench-ab.md gives the A/A false-positive and detection rates behind the defaults.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from rich import box
from rich.table import Table
from scipy import stats as _st

from bench.analysis.compare import (FASTER, NOISY, SAME, SLOWER, Labelled, Loaded, Verdicts, case_label, key_fields,
                                    only_summary, p_text, pct_change, print_tail)
from bench.model.display import fmt_time

TOO_FEW = "too few pairs"
VERDICTS = (SLOWER, FASTER, TOO_FEW, NOISY, SAME)
MIN_PAIRS = 5
DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class PairRatio:
    """One case in one pair of runs: head / base of the medians, normalised (`ratio`) and as
    measured (`raw`), and whether either run marked the case starved (with the CPU share the
    head's and the base's threads got where that run was starved: None where unknown)."""

    ratio: float
    raw: float
    starved: bool = False
    head_got: float | None = 1.0
    base_got: float | None = 1.0


@dataclass(frozen=True)
class PairChange:
    """The verdict on one case: the geometric mean of its per-pair ratios (normalised and raw),
    the (1 - alpha) confidence interval of the first, the t-test's p-value, the pairs used (and
    how many of those had a starved run), each pair's ratio, and the verdict. `waited`: a call the
    starved runs' wait could explain, demoted to noisy."""

    ratio: float
    raw_ratio: float
    low: float
    high: float
    p: float
    pairs: int
    starved_pairs: int
    ratios: tuple[float, ...]
    verdict: str
    waited: bool = False


def pair_ratios(base: Loaded, head: Loaded) -> dict[tuple, PairRatio]:
    """Each case timed in both runs of one pair -> its PairRatio."""
    out = {}
    for k, b in base.samples.items():
        h = head.samples.get(k)
        if h is None:
            continue
        raw = float(np.median(h) / np.median(b))
        pb, ph = base.probe_samples.get(k), head.probe_samples.get(k)
        ratio = float(np.median(h / ph) / np.median(b / pb)) if pb is not None and ph is not None else raw
        starved = k in base.starved or k in head.starved
        out[k] = PairRatio(ratio, raw, starved,
                           head.cpu_got.get(k) if k in head.starved else 1.0,
                           base.cpu_got.get(k) if k in base.starved else 1.0)
    return out


def judge(ratios: list[PairRatio], *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
          min_pairs: int = MIN_PAIRS) -> PairChange:
    """Verdict on one case from its per-pair ratios (module docstring)."""
    clean = [r for r in ratios if not r.starved]
    used = clean if len(clean) >= min_pairs else list(ratios)
    n = len(used)
    x = np.log([r.ratio for r in used]) if n else np.empty(0)
    raw = np.log([r.raw for r in used]) if n else np.empty(0)
    m = float(x.mean()) if n else math.nan
    gm, gm_raw = math.exp(m) if n else math.nan, float(math.exp(raw.mean())) if n else math.nan
    starved = sum(r.starved for r in used)
    ratio_list = tuple(float(r.ratio) for r in used)
    if n < max(min_pairs, 2):
        return PairChange(gm, gm_raw, math.nan, math.nan, math.nan, n, starved, ratio_list, TOO_FEW)
    if float(x.std(ddof=1)) > 0:
        t = _st.ttest_1samp(x, 0.0)
        ci = t.confidence_interval(1 - alpha)
        p, half = float(t.pvalue), float(ci.high) - m
    else:                           # every pair gave the same ratio: no spread to test against
        p, half = (0.0 if m != 0 else 1.0), 0.0
    bound = math.log1p(threshold)
    beyond = abs(m) > bound
    normalised = any(r.ratio != r.raw for r in used)
    followed = not normalised or math.copysign(1.0, m) * float(raw.mean()) >= 0.5 * bound
    waited = False
    if beyond and p < alpha and followed:
        verdict = SLOWER if m > 0 else FASTER
        if _wait_explains(used, m, bound):
            verdict, waited = NOISY, True
    elif m - half < -bound or m + half > bound:
        verdict = NOISY
    else:
        verdict = SAME
    return PairChange(gm, gm_raw, math.exp(m - half), math.exp(m + half), p, n, starved, ratio_list, verdict, waited)


def _wait_explains(used: list[PairRatio], m: float, bound: float) -> bool:
    """Whether the runs' wait for a core could explain a mean log ratio `m`: a run whose threads ran
    a share c of their ready time may be up to 1/c slower for that alone, so the slower (faster)
    side's mean log(1/c) over the pairs, less the other side's, is taken off the change. Both sides
    starved alike (a machine busy all along) explain nothing; a share not recorded, anything."""
    if not any(r.starved for r in used):
        return False
    slow = [r.head_got if m > 0 else r.base_got for r in used]
    fast = [r.base_got if m > 0 else r.head_got for r in used]
    if None in slow:
        return True
    fast = [1.0 if c is None else c for c in fast]        # an unknown share on the other side only hides
    stretch = float(np.mean(np.log(fast)) - np.mean(np.log(slow)))
    return abs(m) - max(stretch, 0.0) <= bound


# ----------------------------------------------------------------------------------- pairs of runs

@dataclass(frozen=True)
class Row(Labelled):
    key: tuple
    base_median: float           # the median of the base runs' medians (as measured)
    head_median: float
    change: PairChange


@dataclass(frozen=True)
class Report(Verdicts):
    base: str
    head: str
    threshold: float
    alpha: float
    pairs: int
    min_pairs: int
    rows: list[Row]
    only_base: list[tuple] = field(default_factory=list)
    only_head: list[tuple] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    verdicts: ClassVar[tuple] = VERDICTS

    @property
    def too_few(self) -> list[Row]:
        return [r for r in self.rows if r.change.verdict == TOO_FEW]

    @property
    def exit_code(self) -> int:
        """1: something slower; 4: nothing slower, but some case not judged (too few pairs); 0."""
        return 1 if self.slower else 4 if self.too_few else 0


def compare_pairs(pairs: list[tuple[Loaded, Loaded]], *, base: str = "base", head: str = "head",
                  threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                  min_pairs: int = MIN_PAIRS) -> Report:
    """Judge every case timed in any pair of runs (base run, head run)."""
    per_case: dict[tuple, list[PairRatio]] = {}
    medians: dict[tuple, tuple[list, list]] = {}
    for b, h in pairs:
        for k, r in pair_ratios(b, h).items():
            per_case.setdefault(k, []).append(r)
        for k, s in b.samples.items():
            medians.setdefault(k, ([], []))[0].append(float(np.median(s)))
        for k, s in h.samples.items():
            medians.setdefault(k, ([], []))[1].append(float(np.median(s)))
    rows = []
    for k, rs in per_case.items():
        bm, hm = medians[k]
        rows.append(Row(k, float(np.median(bm)), float(np.median(hm)),
                        judge(rs, threshold=threshold, alpha=alpha, min_pairs=min_pairs)))
    order = {v: i for i, v in enumerate(VERDICTS)}
    rows.sort(key=lambda r: (order[r.change.verdict], -(r.change.ratio if math.isfinite(r.change.ratio) else 0)))
    in_base = {k for b, _ in pairs for k in b.samples}
    in_head = {k for _, h in pairs for k in h.samples}
    warnings = []
    few = [r for r in rows if r.change.verdict == TOO_FEW]
    if few:
        warnings.append(f"{len(few)} case(s) with too few pairs (timed in both runs of fewer than {min_pairs} "
                        "pairs): not judged, and not a pass: " + ", ".join(r.label for r in few))
    waited = [r for r in rows if r.change.waited]
    if waited:
        warnings.append(f"{len(waited)} case(s) whose threads waited for a core in most pairs moved no more than "
                        "that wait explains: called noisy, not slower or faster: " + ", ".join(r.label for r in waited))
    statuses = {}
    for b, h in pairs:
        for k, s in h.status.items():
            if s != "ok" and b.status.get(k) == "ok":
                statuses[k] = s
    for k, s in statuses.items():
        warnings.append(f"{case_label(k)}: ok in a base run, {s} in the head run beside it")
    return Report(base, head, threshold, alpha, len(pairs), min_pairs, rows,
                  sorted(in_base - in_head, key=str), sorted(in_head - in_base, key=str), warnings)


# ----------------------------------------------------------------------------------- output

STYLE = {SLOWER: "bold red", FASTER: "bold green", TOO_FEW: "bold magenta", NOISY: "yellow", SAME: "dim"}
ICON = {SLOWER: "🔴 slower", FASTER: "🟢 faster", TOO_FEW: "⛔ too few pairs", NOISY: "🟡 noisy", SAME: "same"}


def _ci(c: PairChange) -> str:
    return f"{pct_change(c.low)} .. {pct_change(c.high)}" if math.isfinite(c.low) else "-"


def summary_line(rep: Report) -> str:
    c = rep.counts()
    return (f"{len(rep.rows)} cases over {rep.pairs} pairs of runs: {c[SLOWER]} slower, {c[FASTER]} faster, "
            f"{c[NOISY]} noisy, {c[SAME]} same, {c[TOO_FEW]} with too few pairs (threshold {100 * rep.threshold:g}%, "
            f"t-test on the per-pair ratios at alpha {rep.alpha:g}, at least {rep.min_pairs} pairs)")


COLUMNS = ("verdict", "case", "base", "head", "change", "raw change", "interval", "p", "pairs")


def _cells(r: Row) -> list[str]:
    c = r.change
    pairs = f"{c.pairs}" + (f" ({c.starved_pairs} starved)" if c.starved_pairs else "")
    return [r.label, fmt_time(r.base_median), fmt_time(r.head_median), pct_change(c.ratio), pct_change(c.raw_ratio), _ci(c),
            p_text(c.p), pairs]


def print_report(rep: Report, console) -> None:
    for w in rep.warnings:
        console.print(f"warning: {w}", style="yellow", highlight=False, markup=False)
    t = Table(box=box.ROUNDED, title=f"{rep.base} -> {rep.head}, one ratio per pair of runs")
    for name in COLUMNS:
        t.add_column(name, justify="left" if name in ("verdict", "case") else "right")
    for r in rep.rows:
        t.add_row(r.change.verdict, *_cells(r), style=STYLE[r.change.verdict])
    console.print(t)
    print_tail(console, (("only in the base runs", rep.only_base), ("only in the head runs", rep.only_head)),
               summary_line(rep), bool(rep.exit_code))


def markdown(rep: Report) -> str:
    """A table fit for a pull-request comment: slower cases first."""
    if rep.slower:
        head = f"**{len(rep.slower)} slower**"
    elif rep.too_few:
        head = f"**{len(rep.too_few)} not judged (too few pairs)**, nothing slower among the rest"
    else:
        head = "nothing slower"
    lines = [f"### actbench ab: {head}", "", summary_line(rep) + ".", ""]
    lines += [f"> ⚠️ {w}" for w in rep.warnings] + ([""] if rep.warnings else [])
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|---|---|" + "---:|" * (len(COLUMNS) - 2))
    for r in rep.rows:
        lines.append(f"| {ICON[r.change.verdict]} | " + " | ".join(_cells(r)) + " |")
    lines += ["", "change: the geometric mean over the pairs of head / base (medians, in copies of the probe "
              "beside the case where both runs have one); interval: its confidence interval at 1 - alpha."]
    for title, keys in (("Only in the base runs", rep.only_base), ("Only in the head runs", rep.only_head)):
        if keys:
            lines += ["", f"{title}: {only_summary(keys)}"]
    return "\n".join(lines) + "\n"


def as_dict(rep: Report) -> dict:
    return {"base": rep.base, "head": rep.head, "threshold": rep.threshold, "alpha": rep.alpha, "pairs": rep.pairs,
            "min_pairs": rep.min_pairs, "warnings": rep.warnings, "counts": rep.counts(),
            "only_base": [case_label(k) for k in rep.only_base], "only_head": [case_label(k) for k in rep.only_head],
            "rows": [dict(key_fields(r.key), ratio=r.change.ratio, raw_ratio=r.change.raw_ratio,
                          low=r.change.low, high=r.change.high, p=r.change.p, pairs=r.change.pairs,
                          starved_pairs=r.change.starved_pairs, ratios=list(r.change.ratios),
                          verdict=r.change.verdict, waited=r.change.waited) for r in rep.rows]}


def dumps(rep: Report) -> str:
    return json.dumps(as_dict(rep), indent=1, default=str)
