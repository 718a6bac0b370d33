"""`make gpu-check`: the one prepared script for a machine with an NVIDIA GPU (under 5 minutes).

Uses only python3 and what such machines ship (numpy, cupy, numba, numba-cuda, rich, scipy,
pytest; matplotlib, nvidia-ml-py and cuda-bench where present): nothing is installed. It
  1. says which GPU backends are available here and why not, and reads the GPU's clocks,
     temperature and throttle reasons (nvidia-ml-py);
  2. runs every GPU backend through the correctness suite: pytest on the tests marked `gpu`;
  3. runs a quick GPU benchmark (gate, CUDA events, L2 flush) and saves it (plots only where
     matplotlib is installed);
  4. prints the figures the GPU targets are judged by: each elementwise op's bandwidth as % of the
     device-to-device copy peak at 2**26 elements and more (target: 90 %);
  5. times relu and sigmoid at 2**26 with NVBench (cuda-bench) beside our timer's figures, and
     reads the clocks again.
`--dry-run` runs every step that needs no GPU (on a machine without one, without matplotlib):
the listing, the selection of the GPU tests (collected, not run), a tiny CPU benchmark through
the same code path, and the notes on the optional tools. Everything printed is written to
<out>/gpu-check.log as it goes (out: --out, else $OUT, else reports/gpu-check).
Exit code: 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

try:
    from rich.console import Console
    from rich.table import Table
except ModuleNotFoundError as _missing:     # the system python3 of a bare GPU machine: say so, in one line
    _name = (_missing.name or "rich").split(".")[0]
    sys.stderr.write(f"error: make gpu-check needs {_name} in {sys.executable}, which lacks it: "
                     f"{sys.executable} -m pip install --user {_name}\n")
    sys.exit(2)

# after the check above: on a bare GPU machine a missing rich is one line, not a traceback from these
import kernels  # noqa: E402
from bench.model import results  # noqa: E402
from bench.model.results import Status  # noqa: E402
from bench.report import listing  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GPU_TEST_FILES = ["tests/test_kernels_correctness.py", "tests/test_kernels_api.py",
                  "tests/test_kernels_cupy.py", "tests/test_kernels_numba_cuda.py"]
GPU_MARKER = "gpu"
PYTEST_TIMEOUT_S = 150
BENCH_TIMEOUT_S = 150
TARGET_PCT = 90.0
TARGET_MIN_SIZE = 2**26
NVBENCH_OPS = ("relu", "sigmoid")
NVBENCH_SIZE = 2**26
NVBENCH_BACKEND = "cupy_raw"
AGREE_PCT = 5.0        # two honest timers of the same kernel agree within a few per cent


def _have(module: str) -> bool:
    """Whether `module` can be imported here (a broken or blocked one counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Log:
    """Prints to the terminal and appends the same text to the log file at once, so that a step
    that crashes or hangs leaves everything before it on disk."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "w", encoding="utf-8")
        self.screen = Console(width=160)
        self.disk = Console(file=self.file, width=160, color_system=None, force_terminal=False)

    def print(self, *objects, **kw) -> None:
        self.screen.print(*objects, **kw)
        self.disk.print(*objects, **kw)
        self.file.flush()

    def rule(self, title: str) -> None:
        self.screen.rule(f"[bold]{title}")
        self.disk.rule(title)
        self.file.flush()

    def raw(self, line: str) -> None:
        """One line of a child process's output, as it comes."""
        sys.stdout.write(line)
        sys.stdout.flush()
        self.file.write(line)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def run_streamed(log: Log, cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str]:
    """Run cmd, writing its output to the log line by line; (return code, output). A command that
    outlives `timeout` is killed and returns 124."""
    log.print(" ".join(cmd), highlight=False, markup=False)
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            log.raw(line)
        rc = p.wait()
    finally:
        timed_out = not timer.is_alive()
        timer.cancel()
    if timed_out:
        log.print(f"[red]timed out after {timeout:.0f} s[/]")
        rc = 124
    return rc, "".join(lines)


# ---- step 1: backends and the GPU's state ----------------------------------------------------

def _gpu_backends() -> list[str]:
    return [b.name for b in kernels.all_backends() if b.device == "gpu" and b.available and not b.simulated]


def gpu_state() -> tuple[list[dict], str | None]:
    """SM and memory clocks, temperature and throttle reasons of each GPU (nvidia-ml-py), or a note
    saying why there are none."""
    if not _have("pynvml"):
        return [], "nvidia-ml-py is not installed: no clocks, temperature or throttle reasons (pip install nvidia-ml-py)"
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception as exc:
        return [], f"NVML cannot start here ({type(exc).__name__}: {exc}): no clocks or temperature"
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            out.append({
                "gpu": i,
                "sm_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                "mem_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
                "temp_c": pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
                "throttle": throttle_reasons(pynvml, pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
            })
        return out, None
    finally:
        pynvml.nvmlShutdown()


def throttle_reasons(pynvml, bits: int) -> str:
    """The names of the set bits of NVML's throttle-reason mask ('none' when idle or at full speed)."""
    names = [n.removeprefix("nvmlClocksThrottleReason") for n in dir(pynvml)
             if n.startswith("nvmlClocksThrottleReason") and n not in ("nvmlClocksThrottleReasonAll",
                                                                        "nvmlClocksThrottleReasonNone")]
    set_ = sorted(n for n in names if bits & int(getattr(pynvml, f"nvmlClocksThrottleReason{n}")))
    return ", ".join(set_) or "none"


def show_gpu_state(log: Log, when: str) -> list[dict]:
    state, note = gpu_state()
    if note:
        log.print(f"note: {note}", markup=False)
    for s in state:
        log.print(f"GPU {s['gpu']} {when}: SM {s['sm_mhz']} MHz, memory {s['mem_mhz']} MHz, "
                  f"{s['temp_c']} C, throttle: {s['throttle']}", markup=False)
    return state


# ---- step 2: the correctness suite -----------------------------------------------------------

def pytest_command(collect_only: bool = False) -> list[str]:
    """pytest on the GPU tests, selected by marker (a -k expression would match module names and
    pull in the CPU-only host-shim and PTX compiles)."""
    files = [f for f in GPU_TEST_FILES if (ROOT / f).exists()]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
           "--strict-markers", "-m", GPU_MARKER, *files]
    return cmd + (["--collect-only"] if collect_only else [])


# ---- step 3 and 4: benchmark and targets -----------------------------------------------------

def bench_command(out: Path, sizes: str, budget: float, dry_run: bool) -> list[str]:
    """`bench run` for the GPU backends; in a dry run a tiny CPU case through the same path."""
    cmd = [sys.executable, "-m", "bench", "run", "--profile", "quick", "--out", str(out / "gpu.json")]
    if dry_run:
        cmd += ["--device", "cpu", "--backends", "numpy", "--ops", "relu,sigmoid", "--dtypes", "float32",
                "--sizes", "2**12", "--budget", "0.01"]
    else:
        cmd += ["--device", "gpu", "--sizes", sizes, "--budget", str(budget)]
    if not _have("matplotlib"):
        cmd.append("--no-plots")          # GPU machines ship without matplotlib
    return cmd


def targets_table(run) -> tuple[Table, bool]:
    """% of the copy peak for every GPU elementwise case at >= 2**26 elements, against 90 %."""
    t = Table(title=f"GPU targets: % of device-to-device copy peak at >= 2**26 elements (target {TARGET_PCT:.0f} %)",
              title_justify="left")
    for col in ("op", "backend", "dtype", "size", "GB/s", "% peak", "meets"):
        t.add_column(col)
    ok = True
    rows = [e for e in run.results if e.device == "gpu" and e.size >= TARGET_MIN_SIZE and e.op not in SPARSE_OPS]
    for e in sorted(rows, key=lambda e: (e.op, e.backend, e.size)):
        if e.status is not Status.OK:
            t.add_row(e.op, e.backend, e.dtype, f"2**{e.size.bit_length() - 1}", "-", "-", f"[red]{e.status}[/]")
            ok = ok and e.status is Status.SKIPPED
            continue
        meets = e.pct_peak >= TARGET_PCT
        t.add_row(e.op, e.backend, e.dtype, f"2**{e.size.bit_length() - 1}", f"{e.gbps:.0f}",
                  f"{e.pct_peak:.1f}", "[green]yes[/]" if meets else "[yellow]no[/]")
    return t, ok


# The sparse-matmul GPU targets: the `sparse` work adds the op (sparse_matmul on cupyx_csr and
# friends) and its targets here; `sparse_targets_table` is called with each run and prints
# nothing until that op has results.
SPARSE_OPS = ("sparse_matmul",)


def sparse_targets_table(run) -> Table | None:
    rows = [e for e in run.results if e.device == "gpu" and e.op in SPARSE_OPS]
    if not rows:
        return None
    t = Table(title="GPU sparse-matmul cases", title_justify="left")
    for col in ("op", "backend", "dtype", "size", "status"):
        t.add_column(col)
    for e in rows:
        t.add_row(e.op, e.backend, e.dtype, str(e.size), str(e.status))
    return t


# ---- step 5: NVBench beside our timer --------------------------------------------------------

_NVBENCH_SCRIPT = r"""
import json, sys
try:
    import cuda.bench as nvbench
except ImportError:
    import cuda.nvbench as nvbench
import cupy as cp
import kernels

op, n, backend, out_json = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fn = kernels.get(op, backend)
spec = kernels.registry.spec_of(op)
x = cp.random.standard_normal(n, dtype=cp.float32)
args = [x] * len(spec.inputs)
y = cp.empty_like(x)

def bench(state):
    state.add_element_count(n)
    state.add_global_memory_reads(4 * n * len(spec.inputs))
    state.add_global_memory_writes(4 * n)
    dev = state.get_device()
    def launch(launch):
        with cp.cuda.ExternalStream(launch.get_stream().addressof(), dev):
            fn(*args, out=y)
    state.exec(launch)

nvbench.register(bench)
nvbench.run_all_benchmarks([sys.argv[0], "--json", out_json, "--min-samples", "20"])
"""


def nvbench_mean_s(path: Path) -> float | None:
    """NVBench's cold GPU mean time (seconds) from its --json output."""
    data = json.loads(path.read_text())
    for b in data.get("benchmarks", []):
        for s in b.get("states", []):
            for summary in s.get("summaries") or []:
                if summary.get("tag") == "nv/cold/time/gpu/mean":
                    for d in summary.get("data", []):
                        if d.get("name") == "value":
                            return float(d["value"])
    return None


def nvbench_step(log: Log, out: Path, run) -> bool:
    if not (_have("cuda.bench") or _have("cuda.nvbench")):
        log.print("note: cuda-bench (NVBench's Python bindings) is not installed: no second timer "
                  "(pip install cuda-bench)", markup=False)
        return True
    ours = {e.op: e.median_s for e in (run.results if run else []) if e.backend == NVBENCH_BACKEND
            and e.size == NVBENCH_SIZE and e.dtype == "float32" and e.status is Status.OK}
    ok = True
    for op in NVBENCH_OPS:
        path = out / f"nvbench-{op}.json"
        rc, _ = run_streamed(log, [sys.executable, "-c", _NVBENCH_SCRIPT, op, str(NVBENCH_SIZE), NVBENCH_BACKEND,
                                   str(path)], timeout=60)
        theirs = nvbench_mean_s(path) if rc == 0 and path.exists() else None
        mine = ours.get(op)
        if theirs is None or mine is None:
            log.print(f"note: {op}: no comparison (NVBench {'ran' if theirs else 'failed'}, "
                      f"ours {'ran' if mine else 'missing'})", markup=False)
            continue
        diff = 100.0 * (mine - theirs) / theirs
        agree = abs(diff) <= AGREE_PCT
        ok &= agree
        log.print(f"{op} {NVBENCH_BACKEND} float32 2**26: ours {mine * 1e6:.1f} us, NVBench {theirs * 1e6:.1f} us "
                  f"({diff:+.1f} %): {'agree' if agree else 'DISAGREE'}", markup=False)
    return ok


# ---- the script -------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.cli.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "reports" / "gpu-check"),
                    help="folder for the log, results JSON and Markdown (default $OUT or reports/gpu-check)")
    ap.add_argument("--sizes", default="2**20,2**24,2**26,2**27", help="benchmark sizes (elements)")
    ap.add_argument("--budget", type=float, default=0.2, help="sampling budget per case, seconds")
    ap.add_argument("--dry-run", action="store_true", help="every step that needs no GPU; exit 0 when they all ran")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "gpu-check.log")
    started = time.monotonic()
    try:
        passed = _steps(log, args)
        log.print(f"gpu-check{' --dry-run' if args.dry_run else ''} {'passed' if passed else 'FAILED'} in "
                  f"{time.monotonic() - started:.0f} s; output in {args.out}",
                  style="bold green" if passed else "bold red", markup=False)
    except BaseException as exc:
        log.print(f"gpu-check stopped: {type(exc).__name__}: {exc}", style="bold red", markup=False)
        raise
    finally:
        log.close()
    return 0 if passed else 1


def _steps(log: Log, args) -> bool:
    passed = True
    log.rule("1. backends and the GPU's state")
    listing.show(log.screen)
    listing.show(log.disk)
    gpu = _gpu_backends()
    show_gpu_state(log, "before")
    if not gpu and not args.dry_run:
        log.print("[red]no GPU backend is available here: nothing to check[/]")
        return False

    log.rule(f"2. correctness suite: the tests marked {GPU_MARKER} (pytest)")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")   # the real GPU (tests/conftest.py defaults to 1)
    rc, out = run_streamed(log, pytest_command(collect_only=args.dry_run), PYTEST_TIMEOUT_S, env)
    (args.out / "pytest.log").write_text(out)
    passed &= rc == 0

    log.rule("3. quick benchmark" + (" (dry run: a tiny CPU case through the same path)" if args.dry_run else ""))
    rc, _ = run_streamed(log, bench_command(args.out, args.sizes, args.budget, args.dry_run), BENCH_TIMEOUT_S)
    passed &= rc == 0
    try:
        run = results.load(args.out / "gpu.json")
    except results.ResultsError as exc:
        log.print(f"no results: {exc}", style="red", markup=False)
        run, passed = None, False

    if run:
        log.rule("4. targets")
        table, ok = targets_table(run)
        log.print(table)
        passed &= ok
        sparse = sparse_targets_table(run)
        if sparse is not None:
            log.print(sparse)

    log.rule("5. NVBench beside our timer; the GPU's state after")
    if args.dry_run:
        found = _have("cuda.bench") or _have("cuda.nvbench")
        log.print(f"note: cuda-bench {'is' if found else 'is not'} installed; it runs only on a GPU", markup=False)
    else:
        passed &= nvbench_step(log, args.out, run)
    show_gpu_state(log, "after")
    return passed


if __name__ == "__main__":
    sys.exit(main())
