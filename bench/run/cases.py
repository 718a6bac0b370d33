"""The case matrix (op x backend x dtype x size) and the profiles that choose it.

A profile fixes the sizes per device, the dtypes and how long each case may be sampled. The
command line narrows it (--ops, --backends, --dtypes, --sizes, --device). Every name is checked
here, with an error that lists the valid values, before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import kernels
from kernels import registry

from bench.kinds import matmul as sparse
from bench.measure.timing import Sampling


class UsageError(ValueError):
    """A mistake on the command line: reported in one line, exit code 2."""


@dataclass(frozen=True)
class Profile:
    name: str
    cpu_sizes: tuple[int, ...]
    gpu_sizes: tuple[int, ...]
    dtypes: tuple[str, ...]
    sampling: Sampling
    description: str


PROFILES = {
    "quick": Profile(
        "quick", cpu_sizes=(2**12, 2**18, 2**25), gpu_sizes=(2**16, 2**20, 2**24, 2**26, 2**28),
        dtypes=("float32",), sampling=Sampling(budget_s=0.3, rel_tol=0.02),
        description="float32, 3 CPU sizes up to 2**25 (far beyond the caches): about 2 minutes on 2 idle cores"),
    "full": Profile(
        "full", cpu_sizes=tuple(2**k for k in range(10, 28)), gpu_sizes=tuple(2**k for k in range(10, 31)),
        dtypes=("float32", "float64", "float16"), sampling=Sampling(budget_s=2.0, rel_tol=0.01),
        description="float32/64/16, 2**10..2**27 on CPU and up to 2**30 on GPU"),
}

DEVICES = ("cpu", "gpu", "all")


@dataclass(frozen=True)
class Case:
    op: str
    backend: str
    device: str
    dtype: str
    size: int                                  # elements of x; for sparse_matmul, of w (K x N)
    shape: tuple[int, int] | None = None       # sparse_matmul only: w's K x N, rows of a,
    batch: int | None = None                   # its fraction of zeros and their pattern
    sparsity: float | None = None
    pattern: str | None = None

    @property
    def name(self) -> str:
        if self.shape is not None:
            return f"{self.op} {self.backend} {self.dtype} {sparse.label(self.shape, self.batch, self.sparsity, self.pattern)}"
        return f"{self.op} {self.backend} {self.dtype} {size_label(self.size)}"


def size_label(n: int) -> str:
    """2**20 for powers of two, else the plain count."""
    return f"2**{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


MAX_SIZE = 2**48     # elements: 1 PiB of float32, beyond any machine's memory (2**99 overflowed later)

_SUFFIX = {"": 1, "k": 10**3, "K": 2**10, "m": 10**6, "M": 2**20, "g": 10**9, "G": 2**30}


def parse_size(text: str) -> int:
    """'2**20', '2^20', '16M' (binary: 16 * 2**20), '16k' (decimal), '16777216' -> elements."""
    t = text.strip().replace("_", "")
    n = None
    m = re.fullmatch(r"2\s*(?:\*\*|\^)\s*(\d{1,2})", t)
    if m:
        n = 2 ** int(m.group(1))
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", t)
    if m:
        n = int(m.group(1)) * _SUFFIX[m.group(2)]
    if n is not None and n > MAX_SIZE:
        raise UsageError(f"size {text!r} is more elements than any machine holds (at most 2**48)")
    if n is not None and n > 0:
        return n
    raise UsageError(f"malformed size {text!r}: use a positive count like 2**20, 2^20, 16M (=16*2**20), 16k (=16000) or 1048576")


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
          budget: float | None = None, shapes: str | None = None, batch: str | None = None,
          sparsity: str | None = None, pattern: str | None = None) -> tuple[Profile, list[Case], list[str]]:
    """The cases a run measures, and notes on what was left out and why (shown to the user).
    sparse_matmul's cases are the profile's shapes x batches x sparsities (relu pattern), narrowed
    by `shapes` ('8192x8192,4096x11008'), `batch` ('1,64'), `sparsity` ('0.5,0.9'), `pattern`.

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
    try:
        matmul_axes = sparse.axes(prof.name, shapes, batch, sparsity, pattern)
    except sparse.UsageError as exc:
        raise UsageError(str(exc)) from None

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
        dev_sizes = explicit_sizes or (prof.gpu_sizes if be.device == "gpu" else prof.cpu_sizes)
        for op in op_list:
            if (op, b) not in have:
                continue
            if registry.spec_of(op).kind == "matmul":
                for dt in (dt_list if dtypes else sparse.profile_dtypes(prof.name, be.device)):
                    for shape, bt, sp, pat in matmul_axes:
                        cases.append(Case(op, b, be.device, dt, shape[0] * shape[1], shape, bt, sp, pat))
                continue
            for dt in dt_list:
                for n in dev_sizes:
                    cases.append(Case(op, b, be.device, dt, n))
    # numpy first within each (device, dtype, size, op): its median is every other row's x1
    order = {b: i for i, b in enumerate(["numpy"] + [b for b in be_list if b != "numpy"])}
    # sparse_matmul: one backend's sparsities in a row (a BLAS's threads spin for a while after
    # each call, and would take the cores from the next backend's first samples)
    cases.sort(key=lambda c: (c.device != "cpu", c.dtype, c.size, kernels.all_ops().index(c.op), c.batch or 0,
                              c.pattern or "", order[c.backend], c.sparsity or 0.0))
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
