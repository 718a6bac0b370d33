"""A run as a GitHub Markdown report: environment and peaks, how to read, a table per op with
footnotes for failed and skipped cases, and links to the plots."""

from __future__ import annotations

from pathlib import Path

from bench import kinds
from bench.report.formatting import (
    BEST,
    UNSTABLE,
    Notes,
    header_warnings,
    env_lines,
    fmt_size,
    level_legend,
    mark_lines,
    ok_lines,
    op_title,
    run_label,
)
from bench.model.results import CaseResult, Run, Status, backend_order, best_backend, by_op, rows


def _md(text: str) -> str:
    """Text for a Markdown table cell: pipes and tildes (GitHub strikethrough) escaped."""
    return text.replace("|", "\\|").replace("~", "\\~").replace("\n", "<br>")


def _definitions(notes: Notes, numbers) -> list[str]:
    """GitHub footnote definitions of the notes numbered `numbers` (numbered across the document)."""
    return [f"[^{n}]: {status}: {_md(reason)}" for (status, reason), n in notes.items.items() if n in numbers]


def md_cell(e: CaseResult | None, best: bool, notes: Notes) -> str:
    if e is None:
        return "-"
    if e.status is Status.FAILED:
        return f"**FAILED**[^{notes.ref(e)}]"
    if e.status is Status.SKIPPED:
        return f"skipped[^{notes.ref(e)}]"
    text = "<br>".join(_md(line) for line in ok_lines(e, best))
    return f"**{text}**" if best else text


def md_table(run: Run, op: str, entries: list[CaseResult], notes: Notes) -> list[str]:
    backends, before = backend_order(entries), set(notes.items.values())
    out = [f"### {op_title(run, op, entries)}", "",
           "| dtype | size | " + " | ".join(backends) + " |",
           "|---|---|" + "---:|" * len(backends)]
    for (dtype, size), cells in rows(entries).items():
        best = best_backend(cells)
        out.append(f"| {dtype} | {_md(fmt_size(size))} | "
                   + " | ".join(md_cell(cells.get(b), b == best, notes) for b in backends) + " |")
    new = set(notes.items.values()) - before
    marks = [_md(line) for line in mark_lines(entries)]
    return out + ([""] + marks if marks else []) + ([""] + _definitions(notes, new) if new else [])


def how_to_read(run: Run) -> str:
    ns = [e.n for e in run.results if e.n]
    n = f"{min(ns)}-{max(ns)}" if ns and min(ns) != max(ns) else (str(ns[0]) if ns else "n")
    levels = level_legend(run, list(run.results))
    return (f"How to read: each time is the median of {n} samples ± its IQR (relative); GB/s counts "
            "the bytes the op must move (each input read once, each output written once, GB = 1e9 B); "
            "% of peak is relative to the copy bandwidth measured on the same device in the same run; "
            "speed-up = numpy median / this median. Ratios within one run (% of peak, speed-ups) are "
            f"what travel between machines; absolute times do not. **{BEST}** marks the fastest in "
            f"its row, {_md(UNSTABLE)} a timing that did not stabilise."
            + (f" {_md(levels)}." if levels else ""))


def markdown(run: Run, plots=None) -> str:
    """The run as GitHub Markdown: environment and peaks, how to read, a table per op with its
    footnotes, and image links to `plots` (paths relative to the Markdown file; absolute paths are
    reduced to their file name, i.e. the images are assumed to lie beside it)."""
    images = [Path(p) for p in plots or []]
    out = [f"# actbench: {run_label(run)}", ""]
    for warning in header_warnings(run):
        out += [f"> **{_md(warning)}**", ""]
    out += [f"- **{label}**: {_md(text)}" for label, text in env_lines(run)]
    out += ["", how_to_read(run), ""]
    notes, used, done = Notes(), set(), []
    for op, entries in by_op(run).items():
        kind = kinds.of(entries[0])
        if kind.markdown is not None:       # a kind with tables of its own, where its first op comes
            if kind not in done:
                out += [kind.markdown(run), ""]
                done.append(kind)
            continue
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
