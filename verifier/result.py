"""The result of a verification run: `result.json`, schema version 1.

The HTML report and JUnit file are rendered from this model alone, so `gpt-oss-verify report
result.json` reproduces them. The JSON Schema is exported to `reports/schema/`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from verifier.verdict import Outcome, Verdict

SCHEMA_VERSION = 1


class CheckResult(BaseModel):
    """One check over a whole run."""

    id: str
    """Stable check id, e.g. `tools.finish_reason`."""
    family: str
    """`rendering`, `parsing`, `tools`, `effort` or `drift`."""
    title: str
    """What the check verifies, in one line."""
    why: str
    """Why it matters."""
    source: str
    """Where the failure mode was seen."""
    compares: str
    """How strictly it compares (structure, text where decisive, statistics)."""
    verdict: Verdict
    """fail if any outcome failed; else error if any errored; else pass if any passed; else skip."""
    summary: str
    """One line: counts, or the deciding outcome."""
    outcomes: list[Outcome] = Field(default_factory=list)
    """Every application of the check: case, API variant, turn, verdict, evidence."""


class ProviderInfo(BaseModel):
    base_url: str
    """Endpoint base URL (credentials are never recorded)."""
    model: str
    builtin: bool
    """True when the run started the built-in reference provider itself."""
    faults: list[str] = Field(default_factory=list)
    """Fault modes switched on in the built-in provider."""
    variants: list[str] = Field(default_factory=list)
    """Honest variants switched on in the built-in provider."""
    score_mode: str | None = None
    """How teacher-forced log-probabilities were obtained, if they were."""
    prompt_ids_mode: str | None = None
    """How the provider showed its prompt token ids (`return_token_ids` or `tokenize`), if it did."""


class SuiteInfo(BaseModel):
    name: str
    version: int
    sha256: str
    golden: dict
    """Provenance of the golden records used (see `verifier.golden.Provenance`)."""


class Cost(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RunResult(BaseModel):
    """Everything a run concluded."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    created: str
    """UTC start time, ISO 8601."""
    verifier_version: str
    provider: ProviderInfo
    suites: list[SuiteInfo]
    apis: list[str]
    """API variants exercised, e.g. chat, chat-stream, responses, completions."""
    verdict: Literal["pass", "fail", "error"]
    """fail if any check failed; error if none failed but one could not be decided; else pass."""
    checks: list[CheckResult]
    cost: Cost
    duration_s: float


def aggregate(outcomes: list[Outcome]) -> Verdict:
    verdicts = {o.verdict for o in outcomes}
    for v in (Verdict.FAIL, Verdict.ERROR, Verdict.PASS):
        if v in verdicts:
            return v
    return Verdict.SKIP


def run_verdict(checks: list[CheckResult]) -> str:
    verdicts = {c.verdict for c in checks}
    if Verdict.FAIL in verdicts:
        return "fail"
    if Verdict.ERROR in verdicts or Verdict.PASS not in verdicts:
        return "error"
    return "pass"
