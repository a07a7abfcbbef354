"""Every registered check is shown passing and failing by some test of tests/checks."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from typer.testing import CliRunner

from verifier.checks import REGISTRY
from verifier.cli import app

from .builders import SHOWN, Verdict


def _load_check_tests() -> None:
    """Import every test module of this directory, so that their `shows` marks are recorded."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("test_"):
            importlib.import_module(f"{__package__}.{module.name}")


def test_every_registered_check_has_a_passing_and_a_failing_test():
    _load_check_tests()
    missing = {check_id: sorted(v.value for v in {Verdict.PASS, Verdict.FAIL} - SHOWN[check_id])
               for check_id in REGISTRY}
    uncovered = {check_id: verdicts for check_id, verdicts in missing.items() if verdicts}
    assert not uncovered, f"checks without a test in tests/checks that shows these verdicts: {uncovered}"


def test_the_registry_is_what_the_cli_lists():
    listed = CliRunner().invoke(app, ["checks"])
    assert listed.exit_code == 0, listed.output
    assert {line.split()[0] for line in listed.output.splitlines() if line[:1].strip()} == set(REGISTRY)
