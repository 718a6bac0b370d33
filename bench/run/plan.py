"""The case matrix of a run: op x backend x dtype x size, and for an op kind with axes of its own
(bench/kinds/), the kind's cases.

A profile fixes the sizes per device, the dtypes and how long each case may be sampled. The
command line narrows it (--ops, --backends, --dtypes, --sizes, --device). Every name is checked
here, with an error that lists the valid values, before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import replace

import kernels
from kernels import registry

from bench import kinds
from bench.model.cases import DEVICES, PROFILES, Case, Profile, UsageError, parse_size


def _pick(kind: str, given: str | None, valid: list[str]) -> list[str]:
    if given is None:
        return list(valid)
    chosen = [v.strip() for v in given.split(",") if v.strip()]
    bad = [v for v in chosen if v not in valid]
    if bad or not chosen:
        raise UsageError(f"unknown {kind} {', '.join(bad) or repr(given)}; valid: {', '.join(valid)}")
    return chosen


def build(profile: str = "quick", ops: str | None = None, backends: str | None = None,
          dtypes: str | None = None, sizes: str | None = None, device: str = "all",
          budget: float | None = None, **options: str | None) -> tuple[Profile, list[Case], list[str]]:
    """The cases a run measures, and notes on what was left out and why (shown to the user).
    `options`: the op kinds' own flags (bench/kinds/), e.g. the sparse matmul's shapes
    ('8192x8192,4096x11008'), batch ('1,64'), sparsity ('0.5,0.9') and pattern; each kind narrows
    its cases by them (an unknown one is a UsageError).

    Raises UsageError for any unknown name or malformed size. Cases on a backend that cannot run
    here are included (they become 'skipped' with the reason) only when --backends names it."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    if budget is not None:
        if not budget > 0:
            raise UsageError(f"--budget must be a positive number of seconds, got {budget}")
        prof = replace(prof, sampling=replace(prof.sampling, budget_s=budget))
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")
    op_list = _pick("op", ops, kernels.all_ops())
    all_backends = [b.name for b in kernels.all_backends()]
    be_list = _pick("backend", backends, all_backends)
    dt_list = _pick("dtype", dtypes, list(registry.FLOAT_DTYPES)) if dtypes is not None else list(prof.dtypes)
    explicit_sizes = [parse_size(s) for s in sizes.split(",") if s.strip()] if sizes else None
    if sizes is not None and not explicit_sizes:
        raise UsageError(f"malformed size list {sizes!r}")
    known = {dest for dest, _ in kinds.flags()}
    if set(options) - known:
        raise UsageError(f"unknown option {', '.join(sorted(set(options) - known))}; valid: {', '.join(sorted(known))}")
    opts = {name: k.options(prof, options) for name, k in kinds.KINDS.items()}

    notes, cases, absent = [], [], []
    have = {(k.op, k.backend) for k in registry.kernels()}
    for b in be_list:
        be = registry.backend(b)
        if device != "all" and be.device != device:
            continue
        try:
            be.check_settings()       # a bad environment override: exit 2 now, not FAILED cases later
        except ValueError as exc:
            raise UsageError(f"{b}: {exc}") from None
        if not be.available and backends is None:
            absent.append((b, _short(be.reason)))
            continue
        if be.simulated and backends is None:       # checked in the tests, never timed
            absent.append((b, "CUDA simulator only"))
            continue
        for op in op_list:
            if (op, b) in have:
                kind = kinds.for_op(op)
                cases += kind.cases(op, be, prof, dt_list, dtypes is not None, explicit_sizes, opts[kind.NAME])
    # numpy first within each (device, dtype, size, op): its median is every other row's x1; the
    # kind orders its own axes around the backend (`order`: before it, after it)
    rank = {b: i for i, b in enumerate(["numpy"] + [b for b in be_list if b != "numpy"])}
    all_ops = kernels.all_ops()

    def key(c: Case) -> tuple:
        before, after = kinds.for_op(c.op).order(c)
        return (c.device != "cpu", c.dtype, c.size, all_ops.index(c.op), *before, rank[c.backend], *after)

    cases.sort(key=key)
    if absent:      # one line: every GPU backend's reason on a CPU machine was a paragraph each
        why: dict[str, list[str]] = {}
        for b, reason in absent:
            why.setdefault(reason, []).append(b)
        notes.append("not measured here: " + "; ".join(f"{', '.join(bs)} ({r})" for r, bs in why.items())
                     + "; details: bench list")
    return prof, cases, notes


def _short(reason: str | None) -> str:
    """A backend's reason up to its first ':' or '(': 'no CUDA GPU', not the driver's paragraph."""
    return re.split(r"[:(]", reason or "unavailable", maxsplit=1)[0].strip() or "unavailable"
