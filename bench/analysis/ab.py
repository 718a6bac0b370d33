"""`python -m bench ab BASE [HEAD]` (`make bench-ab BASE=<git ref>`): a pull request's gate that
measures the base commit and the head side by side on one machine, as `asv continuous` does.

The base commit is checked out into a temporary git worktree (and HEAD too when it is given; else
the working tree itself is the head, uncommitted changes included). The two are run in
alternating processes, A B A B ..., each a `bench run` of the chosen cases, the order of the first
pair drawn at random, so that a machine's load or memory phase changing during the job falls on
both sides alike. Each case is judged across the pairs, not by its pooled samples (bench/analysis/pairs.py):
one ratio head / base per pair of runs (medians, each sample divided by the copy probe's sample of
its round where the runs have one), and a t-test on their logarithms with the threshold, so that
an offset one process gives all its samples shows as spread between pairs and is not called a
change. A cached baseline measured hours earlier, on another instance of a hosted runner's CPU
model, carries that instance's noise; this gate compares like with like.

Both sides run in this Python environment: where their pyproject.toml asks for different
dependencies, that would measure one side with the other's libraries, so it stops with exit 2
unless --allow-dependency-change says to go on. Exit codes as `compare`: 0 nothing slower (and no
case failing its check on the head), 1 something slower or failing, 2 bad input; and 4 where
nothing is slower but some case was timed in too few pairs to be judged; 130 on Ctrl-C.
Every run's JSON, its log and the verdicts (JSON and Markdown) are kept in --out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from bench.analysis import compare
from bench.analysis import pairs as pair_rule
from bench.measure.signals import sigterm_as_ctrl_c
from bench.model import results
from bench.model.cases import UsageError

# A case set fit for every pull request on 2 cores (docs/bench-ab.md gives its time): the ops whose cost
# the project exists to compare, one size in the cache and one far beyond it, the NumPy baseline
# and the multi-threaded kernels. `--cases quick` runs the whole quick profile instead.
CASE_SETS = {
    "pr": ["--ops", "relu,relu_grad,sigmoid,sigmoid_grad", "--sizes", "2**18,2**25",
           "--backends", "numpy,numba_cpu", "--device", "cpu"],
    "quick": ["--profile", "quick"],
}
DEFAULT_PAIRS = 5


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise UsageError("bench ab needs git on the PATH") from None
    except subprocess.CalledProcessError as exc:
        raise UsageError(f"git {' '.join(args)}: {(exc.stderr or exc.stdout).strip().splitlines()[-1:]}") from None
    return done.stdout.strip()


def repo_root(cwd: Path | None = None) -> Path:
    return Path(_git(["rev-parse", "--show-toplevel"], cwd or Path.cwd()))


def resolve(ref: str, root: Path) -> str:
    """The commit a ref names; UsageError (one line) for one that names none."""
    if not ref or ref.startswith("-"):
        raise UsageError(f"not a git ref: {ref!r}")
    try:
        return _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    except UsageError:
        raise UsageError(f"{ref!r} names no commit in {root}") from None


def _dependencies(text: str) -> object:
    """What pyproject.toml asks to be installed (dependencies, extras, Python); the whole text
    where it cannot be parsed."""
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return text
    return {"dependencies": project.get("dependencies"), "extras": project.get("optional-dependencies"),
            "python": project.get("requires-python")}


def dependency_change(base: str, root: Path, head: str | None) -> bool:
    """Whether the two sides' pyproject.toml ask for different dependencies."""
    before = _git(["show", f"{base}:pyproject.toml"], root)
    after = _git(["show", f"{head}:pyproject.toml"], root) if head else (root / "pyproject.toml").read_text()
    return _dependencies(before) != _dependencies(after)


@contextlib.contextmanager
def worktree(commit: str, root: Path):
    """A detached checkout of `commit` in a temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"actbench-ab-{commit[:7]}-"))
    _git(["worktree", "add", "--detach", "--quiet", str(folder), commit], root)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=root, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)


def order(pairs: int, rng: random.Random) -> list[str]:
    """'base'/'head' for each run: alternating, the first pair's order drawn at random."""
    first = rng.choice(("base", "head"))
    second = "head" if first == "base" else "base"
    return [first if i % 2 == 0 else second for i in range(2 * pairs)]


def side_env(code: Path) -> dict:
    """The environment of a side's process: its own checkout's packages first on the path (the
    project may be installed in editable mode from the working tree)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_side(code: Path, out: Path, run_args: list[str], log: Path) -> int:
    """One `bench run` of a side's code into `out`; its exit code (output in `log`)."""
    cmd = [sys.executable, "-m", "bench", "run", "--out", str(out), "--no-plots", *run_args]
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=code, env=side_env(code), stdout=f, stderr=subprocess.STDOUT)
        try:
            return proc.wait()
        except BaseException:           # Ctrl-C: the child got it too; do not leave it running
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
            raise


@dataclasses.dataclass
class Outcome:
    report: pair_rule.Report
    failed_on_head: list[str]
    runs: dict
    wall_s: float

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_on_head else self.report.exit_code


def ab(base_ref: str, head_ref: str | None = None, *, run_args: list[str], pairs: int = DEFAULT_PAIRS,
       out: Path, threshold: float = pair_rule.DEFAULT_THRESHOLD, alpha: float = pair_rule.DEFAULT_ALPHA,
       seed: int | None = None, allow_dependency_change: bool = False, root: Path | None = None,
       min_pairs: int = pair_rule.MIN_PAIRS, say=print) -> Outcome:
    root = root or repo_root()
    base = resolve(base_ref, root)
    head = resolve(head_ref, root) if head_ref else None
    if pairs < min_pairs:
        raise UsageError(f"--pairs must be at least {min_pairs} (the pairs the rule needs to judge a case), got {pairs}")
    if dependency_change(base, root, head) and not allow_dependency_change:
        raise UsageError(f"pyproject.toml asks for other dependencies at {base_ref} than at {head_ref or 'the working tree'}: "
                         "both sides would run with this environment's; --allow-dependency-change goes on anyway")
    out = out.resolve()             # the base side runs in its worktree: a relative path would land there
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sequence = order(pairs, rng)
    runs: dict[str, list[Path]] = {"base": [], "head": []}
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        code = {"base": stack.enter_context(worktree(base, root)),
                "head": stack.enter_context(worktree(head, root)) if head else root}
        names = {"base": f"base {base[:10]}", "head": f"head {head[:10]}" if head else "head (working tree)"}
        for i, side in enumerate(sequence):
            path = out / f"{i + 1:02d}-{side}.json"
            t0 = time.monotonic()
            say(f"run {i + 1} of {len(sequence)}: {names[side]} ...")
            rc = run_side(code[side], path, run_args, path.with_suffix(".log"))
            if rc not in (0, 1) or not path.exists():
                tail = path.with_suffix(".log").read_text().strip().splitlines()[-1:] if path.with_suffix(".log").exists() else []
                if rc == 2:
                    raise UsageError(f"bench run on the {side} side: {' '.join(tail) or 'usage error'}")
                raise RuntimeError(f"bench run on the {side} side exited {rc}: {' '.join(tail)} "
                                   f"(log: {path.with_suffix('.log')})")
            runs[side].append(path)
            say(f"  done in {time.monotonic() - t0:.0f} s -> {path}")
    try:
        loaded = {side: [results.load(p) for p in paths] for side, paths in runs.items()}
    except results.ResultsError as exc:     # e.g. a base from before a schema this code reads
        raise UsageError(f"cannot judge the runs: {exc}") from None
    warnings = compare.env_differences(loaded["base"][0].env, loaded["head"][0].env)   # another CPU: exit 2
    rep = pair_rule.compare_pairs(
        [(compare.from_run(b, f"base {i + 1}"), compare.from_run(h, f"head {i + 1}"))
         for i, (b, h) in enumerate(zip(loaded["base"], loaded["head"]))],
        base=names_of(base, None), head=names_of(head, "working tree"), threshold=threshold, alpha=alpha,
        min_pairs=min_pairs)
    rep = dataclasses.replace(rep, warnings=warnings + rep.warnings)
    failed = sorted({compare.case_label(compare.case_key(e)) for r in loaded["head"] for e in r.results
                     if e.status is results.Status.FAILED})
    return Outcome(rep, failed, {k: [str(p) for p in v] for k, v in runs.items()}, time.monotonic() - start)


def names_of(commit: str | None, fallback: str) -> str:
    return commit[:10] if commit else fallback


def markdown(outcome: Outcome, base_ref: str, head_ref: str | None, pairs: int) -> str:
    head = head_ref or "the working tree"
    lines = [f"Measured side by side on one machine: {pairs} pair(s) of runs of `{base_ref}` and {head}, "
             f"alternating, in {outcome.wall_s / 60:.1f} min.", ""]
    if outcome.failed_on_head:
        lines += [f"> ❌ failing their correctness check on the head: {', '.join(outcome.failed_on_head)}", ""]
    return "\n".join(lines) + pair_rule.markdown(outcome.report)


# ----------------------------------------------------------------------------------- command line

def add_parser(sub) -> None:
    a = sub.add_parser("ab", help="a pull request's gate: base and head measured side by side, judged pair by pair",
                       description="Check BASE out into a temporary worktree, run it and HEAD (default: the "
                       "working tree) in alternating processes, and judge each case by its head / base ratio in "
                       "each pair of runs (a t-test on their logarithms, with the threshold). Exit 0: nothing "
                       "slower; 1: something slower or failing; 2: bad input; 4: some case timed in too few pairs.")
    a.add_argument("base", help="the base git ref (a pull request's base commit)")
    a.add_argument("head", nargs="?", help="the head git ref (default: the working tree, uncommitted changes too)")
    a.add_argument("--cases", choices=sorted(CASE_SETS), default="pr",
                   help="pr (default: 4 ops x 2 sizes x numpy, numba_cpu, a few minutes) or quick (the quick profile)")
    a.add_argument("--run-args", default="", help="more `bench run` arguments for both sides, e.g. \"--budget 0.5\"")
    a.add_argument("--pairs", type=int, default=DEFAULT_PAIRS,
                   help=f"pairs of runs (default {DEFAULT_PAIRS}; at least {pair_rule.MIN_PAIRS}, the rule's minimum)")
    a.add_argument("--threshold", default=f"{100 * pair_rule.DEFAULT_THRESHOLD:g}%",
                   help="smallest change that counts (default 10%%)")
    a.add_argument("--alpha", type=float, default=pair_rule.DEFAULT_ALPHA,
                   help="significance level of the t-test on the per-pair ratios' logarithms")
    a.add_argument("--seed", type=int, help="seed of the first pair's order (default: random)")
    a.add_argument("--out", type=Path, help="folder for every run's JSON and log and the verdicts "
                   "(default reports/results/ab-<date>)")
    a.add_argument("--markdown", type=Path, help="the verdicts as Markdown for the pull request (default: in --out)")
    a.add_argument("--allow-dependency-change", action="store_true",
                   help="go on where the two sides' pyproject.toml ask for different dependencies")


def run_command(args, console) -> int:
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    threshold = compare.parse_threshold(args.threshold)
    try:
        extra = shlex.split(args.run_args)
    except ValueError as exc:
        raise UsageError(f"--run-args: {exc}") from None
    out = args.out or Path("reports/results") / f"ab-{time.strftime('%Y-%m-%dT%H%M%S')}"
    try:
        with sigterm_as_ctrl_c():
            outcome = ab(args.base, args.head, run_args=CASE_SETS[args.cases] + extra, pairs=args.pairs, out=out,
                         threshold=threshold, alpha=args.alpha, seed=args.seed,
                         allow_dependency_change=args.allow_dependency_change,
                         say=lambda s: console.print(s, highlight=False, markup=False))
    except RuntimeError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 3
    except KeyboardInterrupt:      # the child was stopped and the worktrees removed on the way out
        console.print(f"[yellow]interrupted: nothing judged; the runs that finished are in {out}[/]", highlight=False)
        return 130
    pair_rule.print_report(outcome.report, console)
    for name in outcome.failed_on_head:
        console.print(f"[bold red]FAILED on the head:[/] {name}", highlight=False)
    md = args.markdown or out / "ab.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(outcome, args.base, args.head, args.pairs))
    (out / "ab.json").write_text(json.dumps({"runs": outcome.runs, "wall_s": outcome.wall_s,
                                             "failed_on_head": outcome.failed_on_head,
                                             "report": pair_rule.as_dict(outcome.report)}, indent=1, default=str))
    console.print(f"wrote {md} and {out / 'ab.json'} ({outcome.wall_s / 60:.1f} min)", highlight=False)
    return outcome.exit_code
