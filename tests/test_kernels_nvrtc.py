"""Every CUDA C source compiles with NVRTC from PyPI, without a GPU, for sm_80 and sm_90.

The .cu files of the cupy_raw backend and each ElementwiseKernel of cupy_elementwise (CuPy's own
expansion of the launcher's call), all with CuPy's own options and headers, must compile with no
error and no warning, and no kernel may spill. The
ptxas-log parser is checked on a recorded log, and a broken source must be reported as broken
(so these tests can fail). These tests need only the dev extra; they must run, not skip, in CI.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import nvrtc
from kernels.cuda import build as cuda_build
from kernels.nvrtc import resources
from kernels.backends.cupy import expand as cupy_expand, elementwise as cupy_gpu, sparse as cupy_sparse
from kernels.ops import OPS

ROOT = Path(__file__).resolve().parents[1]

if nvrtc.reason() or cupy_expand.reason():   # the dev extra is installed in CI: a failure, not a skip
    pytest.fail(f"NVRTC and CuPy are needed by these tests: {nvrtc.reason() or cupy_expand.reason()}",
                pytrace=False)

TARGETS = resources.targets()


@pytest.fixture(scope="module", params=nvrtc.ARCHS)
def compiled(request) -> dict[str, nvrtc.Compiled]:
    """Every target compiled once per arch, shared by the tests below."""
    return {t.label: resources.compile_target(t, request.param) for t in TARGETS}


@pytest.mark.parametrize("label", [t.label for t in TARGETS])
def test_compiles_without_warnings_or_spills(compiled, label):
    r = compiled[label]
    assert r.ok, f"{label} for {r.arch}:\n" + "\n".join(r.problems) + "\n--- log ---\n" + r.log
    assert r.kernels, f"{label} for {r.arch}: ptxas reported no kernel:\n{r.log}"


def test_every_raw_kernel_is_compiled_and_reported(compiled):
    """Each kernel a .cu file defines (its PTX entries, macros expanded) shows up in ptxas's report
    with its registers, in the order the file defines them."""
    for path in resources.raw_sources():
        got = compiled[path.name]
        assert got.entries, f"{path.name} defines no extern \"C\" kernel"
        assert list(got.kernels) == list(got.entries)
        assert all(r.registers > 0 for r in got.kernels.values())


def test_every_op_has_a_raw_kernel_and_an_elementwise_body(compiled):
    """Nothing forgotten, nothing extra: the elementwise .cu files define exactly one RawKernel per
    op x dtype the launcher loads from them, and each op has an ElementwiseKernel."""
    assert set(cupy_gpu.ELEMENTWISE) == set(OPS) - {"sparse_matmul"}
    assert set(cupy_gpu.RAW_SOURCES) == set(OPS) - {"sparse_matmul"}
    for filename in set(cupy_gpu.RAW_SOURCES.values()):
        want = {cuda_build.raw_kernel_name(op, dtype) for op, f in cupy_gpu.RAW_SOURCES.items() if f == filename
                for dtype in cuda_build.DTYPES}
        assert set(compiled[filename].entries) == want, filename
    # sparse_matmul.cu: the partial and reduce kernels cupy_sparse looks up, per dtype, in this order
    assert list(compiled[cupy_sparse.SOURCE].entries) == [
        cuda_build.raw_kernel_name(f"sparse_matmul_{kind}", dtype) for kind in ("partial", "reduce")
        for dtype in cuda_build.DTYPES]
    for op, ew in cupy_gpu.ELEMENTWISE.items():
        assert ew.name == f"_{op}_kernel"
        spec = OPS[op]
        params = [name for part in (ew.in_params, ew.out_params) for name in [p.split()[-1] for p in part.split(",")]]
        assert params[:len(spec.inputs)] == list(spec.inputs), f"{op}: inputs in the op's order"
        for out in spec.outputs:
            assert out in params, f"{op}: output {out} missing"


def test_block_size_agrees():
    assert f"#define ACT_BLOCK {cuda_build.BLOCK} " in (cuda_build.CUDA_DIR / "common.cuh").read_text()


def test_vector_loads_and_stores_in_ptx():
    """Each RawKernel moves its arrays with 16-byte loads and stores (ld/st .v4 or .v2.f64), and
    none has a 64-bit division (trip-count arithmetic of an unrolled grid-stride loop); sparse_matmul's
    partial kernels find a tile's present rows with one warp ballot."""
    ballots = 0
    for t in resources.raw_targets():
        ptx = nvrtc.ptx_of(t.source, t.label, "sm_90", t.options)
        entries = re.split(r"\.visible \.entry ", ptx)[1:]
        assert entries and len(entries) == len(nvrtc.entry_names(ptx))
        for entry in entries:
            name = entry.split("(")[0]
            assert re.search(r"ld\.global(\.nc)?\.v(4|2)\.(f32|u32|b32|f64|u64|b64)", entry), f"{name}: no 16-byte load"
            assert re.search(r"st\.global\.v(4|2)\.(f32|u32|b32|f64|u64|b64)", entry), f"{name}: no 16-byte store"
            assert not re.search(r"\b(div|rem)\.(s|u)64\b", entry), f"{name}: 64-bit division"
            if name.startswith("_sparse_matmul_partial_"):
                assert "vote.sync.ballot" in entry, f"{name}: no per-tile ballot"
                ballots += 1
    assert ballots == len(cuda_build.DTYPES)


# The ops that decide on the sign of x: under CuPy's -ftz=true a float compare on x reads a
# subnormal as 0 (setp.*.ftz.f32), so they decide from x's bits (kernels/cuda/sign.cuh).
SIGN_DECIDING_OPS = ("relu", "relu_grad", "leaky_relu", "leaky_relu_grad", "relu_mask")
FTZ_COMPARE = re.compile(r"\bsetp\.\w+\.ftz\.f32\b")


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
def test_no_relu_decision_is_a_flushing_compare(arch):
    """No float16 / float32 kernel of the ReLU family, RawKernel or ElementwiseKernel as CuPy
    generates it, compiles to a .ftz float compare under CuPy's options: each would read x = 1e-40
    as 0 (relu_grad giving 0 for dy, the mask bit 0) on the GPU."""
    found, checked = {}, 0
    for t in resources.targets():
        ptx = nvrtc.ptx_of(t.source, t.label, arch, t.options)
        for entry in re.split(r"\.visible \.entry ", ptx)[1:]:
            name = entry.split("(")[0]
            if t.kind == "raw":
                relevant = any(name in (cuda_build.raw_kernel_name(op, "float16"), cuda_build.raw_kernel_name(op, "float32"))
                               for op in SIGN_DECIDING_OPS)
            else:
                _, op, dtype = t.label.split()
                relevant = op in SIGN_DECIDING_OPS and dtype in ("float16", "float32")
            if relevant:
                checked += 1
                if hits := sorted(set(FTZ_COMPARE.findall(entry))):
                    found[f"{t.label}: {name}"] = hits
    assert checked == 2 * 2 * len(SIGN_DECIDING_OPS), checked
    assert not found, found


def test_a_float_compare_is_a_flushing_compare_under_cupys_options():
    """The check above can fail: `x > 0.0f` on a float compiles to setp.gt.ftz.f32 under CuPy's
    options, and the same test through sign.cuh's gt_zero to none."""
    compare = 'extern "C" __global__ void k(const float* x, int* y) { y[0] = x[0] > 0.0f; }'
    bits = ('#include "sign.cuh"\n'
            'extern "C" __global__ void k(const float* x, int* y) { y[0] = act::gt_zero(x[0]); }')
    opts = resources.raw_targets()[0].options
    assert FTZ_COMPARE.search(nvrtc.ptx_of(compare, "compare.cu", "sm_90", opts))
    assert not FTZ_COMPARE.search(nvrtc.ptx_of(bits, "bits.cu", "sm_90", opts))


FP16_PROBE = '#include "fp16.cuh"\n#ifdef ACTBENCH_FP16_STANDIN\n#error the stand-in\n#endif\n'


def test_cupys_options_give_the_real_cuda_fp16():
    """Under CuPy's own options (its CUDA headers' folder) fp16.cuh takes cuda_fp16.h, not its
    stand-in; nvrtc.NO_CUDA_FP16 switches to the stand-in (so the test below compiles that branch)."""
    opts = resources.raw_targets()[0].options
    assert nvrtc.compile_source(FP16_PROBE, "probe.cu", "sm_90", opts).ok
    r = nvrtc.compile_source(FP16_PROBE, "probe.cu", "sm_90", opts, fp16=False)
    assert not r.ok and "the stand-in" in r.log


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
def test_sources_compile_with_the_fp16_stand_in(arch):
    """kernels/cuda/fp16.cuh's stand-in for cuda_fp16.h compiles in every source, with CuPy's options."""
    for t in resources.raw_targets():
        r = nvrtc.compile_source(t.source, t.label, arch, t.options, fp16=False)
        assert r.ok, "\n".join(r.problems) + "\n" + r.log
        assert list(r.kernels) == list(r.entries) and r.entries


def test_raw_options_under_cupy():
    """The RawModules get no cuda_fp16.h folder of ours (CuPy's CUDA headers serve; one of another
    CUDA major version could shadow them), and carry the headers' hash (CuPy's cache keys on the
    source and the options, not on #include'd files)."""
    opts = cuda_build.raw_options()
    assert not any("cuda_fp16" in o or "/include" in o for o in opts), opts
    assert f"-DACTBENCH_HEADERS={cuda_build.headers_hash()}" in opts
    assert {p.name for p in cuda_build.headers()} == {"common.cuh", "fp16.cuh", "logistic.cuh", "sign.cuh"}


def test_headers_hash_follows_the_headers(tmp_path, monkeypatch):
    """Editing an included header changes the hash (so CuPy's cache key) and nothing else does."""
    for p in cuda_build.headers():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(cuda_build, "CUDA_DIR", tmp_path)
    cuda_build.headers_hash.cache_clear()
    try:
        before = cuda_build.headers_hash()
        (tmp_path / "relu.cu").write_text("// not a header\n")
        cuda_build.headers_hash.cache_clear()
        assert cuda_build.headers_hash() == before
        (tmp_path / "common.cuh").write_text((tmp_path / "common.cuh").read_text() + "\n// edited\n")
        cuda_build.headers_hash.cache_clear()
        assert cuda_build.headers_hash() != before
    finally:
        cuda_build.headers_hash.cache_clear()


def test_cupy_options_are_cupys():
    """What the compile checks use is CuPy's own option assembly over what the launchers pass:
    the RawModules' raw_options, each ElementwiseKernel's own options; with CuPy's headers, its
    CUDA headers' folder and the -ftz=true; and nvrtc's default is a bare cupy.RawKernel's."""
    opts = cupy_expand.options(cuda_build.raw_options())
    assert "-ftz=true" in opts and any(o.endswith("/cupy/_core/include") for o in opts)
    from cupy._core import core
    assert opts[:-2] == core.assemble_cupy_compiler_options(cuda_build.raw_options())
    assert all(t.options == opts for t in resources.raw_targets())
    for t, e in zip(resources.elementwise_targets(), cupy_expand.expand_all()):
        given = tuple(cupy_expand.kernel(cupy_gpu.ELEMENTWISE[e.op]).kwargs.get("options", ()))
        assert t.options == cupy_expand.options(given), t.label
    assert nvrtc.cupy_options(None) == cupy_expand.options()


# ---- the checker checks --------------------------------------------------------------------

RECORDED_LOG = """\
ptxas info    : 12 bytes gmem
ptxas info    : Compiling entry function '_sigmoid_kernel_f32' for 'sm_90'
ptxas info    : Function properties for _sigmoid_kernel_f32
ptxas         .     8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 8 bytes cumulative stack size
ptxas info    : Compile time = 61.879 ms
ptxas info    : Function properties for __internal_accurate_helper
ptxas         .     16 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function '_relu_kernel_f16' for 'sm_80'
ptxas info    : Function properties for _relu_kernel_f16
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 27 registers, used 1 barriers, 2048 bytes smem, 380 bytes cmem[0]
"""


def test_parser_on_a_recorded_log():
    got = nvrtc.parse_ptxas(RECORDED_LOG)
    assert list(got) == ["_sigmoid_kernel_f32", "_relu_kernel_f16"]
    s = got["_sigmoid_kernel_f32"]
    assert (s.registers, s.stack_bytes, s.spill_stores, s.spill_loads, s.shared_bytes) == (32, 8, 8, 8, 0)
    assert s.spills
    r = got["_relu_kernel_f16"]
    assert (r.registers, r.stack_bytes, r.spill_stores, r.spill_loads, r.shared_bytes, r.barriers) == (27, 0, 0, 0, 2048, 1)
    assert not r.spills


def test_a_spilling_kernel_fails():
    c = nvrtc.Compiled("x.cu", "sm_90", RECORDED_LOG, kernels=nvrtc.parse_ptxas(RECORDED_LOG))
    assert not c.ok and any("_sigmoid_kernel_f32 spills" in p for p in c.problems)


def test_an_unreported_kernel_fails():
    """A kernel the module defines (its PTX entries) that ptxas's report leaves out is a problem."""
    kernels = nvrtc.parse_ptxas(RECORDED_LOG)
    assert nvrtc.Compiled("x.cu", "sm_90", "", kernels={"_relu_kernel_f16": kernels["_relu_kernel_f16"]},
                          entries=("_relu_kernel_f16",)).ok
    c = nvrtc.Compiled("x.cu", "sm_90", "", kernels={"_relu_kernel_f16": kernels["_relu_kernel_f16"]},
                       entries=("_relu_kernel_f16", "_relu_kernel_f32"))
    assert c.problems == ["_relu_kernel_f32: no ptxas report"]


def test_a_broken_source_is_an_error():
    r = nvrtc.compile_source('extern "C" __global__ void k(float* x) { x[0] = not_declared; }', "broken.cu", "sm_90")
    assert not r.ok and r.errors and "not_declared" in r.log


def test_a_warning_is_a_failure():
    r = nvrtc.compile_source('extern "C" __global__ void k(float* x) { int unused; x[0] = 1.0f; }', "warns.cu", "sm_80")
    assert not r.ok and r.warnings and not r.errors


def test_committed_report_lists_every_kernel(compiled):
    """reports/kernels-resources.md (make resources) is there and names every kernel."""
    report = (ROOT / "reports" / "kernels-resources.md").read_text()
    assert "NVRTC" in report and "sm_80" in report and "sm_90" in report
    names = [name for r in compiled.values() for name in r.kernels]
    assert len(names) >= 3 * len(cupy_gpu.RAW_SOURCES) + len(cupy_gpu.ELEMENTWISE)
    for label, r in compiled.items():
        for name in r.kernels:
            assert f"| {label} | `{name}` |" in report, f"{name} ({label}) is not in the report: run make resources"


def test_cli_reports(tmp_path):
    out = tmp_path / "r.md"
    proc = subprocess.run([sys.executable, "-m", "kernels.nvrtc.resources", "--arch", "sm_90", "--report", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# CUDA kernel resources") and "| relu.cu | `_relu_kernel_f32` |" in text
