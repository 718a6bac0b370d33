"""Showing a run: rich tables per op, several runs side by side, the environment, and Markdown.

Everything here reads results dicts (the schema in bench/results.py) and nothing else: no kernels
are run and nothing is timed. A table per op has one row per (dtype, size) and one column per
backend (numpy first); a cell gives the median time +- IQR, GB/s, % of the device's copy peak
measured in the same run, and the speed-up over numpy. The fastest cell of a row is marked.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

BEST = "★"          # the fastest (lowest median) cell of a row
UNSTABLE = "~"      # the median did not stabilise within the case's time budget
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
EXTRA_KEYS = ("shape", "batch", "sparsity")     # matmul cases add these to their row


# ------------------------------------------------------------------------------------ numbers

def sig3(v: float) -> str:
    """v with 3 significant digits, keeping trailing zeros: 1.20, 12.0, 123, 1230."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(float(f"{v:.3g}")))))
    return f"{v:.{decimals}f}"


def fmt_time(s: float | None) -> str:
    """Seconds as ns / us / ms / s with 3 significant digits: '1.23 ms'."""
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if float(f"{s / scale:.3g}") >= 1:
            return f"{sig3(s / scale)} {unit}"
    return f"{sig3(s / 1e-9)} ns"


def fmt_count(n: float) -> str:
    """A count with 3 significant digits and a k / M / G suffix: 33.6M."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if float(f"{n / scale:.3g}") >= 1:
            return f"{sig3(n / scale)}{suffix}"
    return str(int(n))


def fmt_size(n: int) -> str:
    """Elements as '2^25 (33.6M)' for a power of two, else a human count."""
    n = int(n)
    if n > 0 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1} ({fmt_count(n)})"
    return fmt_count(n) if n >= 10_000 else str(n)


def fmt_speedup(x: float | None) -> str:
    if x is None:
        return "-"
    return f"x {x:.2f}" if x < 10 else f"x {sig3(x)}"


def fmt_iqr(e: dict) -> str:
    """The IQR relative to the median: '±1.6%' ('' when unknown)."""
    med, iqr = e.get("median_s"), e.get("iqr_s")
    if not med or iqr is None:
        return ""
    pct = 100 * iqr / med
    return f" ±{pct:.1f}%" if pct < 10 else f" ±{pct:.0f}%"


# ------------------------------------------------------------------------------------ grouping

def op_order(ops) -> list[str]:
    """The ops in kernels.reference.OPS order; ops it does not know come last, as they appear."""
    try:
        from kernels.reference import OPS
        known = list(OPS)
    except ImportError:
        known = []
    ops = list(dict.fromkeys(ops))
    return sorted(ops, key=lambda op: known.index(op) if op in known else len(known) + ops.index(op))


def backend_order(entries) -> list[str]:
    """numpy first, then the other backends in order of appearance."""
    names = list(dict.fromkeys(e["backend"] for e in entries))
    return sorted(names, key=lambda b: (b != "numpy", names.index(b)))


def by_op(run: dict) -> dict[str, list[dict]]:
    """The run's results grouped by op, ops in their canonical order."""
    results = run.get("results") or []
    return {op: [e for e in results if e["op"] == op] for op in op_order(e["op"] for e in results)}


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def row_key(e: dict) -> tuple:
    """A table row: (dtype, size, matmul extras)."""
    extras = tuple((k, _hashable(e[k])) for k in EXTRA_KEYS if e.get(k) is not None)
    return (e.get("dtype"), e.get("size"), extras)


def rows(entries) -> dict[tuple, dict[str, dict]]:
    """row key -> {backend: entry}, rows sorted by dtype (as they appear) then size."""
    dtypes = list(dict.fromkeys(e.get("dtype") for e in entries))
    out: dict[tuple, dict[str, dict]] = {}
    for e in entries:
        out.setdefault(row_key(e), {}).setdefault(e["backend"], e)
    order = sorted(out, key=lambda k: (dtypes.index(k[0]), k[1] or 0, str(k[2])))
    return {k: out[k] for k in order}


def best_backend(cells: dict[str, dict]) -> str | None:
    """The backend with the lowest median among the row's ok cases."""
    timed = [(e["median_s"], b) for b, e in cells.items() if e.get("status") == OK and e.get("median_s") is not None]
    return min(timed)[1] if timed else None


def size_label(key: tuple) -> str:
    dtype, size, extras = key
    label = fmt_size(size) if size is not None else "-"
    for k, v in extras:
        label += f"\n{k} " + ("x".join(map(str, v)) if isinstance(v, tuple) else str(v))
    return label


def dtypes_of(entries) -> list[str]:
    return list(dict.fromkeys(e.get("dtype") for e in entries if e.get("dtype")))


def devices_of(entries) -> list[str]:
    return list(dict.fromkeys(e.get("device") for e in entries if e.get("device")))


def peak_label(run: dict, device: str) -> str:
    """'cpu peak 24.1 GB/s (2-thread copy)', or that no peak was measured."""
    peak = (run.get("peaks") or {}).get(device) or {}
    if peak.get("gbps") is None:
        return f"{device} peak not measured"
    method = f" ({peak['method']})" if peak.get("method") else ""
    return f"{device} peak {sig3(peak['gbps'])} GB/s{method}"


def op_title(run: dict, op: str, entries) -> str:
    peaks = ", ".join(peak_label(run, d) for d in devices_of(entries))
    return " · ".join(p for p in (op, ", ".join(dtypes_of(entries)), peaks) if p)


# ------------------------------------------------------------------------------------ cells

class Notes:
    """Footnotes for failed and skipped cases: one number per distinct (status, reason)."""

    def __init__(self):
        self.items: dict[tuple[str, str], int] = {}

    def ref(self, e: dict) -> int:
        reason = " ".join(str(e.get("reason") or "no reason given").split())
        return self.items.setdefault((e.get("status"), reason), len(self.items) + 1)

    def lines(self) -> list[str]:
        return [f"[{n}] {status}: {reason}" for (status, reason), n in self.items.items()]


def ok_lines(e: dict, best: bool) -> list[str]:
    """The four short lines of a timed case: time ± IQR, GB/s, % of peak, speed-up vs numpy."""
    mark = (f"{BEST} " if best else "") + (UNSTABLE if e.get("stable") is False else "")
    gbps, pct = e.get("gbps"), e.get("pct_peak")
    return [f"{mark}{fmt_time(e.get('median_s'))}{fmt_iqr(e)}",
            f"{sig3(gbps)} GB/s" if gbps is not None else "- GB/s",
            f"{sig3(pct)}% peak" if pct is not None else "- % peak",
            fmt_speedup(e.get("speedup_vs_numpy"))]


def rich_cell(e: dict | None, best: bool, notes: Notes, compact: bool = False) -> Text:
    if e is None:
        return Text("-", style="dim")
    status = e.get("status")
    if status == FAILED:
        return Text.assemble(("FAILED", "bold red"), f" [{notes.ref(e)}]")
    if status == SKIPPED:
        return Text(f"skipped [{notes.ref(e)}]", style="dim")
    return Text((" " if compact else "\n").join(ok_lines(e, best)), style="bold green" if best else "")


CELL_HELP = ("median ± IQR (relative) · GB/s · % of the device's copy peak · "
             "x speed-up vs numpy (numpy median / this median)")


def legend(notes: Notes, entries, how: str = CELL_HELP, best: bool = True) -> Text:
    """The caption: how to read a cell, the markers, and the footnotes of failed / skipped cases."""
    text = Text(how, style="dim")
    if best:
        text.append(f"\n{BEST} fastest in its row (bold green)", style="dim")
    if any((e.get("pct_peak") or 0) > 100 for e in entries):
        text.append("\n% peak above 100: the arrays fit in a cache, which is faster than the memory "
                    "the copy peak streams through", style="dim")
    if any(e.get("stable") is False for e in entries):
        text.append(f"\n{UNSTABLE} the timing did not stabilise within the case's budget "
                    "(its median's 95 % confidence interval stayed wider than the target): read it with care", style="dim")
    for line in notes.lines():
        text.append("\n" + line, style="red" if "] failed:" in line else "dim")
    return text


# ------------------------------------------------------------------------------------ tables

def op_table(run: dict, op: str, entries, compact: bool = False) -> Table:
    notes, backends = Notes(), backend_order(entries)
    table = Table(title=op_title(run, op, entries), title_justify="left", caption_justify="left",
                  show_lines=not compact, box=box.SIMPLE_HEAVY if compact else box.ROUNDED)
    table.add_column("dtype")
    table.add_column("size", no_wrap=True)
    for b in backends:
        table.add_column(b, justify="right", no_wrap=compact)
    for key, cells in rows(entries).items():
        best = best_backend(cells)
        table.add_row(key[0] or "-", size_label(key),
                      *(rich_cell(cells.get(b), b == best, notes, compact) for b in backends))
    table.caption = legend(notes, entries)
    return table


def op_tables(run: dict, compact: bool = False) -> list[Table]:
    """One rich Table per op: rows (dtype, size), columns backends (numpy first); cells of four
    short lines, or one line each when compact."""
    return [op_table(run, op, entries, compact) for op, entries in by_op(run).items()]


def _run_cell(e: dict | None, first: dict | None, later: bool, notes: Notes) -> Text:
    if e is None or e.get("status") != OK:
        return rich_cell(e, False, notes)
    pct = e.get("pct_peak")
    lines = [(UNSTABLE if e.get("stable") is False else "") + fmt_time(e.get("median_s")),
             f"{sig3(pct)}% peak" if pct is not None else "- % peak"]
    if later:
        lines.append(ratio_label(e, first))
    return Text("\n".join(lines))


def ratio(e: dict | None, first: dict | None) -> float | None:
    """This case's median over the first run's median of the same case (None when either is untimed)."""
    if not e or not first or e.get("status") != OK or first.get("status") != OK:
        return None
    if not e.get("median_s") or not first.get("median_s"):
        return None
    return e["median_s"] / first["median_s"]


def ratio_label(e: dict | None, first: dict | None) -> str:
    r = ratio(e, first)
    return "-" if r is None else f"{r:.2f}x"


def side_by_side(runs: list[dict], labels: list[str] | None = None) -> list[Table]:
    """The same cases from several runs: per op a table whose columns are (backend, run), each cell
    median time and % of that run's peak, and for later runs the ratio to the first ('0.93x')."""
    labels = list(labels) if labels else [run_label(r, i) for i, r in enumerate(runs)]
    grouped = [by_op(r) for r in runs]
    tables = []
    for op in op_order(op for g in grouped for op in g):
        per_run = [g.get(op, []) for g in grouped]
        tables.append(_side_table(runs, labels, op, per_run))
    return tables


def _side_table(runs, labels, op, per_run) -> Table:
    everything = [e for entries in per_run for e in entries]
    backends, keys = backend_order(everything), list(rows(everything))
    cells = [rows(entries) for entries in per_run]
    peaks = " · ".join(f"{lab}: " + ", ".join(peak_label(r, d) for d in devices_of(everything))
                       for lab, r in zip(labels, runs))
    table = Table(title=f"{op} · {', '.join(dtypes_of(everything))} · {peaks}", title_justify="left",
                  caption_justify="left", show_lines=True, box=box.ROUNDED)
    table.add_column("dtype")
    table.add_column("size", no_wrap=True)
    for b in backends:
        for lab in labels:
            table.add_column(f"{b}\n{lab}", justify="right")
    notes = Notes()
    for key in keys:
        row = []
        for b in backends:
            first = cells[0].get(key, {}).get(b)
            row += [_run_cell(c.get(key, {}).get(b), first, i > 0, notes) for i, c in enumerate(cells)]
        table.add_row(key[0] or "-", size_label(key), *row)
    table.caption = legend(notes, everything, best=False, how=(
        f"median · % of that run's own copy peak · ratio = this run's median / {labels[0]}'s median "
        "(below 1: faster) · - : not in that run"))
    return table


def run_label(run: dict, i: int = 0) -> str:
    env = run.get("env") or {}
    commit = ((env.get("git") or {}).get("commit") or "")[:7]
    return " ".join(p for p in (env.get("host"), commit) if p) or f"run {i + 1}"


# ------------------------------------------------------------------------------------ environment

def _blas_line(info: dict) -> str:
    arch = info.get("architecture") or info.get("coretype")
    parts = [f"{info.get('internal_api', '?')} {info.get('version') or ''}".strip(),
             f"{info.get('num_threads', '?')} threads", arch]
    return f"{info.get('user_api', 'blas')}: " + ", ".join(str(p) for p in parts if p)


def _gpu_line(gpu: dict | None) -> str:
    if not gpu:
        return "no GPU"
    mem = gpu.get("memory_bytes")
    parts = [gpu.get("name"), f"{mem / 2**30:.0f} GiB" if mem else None,
             f"cc {gpu['compute_capability']}" if gpu.get("compute_capability") else None,
             f"driver {gpu['driver']}" if gpu.get("driver") else None,
             f"CUDA {gpu['cuda_runtime']}" if gpu.get("cuda_runtime") else None]
    return ", ".join(str(p) for p in parts if p)


def _git_line(git: dict | None) -> str:
    git = git or {}
    if not git.get("commit"):
        return "unknown"
    return git["commit"][:10] + (" (dirty)" if git.get("dirty") else "")


def env_lines(run: dict) -> list[tuple[str, str]]:
    """(label, text) pairs describing where and how the run happened, then the peaks."""
    env = run.get("env") or {}
    cpu, nb, npy = env.get("cpu") or {}, env.get("numba") or {}, env.get("numpy") or {}
    llc = f", LLC {cpu['llc_bytes'] / 2**20:.0f} MiB" if cpu.get("llc_bytes") else ""
    lines = [("host", ", ".join(str(p) for p in (env.get("host"), env.get("platform"),
                                                   env.get("python") and f"Python {env['python']}") if p)),
             ("cpu", f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores{llc}"),
             ("numpy", f"{npy.get('version', '?')}; " + ("; ".join(map(_blas_line, npy.get("blas") or []))
                                                        or "no BLAS info"))]
    if nb:
        lines.append(("numba", f"{nb.get('version', '?')}, {nb.get('threads', '?')} threads"
                      + (f" ({nb['threading_layer']})" if nb.get("threading_layer") else "")))
    lines += [("gpu", _gpu_line(env.get("gpu"))),
              ("git", _git_line(env.get("git"))),
              ("profile", f"{env.get('profile') or '-'}, seed {env.get('seed', '-')}, "
                          f"created {run.get('created', '?')}"
                          + (", INTERRUPTED (partial results)" if run.get("interrupted") else ""))]
    for dev in run.get("peaks") or {}:
        lines.append(("peak", peak_label(run, dev)))
    return lines


def summary(run: dict):
    """The environment and the peaks, a few lines in a panel."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan")
    grid.add_column()
    for label, text in env_lines(run):
        grid.add_row(label, Text(text, style="bold red" if "INTERRUPTED" in text else ""))
    return Panel(grid, title="actbench run", title_align="left", expand=False)


def print_run(run: dict, console: Console | None = None, compact: bool = False) -> None:
    """Print the summary, then a table per op (what `bench run` and `bench report` show)."""
    console = console or Console()
    console.print(summary(run))
    for table in op_tables(run, compact):
        console.print()
        console.print(table)


# ------------------------------------------------------------------------------------ markdown

def _md(text: str) -> str:
    """Text for a Markdown table cell: pipes and tildes (GitHub strikethrough) escaped."""
    return text.replace("|", "\\|").replace("~", "\\~").replace("\n", "<br>")


class _MdNotes(Notes):
    """Footnotes numbered across the whole document (GitHub footnote syntax)."""

    def refs(self, e: dict) -> str:
        return f"[^{self.ref(e)}]"

    def definitions(self, numbers) -> list[str]:
        return [f"[^{n}]: {status}: {_md(reason)}" for (status, reason), n in self.items.items() if n in numbers]


def md_cell(e: dict | None, best: bool, notes: _MdNotes) -> str:
    if e is None:
        return "-"
    if e.get("status") == FAILED:
        return f"**FAILED**{notes.refs(e)}"
    if e.get("status") == SKIPPED:
        return f"skipped{notes.refs(e)}"
    text = "<br>".join(_md(line) for line in ok_lines(e, best))
    return f"**{text}**" if best else text


def md_table(run: dict, op: str, entries, notes: _MdNotes) -> list[str]:
    backends, before = backend_order(entries), set(notes.items.values())
    out = [f"### {op_title(run, op, entries)}", "",
           "| dtype | size | " + " | ".join(backends) + " |",
           "|---|---|" + "---:|" * len(backends)]
    for key, cells in rows(entries).items():
        best = best_backend(cells)
        out.append(f"| {key[0] or '-'} | {_md(size_label(key))} | "
                   + " | ".join(md_cell(cells.get(b), b == best, notes) for b in backends) + " |")
    new = set(notes.items.values()) - before
    return out + ([""] + notes.definitions(new) if new else [])


def how_to_read(run: dict) -> str:
    ns = [e["n"] for e in run.get("results") or [] if e.get("n")]
    n = f"{min(ns)}-{max(ns)}" if ns and min(ns) != max(ns) else (str(ns[0]) if ns else "n")
    return (f"How to read: each time is the median of {n} samples ± its IQR (relative); GB/s counts "
            "the bytes the op must move (each input read once, each output written once, GB = 1e9 B); "
            "% of peak is relative to the copy bandwidth measured on the same device in the same run; "
            "speed-up = numpy median / this median. Ratios within one run (% of peak, speed-ups) are "
            f"what travel between machines; absolute times do not. **{BEST}** marks the fastest in "
            f"its row, {_md(UNSTABLE)} a timing that did not stabilise.")


def markdown(run: dict, plots=None) -> str:
    """The run as GitHub Markdown: environment and peaks, how to read, a table per op with its
    footnotes, and image links to `plots` (paths relative to the Markdown file; absolute paths are
    reduced to their file name, i.e. the images are assumed to lie beside it)."""
    images = [Path(p) for p in plots or []]
    out = [f"# actbench: {run_label(run)}", ""]
    out += [f"- **{label}**: {_md(text)}" for label, text in env_lines(run)]
    out += ["", how_to_read(run), ""]
    notes, used = _MdNotes(), set()
    for op, entries in by_op(run).items():
        out += md_table(run, op, entries, notes) + [""]
        for img in images:
            if img.stem.rsplit("-", 1)[0] == op:
                used.add(img)
                out += [_md_image(img), ""]
    out += [_md_image(img) + "\n" for img in images if img not in used]
    return "\n".join(out).rstrip() + "\n"


def _md_image(path: Path) -> str:
    link = path.name if path.is_absolute() else path.as_posix()
    return f"![{path.stem}]({link})"
