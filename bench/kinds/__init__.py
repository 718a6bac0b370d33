"""Op kinds: how each kind of op is benchmarked, one module per kind, each the same plugin shape.

A kind module (elementwise.py, matmul.py) names itself (`NAME`, the `kind` of kernels.ops' specs)
and gives:
- `FLAGS`: (dest, help) of its own `bench run` flags; `options(profile, given)`: them checked;
- `cases(op, backend, profile, dtypes, dtypes_given, sizes, opts)`: its cases; `order(case)`: their
  order after (device, dtype, size, op); `group_key(case)`: which are sampled round-robin together;
  `working_set(case)`: bytes that tell whether a case lies beyond the cache (None: no matter);
- `Session(ctx)`: its inputs over a run, `.run(group, beyond)` the results of a group of cases,
  `.release()` its arrays;
- `derive(results)`: its own figures (`CaseResult.figures`);
- `tables(run, narrow)`, `markdown(run)`, `write_plots(run, folder, dpi)`, `summary_line(op, entries,
  width)`: its own presentation, or None for the report's standard table, Markdown and plot.
The runner, the results, compare and the reports loop over `KINDS`; none names a kind.
A new op kind is one module here (and its ops' specs in kernels/ops/).
"""

from __future__ import annotations

from kernels import registry

from bench.kinds import elementwise, matmul
from bench.model import results

KINDS = {k.NAME: k for k in (elementwise, matmul)}


def for_op(op: str):
    """The kind module of an op (kernels.ops' spec says which)."""
    return KINDS[registry.spec_of(op).kind]


def of(e):
    """The kind module of a case or a case's record; the elementwise one for a kind this version
    does not know (a newer file's), which the report then draws with its standard table."""
    return KINDS.get(getattr(e, "kind", None) or elementwise.NAME, elementwise)


def flags() -> list[tuple[str, str]]:
    """Every kind's own `bench run` flags, (dest, help)."""
    return [f for k in KINDS.values() for f in k.FLAGS]


def derive(run: results.Run) -> results.Run:
    """The run's figures: the common ones (results.derive), then each kind's own."""
    run = results.derive(run)
    out = list(run.results)
    for k in KINDS.values():
        out = k.derive(out)
    return results.Run(env=run.env, results=tuple(out), peaks=run.peaks, created=run.created,
                       interrupted=run.interrupted, error=run.error)
