"""The pull-request path of the regression workflow, run here before it ever runs on GitHub: the
shell steps of bench-gate.yml's pull-request job, with the inputs bench-cpu.yml gives it, run in
order (a failed step skips the later ones unless their `if:` says always()) against a scratch git
repository holding this project: a base commit, and a head that plants a ~30x slowdown in NumPy's
relu, or changes nothing (A/A). The scratch copy reports constant copy peaks (tests/fakes.py), so a
run takes seconds; the case set is cut to one op by the same AB_ARGS the job passes. A broken step
(a typo in a path, a flag `bench ab` does not know, a summary that is never written) fails here
instead of on the first pull request. actionlint checks the workflows' syntax in `make lint`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
# one op, one size, the fewest pairs bench ab's rule judges (bench/analysis/pairs.py MIN_PAIRS); a 50 % threshold:
# the plant (~30x) stays far beyond it, and an A/A pair on a busy test machine far below it. The
# gate's power and false-positive rate are measured, not tested, here (docs/bench-ab.md): with 5
# pairs on a loaded 2-core machine it caught a 2x plant in only 2 of 3 windows, and a 2x plant here
# once failed CI (one pair near 1x, p = 0.015 against alpha 0.01). This test checks the job's steps,
# so its plant is one no noise can hide.
TINY = "--pairs 5 --seed 0 --threshold 50% --run-args '--ops relu --backends numpy --sizes 2**14 --budget 0.05'"

# the constant peaks of tests/fakes.py, installed when the scratch copy's bench.measure.roofline is imported
FAKE_PEAKS = '''

# scratch copy for tests/test_workflows.py only: constant peaks, so that a run takes seconds
class _Set:
    def setattr(self, obj, name, value):
        setattr(obj, name, value)


from tests.fakes import patch_peaks as _patch  # noqa: E402
_patch(_Set(), applies_below=2**10)
'''

PLANT = '''
    def relu(self, x, out=None):                # planted: 200 us more per call, ~30x at 2^14
        import time
        r = self._xp().maximum(x, 0, out=self._out(out, x))
        end = time.perf_counter() + 200e-6
        while time.perf_counter() < end:
            pass
        return r
'''


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _caller_inputs() -> dict:
    """What bench-cpu.yml passes to the reusable gate."""
    (job,) = _load("bench-cpu.yml")["jobs"].values()
    assert job["uses"] == "./.github/workflows/bench-gate.yml"
    return job["with"]


def _expand(text: str, context: dict) -> str:
    def one(m):
        expr = m.group(1).strip()
        assert expr in context, f"expression not known to the test: {expr}"
        return str(context[expr])
    return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))


def _fake_venv(tmp: Path, extras: str) -> Path:
    """A folder the Makefile takes for its venv: this test's Python behind bin/python, and the
    install stamp for `extras` in place (the scratch copy is this project, already installed)."""
    venv = tmp / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    (venv / f".installed-{extras.replace(',', '-')}").touch()
    return venv


def _git(repo: Path, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


OLD = 1_000_000_000          # pyproject.toml's mtime: older than the fake venv's stamp, make installs nothing


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> tuple[Path, str]:
    """A git repository holding this project (constant peaks) in one commit, the base; shared by
    the tests below, so that numba's cache in its folders serves them all."""
    repo = tmp_path_factory.mktemp("scratch") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    for f in files:
        if not f or f.startswith(("reports/", "tests/data/", "docs/")) or not (ROOT / f).is_file():
            continue
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, repo / f)
    with (repo / "bench" / "roofline.py").open("a") as fh:
        fh.write(FAKE_PEAKS)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo, _git(repo, "rev-parse", "HEAD")


def _head(repo: Path, base: str, planted: bool) -> None:
    """The pull request's head, checked out on a branch of its own from the base: a ~30x slower
    NumPy relu, or a change that moves nothing."""
    _git(repo, "checkout", "-q", "-B", "planted" if planted else "a-a", base)
    if planted:
        src = repo / "kernels" / "backends" / "numpy" / "elementwise.py"
        text = src.read_text()
        start = text.index("    def relu(self, x, out=None):")
        end = text.index("\n\n", start)
        src.write_text(text[:start] + PLANT.strip("\n") + text[end:])
    else:
        (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA change that moves nothing.\n")
    _git(repo, "commit", "-qam", "head")
    os.utime(repo / "pyproject.toml", (OLD, OLD))


def _run_job(repo: Path, base: str, tmp: Path) -> dict:
    """Run the pull-request job's shell steps as the runner would; returns each step's exit code
    by name (None: skipped) and the job summary."""
    gate = _load("bench-gate.yml")
    inputs = _caller_inputs()
    job = gate["jobs"]["pull-request"]
    summary = tmp / "summary.md"
    context = {f"inputs.{k}": v for k, v in inputs.items()}
    context.update({"github.event.pull_request.base.sha": base, "github.token": "no-token",
                    "github.event.pull_request.number": "1", "github.sha": "0" * 40})
    env = dict(os.environ)
    env.update({k: _expand(v, context) for k, v in (gate.get("env") or {}).items()})
    env.update({k: _expand(v, context) for k, v in (job.get("env") or {}).items()})
    env["AB_ARGS"] += " " + TINY
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    env["VENV"] = str(_fake_venv(tmp, env["EXTRAS"]))
    env.pop("PYTHONPATH", None)
    codes, failed = {}, False
    for step in job["steps"]:
        if "run" not in step:
            continue
        name = step.get("name", step["run"][:30])
        assert "${{" not in step["run"], f"{name}: an expression spliced into a script (pass it through env:)"
        cond = str(step.get("if", ""))
        if "github.event.pull_request.head.repo.full_name == github.repository" in cond:
            # the comment: a fork's token cannot write, so it is guarded and may fail
            assert step.get("continue-on-error") is True and "gh pr comment" in step["run"]
            codes[name] = None
            continue
        if failed and "always()" not in cond:
            codes[name] = None
            continue
        step_env = dict(env, **{k: _expand(v, context) for k, v in (step.get("env") or {}).items()})
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                              env=step_env, capture_output=True, text=True, timeout=600)
        codes[name] = done.returncode
        codes[name + " output"] = done.stdout + done.stderr
        failed = failed or done.returncode != 0
    return {"codes": codes, "summary": summary.read_text() if summary.exists() else ""}


@pytest.mark.slow
def test_the_pull_request_job_fails_on_a_planted_slowdown(scratch, tmp_path):
    repo, base = scratch
    _head(repo, base, planted=True)
    got = _run_job(repo, base, tmp_path)
    codes = got["codes"]
    gate = "Base and head side by side (make bench-ab)"
    # make ends 2 on any failed recipe: bench ab's own code is in its line
    assert codes[gate] != 0 and "bench-ab] Error 1" in codes[gate + " output"], codes[gate + " output"][-3000:]
    assert codes["Verdicts in the job summary"] == 0
    assert "slower" in got["summary"] and "relu numpy" in got["summary"]
    verdicts = repo / "reports" / "results" / "ab"
    assert (verdicts / "ab.json").exists() and len(list(verdicts.glob("*-base.json"))) == 5


@pytest.mark.slow
def test_the_pull_request_job_passes_an_a_a_pair(scratch, tmp_path):
    repo, base = scratch
    _head(repo, base, planted=False)
    got = _run_job(repo, base, tmp_path)
    gate = "Base and head side by side (make bench-ab)"
    assert got["codes"][gate] == 0, got["codes"][gate + " output"][-3000:]
    assert "nothing slower" in got["summary"]


def test_every_workflow_reaches_the_gate_through_env_only():
    # no `${{ }}` inside a script anywhere: a branch name or commit message cannot become shell code
    for path in WORKFLOWS.glob("*.yml"):
        for job in (yaml.safe_load(path.read_text()).get("jobs") or {}).values():
            for step in job.get("steps") or []:
                assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}"


def test_a_fork_never_runs_on_the_self_hosted_runner():
    (job,) = _load("bench-gpu.yml")["jobs"].values()
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert "self-hosted" in job["with"]["runs-on"]
    assert "dev" not in job["with"]["extras"].split(",")          # dev's cupy-cuda13x would break cuda12's
