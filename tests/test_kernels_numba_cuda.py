"""What is specific to the numba_cuda backend (kernels/backends/numba_cuda/elementwise.py); the op semantics are checked
for every backend in test_kernels_correctness.py.

Under NUMBA_ENABLE_CUDASIM=1 (`make test`) the backend must be available and simulated: these tests
fail rather than skip when it is not. They cover the launch geometry (a pure function), the tails
of the grid-stride loops (sizes around the block, grid and pass sizes, every size 1..70 for the
packed mask), a grid of several warps per block, out= written in place and nowhere else, the
device-side contiguous copy, and the PTX a real GPU would run (compiled with libNVVM, no GPU
needed). Tests marked gpu need a real GPU and are skipped with a reason elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kernels
from bench.measure.check import check_call, compare
from bench.measure.inputs import random_array, random_inputs
from kernels.backends.numba_cuda import elementwise as numba_gpu
from kernels import registry
from kernels.backends.numba_cuda.elementwise import SIM_BLOCKS, SIM_THREADS, THREADS, UNROLL, WARP, launch_config
from kernels.ops import ELEMENTWISE_OPS, OPS, pack_mask

ROOT = Path(__file__).resolve().parents[1]
BE = registry.backend("numba_cuda")
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
ON_GPU = not SIMULATOR and BE.available
PAD = 8          # sentinel elements on each side of an out= view

requires_gpu = pytest.mark.skipif(not ON_GPU, reason="needs a real NVIDIA GPU (numba_cuda here: "
                                  + ("runs on the CUDA simulator" if SIMULATOR else BE.reason or "?") + ")")


@pytest.fixture(scope="module")
def be():
    """The backend, which must run here: on the simulator under NUMBA_ENABLE_CUDASIM=1, else on a GPU.
    Never a skip: a simulator test that silently stopped running would hide every kernel bug."""
    if not BE.available:
        pytest.fail(f"numba_cuda is not available: {BE.reason}. Run the tests with NUMBA_ENABLE_CUDASIM=1 "
                    "(make test does), or on a machine with a GPU.")
    return BE


# ----------------------------------------------------------------------------- the backend itself

@pytest.mark.gpu
def test_backend_is_available_and_simulated_under_cudasim(be):
    if not SIMULATOR:
        pytest.skip("NUMBA_ENABLE_CUDASIM is not set: the backend runs on a real GPU here")
    assert be.available and be.reason == ""
    assert be.simulated, "under NUMBA_ENABLE_CUDASIM=1 the benchmark must know never to time numba_cuda"
    assert be.device == "gpu"
    assert "simulator" in be.description
    assert be.dtypes == ("float32", "float64")


def test_import_kernels_does_not_import_numba_cuda():
    code = "import sys, kernels; print('numba.cuda' in sys.modules, 'numba_cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["False", "False"], "numba.cuda must be imported by the probe, on first use"


@pytest.mark.gpu
def test_native_arrays_and_round_trip(be, rng):
    host = random_array((3, 5), "float32", rng)
    dev = kernels.asarray("numba_cuda", host)
    assert be.is_native(dev) and be.is_native(dev[1:]) and be.is_native(be.empty((4,), "float64"))
    assert not be.is_native(host) and not be.is_native([1.0])
    back = kernels.asnumpy(dev)
    assert isinstance(back, np.ndarray) and np.array_equal(back, host)
    host[0, 0] = 123.0
    assert kernels.asnumpy(dev)[0, 0] != 123.0, "to_native must copy"


@pytest.mark.gpu
def test_float16_and_other_dtypes_are_type_errors(be):
    relu = kernels.get("relu", "numba_cuda")
    with pytest.raises(TypeError, match="supports float32, float64"):
        relu(be.to_native(np.ones(4, np.float16)))
    with pytest.raises(TypeError, match="floating-point"):
        relu(be.to_native(np.ones(4, np.int32)))


@pytest.mark.gpu
@pytest.mark.parametrize("op", list(ELEMENTWISE_OPS))
def test_zero_dimensional_arrays(be, op, rng):
    r = check_call(op, "numba_cuda", random_inputs(op, (), "float64", rng, 10.0))
    assert r.ok, r.message


@pytest.mark.gpu
def test_kernels_compile_once_per_dtype(be):
    a = numba_gpu.RUNTIME.kernel("relu", "float32")
    assert numba_gpu.RUNTIME.kernel("relu", "float32") is a
    assert numba_gpu.RUNTIME.kernel("relu", "float64") is not a


@pytest.mark.gpu
def test_closing_the_runtime_drops_its_kernels_and_keeps_the_backend(be, rng):
    """close() forgets every compiled kernel and device fact; the next launch compiles again and
    runs as before (the backend stays bound to numba.cuda)."""
    rt = numba_gpu.RUNTIME
    a = rt.kernel("relu", "float32")
    rt.close()
    assert rt.kernel("relu", "float32") is not a
    rt.close()
    r = check_call("relu_grad_mask", "numba_cuda", random_inputs("relu_grad_mask", (257,), "float32", rng, 10.0))
    assert r.ok, r.message


# --------------------------------------------- device attributes, through numba-cuda's own lookup
# numba-cuda's Device reads an attribute NAME as cuda-bindings' CU_DEVICE_ATTRIBUTE_<NAME>
# (cudadrv/driver.py, Device.__getattr__). The simulator never goes there, so a stand-in device of
# numba-cuda's own class, with a driver that answers any valid code, runs that lookup here.

_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    from numba.cuda.cudadrv import driver
    from kernels.backends.numba_cuda import elementwise as numba_gpu

    class StandInDriver:                     # answers cuDeviceGetAttribute for any valid code
        def cuDeviceGetAttribute(self, code, device_id):
            return {"CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT": 132}.get(code.name, 2048)

    driver.driver = StandInDriver()
    dev = driver.Device.__new__(driver.Device)   # numba-cuda's own class, without a GPU behind it
    dev.id, dev.name, dev.compute_capability = 0, "Stand-in GPU", (9, 0)
    bad = {}
    for name in sys.argv[1:]:
        try:
            getattr(dev, name)
        except AttributeError as exc:
            bad[name] = str(exc)
    out = {"bad": bad, "facts": None}
    try:
        out["facts"] = numba_gpu.describe_device(dev)
    except Exception as exc:
        out["facts_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")

# every read of an upper-case (driver attribute) name on a variable dev or device, in the project
_ATTR_READ = re.compile(r"\b(?:dev|device)\.([A-Z][A-Z0-9_]+)\b")


def _device_attribute_reads() -> dict[str, list[str]]:
    reads: dict[str, list[str]] = {}
    for folder in ("kernels", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for name in _ATTR_READ.findall(path.read_text()):
                reads.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return reads


def test_device_attribute_names_exist_in_cuda_bindings():
    """Every device attribute the project reads is one numba-cuda can resolve, and numba_gpu's own
    device reading runs on a stand-in device of numba-cuda's class (the real target, no GPU)."""
    reads = _device_attribute_reads()
    assert "MULTIPROCESSOR_COUNT" in reads, "the scan finds the reads it is meant to check"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    proc = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, *sorted(reads)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["bad"], {name: (reads[name], why) for name, why in out["bad"].items()}
    assert out["facts"] and "Stand-in GPU" in out["facts"], out.get("facts_error")


def test_the_attribute_check_can_fail():
    """A misspelt name (the one that once broke every launch) is caught by the same lookup."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    proc = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, "MAX_THREADS_PER_MULTI_PROCESSOR",
                           "MAX_THREADS_PER_MULTIPROCESSOR"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    bad = json.loads(proc.stdout.strip().splitlines()[-1])["bad"]
    assert list(bad) == ["MAX_THREADS_PER_MULTI_PROCESSOR"]


# ------------------------------------------------------------------------------- launch geometry

def test_launch_config_simulator():
    assert launch_config(1, simulated=True) == (1, SIM_THREADS)
    assert launch_config(SIM_THREADS * UNROLL, simulated=True) == (1, SIM_THREADS)
    assert launch_config(SIM_THREADS * UNROLL + 1, simulated=True) == (min(2, SIM_BLOCKS), SIM_THREADS)
    assert launch_config(10**9, simulated=True) == (SIM_BLOCKS, SIM_THREADS)
    assert SIM_THREADS % WARP == 0 and SIM_BLOCKS * SIM_THREADS <= 128, "the simulator grid must stay tiny"


def test_launch_config_real_gpus():
    # the grid is one wave of the blocks the whole device holds at once (the occupancy API's
    # figure for the kernel), e.g. 132 SMs x 8 blocks of 256 threads
    assert launch_config(2**30, simulated=False, resident_blocks=1056) == (1056, THREADS)
    assert launch_config(2**30, simulated=False, resident_blocks=504) == (504, THREADS)
    # small arrays get only the blocks they need
    assert launch_config(1, simulated=False, resident_blocks=1056) == (1, THREADS)
    assert launch_config(THREADS * UNROLL, simulated=False, resident_blocks=1056) == (1, THREADS)
    assert launch_config(THREADS * UNROLL + 1, simulated=False, resident_blocks=1056) == (2, THREADS)
    assert launch_config(1000, simulated=False, resident_blocks=1056, per_thread=1) == (4, THREADS)
    # a kernel the occupancy API says cannot be resident still gets a valid grid
    assert launch_config(10**6, simulated=False, resident_blocks=0) == (1, THREADS)


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 255, 1023, 1024, 1025, 4097, 10**5 + 7, 2**26 + 1, 2**31 + 3])
@pytest.mark.parametrize("resident", [1, 16, 1056, 504])
@pytest.mark.parametrize("simulated", [False, True])
def test_launch_config_invariants(n, resident, simulated):
    blocks, threads = launch_config(n, simulated=simulated, resident_blocks=resident)
    most = SIM_BLOCKS if simulated else resident
    assert threads % WARP == 0, "relu_mask's ballots need whole warps"
    assert 1 <= blocks <= most
    pass_size = blocks * threads * UNROLL
    assert blocks == most or pass_size >= n, "a grid smaller than the cap covers n in one pass"
    assert (blocks - 1) * threads * UNROLL < n, "no block without work"


def test_launch_config_rejects_empty():
    with pytest.raises(ValueError, match="n >= 1"):
        launch_config(0, simulated=True)


# -------------------------------------------------------------------------- tails and out= in place

def _edges() -> list[int]:
    """Sizes that end exactly at, just before and just after each boundary of the grid-stride loop
    as this machine launches it: a warp, a block, the grid, one block's pass, one pass, two passes."""
    blocks, threads = numba_gpu.RUNTIME.grid("relu", "float32", 2**40)
    bounds = {WARP, threads, threads * blocks, threads * UNROLL, threads * blocks * UNROLL,
              2 * threads * blocks * UNROLL}
    return sorted({b + d for b in bounds for d in (-1, 0, 1)})


def _padded_out(shape, dtype, offset=PAD):
    """A device buffer of sentinels (NaN, or 0xA5 bytes) and the C-contiguous view of `shape` at
    `offset` inside it that a kernel gets as out=."""
    n = int(np.prod(shape, dtype=np.int64))
    fill = 0xA5 if dtype == "uint8" else np.nan
    buf = BE.to_native(np.full(n + offset + PAD, fill, dtype=dtype))
    return buf, buf[offset:offset + n].reshape(shape)


def _run_in_place(op, inputs, mask_offset=PAD, **params):
    """Run op on inputs with out= views into sentinel buffers; check the call returned those very
    views, wrote every element right (bench.measure.check.compare) and nothing outside them."""
    spec = OPS[op]
    native = tuple(BE.to_native(a) for a in inputs)
    bufs, views = [], []
    for shape, dtype in registry.output_layout(spec, inputs[0]):
        buf, view = _padded_out(shape, dtype, mask_offset if dtype == "uint8" else PAD)
        bufs.append((buf, dtype, mask_offset if dtype == "uint8" else PAD, int(np.prod(shape, dtype=np.int64))))
        views.append(view)
    out = tuple(views) if len(views) > 1 else views[0]
    res = kernels.get(op, "numba_cuda")(*native, out=out, **params)
    BE.synchronize()
    res = res if isinstance(res, tuple) else (res,)
    assert all(r is v for r, v in zip(res, views)), "with out=, the kernel returns the arrays it was given"
    for buf, dtype, offset, n in bufs:
        host = buf.copy_to_host()
        outside = np.concatenate([host[:offset], host[offset + n:]])
        untouched = (outside == 0xA5) if dtype == "uint8" else np.isnan(outside)
        assert untouched.all(), f"{op}: wrote outside its output (n={n})"
    got = tuple(BE.to_numpy(v) for v in views)
    r = compare(op, inputs, got if len(got) > 1 else got[0], params)
    assert r.ok, f"{op} n={inputs[0].size}: {r.message}"


@pytest.mark.gpu
@pytest.mark.parametrize("op", list(ELEMENTWISE_OPS))
def test_grid_stride_tails(be, op, rng):
    for n in _edges():
        _run_in_place(op, random_inputs(op, (n,), "float32", rng, 10.0))


@pytest.mark.gpu
@pytest.mark.parametrize("op", ["relu_grad", "sigmoid", "relu_mask", "relu_grad_mask"])
def test_several_warps_per_block(be, op, rng, monkeypatch):
    """An odd number of blocks of two warps each: warp and lane indices other than the default grid's."""
    blocks, threads = 3, 2 * WARP
    monkeypatch.setattr(numba_gpu.RUNTIME, "grid", lambda op, dtype, n: (blocks, threads))
    for b in (threads, blocks * threads, threads * UNROLL, blocks * threads * UNROLL):
        for n in (b - 1, b + 1):
            _run_in_place(op, random_inputs(op, (n,), "float32", rng))


@pytest.mark.gpu
@pytest.mark.parametrize("op", ["relu_mask", "relu_grad_mask"])
def test_mask_every_size_to_70(be, op, rng):
    """Every size whose mask ends inside a byte, at a byte, inside a 32-bit word, at a word."""
    for n in range(1, 71):
        _run_in_place(op, random_inputs(op, (n,), "float32", rng))


@pytest.mark.gpu
def test_mask_unaligned_out_is_written_byte_by_byte(be, rng):
    """An out= mask that does not start on a 4-byte boundary gets no 32-bit stores."""
    for n in (1, 8, 9, 31, 32, 33, 64, 65, 70, 129):
        for offset in (1, 3):
            _run_in_place("relu_mask", random_inputs("relu_mask", (n,), "float32", rng), mask_offset=offset)


@pytest.mark.gpu
def test_mask_float64_and_all_sign_patterns(be):
    """Words of all ones, all zeros and alternating bits, in float64, plus NaN and -0 (not > 0)."""
    x = np.tile(np.array([1.0, -1.0, 2.0, 0.0, 3.0, -0.0, np.nan, 5.0]), 12)
    x[64:96] = 7.0                        # a whole word of ones
    x[32:64] = -7.0                       # a whole word of zeros
    for n in (x.size, x.size - 3):
        y, mask = kernels.get("relu_mask", "numba_cuda")(BE.to_native(x[:n]))
        assert np.array_equal(BE.to_numpy(mask), pack_mask(x[:n]))
        assert compare("relu_mask", (x[:n],), (BE.to_numpy(y), BE.to_numpy(mask))).ok


@pytest.mark.gpu
def test_out_arrays_are_used_in_place(be, rng):
    """out= arrays are written and returned; without out= each call gets a fresh device array."""
    x = random_array((5, 7), "float64", rng, 10.0)
    dev = BE.to_native(x)
    out = BE.empty((5, 7), "float64")
    sigmoid = kernels.get("sigmoid", "numba_cuda")
    assert sigmoid(dev, out=out) is out
    BE.synchronize()
    assert compare("sigmoid", (x,), BE.to_numpy(out)).ok
    a, b = sigmoid(dev), sigmoid(dev)
    assert a is not b and a is not dev and BE.is_native(a)
    y, m = BE.empty((5, 7), "float64"), BE.empty(((35 + 7) // 8,), "uint8")
    ry, rm = kernels.get("relu_mask", "numba_cuda")(dev, out=(y, m))
    assert ry is y and rm is m
    assert np.array_equal(BE.to_numpy(dev), x), "inputs are never modified"


@pytest.mark.gpu
def test_leaky_slope_keyword(be, rng):
    x = random_array((300,), "float32", rng, 10.0)
    for slope in (0.2, 0.0, -1.5):
        _run_in_place("leaky_relu", (x,), slope=slope)
        _run_in_place("leaky_relu_grad", random_inputs("leaky_relu_grad", (300,), "float32", rng), slope=slope)


# ------------------------------------------------------------------------------ contiguous copies

@pytest.mark.gpu
def test_contiguous_returns_contiguous_arrays_as_they_are(be, rng):
    dev = BE.to_native(random_array((4, 6), "float32", rng))
    assert be.contiguous(dev) is dev


@pytest.mark.gpu
@pytest.mark.parametrize("view", ["step", "offset", "inner", "transpose"])
def test_contiguous_copies_strided_views_on_the_device(be, view, rng):
    host = random_array((6, 10, 3), "float64", rng)
    dev = BE.to_native(host)
    take = {"step": lambda a: a[::2], "offset": lambda a: a[1:, 2:7],
            "inner": lambda a: a[:, ::3, 1:], "transpose": lambda a: a[:, :, 0].T}[view]
    c = be.contiguous(take(dev))
    assert be.is_native(c) and c.is_c_contiguous()
    assert np.array_equal(BE.to_numpy(c), take(host))
    assert np.array_equal(BE.to_numpy(dev), host), "the source is left as it was"


@pytest.mark.gpu
def test_strided_view_through_a_kernel(be, rng):
    host = random_array((40, 9), "float32", rng, 10.0)
    dev = BE.to_native(host)
    dy = random_array((20, 9), "float32", rng)
    got = kernels.get("relu_grad", "numba_cuda")(BE.to_native(dy), dev[::2])
    assert compare("relu_grad", (dy, host[::2]), BE.to_numpy(got)).ok


# -------------------------------------------------------------------- the PTX a real GPU would run

_PTX_SCRIPT = textwrap.dedent("""
    import json, sys
    from numba.cuda.cudadrv import nvvm
    from kernels.backends.numba_cuda import elementwise as numba_gpu
    from kernels.ops import ELEMENTWISE_OPS as OPS   # sparse_matmul: tests/test_kernels_sparse_matmul.py
    if not nvvm.is_available():         # no CUDA toolkit here: nothing to compile with
        print(json.dumps({"skip": "libNVVM not found"}))
        sys.exit(0)
    report = {}
    # every kernel for Hopper (sm_90); the float32 ones for Ampere (sm_80) too
    targets = [(op, dt, (9, 0)) for op in OPS for dt in ("float32", "float64")]
    targets += [(op, "float32", (8, 0)) for op in OPS]
    for op, dtype, cc in targets:
        body = numba_gpu.compile_ptx(op, dtype, cc).split(".entry", 1)[1]
        lines = body.splitlines()
        report[f"{op}/{dtype}/sm_{cc[0]}{cc[1]}"] = {
            "f64": sum(".f64" in l for l in lines),
            "local": sum(".local" in l for l in lines),
            "ballot": sum("vote.sync.ballot" in l for l in lines),
            "loads": sum("ld.global" in l for l in lines),
        }
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def ptx_report():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    proc = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(f"libNVVM is needed to compile PTX: {report['skip']}")
    return report


def test_ptx_compiles_for_sm80_and_sm90(ptx_report):
    assert len(ptx_report) == 3 * len(ELEMENTWISE_OPS)


def test_ptx_float32_kernels_stay_in_float32(ptx_report):
    """Except GELU's z = x (C1 + C2 x^2), computed in float64 on purpose (a few instructions: its
    exp and sigmoid stay in float32; elementwise.py's _gelu_for says why)."""
    promoted = [k for k, v in ptx_report.items() if "/float32/" in k and v["f64"] and not k.startswith("gelu")]
    assert not promoted, f"float64 arithmetic in float32 kernels (an untyped constant?): {promoted}"
    gelu = {k: v["f64"] for k, v in ptx_report.items() if "/float32/" in k and k.startswith("gelu")}
    assert gelu and max(gelu.values()) < 40, gelu


def test_ptx_unrolled_reads_stay_in_registers(ptx_report):
    spilled = [k for k, v in ptx_report.items() if v["local"]]
    assert not spilled, f"local memory in {spilled}: the UNROLL buffers must live in registers"
    few = [k for k, v in ptx_report.items() if v["loads"] < UNROLL]
    assert not few, f"fewer than UNROLL global loads in {few}"


def test_ptx_relu_mask_uses_a_warp_ballot(ptx_report):
    for key, v in ptx_report.items():
        assert (v["ballot"] > 0) == key.startswith("relu_mask/"), key


# ------------------------------------------------------------------------------ real GPU only

@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", list(ELEMENTWISE_OPS))
def test_gpu_large_sizes(op, dtype, rng):
    for n in (2**20 + 3, 2**24 + 1):
        r = check_call(op, "numba_cuda", random_inputs(op, (n,), dtype, rng, 10.0))
        assert r.ok, f"n={n}: {r.message}"


@pytest.mark.gpu
@requires_gpu
def test_gpu_grid_fills_the_device():
    """A large array gets one full wave: the occupancy API's resident blocks per SM x the SMs."""
    from numba import cuda
    dev = cuda.get_current_device()
    blocks, threads = numba_gpu.RUNTIME.grid("relu", "float32", 2**26)
    assert threads == THREADS and blocks % dev.MULTIPROCESSOR_COUNT == 0
    assert dev.MULTIPROCESSOR_COUNT <= blocks <= dev.MULTIPROCESSOR_COUNT * (dev.MAX_THREADS_PER_MULTIPROCESSOR // THREADS)


@pytest.mark.gpu
@requires_gpu
def test_gpu_mask_unaligned_and_large(rng):
    for n in (2**20 + 5, 3 * 2**20 + 31):
        for offset in (PAD, 1):
            _run_in_place("relu_mask", random_inputs("relu_mask", (n,), "float32", rng), mask_offset=offset)


def test_moving_arrays_works_on_numpy_1(monkeypatch):
    """to_native under NumPy 1.x rules, where np.array(..., copy=None) is a ValueError ("NoneType
    copy mode not allowed"; make gpu-check's system python3 may ship NumPy 1.x): C-contiguous
    arrays and strided views both reach the device, values intact."""
    real = np.array

    def array_numpy1(obj, *args, copy=True, **kw):
        if copy is None:
            raise ValueError("NoneType copy mode not allowed.")
        return real(obj, *args, copy=copy, **kw)

    monkeypatch.setattr(numba_gpu, "np", type(np)("numpy1", "NumPy 1.x's copy rules"))
    vars(numba_gpu.np).update({k: v for k, v in vars(np).items() if not k.startswith("__")}, array=array_numpy1)
    assert BE.available, BE.reason
    base = np.arange(20, dtype=np.float32)
    for a in (base, base[::2], base.reshape(4, 5).T):
        got = BE.to_numpy(BE.to_native(a))
        assert got.shape == a.shape and np.array_equal(got, a)


def test_dependency_floors_are_the_tested_versions():
    """pyproject's floors for what make test installs (the dependencies and the dev extra) are the
    versions this environment tests, to the minor: a floor below them is a promise nobody checks
    (numpy>=1.24 admitted NumPy 1.x, on which numba_cuda broke). Raise the floor with the venv."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    checked = 0
    for req in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9.]+)", req.split(";")[0].strip())
        assert m, f"{req}: a floor (>=) is expected"
        name, floor = m.groups()
        try:
            have = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed, so its floor {floor} is not tested")
        minor = lambda v: tuple(int(p) for p in re.findall(r"\d+", v)[:2])  # noqa: E731
        assert minor(floor) == minor(have), f"{name}>={floor}, but {have} is what is tested"
        checked += 1
    assert checked >= 6
