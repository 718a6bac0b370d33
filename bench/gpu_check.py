"""`make gpu-check`: the one prepared script for a machine with an NVIDIA GPU (under 5 minutes).

Uses only python3 and what such machines ship (numpy, cupy, numba, numba-cuda, rich, scipy,
pytest; matplotlib and threadpoolctl if present): nothing is installed. It
  1. says which GPU backends are available here and why not,
  2. runs every GPU backend through the correctness suite (pytest: the generic reference tests
     and the tests marked gpu),
  3. runs a quick GPU benchmark (gate, CUDA events, L2 flush) and saves it,
  4. prints the figures the GPU targets are judged by: each elementwise op's bandwidth as % of the
     device-to-device copy peak at 2**26 elements and more (target: 90 %).
Everything it prints is also written under --out (default: $OUT, else reports/gpu-check).
Exit code: 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

GPU_TEST_FILES = ["tests/test_kernels_correctness.py", "tests/test_kernels_api.py",
                  "tests/test_kernels_cupy.py", "tests/test_kernels_numba_cuda.py"]
TARGET_PCT = 90.0
TARGET_MIN_SIZE = 2**26


def _step(console: Console, title: str):
    console.rule(f"[bold]{title}")


def targets_table(run) -> tuple[Table, bool]:
    """% of the copy peak for every GPU elementwise case at >= 2**26 elements, against 90 %."""
    from bench.results import Status
    t = Table(title=f"GPU targets: % of device-to-device copy peak at >= 2**26 elements (target {TARGET_PCT:.0f} %)",
              title_justify="left")
    for col in ("op", "backend", "dtype", "size", "GB/s", "% peak", "meets"):
        t.add_column(col)
    ok = True
    rows = [e for e in run.results if e.device == "gpu" and e.size >= TARGET_MIN_SIZE]
    for e in sorted(rows, key=lambda e: (e.op, e.backend, e.size)):
        if e.status is not Status.OK:
            t.add_row(e.op, e.backend, e.dtype, f"2**{e.size.bit_length() - 1}", "-", "-",
                      f"[red]{e.status}[/]")
            ok = ok and e.status is Status.SKIPPED
            continue
        meets = e.pct_peak >= TARGET_PCT
        t.add_row(e.op, e.backend, e.dtype, f"2**{e.size.bit_length() - 1}", f"{e.gbps:.0f}",
                  f"{e.pct_peak:.1f}", "[green]yes[/]" if meets else "[yellow]no[/]")
    return t, ok


def _gpu_backends() -> list[str]:
    import kernels
    return [b.name for b in kernels.backends() if b.device == "gpu" and b.available and not b.simulated]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "reports/gpu-check"),
                    help="folder for the log, results JSON, Markdown and plots (default $OUT or reports/gpu-check)")
    ap.add_argument("--sizes", default="2**20,2**24,2**26,2**27", help="benchmark sizes (elements)")
    ap.add_argument("--budget", type=float, default=0.2, help="sampling budget per case, seconds")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "gpu-check.log", "w")
    console = Console(record=True, width=160)
    started = time.monotonic()
    passed = True

    _step(console, "1. backends")
    from bench import listing
    listing.show(console)
    gpu = _gpu_backends()
    if not gpu:
        console.print("[red]no GPU backend is available here: nothing to check[/]")
        passed = False

    if gpu:
        _step(console, "2. correctness suite on the GPU backends (pytest)")
        sel = " or ".join(gpu + ["gpu"])
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-k", sel,
               *[f for f in GPU_TEST_FILES if Path(f).exists()]]
        console.print(" ".join(cmd), highlight=False)
        try:
            env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")   # the real GPU (conftest defaults to 1)
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
            out = p.stdout + p.stderr
            rc = p.returncode
        except subprocess.TimeoutExpired as exc:
            out, rc = f"{exc.stdout or ''}\npytest timed out after 150 s", 1
        (args.out / "pytest.log").write_text(out)
        console.print("\n".join(out.strip().splitlines()[-25:]), highlight=False, markup=False)
        passed &= rc == 0

        _step(console, "3. quick GPU benchmark")
        from bench import __main__ as cli
        from bench import results
        rc = cli.main(["run", "--profile", "quick", "--device", "gpu", "--sizes", args.sizes,
                       "--budget", str(args.budget), "--out", str(args.out / "gpu.json")])
        passed &= rc == 0
        try:
            run = results.load(args.out / "gpu.json")
        except results.ResultsError as exc:
            console.print(f"[red]no results: {exc}[/]")
            run = None
        if run:
            _step(console, "4. targets")
            table, ok = targets_table(run)
            console.print(table)
            passed &= ok

    console.print(f"gpu-check {'passed' if passed else 'FAILED'} in {time.monotonic() - started:.0f} s; "
                  f"output in {args.out}", style="bold green" if passed else "bold red")
    log.write(console.export_text())
    log.close()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
