"""`python -m bench list`: the op x backend matrix of this machine, as a rich table or JSON.

A cell says whether the op runs on the backend here: "ok", "sim" (numba-cuda's simulator: checked
in tests, never timed), "n/a" (the backend cannot run here; the reason is in the backend table),
"omit" (left out on purpose: the backend has no kernel of its own for it, and timing a composition
would not measure the peer at its best; the reason is listed under the tables), or "-" (no kernel
for that op on that backend). A backend that reads subnormal inputs as zero (CuPy's ufuncs, compiled
with -ftz=true) is named under the tables with what its gate accepts.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

import kernels
from kernels import registry


def _state(op: str, be: registry.Backend, have: set) -> str:
    if (op, be.name) not in have:
        return "omit" if op in be.omitted else "-"
    if not be.available:
        return "n/a"
    return "sim" if be.simulated else "ok"


def as_dict() -> dict:
    have = {(k.op, k.backend) for k in registry.kernels()}
    bes = kernels.all_backends()
    return {
        "backends": [{"name": b.name, "device": b.device, "library": b.library, "available": b.available,
                      "reason": b.reason, "simulated": b.simulated, "dtypes": list(b.dtypes),
                      "description": b.description, "omitted": dict(b.omitted),
                      "flushes_subnormals": list(b.flushes_subnormals)}
                     for b in bes],
        "matrix": {op: {b.name: _state(op, b, have) for b in bes} for op in kernels.all_ops()},
    }


_STYLE = {"ok": "green", "sim": "yellow", "n/a": "dim red", "omit": "dim yellow", "-": "dim"}


def show(console: Console) -> None:
    d = as_dict()
    t = Table(title="op x backend on this machine", title_justify="left")
    t.add_column("op", no_wrap=True)
    for b in d["backends"]:
        t.add_column(f"{b['name']}\n({b['device']})", justify="center")
    for op, row in d["matrix"].items():
        t.add_row(op, *[f"[{_STYLE[s]}]{s}[/]" for s in row.values()])
    console.print(t)
    bt = Table(title="backends", title_justify="left")
    for col in ("backend", "device", "dtypes", "status"):
        bt.add_column(col)
    for b in d["backends"]:
        status = (f"[yellow]simulated[/] ({escape(b['description'])})" if b["simulated"] and b["available"]
                  else f"[green]available[/] ({escape(b['description'])})" if b["available"]
                  else f"[red]not available:[/] {escape(b['reason'])}")
        bt.add_row(b["name"], b["device"], ", ".join(b["dtypes"]), status)
    console.print(bt)
    for b in d["backends"]:
        if b["flushes_subnormals"]:
            console.print(f"{b['name']} reads {', '.join(b['flushes_subnormals'])} subnormals as zero (compiled "
                          "with -ftz=true, as its users get it): its gate accepts the answer of the flushed "
                          "inputs where an input is subnormal, and only there", highlight=False)
        for why, ops in _grouped(b["omitted"]).items():
            console.print(f"{b['name']} leaves out {', '.join(ops)}: {escape(why)}", highlight=False)
    console.print("ok: runs here  sim: numba-cuda simulator (checked in tests, never timed)  "
                  "n/a: backend not available here  omit: left out on purpose (reason above)  -: no kernel",
                  style="dim", highlight=False)


def _grouped(omitted: dict) -> dict:
    """{reason: [ops]}: one line per reason, however many ops share it."""
    out: dict = {}
    for op, why in omitted.items():
        out.setdefault(why, []).append(op)
    return out
