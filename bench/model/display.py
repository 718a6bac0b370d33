"""The few ways of writing numbers and backends that every layer shares: times, counts, sizes and
bytes with 3 significant digits, a speed-up, and each backend's colour and marker in every plot.
Plain strings and dicts: no rich, no Markdown, no matplotlib.
"""

from __future__ import annotations

import math

from bench.model.results import ABOVE_PEAK, STARVED

UNSTABLE = "~"      # the median did not stabilise within the case's time budget
STARVED_MARK = "?"  # its threads waited for a core (bench/measure/load.py): its time measures the scheduler
ABOVE_MARK = "!"    # faster than its level's peak by more than the peak's spread: a figure to distrust


def time_marks(e) -> str:
    """The marks written before a timed case's time: ~ unstable, ? starved."""
    return (UNSTABLE if e.stable is False else "") + (STARVED_MARK if STARVED in (e.marks or ()) else "")


def peak_mark(e) -> str:
    """' !' after a figure of a case above its level's peak, else ''."""
    return f" {ABOVE_MARK}" if ABOVE_PEAK in (e.marks or ()) else ""

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


def fmt_bytes(n: float) -> str:
    """Bytes in binary units with 3 significant digits: '64.0 MiB'."""
    for suffix, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{sig3(n / scale)} {suffix}"
    return f"{int(n)} B"



# Same colour and marker for a backend in every figure; backends not listed take the next ones.
KNOWN_BACKENDS = ("numpy", "numba_cpu", "cupy", "cupy_elementwise", "cupy_raw", "numba_cuda", "torch",
                  "scipy_csr", "cupyx_csr")
MARKERS = "osD^vP<>Xh*"


def style(backend: str) -> dict:
    i = KNOWN_BACKENDS.index(backend) if backend in KNOWN_BACKENDS else sum(map(ord, backend))
    return {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)]}
