"""Show and write a claims run: the rich verdict table, reports/claims.md and reports/claims.json.

A run is a plain dict (schema SCHEMA): configuration, seeds, environment, machine load, and per
claim its numbers, verdict and plot. Markdown and the table are rendered from that dict only, so a
saved run renders the same again.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bench.claims import rules
from bench.model.results import write_json

SCHEMA = "actbench-claims/1"
COLOUR = {"supported": "green", "refuted": "red", "depends on": "yellow", "undecided": "magenta"}


def table(run: dict) -> Table:
    t = Table(title=f"claims · {run['profile']} · seed {run['seed']} · {run['env']['cpu']['model']} · "
                    f"{run['wall_s']:.0f} s, load {_load(run)}", show_lines=True, expand=False)
    t.add_column("#", justify="right")
    t.add_column("claim", max_width=34)
    t.add_column("experiment", max_width=34)
    t.add_column("measured", max_width=60)
    t.add_column("verdict", max_width=34)
    for c in run["claims"]:
        v = c["verdict"]
        colour = COLOUR.get(v["verdict"], "white")
        t.add_row(str(c["id"]), c["claim"], c["experiment"], v["numbers"],
                  f"[bold {colour}]{v['verdict']}[/]" + (f" {v['condition']}" if v["condition"] else ""))
    return t


def beside_tables(run: dict) -> list[Table]:
    """The tables shown beside the verdicts (an experiment's "beside" numbers), for the terminal."""
    out = []
    for c in run["claims"]:
        b = c["numbers"].get("beside")
        if not b or not b["rows"]:
            continue
        t = Table(title=f"{c['id']}. beside the verdict: {b['title']}", caption=b["note"], expand=False)
        t.add_column("backend")
        t.add_column("size", justify="right")
        for col in b["columns"]:
            t.add_column(col, justify="right")
        for r in b["rows"]:
            t.add_row(r["backend"], rules.size_label(r["size"]), *_beside_cells(r, b["columns"]))
        out.append(t)
    return out


def _beside_cells(row: dict, columns: list[str]) -> list[str]:
    mark = "~" if rules.unsteady(row) else ""
    return [f"{mark}{rules.times(v)}" if v is not None else "—" for v in (row["values"][c] for c in columns)]


def _beside_markdown(b: dict) -> list[str]:
    out = [f"*Beside the verdict:* {b['title']}. {b['note']}." + (" ~: noisy or starved, as in the verdict." if any(
        rules.unsteady(r) for r in b["rows"]) else ""), "",
        "| backend | size | " + " | ".join(b["columns"]) + " |", "|---|---:|" + "---:|" * len(b["columns"])]
    out += [f"| {r['backend']} | {rules.size_label(r['size'])} | " + " | ".join(_beside_cells(r, b["columns"])) + " |"
            for r in b["rows"]]
    return out + [""]


def _load(run: dict) -> str:
    ld = run["load"]
    return f"{ld['before'][0]:.1f} before, {ld['max_1min']:.1f} max, {ld['after'][0]:.1f} after (1-min avg, {ld['cores']} cores)"


def markdown(run: dict, plots_rel: dict[int, str]) -> str:
    env = run["env"]
    out = [
        "# Claims: what ReLU's advantages over sigmoid measure on this hardware",
        "",
        f"`{env['command']}` · profile **{run['profile']}** · seed {run['seed']} · {env['cpu']['model']}, "
        f"{env['cpu']['cores']} cores · GPU: {run['gpu'] or 'none'} · networks on backend `{run['net_backend']}` · "
        f"{run['wall_s']:.0f} s wall · machine load {_load(run)} · git {(env.get('git') or {}).get('commit') or '?'}",
        "",
        "Each verdict comes from a rule in `bench/claims/rules.py` applied to the numbers of this run; "
        "the last column says what would change it. Every number is in the JSON beside this file. "
        "Times are ratios within this run of the fastest samples (a shared machine only ever adds time).",
        "",
        "| # | claim | verdict | measured | what would change it |",
        "|---|---|---|---|---|",
    ]
    for c in run["claims"]:
        v = c["verdict"]
        label = f"**{v['verdict']}**" + (f" {v['condition']}" if v["condition"] else "")
        out.append(f"| {c['id']} | {_md(c['claim'])} | {_md(label)} | {_md(v['numbers'])} | {_md(v['would_change'])} |")
    out.append("")
    for c in run["claims"]:
        out += [f"## {c['id']}. {c['claim']}", "", f"*Experiment:* {c['experiment']} ({c['wall_s']:.1f} s).", "",
                f"*Verdict:* **{c['verdict']['verdict']}** {c['verdict']['condition']}".rstrip(), "",
                f"*Measured:* {c['verdict']['numbers']}", "", f"*Would change it:* {c['verdict']['would_change']}", ""]
        if (c["numbers"].get("beside") or {}).get("rows"):
            out += _beside_markdown(c["numbers"]["beside"])
        if c["id"] in plots_rel:
            out += [f"![claim {c['id']}]({plots_rel[c['id']]})", ""]
    return "\n".join(out)


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def save_json(run: dict, path: Path) -> Path:
    """Write the run atomically (bench/model/results.py's writer: a temporary file, then a rename)."""
    return write_json(run, path)
