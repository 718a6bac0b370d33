"""`python -m bench.cli.check baseline | check | plot` (make baseline, make bench-check): the
regression gate on one machine. A quick run of the working tree (`bench run`, bench/cli/main.py)
is compared with this machine's baseline (reports/baselines/<cpu-cores-gpu>.json) by `bench
compare`'s rule; a case called slower is measured again before the verdict; the rows go to the
history (reports/history.jsonl) and its plots; on the main branch the run updates the baseline
case by case. bench/analysis/history.py holds the history, the re-measurement and the baseline's
update; this module is their command line.
"""

from __future__ import annotations

import argparse
import os
import datetime as _dt
import json
import shlex
from pathlib import Path

from rich.console import Console

from bench.analysis import compare
from bench.analysis import history as hist
from bench.cli.main import main as bench_main
from bench.model import results
from bench.model.cases import UsageError

CHECKS = Path("reports/results")
EXIT_USAGE = 2
NOTHING_COMPARED = 4      # check: no baseline for this machine, and the run may not make one


def _run(profile: str, out: Path, run_args: list[str]) -> results.Run:
    rc = bench_main(["run", "--profile", profile, "--out", str(out), "--no-plots", *run_args])
    if rc not in (0, 1):           # 1: a case failed its check: still compared, and reported below
        raise SystemExit(rc)
    return results.load(out)


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")


def make_baseline(profile: str, run_args: list[str], folder: Path = hist.BASELINES, console=None) -> Path:
    tmp = CHECKS / f"{_stamp()}-baseline.json"
    run = _run(profile, tmp, run_args)
    path = hist.baseline_path(run.env, folder)
    results.save(run, path)          # atomic: a Ctrl-C leaves the old baseline or the new one, whole
    hist._say(console, f"baseline for {hist.machine_name(run.env)}: {path}")
    return path


def check(profile: str = "quick", threshold: float = compare.DEFAULT_THRESHOLD, alpha: float = compare.DEFAULT_ALPHA,
          normalise: str = compare.DEFAULT_NORMALISE, confirm_attempts: int = 2, run_args: list[str] = (),
          baselines: Path = hist.BASELINES, history: Path = hist.HISTORY, plots: Path = hist.PLOTS,
          markdown: Path | None = None, force: bool = False, seed: int = 0, console=None,
          update_baseline: bool = False, report_json: Path | None = None, out: Path | None = None,
          accept_slower: bool = False) -> int:
    """Exit code: 0 nothing slower, 1 something slower, NOTHING_COMPARED where this machine has no
    baseline and the run may not make one (without --update-baseline: a green check that compared
    nothing would read as a pass)."""
    out = out or CHECKS / f"{_stamp()}-check.json"
    run = _run(profile, out, list(run_args))
    base_path = hist.baseline_path(run.env, baselines)
    if not base_path.exists():
        if update_baseline:
            results.save(run, base_path)
            said = (f"no baseline for {hist.machine_name(run.env)}: this run is now its baseline ({base_path}); "
                    "nothing was compared")
        else:
            said = (f"no baseline for {hist.machine_name(run.env)} in {baselines}: nothing was compared "
                    "(make baseline, or --update-baseline on the main branch, makes one)")
        hist._say(console, said)
        if markdown:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(f"### actbench bench-check: nothing compared\n\n> ⚠️ {said}.\n")
        hist.append(run, history)
        hist.plot(hist.read(history), plots)
        return 0 if update_baseline else NOTHING_COMPARED
    base = compare.load(base_path)
    rep = compare.compare_runs(base, compare.from_run(run, str(out)), threshold=threshold, alpha=alpha,
                               normalise=normalise, force=force)
    first = rep
    if rep.slower and confirm_attempts:
        run = hist.confirm(base, run, rep, profile, seed, confirm_attempts, console,
                      interleave="--no-interleave" not in run_args)
        results.save(run, out)
        rep = compare.compare_runs(base, compare.from_run(run, str(out)), threshold=threshold, alpha=alpha,
                                   normalise=normalise, force=force)
    if console is not None:
        compare.print_report(rep, console)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(compare.markdown(rep))
        hist._say(console, f"wrote {markdown}")
    if report_json:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        report_json.write_text(json.dumps({"before_confirm": compare.as_dict(first), "final": compare.as_dict(rep)},
                                          indent=1, default=str))
    n = hist.append(run, history)
    images = hist.plot(hist.read(history), plots)
    hist._say(console, f"history: {n} rows appended to {history}; {len(images)} plots in {plots}")
    if update_baseline:
        merged, kept = hist.next_baseline(results.load(base_path), run, rep, accept_slower=accept_slower)
        results.save(merged, base_path)
        if accept_slower:
            hist._say(console, f"this run is the new baseline ({base_path}), its {len(rep.slower)} slower case(s) "
                          f"accepted (an intentional slowdown); {kept} noisy case(s) keep their earlier measurement")
            return 0
        hist._say(console, f"this run is the new baseline ({base_path}), but for {kept} slower or noisy case(s), "
                      "whose earlier measurement stays")
    return rep.exit_code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cli.check", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("baseline", "check"):
        s = sub.add_parser(name)
        s.add_argument("--profile", default="quick")
        s.add_argument("--run-args", default="", help="more `bench run` arguments, e.g. \"--ops relu --device cpu\"")
        s.add_argument("--baselines", type=Path, default=hist.BASELINES)
    c = sub.choices["check"]
    c.add_argument("--threshold", default=f"{100 * compare.DEFAULT_THRESHOLD:g}%")
    c.add_argument("--alpha", type=float, default=compare.DEFAULT_ALPHA)
    c.add_argument("--normalise", choices=compare.NORMALISE, default=compare.DEFAULT_NORMALISE)
    c.add_argument("--confirm", type=int, default=2, help="times a slower case is measured again (default 2)")
    c.add_argument("--history", type=Path, default=hist.HISTORY)
    c.add_argument("--plots", type=Path, default=hist.PLOTS)
    c.add_argument("--markdown", type=Path, default=CHECKS / "bench-check.md")
    c.add_argument("--force", action="store_true")
    c.add_argument("--out", type=Path, help="the new run's results path (default reports/results/<date>-check.json)")
    c.add_argument("--report-json", type=Path, help="also write the verdicts (before and after confirming) as JSON")
    c.add_argument("--update-baseline", action="store_true",
                   help="this run becomes the baseline, case by case: not for cases called slower or noisy "
                        "(CI on the main branch); with no baseline, this run makes it")
    c.add_argument("--accept-slower", action="store_true",
                   help="with --update-baseline: cases called slower take this run's measurement too (an "
                        "intentional slowdown, accepted) and the check exits 0")
    pl = sub.add_parser("plot")
    pl.add_argument("--history", type=Path, default=hist.HISTORY)
    pl.add_argument("--plots", type=Path, default=hist.PLOTS)
    args = p.parse_args(argv)
    console = Console()
    if not console.is_terminal:         # a CI log: do not squeeze the table into 80 columns
        console = Console(width=max(console.width, 160))
    err = Console(stderr=True, soft_wrap=True)
    try:
        if args.command == "plot":
            _folder_usable(args.plots, "--plots")
            paths = hist.plot(hist.read(args.history, notes=lambda n: hist._say(console, n)), args.plots)
            hist._say(console, f"{len(paths)} plots in {args.plots}")
            return 0
        if args.profile not in ("quick", "full"):
            raise UsageError(f"unknown profile {args.profile!r}; valid: quick, full")
        try:
            run_args = shlex.split(args.run_args)
        except ValueError as exc:
            raise UsageError(f"--run-args {args.run_args!r}: {exc}") from None
        # every path and option checked before the minutes of measuring, not after them
        _folder_usable(args.baselines, "--baselines")
        if args.command == "check":
            if args.accept_slower and not args.update_baseline:
                raise UsageError("--accept-slower makes a slowdown the baseline: it needs --update-baseline")
            if not 0 < args.alpha < 1:          # 0 would mean the gate can never fail
                raise UsageError(f"--alpha must be between 0 and 1 (exclusive), got {args.alpha}")
            if args.confirm < 0:
                raise UsageError(f"--confirm must be 0 or more, got {args.confirm}")
            compare.parse_threshold(args.threshold)
            for path, flag in ((args.history, "--history"), (args.markdown, "--markdown"), (args.out, "--out"),
                               (args.report_json, "--report-json")):
                if path is not None:
                    _folder_usable(Path(path).parent, flag)
            _folder_usable(args.plots, "--plots")
        if args.command == "baseline":
            make_baseline(args.profile, run_args, args.baselines, console)
            return 0
        return check(args.profile, compare.parse_threshold(args.threshold), args.alpha, args.normalise, args.confirm,
                     run_args, args.baselines, args.history, args.plots, args.markdown, args.force, console=console,
                     update_baseline=args.update_baseline, report_json=args.report_json, out=args.out,
                     accept_slower=args.accept_slower)
    except UsageError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return EXIT_USAGE
    except hist.Stopped as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exc.code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted:[/] a baseline is only ever replaced whole (or not at all)", highlight=False)
        return hist.EXIT_INTERRUPTED


def _folder_usable(folder: Path, flag: str) -> None:
    """UsageError unless `folder` is a writable folder or can be made one (its nearest existing
    ancestor is a writable folder)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{flag} {folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {folder}: {probe} is not writable")


if __name__ == "__main__":
    raise SystemExit(main())
