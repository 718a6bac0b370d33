"""The case model: what one case is (`Case`), the profiles that choose the cases, and the sizes
they are given in. Records and parsing only: bench/run/plan.py builds a run's cases from them.

A profile fixes the sizes per device, the dtypes and how long each case may be sampled. A case
is an op on a backend at a dtype and size; a kind whose cases have more axes than the size (the
sparse matmul: shape, batch, sparsity, pattern) gives them as `axes`, (name, value) pairs in the
kind's order, with values as the results file keeps them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class UsageError(ValueError):
    """A mistake on the command line: reported in one line, exit code 2."""


@dataclass(frozen=True)
class Sampling:
    """How long and how precisely to measure one case."""

    min_samples: int = 10
    max_samples: int = 2000
    rel_tol: float = 0.02          # stop when the median's CI half-width is within 2 % of it
    budget_s: float = 1.0          # sampling time budget per case (at least min_samples are taken)
    warmup_s: float = 0.02         # warm-up time after the first (compiling) call
    min_sample_s: float = 2e-4     # repeat short calls so one sample lasts at least this long


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
    size: int                                  # elements of x; for a matmul, of w (K x N)
    axes: tuple[tuple[str, Any], ...] = ()     # the kind's own axes beyond the size, in its order

    def axis(self, name: str) -> Any:
        """The value of one of the kind's axes."""
        return dict(self.axes)[name]

    @property
    def where(self) -> str:
        """'2**20', or the kind's axes: 'shape=8192x8192 batch=1 sparsity=0.5 pattern=relu'."""
        if self.axes:
            return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.axes)
        return size_label(self.size)

    @property
    def name(self) -> str:
        return f"{self.op} {self.backend} {self.dtype} {self.where}"


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


