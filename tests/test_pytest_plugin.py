"""The pytest plugin: one item per check, the check's verdict as the item's outcome, run in a fresh pytest
process from an empty directory against the built-in provider (honest, faulty, unreachable)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from verifier.checks import REGISTRY
from verifier.pytest_plugin import check_ids
from verifier.suites import load_suite

BUILTIN = ["--gpt-oss-model", "gpt-oss-conformance"]


def _pytest(where: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=where,
                          capture_output=True, text=True, timeout=900, env=os.environ.copy())


def _junit(path: Path) -> dict[str, str]:
    """Outcome of each test case in a JUnit file, by name: passed, failure, error or skipped."""
    outcomes = {}
    for case in ET.parse(path).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = kinds[0] if kinds else "passed"
    return outcomes


def _result(out: Path) -> dict:
    return json.loads(next(out.glob("*/result.json")).read_text())


def test_the_plugin_is_registered_for_pytest():
    names = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert "verifier.pytest_plugin" in names


def test_pytest_help_shows_the_options(tmp_path):
    shown = _pytest(tmp_path, "--help").stdout
    for option in ("--gpt-oss-base-url", "--gpt-oss-model", "--gpt-oss-api-key-env", "--gpt-oss-suite",
                   "--gpt-oss-profile", "--gpt-oss-golden"):
        assert option in shown


def test_without_its_options_the_plugin_adds_nothing(tmp_path):
    proc = _pytest(tmp_path, "--collect-only")
    assert "gpt-oss::" not in proc.stdout
    assert proc.returncode == 5  # no tests collected


def test_one_item_per_check_of_the_suites(tmp_path):
    proc = _pytest(tmp_path, "--collect-only", *BUILTIN, "--gpt-oss-suite", "tools")
    collected = [line for line in proc.stdout.splitlines() if line.startswith("gpt-oss::")]
    assert collected == [f"gpt-oss::{check}" for check in check_ids(["tools"])]
    families = set(load_suite("tools").families)
    assert {spec.id for spec in REGISTRY.values() if spec.family in families} <= set(check_ids(["tools"]))
    assert all(REGISTRY[check].family in families or REGISTRY[check].every_suite for check in check_ids(["tools"]))


def test_an_unknown_suite_is_a_collection_error(tmp_path):
    proc = _pytest(tmp_path, "--collect-only", *BUILTIN, "--gpt-oss-suite", "nope")
    assert proc.returncode == 2
    assert "gpt-oss: unknown suite 'nope'" in proc.stdout


@pytest.mark.slow
def test_an_honest_provider_passes_and_the_items_match_the_result(tmp_path):
    out = tmp_path / "out"
    proc = _pytest(tmp_path, *BUILTIN, "--gpt-oss-suite", "harmony", "--gpt-oss-out", str(out),
                   "--junitxml", str(tmp_path / "j.xml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    expected = {c["id"]: {"pass": "passed", "skip": "skipped"}[c["verdict"]] for c in _result(out)["checks"]}
    assert _junit(tmp_path / "j.xml") == expected
    assert len(list(out.glob("*/result.json"))) == 1, "the verification ran once for the session"


@pytest.mark.slow
def test_a_fault_fails_the_checks_it_breaks_with_their_summaries(tmp_path):
    out = tmp_path / "out"
    proc = _pytest(tmp_path, *BUILTIN, "--gpt-oss-suite", "harmony", "--gpt-oss-fault", "raw-harmony-content",
                   "--gpt-oss-out", str(out), "--junitxml", str(tmp_path / "j.xml"))
    assert proc.returncode == 1
    checks = _result(out)["checks"]
    failed = {c["id"] for c in checks if c["verdict"] == "fail"}
    assert "parsing.no_control_tokens" in failed  # a target of the fault
    junit = _junit(tmp_path / "j.xml")
    assert {name for name, kind in junit.items() if kind == "failure"} == failed
    for check in checks:
        if check["verdict"] == "fail":
            assert f"{check['id']}: {check['summary']}" in proc.stdout


def test_an_unreachable_endpoint_is_an_error_not_a_failure(tmp_path):
    proc = _pytest(tmp_path, "--gpt-oss-base-url", "http://127.0.0.1:9/v1", "--gpt-oss-model", "m",
                   "--gpt-oss-suite", "harmony", "--gpt-oss-out", str(tmp_path / "out"),
                   "--junitxml", str(tmp_path / "j.xml"))
    junit = _junit(tmp_path / "j.xml")
    assert proc.returncode == 1
    assert junit and set(junit.values()) == {"error"}
    assert "the verification run could not be made" in proc.stdout
    assert not list((tmp_path / "out").glob("*/result.json"))
