"""bench/blas.py: a variable that forces the BLAS kernel below the CPU is found, for each BLAS
family, from a faked environment, threadpoolctl report and CPU flags; where nothing is forced
(or nothing can be judged) nothing is said. The run records it in its environment."""

from __future__ import annotations

import pytest

from bench.measure import blas

AVX512 = ["fpu", "sse2", "pni", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"]
AVX2 = [f for f in AVX512 if not f.startswith("avx512")]
ARM_SVE = ["fp", "asimd", "sve"]


def openblas(arch="Haswell", **kw):
    return dict({"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.31",
                 "filepath": "/x/libscipy_openblas64_.so", "architecture": arch}, **kw)


MKL = {"user_api": "blas", "internal_api": "mkl", "num_threads": 2, "version": "2025.0",
       "filepath": "/x/libmkl_rt.so.2", "threading_layer": "intel"}


def blis(arch):
    return {"user_api": "blas", "internal_api": "blis", "num_threads": 2, "version": "5.0",
            "filepath": "/x/libblis.so", "architecture": arch}


def test_the_issue_case_openblas_haswell_on_avx512():
    env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "2048", "HOME": "/root"}
    (f,) = blas.forced_kernels(env, [openblas("Haswell")], AVX512)
    assert f.library == "openblas" and f.variables == {"OPENBLAS_CORETYPE": "Haswell"}
    assert (f.forced, f.forced_isa, f.cpu_isa) == ("Haswell", "avx2", "avx512")
    assert "SkylakeX" in f.best
    assert f.unset == ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    assert f.command == "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE make bench"
    assert f.filepath == "/x/libscipy_openblas64_.so"
    assert "OPENBLAS_CORETYPE=Haswell" in f.message and f.command in f.message
    d = f.as_dict()
    assert d["unset"] == ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"] and d["command"] == f.command
    assert blas.warnings({"blas_forced": [d]}) == ["WARNING: " + f.message]


@pytest.mark.parametrize("env, info, flags", [
    ({}, [openblas("SkylakeX")], AVX512),                                   # nothing set
    ({"OPENBLAS_L2_SIZE": "2048"}, [openblas("SkylakeX")], AVX512),         # a tuning, no kernel forced
    ({"OPENBLAS_CORETYPE": "Haswell"}, [openblas("Haswell")], AVX2),        # the CPU's own best
    ({"OPENBLAS_CORETYPE": "Zen"}, [openblas("Zen")], AVX2),
    ({"OPENBLAS_CORETYPE": "SkylakeX"}, [openblas("SkylakeX")], AVX512),
    ({"OPENBLAS_CORETYPE": "Haswell"}, [openblas("SkylakeX")], AVX512),     # ignored by the library
    ({"OPENBLAS_CORETYPE": "Haswell"}, [openblas("Haswell")], []),          # CPU unknown: not judged
    ({"OPENBLAS_CORETYPE": "Haswell"}, [openblas("SomeFutureCore")], AVX512),   # kernel unknown
    ({"OPENBLAS_CORETYPE": "ARMV8"}, [openblas("ARMV8")], AVX512),          # another family's name
    ({"OPENBLAS_CORETYPE": "Haswell"}, [], AVX512),                         # no BLAS loaded
    ({"MKL_CBWR": "AUTO"}, [MKL], AVX512),
    ({"MKL_ENABLE_INSTRUCTIONS": "AVX512_E4"}, [MKL], AVX512),              # a cap at or above the CPU
    ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, [MKL], AVX2),
    ({"MKL_DEBUG_CPU_TYPE": "7"}, [MKL], AVX512),                           # a value we cannot read
    ({"BLIS_ARCH_TYPE": "zen3"}, [blis("zen3")], AVX2),
    ({"AOCL_ENABLE_INSTRUCTIONS": "avx512"}, [blis("zen4")], AVX512),
    ({"OPENBLAS_CORETYPE": "Haswell"}, [MKL], AVX512),                      # another library's variable
])
def test_no_warning(env, info, flags):
    assert blas.forced_kernels(env, info, flags) == []


@pytest.mark.parametrize("env, info, flags, forced, isa, unset", [
    ({"OPENBLAS_CORETYPE": "haswell"}, [openblas(None)], AVX512, "haswell", "avx2", ("OPENBLAS_CORETYPE",)),
    ({"OPENBLAS_CORETYPE": "Sandybridge"}, [openblas("Sandybridge")], AVX2, "Sandybridge", "avx", ("OPENBLAS_CORETYPE",)),
    ({"OPENBLAS_CORETYPE": "Prescott"}, [openblas("Prescott")], AVX512, "Prescott", "sse3", ("OPENBLAS_CORETYPE",)),
    ({"OPENBLAS_CORETYPE": "NeoverseN1"}, [openblas("NeoverseN1")], ARM_SVE, "NeoverseN1", "neon", ("OPENBLAS_CORETYPE",)),
    ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, [MKL], AVX512, "MKL_ENABLE_INSTRUCTIONS=AVX2", "avx2", ("MKL_ENABLE_INSTRUCTIONS",)),
    ({"MKL_CBWR": "BRANCH=AVX,STRICT"}, [MKL], AVX512, "MKL_CBWR=BRANCH=AVX,STRICT", "avx", ("MKL_CBWR",)),
    ({"MKL_CBWR": "COMPATIBLE"}, [MKL], AVX2, "MKL_CBWR=COMPATIBLE", "sse2", ("MKL_CBWR",)),
    ({"MKL_DEBUG_CPU_TYPE": "5"}, [MKL], AVX512, "MKL_DEBUG_CPU_TYPE=5", "avx2", ("MKL_DEBUG_CPU_TYPE",)),
    ({"MKL_DEBUG_CPU_TYPE": "5", "MKL_CBWR": "SSE4_2"}, [MKL], AVX512, "MKL_CBWR=SSE4_2", "sse4_2",
     ("MKL_CBWR", "MKL_DEBUG_CPU_TYPE")),                                   # the lowest cap is the kernel
    ({"BLIS_ARCH_TYPE": "haswell"}, [blis("haswell")], AVX512, "haswell", "avx2", ("BLIS_ARCH_TYPE",)),
    ({"AOCL_ENABLE_INSTRUCTIONS": "avx2"}, [blis("zen3")], AVX512, "zen3", "avx2", ("AOCL_ENABLE_INSTRUCTIONS",)),
    ({"BLIS_ARCH_TYPE": "generic"}, [blis("generic")], AVX2, "generic", None, ("BLIS_ARCH_TYPE",)),
])
def test_warning_for_each_family(env, info, flags, forced, isa, unset):
    (f,) = blas.forced_kernels(env, info, flags, command="python -m bench run --ops sparse_matmul")
    assert (f.forced, f.forced_isa, f.unset) == (forced, isa, unset)
    assert f.command == "env " + " ".join(f"-u {n}" for n in unset) + " python -m bench run --ops sparse_matmul"
    assert f.cpu_isa == blas.cpu_isa(flags) and f.best
    assert all(f"{k}={v}" in f.message for k, v in f.variables.items())


def test_one_record_per_library_loaded():
    env = {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    info = [openblas("Haswell"), openblas("Haswell", filepath="/y/libopenblas.so"), MKL,
            {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2}]
    got = blas.forced_kernels(env, info, AVX512)
    assert [f.library for f in got] == ["openblas", "mkl"]


@pytest.mark.parametrize("flags, isa", [
    (AVX512, "avx512"), (AVX2, "avx2"), (["avx2", "avx"], "avx"),       # avx2 without fma: AVX code
    (["sse2", "pni"], "sse3"), (["SSE4_2", "AVX"], "avx"), (ARM_SVE, "sve"), (["asimd"], "neon"),
    ([], None), (["fpu"], None),
])
def test_cpu_isa(flags, isa):
    assert blas.cpu_isa(flags) == isa


def test_every_named_kernel_maps_to_a_known_extension():
    for table in (blas._OPENBLAS, blas._BLIS, blas._MKL):
        assert set(table.values()) <= set(blas.X86) | set(blas.ARM) | {None}


def test_unset_command_quotes_and_never_sets():
    assert blas.unset_command(["A", "B"], "make bench") == "env -u A -u B make bench"
    assert blas.unset_command(["A"], "python -m bench run") == "env -u A python -m bench run"


def test_the_run_records_it(monkeypatch):
    """bench/environment.py records what detect() says on this process, under one key; detect
    reads os.environ and the CPU through the faked pieces here and never changes the environment."""
    import os

    from bench.measure import environment
    import threadpoolctl
    from kernels import machine
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [openblas("Haswell")])
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: AVX512)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    before = dict(os.environ)
    env = environment.environment("python -m bench run")
    assert os.environ == before
    (f,) = env["blas_forced"]
    assert f["command"] == "env -u OPENBLAS_CORETYPE python -m bench run"
    assert blas.warnings(env)[0].startswith("WARNING: OPENBLAS_CORETYPE=Haswell forces openblas's Haswell kernel")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert environment.environment("x")["blas_forced"] == []


def _sparse_run(env):
    """A derived run of one sparse case pair (numpy dense, numba_cpu sparse) with `env`."""
    from bench import kinds
    from bench.kinds import matmul
    from bench.model.results import CaseResult, Run

    def case(backend, median):
        return CaseResult("sparse_matmul", backend, "cpu", "float32", 64, "ok", median_s=median, bytes=1000,
                          kind="matmul", axes=dict(matmul.case_axes((8, 8), 1, 0.5, "relu")))
    return kinds.derive(Run(env=env, peaks={"cpu": {"gbps": 10.0}}, results=(case("numpy", 1.0), case("numba_cpu", 0.5))))


@pytest.mark.parametrize("forced", [True, False])
def test_the_header_and_every_sparse_table_say_it(forced):
    """A run whose env records a forced kernel opens with the warning and repeats it under each
    sparse table (whose speed-ups rest on the dense baseline); each table names the baseline's
    kernel; without the record, no warning anywhere."""
    from rich.console import Console

    from bench.kinds import matmul
    from bench.report import markdown, tables
    record = blas.forced_kernels({"OPENBLAS_CORETYPE": "Haswell"}, [openblas("Haswell")], AVX512, "make bench")
    env = {"numpy": {"blas": [openblas("Haswell")]},
           "blas_forced": [f.as_dict() for f in record] if forced else []}
    run = _sparse_run(env)
    console = Console(width=200, record=True)
    tables.print_run(run, console)
    text = console.export_text()
    md = markdown.markdown(run)
    for narrow in (False, True):
        (t,) = matmul.tables(run, narrow=narrow)
        assert "dense baseline numpy's BLAS: openblas Haswell" in t.caption
        assert ("OPENBLAS_CORETYPE=Haswell forces" in t.caption) is forced
    warning = "WARNING: OPENBLAS_CORETYPE=Haswell forces"
    assert (text.lstrip().startswith(warning)) is forced
    assert (text.count(warning) == 2) is forced and (warning in text) is forced     # the header and the table
    assert (md.count("OPENBLAS_CORETYPE=Haswell forces") == 2) is forced
    assert ("env -u OPENBLAS_CORETYPE" in text) is forced


def test_the_sparse_caption_names_numpys_own_blas_once():
    """scipy loads an OpenBLAS of its own beside numpy's and threadpoolctl lists both: the caption
    named "openblas SkylakeX, openblas SkylakeX". It names numpy's (the one in numpy's folders),
    once; where no path says which is numpy's, each kernel once."""
    from bench.kinds import matmul

    def lib(folder, arch):
        return dict(openblas(arch), filepath=f"/venv/site-packages/{folder}/libscipy_openblas.so")

    both = [lib("scipy.libs", "Haswell"), lib("numpy.libs", "SkylakeX")]
    (note,) = matmul.baseline_notes(_sparse_run({"numpy": {"blas": both}}), "cpu")
    assert note == "dense baseline numpy's BLAS: openblas SkylakeX"
    unknown = [openblas("SkylakeX"), openblas("SkylakeX"), openblas("Haswell")]
    (note,) = matmul.baseline_notes(_sparse_run({"numpy": {"blas": unknown}}), "cpu")
    assert note == "dense baseline numpy's BLAS: openblas SkylakeX, openblas Haswell"
