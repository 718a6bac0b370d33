"""The `actbench` console script and the package metadata (issue 20): the script runs the commands
of `python -m bench` from any folder, pyproject.toml carries PEP 639 license metadata with its
LICENSE file, and `bench run --help` says what it means. The real `pip install .` into a fresh venv
takes minutes: it is done by hand (README, "Install"), not here."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_a_pep_639_expression_with_its_file():
    project = _project()
    assert project["license"] == "MIT"                      # a string, not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    # PEP 639: the expression is the one place; a License classifier beside it is an error
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    assert project["urls"]["Source"].startswith("https://")


def test_the_console_script_names_the_entry_function():
    module, _, name = _project()["scripts"]["actbench"].partition(":")
    assert getattr(importlib.import_module(module), name) is cli.entry


def test_entry_runs_the_commands_of_python_m_bench(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.entry(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: actbench ")
    assert "{list,run,report,compare,ab,claims}" in out
    assert cli.entry(["list", "--json"]) == 0
    via_entry = json.loads(capsys.readouterr().out)
    assert cli.main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == via_entry


def test_entry_keeps_the_exit_codes(capsys):
    assert cli.entry(["run", "--profile", "nope"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown profile 'nope'" in err


def test_entry_turns_ctrl_c_outside_a_run_into_130(monkeypatch):
    def interrupted(argv, prog):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "main", interrupted)
    assert cli.entry(["list"]) == cli.EXIT_INTERRUPTED


def test_run_help_prints_percent_signs_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out
    assert "% of the copy peak" in out
    assert "about 2 minutes on 2 idle cores" in " ".join(out.split())     # a quick run's honest length


def _decoy(folder: Path) -> None:
    """A folder holding another project's `bench` package."""
    (folder / "bench").mkdir()
    (folder / "bench" / "__init__.py").write_text("")
    (folder / "bench" / "__main__.py").write_text("print('the decoy bench package ran')\n")


def test_the_installed_script_ignores_a_bench_package_in_the_current_folder(tmp_path):
    """make test installs the project (pip install -e), which writes the script beside python."""
    script = Path(sys.executable).with_name("actbench")
    assert script.exists(), f"{script} missing: reinstall the project (pip install -e .) to get the console script"
    _decoy(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: actbench ")
    assert "decoy" not in ran.stdout
    # what the module docstring says of `python -m bench` there, and of -P
    shadowed = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=env)
    assert "the decoy bench package ran" in shadowed.stdout
    safe = subprocess.run([sys.executable, "-P", "-m", "bench", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert safe.stdout.startswith("usage: python -m bench ")
