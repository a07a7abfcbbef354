"""A pytest plugin: gate an inference engine's own test suite on gpt-oss conformance.

    pytest --gpt-oss-base-url http://localhost:8000/v1 --gpt-oss-model openai/gpt-oss-20b \\
           --gpt-oss-api-key-env PROVIDER_KEY --gpt-oss-profile quick --junitxml junit.xml

adds one test item per check of the suites run (`gpt-oss::tools.call_match`, ...). The verification runs
once per session, when the first item is set up; each item's outcome is its check's verdict: pass, fail
(the check's summary is the failure message), skip (pytest skip) or error (the check could not be
decided, or the run itself could not be made: a pytest error, not a failure). With neither
`--gpt-oss-base-url` nor `--gpt-oss-model` the plugin adds nothing; `--gpt-oss-model gpt-oss-conformance`
alone verifies the built-in reference provider (with `--gpt-oss-fault`, a faulty one).

pytest loads this module in every session of an environment that has the package, so the verifier
proper is imported inside the hooks that need it, only when the plugin is enabled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.errors import VerifierError

PREFIX = "gpt-oss"
_RESULT = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpt-oss", "gpt-oss conformance (gpt-oss-verify): one test item per check")
    group.addoption("--gpt-oss-base-url", help="Endpoint base URL ending in /v1 (default: $OPENAI_BASE_URL once "
                    "--gpt-oss-model is given; without either, the built-in reference provider).")
    group.addoption("--gpt-oss-model", help="Model name to request; enables the plugin.")
    group.addoption("--gpt-oss-api-key-env", metavar="VAR", help="Environment variable holding the API key "
                    "(default: OPENAI_API_KEY). The key is never written anywhere.")
    group.addoption("--gpt-oss-suite", action="append", metavar="S", help="Suite to run (repeatable; default: all).")
    group.addoption("--gpt-oss-profile", choices=("quick", "full"), default="quick",
                    help="quick (the Chat API only, with prompt ids and drift) or full (default: quick).")
    group.addoption("--gpt-oss-golden", metavar="DIR", help="Directory of golden files (<suite>.json) for the model.")
    group.addoption("--gpt-oss-out", metavar="DIR", default="reports",
                    help="Directory for the run (result.json, report.html, junit.xml; default: reports).")
    group.addoption("--gpt-oss-fault", action="append", metavar="NAME",
                    help="Fault mode of the built-in provider (repeatable; for testing the gate).")


def _option(config: pytest.Config, name: str):
    return config.getoption(f"--{PREFIX}-{name.replace('_', '-')}")


def enabled(config: pytest.Config) -> bool:
    return bool(_option(config, "base_url") or _option(config, "model"))


def check_ids(suites: list[str] | None) -> list[str]:
    """The ids of the checks a run of `suites` (None: every shipped suite) reports, in report order."""
    from verifier.checks import checks_for
    from verifier.config import DEFAULT_SUITES
    from verifier.suites import load_suite

    families = sorted({f for name in suites or DEFAULT_SUITES for f in load_suite(name).families})
    return [spec.id for spec in checks_for(families)]


class ConformanceCheck(pytest.Item):
    """One check of the session's verification run."""

    def __init__(self, *, check: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.check = check

    def setup(self) -> None:
        """Run the verification (once a session) and read this check's verdict: skip and error end here."""
        found = {c.id: c for c in session_result(self.config).checks}.get(self.check)
        if found is None:
            pytest.fail(f"{self.check} is not in the run's result", pytrace=False)
        self.verdict, self.summary = found.verdict.value, found.summary
        if self.verdict == "skip":
            pytest.skip(self.summary)
        if self.verdict == "error":
            pytest.fail(f"{self.check} could not be decided: {self.summary}", pytrace=False)

    def runtest(self) -> None:
        if self.verdict == "fail":
            pytest.fail(f"{self.check}: {self.summary}", pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{PREFIX}::{self.check}"


class ConformanceRun(pytest.Collector):
    """The checks of the verification run, one item each."""

    def collect(self) -> list[ConformanceCheck]:
        ids = check_ids(_option(self.config, "suite"))
        return [ConformanceCheck.from_parent(self, name=check, check=check) for check in ids]

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, VerifierError):
            return f"gpt-oss: {str(excinfo.value).splitlines()[0]}"
        return super().repr_failure(excinfo, style)


def session_result(config: pytest.Config):
    """The run's `RunResult`, made on first use; a run that could not be made raises (each time) as it did."""
    if _RESULT not in config.stash:
        config.stash[_RESULT] = _verify(config)
    outcome = config.stash[_RESULT]
    if isinstance(outcome, VerifierError):
        pytest.fail(f"the verification run could not be made: {str(outcome).splitlines()[0]}", pytrace=False)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _verify(config: pytest.Config):
    from verifier.api import verify

    try:
        return verify(_option(config, "base_url"), _option(config, "model"), _option(config, "suite"),
                      api_key_env=_option(config, "api_key_env"), profile=_option(config, "profile"),
                      golden=_option(config, "golden"), out=_option(config, "out"),
                      faults=_option(config, "fault"))
    except Exception as exc:  # kept, so that every item reports it and the run is not made again
        return exc


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the checks to the collected items (first, so that -k and -m select among them too)."""
    if enabled(config):
        items.extend(session.genitems(ConformanceRun.from_parent(session, name=PREFIX, nodeid=PREFIX)))
