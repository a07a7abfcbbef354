"""The verifier is a real package: its data ships inside it and a non-editable install runs from anywhere."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, run_cli

import verifier
from verifier.paths import data_dir, golden_dir, suites_dir
from verifier.suites import available


def test_shipped_data_is_found_inside_the_package():
    package = Path(verifier.__file__).resolve().parent
    assert data_dir().resolve() == package / "data"
    assert (suites_dir() / "harmony" / "suite.yaml").is_file()
    assert (golden_dir() / "gpt-oss-conformance" / "fp32" / "calibration.json").is_file()


def test_environment_overrides_the_shipped_suites(tmp_path, monkeypatch):
    shutil.copytree(data_dir() / "suites" / "effort", tmp_path / "mine")
    monkeypatch.setenv("GPT_OSS_VERIFY_SUITES", str(tmp_path))
    assert available() == ["mine"]


def test_version_flag_prints_the_installed_version():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gpt-oss-verify {importlib.metadata.version('gpt-oss-verify')}"


def _shipped_files() -> set[str]:
    root = REPO / "verifier" / "data"
    return {p.relative_to(REPO).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _build_wheel(out: Path) -> Path:
    """`python -m build`: the sdist, then the wheel built from the sdist (so the sdist is complete too)."""
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(list(out.glob("*.tar.gz"))) == 1
    return next(out.glob("*.whl"))


def _fresh_venv(root: Path, wheel: Path) -> Path:
    venv.create(root, with_pip=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel), "pytest"]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "bin"


@pytest.mark.slow
def test_wheel_installs_non_editable_and_runs_the_demo_from_elsewhere(tmp_path):
    pytest.importorskip("build")
    wheel = _build_wheel(tmp_path / "dist")
    assert _shipped_files() <= set(zipfile.ZipFile(wheel).namelist())
    bin_dir = _fresh_venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPT_OSS_VERIFY_") or k == "GPT_OSS_VERIFY_CACHE"}
    env.pop("PYTHONPATH", None)

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=1800, cwd=elsewhere, env=env)

    where = call(str(bin_dir / "python"), "-c", "import verifier; print(verifier.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout + where.stderr
    assert call(str(bin_dir / "gpt-oss-verify"), "--version").stdout.strip() == f"gpt-oss-verify {verifier.__version__}"
    plugin = call(str(bin_dir / "python"), "-m", "pytest", "--help")
    assert "--gpt-oss-base-url" in plugin.stdout and "--gpt-oss-profile" in plugin.stdout, plugin.stderr
    # the demo's command on its quick cases: every shipped suite, golden file, calibration and the weights are
    # read from the installed package all the same (the full demo takes 3 minutes; test_run.py runs it)
    proc = call(str(bin_dir / "gpt-oss-verify"), "run", "--profile", "quick")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "verdict: pass" in proc.stdout
    assert list((elsewhere / "reports").glob("*/result.json"))
