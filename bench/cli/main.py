"""Command line: `actbench list | run | report | compare | ab | claims` (or `python -m bench ...`).

    python -m bench list [--json] [--plugin P]     which op runs on which backend here, or why not
    python -m bench run [--profile quick|full] [--ops ...] [--backends ...] [--dtypes ...]
                        [--sizes 2**20,16M] [--device cpu|gpu|all] [--out PATH] [--seed N]
                        [--plugin my_kernels.py]   your own kernels too (docs/plugins.md)
    python -m bench report FILE [FILE ...]         render saved results again, side by side
    python -m bench compare BASE NEW [--threshold 10%] [--alpha 0.01] [--markdown FILE] [--force]
                                                   slower / faster / same / noisy per case; exit 1 if slower
    python -m bench ab BASE [HEAD] [--cases pr|quick] [--pairs 5]
                                                   base and head measured side by side, judged pair by pair (bench/analysis/ab.py)

A user's mistake (unknown name, malformed size, unreadable file) is one line on stderr and exit
code 2, never a traceback. `run` exits 1 when any case failed its correctness check, 130 after
Ctrl-C or SIGTERM, and 3 when an exception stopped it (one line says what failed and where): in
each case once what was measured is saved, marked interrupted, and shown.

`actbench` is the console script pyproject.toml installs ([project.scripts], `entry` below): it
imports the installed package from any folder. `python -m bench` puts the current folder first on
sys.path, so in a folder holding another `bench/` package it runs that one, before a line of this
file could object; there, use `actbench` or `python -P -m bench` (-P: no current folder on the path).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench import kinds
from bench.analysis import ab, compare
from bench.claims.cli import add_parser as add_claims_parser
from bench.claims.cli import main as claims_main
from bench.measure.signals import sigterm_as_ctrl_c
from bench.model import results
from bench.model.cases import PROFILES, UsageError
from bench.report import listing, markdown, summary, tables
from bench.run import plan, plugins, runner

EXIT_FAILED, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):           # argparse's own errors: one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


PROG = "python -m bench"


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="actbench: honest measurements of ReLU, sigmoid and "
                "their gradients on every backend, each checked against a float64 reference before it is timed.")
    sub = p.add_subparsers(dest="command", metavar="{list,run,report,compare,ab,claims}", parser_class=_Parser)
    sub.required = True

    ls = sub.add_parser("list", help="the op x backend matrix: available here, or why not",
                        description="Show which op runs on which backend on this machine, and why a backend cannot.")
    ls.add_argument("--json", action="store_true", help="print the matrix and backend records as JSON")
    _plugin_flag(ls)

    r = sub.add_parser("run", help="check and time the case matrix; print tables, write JSON, Markdown, plots",
                       description="Check every case against the float64 reference, time the ones that pass, "
                       "and show time, GB/s, % of the copy peak measured in the same run, and speed-up over NumPy.")
    r.add_argument("--profile", default="quick", help="quick (default) or full; longer on a busy machine. "
                   + "; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()))
    r.add_argument("--ops", help="comma-separated op ids (default: all), e.g. relu,sigmoid")
    r.add_argument("--backends", help="comma-separated backend ids (default: every available one)")
    r.add_argument("--dtypes", help="comma-separated dtypes: float16, float32, float64 (default: the profile's)")
    r.add_argument("--sizes", help="comma-separated sizes in elements: 2**20, 2^20, 16M (=16*2**20), 16k, 1048576 "
                   "(default: the profile's)")
    r.add_argument("--device", default="all", help="cpu, gpu or all (default)")
    for dest, help_ in kinds.flags():        # each op kind's own flags (bench/kinds/)
        r.add_argument(f"--{dest}", help=help_)
    r.add_argument("--out", type=Path, help="results JSON path (default reports/results/<date>-<host>.json); "
                   "the Markdown report and the plots folder are written beside it")
    r.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    r.add_argument("--budget", type=float, help="sampling time budget per case in seconds (default: the "
                   "profile's; at least 10 samples are always taken)")
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=True,
                   help="sample the backends of each (op, dtype, size) round-robin in a shuffled order, with a "
                   "copy probe beside the CPU cases beyond the cache, so ratios and %% of peak come from samples "
                   "taken side by side (default; --no-interleave times one case after another)")
    _plugin_flag(r)

    rep = sub.add_parser("report", help="render saved results again; several files side by side",
                         description="Print the tables of saved results; with several files, the same cases "
                         "side by side with the ratio of each to the first.")
    rep.add_argument("files", nargs="+", type=Path, help="results JSON files")
    rep.add_argument("--markdown", type=Path, help="also write the first file's Markdown report here")
    compare.add_parser(sub)
    ab.add_parser(sub)
    add_claims_parser(sub)
    return p


def _plugin_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE",
                   help="load your own kernels first: a .py file or an importable module that declares a backend "
                   f"and registers kernels (docs/plugins.md); repeatable. Installed plugins (entry points "
                   f"{plugins.GROUP!r}) are always loaded")


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # piped or captured: do not squeeze tables into 80 columns, unless COLUMNS asks for a width
        console = Console(width=max(console.width, 160))
    err = Console(stderr=True, soft_wrap=True)
    try:
        args = _parser(prog).parse_args(argv)
        args.prog = prog            # the run records the command as the user typed it
        if args.command in ("list", "run"):     # before anything is planned or listed
            args.plugins = plugins.load(args.plugin)
        if args.command == "list":
            return _list(args, console)
        if args.command == "run":
            return _run(args, console, argv)
        if args.command == "compare":
            return compare.run_command(args, console)
        if args.command == "ab":
            return ab.run_command(args, console)
        if args.command == "claims":
            return claims_main(args, console, argv, UsageError)
        return _report(args, console)
    except UsageError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, markup=True)
        return EXIT_USAGE


def _list(args, console) -> int:
    if args.json:
        print(json.dumps({**listing.as_dict(), "plugins": args.plugins}, indent=1))
    else:
        listing.show(console)
        for p in args.plugins:
            console.print(f"plugin {p['plugin']}: backend(s) {', '.join(p['backends']) or '-'}; kernels "
                          f"{', '.join(p['kernels'])} ({p['path']})", highlight=False, markup=False)
    return 0


def _run(args, console, argv) -> int:

    prof, todo, notes = plan.build(args.profile, args.ops, args.backends, args.dtypes, args.sizes, args.device,
                                   args.budget, **{dest: getattr(args, dest) for dest, _ in kinds.flags()})
    if not todo:
        raise UsageError("nothing to run: no available backend matches --backends/--device"
                         + (f" ({'; '.join(notes)})" if notes else ""))
    out = args.out or results.default_path()
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file path ending in .json")
    if out.exists() and not out.is_file():      # a device or a pipe: the save renames a file over it
        raise UsageError(f"--out {out} is not a regular file; give a file path ending in .json")
    if args.seed < 0:                           # NumPy refuses it, after the peaks were measured
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    with _one_writer(out):          # before anything is measured: --out can be written, by us alone
        return _measure(args, console, argv, prof, todo, notes, out)


def _measure(args, console, argv, prof, todo, notes, out: Path) -> int:


    for note in notes:
        console.print(note, style="dim", highlight=False, markup=False)
    command = f"{getattr(args, 'prog', PROG)} " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    console.print(f"{len(todo)} cases, profile {prof.name}; results -> {out}", highlight=False)

    def save_partial(run):
        # marked: a run killed now (SIGKILL, power) must not leave a file that says it is whole
        results.save(dataclasses.replace(run, interrupted=True), out)

    # the description gives way to the clocks: at 80 columns a 44-wide one cut the elapsed time to '0:00:…'
    w = max(16, min(44, console.width - 52))
    columns = (TextColumn(f"{{task.description:<{w}.{w}}}"), BarColumn(bar_width=20), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with sigterm_as_ctrl_c(), Progress(*columns, console=console, transient=True) as progress:
        run = runner.run_cases(prof, todo, seed=args.seed, command=command, progress=progress,
                               on_case=save_partial, interleave=args.interleave,
                               plugins=getattr(args, "plugins", None))
    try:
        paths, unsaved = _write_outputs(run, out, plots=not args.no_plots), None
    except OSError as exc:          # a full disk, a folder made read-only meanwhile
        paths, unsaved = [], exc
    tables.print_run(run, console, short_header=True)
    console.print()
    console.rule("summary", align="left", style="dim")
    for line in summary.lines(run, paths):
        console.print(line, highlight=False, markup=False)
    if unsaved is not None:
        why = unsaved.strerror or str(unsaved)
        err = Console(stderr=True, soft_wrap=True)
        err.print(f"[red]error:[/] could not write the results beside {out} ({why}): the tables above are "
                  "all there is of this run; the file holds the last save that got through, marked interrupted",
                  highlight=False)
        return EXIT_ERROR
    if run.error:
        console.print(f"[bold red]error:[/] the run stopped at {run.error}; the {len(run.results)} case(s) "
                      f"measured before are saved in {out}, marked interrupted", highlight=False)
        return EXIT_ERROR
    if run.interrupted:
        console.print("[yellow]interrupted: the cases measured so far are saved and shown[/]")
        return EXIT_INTERRUPTED
    failed = [e for e in run.results if e.status is results.Status.FAILED]
    if failed:
        console.print(f"[bold red]{len(failed)} case(s) FAILED the correctness check[/]")
        return EXIT_FAILED
    return 0


@contextmanager
def _one_writer(out: Path):
    """A lock file beside `out` while a run writes it: a second run on the same --out is refused
    (it would silently replace the first's file and mix both in the plots folder), and creating the
    lock proves the folder writable before anything is measured. A lock whose process is gone (a
    run killed by SIGKILL) is taken over."""
    lock = out.with_name(out.name + ".lock")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = _lock_owner(lock)
                if pid is not None and _alive(pid):
                    raise UsageError(f"--out {out} is being written by another run (pid {pid}; lock {lock}): "
                                     "give another --out") from None
                lock.unlink(missing_ok=True)            # its run died without removing it
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            break
        else:
            raise UsageError(f"--out {out}: another run keeps taking its lock {lock}")
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_owner(lock: Path) -> int | None:
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # another user's live process
        return True
    return True


def _write_outputs(run, out: Path, plots: bool = True) -> list[Path]:
    paths = [results.save(run, out)]
    images = []
    if plots:
        from bench.report import plots as plotting
        images = plotting.write_plots(run, out.with_suffix("").with_name(out.stem + "-plots"))
    md = out.with_suffix(".md")
    md.write_text(markdown.markdown(run, plots=[p.relative_to(md.parent) for p in images]))
    return paths + [md] + images


def _report(args, console) -> int:
    try:
        # figures derived again: a file written before a kind derived one (pct_of_limit of the
        # sparse cases, schema 3) shows it as a new run would; the same file's figures stay the same
        runs = [kinds.derive(results.load(f)) for f in args.files]
    except results.ResultsError as exc:
        raise UsageError(str(exc)) from None
    if len(runs) == 1:
        tables.print_run(runs[0], console)
    else:
        # short labels in the column headers, each file's whole name once above its header: as headers,
        # the names were cut to '2026-11-29T144317-…' and every column looked alike
        labels = [f"#{i + 1}" for i in range(len(runs))]
        for label, f, run in zip(labels, args.files, runs):
            console.print(f"{label} = {f}", highlight=False, markup=False, soft_wrap=True)
            console.print(tables.summary(run))
        for t in tables.side_by_side(runs, labels):
            console.print(t)
    if args.markdown:
        try:
            args.markdown.write_text(markdown.markdown(runs[0]))
        except OSError as exc:
            raise UsageError(f"--markdown {args.markdown}: cannot write it ({exc.strerror or exc})") from None
        console.print(f"wrote {args.markdown}", highlight=False)
    return 0


def entry(argv: list[str] | None = None, prog: str = "actbench") -> int:
    """The `actbench` console script: the commands of `python -m bench`, its exit codes included."""
    try:
        return main(argv, prog)
    except KeyboardInterrupt:          # Ctrl-C outside a run (a run handles its own)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(entry(prog=PROG))
