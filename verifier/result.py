"""The result of a verification run: `result.json`, schema version 1.

The HTML report and JUnit file are rendered from this model alone, so `gpt-oss-verify report
result.json` reproduces them. `gpt-oss-verify schema` exports its JSON Schema to
`reports/schema/result-v<N>.schema.json`; a copy ships in `verifier/data/schema/` (the committed copy is held equal to the model by a test).

Versioning: fields may be added (with defaults) within a version; removing or retyping a field, or
changing what one means, bumps `SCHEMA_VERSION`. Version 1 gained, compatibly, `evidence`,
`Outcome.exchange`, `Outcome.figure`, `Outcome.suite`, `config` and `capabilities` (a result.json without
them still loads; an outcome without `suite` has it in its message).

Provider text is untrusted: every string in a result is valid Unicode (lone surrogates, which a JSON
`\\udXXX` escape can smuggle in, become U+FFFD) and at most `MAX_TEXT` characters, so a hostile or
broken provider can neither make result.json unwritable nor blow it up. The journal keeps the rest.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from verifier.capabilities import Capabilities
from verifier.config import RunConfig
from verifier.golden import Provenance
from verifier.verdict import Documented, Outcome, Verdict

SCHEMA_VERSION = 1
MAX_TEXT = 20_000
"""Longest string kept anywhere in a result (longer ones are cut, saying by how much)."""


class CheckResult(Documented):
    """One check over a whole run."""

    id: str
    """Stable check id, e.g. `tools.finish_reason`."""
    family: str
    """`rendering`, `parsing`, `tools`, `structured`, `effort` or `drift`."""
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


class ProviderInfo(Documented):
    """The endpoint verified."""

    base_url: str
    """Endpoint base URL (credentials are never recorded)."""
    model: str
    """Model name requested."""
    builtin: bool
    """True when the run started the built-in reference provider itself."""
    faults: list[str] = Field(default_factory=list)
    """Fault modes switched on in the built-in provider."""
    variants: list[str] = Field(default_factory=list)
    """Server quirks (`--quirk`: honest behaviours) switched on in the built-in provider; named `variants`
    in schema v1."""
    score_mode: str | None = None
    """How teacher-forced log-probabilities were obtained, if they were."""
    prompt_ids_mode: str | None = None
    """How the provider showed its prompt token ids (`return_token_ids` or `tokenize`), if it did."""


class SuiteInfo(Documented):
    """A suite that was run, and the golden records it was judged against."""

    name: str
    """Suite name, e.g. `harmony`."""
    version: int
    """Suite version (suite.yaml)."""
    sha256: str
    """Hash of the suite's content: the golden records must have been built from the same."""
    golden: Provenance
    """Provenance of the golden records used."""


class Cost(Documented):
    """What the run spent at the provider."""

    requests: int = 0
    """Requests sent (every API variant, tool-loop turn, score and prompt-ids request)."""
    prompt_tokens: int = 0
    """Prompt tokens, as the provider reported them (teacher-forced sequences counted by their length)."""
    completion_tokens: int = 0
    """Completion tokens, as the provider reported them."""


class HarmonyMessage(Documented):
    """One assistant message as Harmony tokens: header, content, and the token that closed it."""

    header: list[str]
    """The header's tokens as text, up to `<|message|>` (e.g. `<|channel|>`, `analysis`); cut to 40."""
    channel: str | None = None
    """Channel named in the header: `analysis`, `commentary` or `final`."""
    recipient: str | None = None
    """Recipient (`to=…`) named in the header, e.g. `functions.get_weather`."""
    constrain: str | None = None
    """Content type after `<|constrain|>`, e.g. `json`."""
    content_tokens: int = 0
    """Length of the content in o200k tokens."""
    text: str = ""
    """The content, cut to an excerpt."""
    end: str | None = None
    """The token that closed the message, `<|end|>`, `<|call|>` or `<|return|>` (None: cut off)."""


class HarmonyView(Documented):
    """A completion in Harmony terms: what the token-level view of the report shows."""

    source: Literal["tokens", "fields"]
    """`tokens`: parsed from completion token ids (golden; Completions with token ids). `fields`: a
    Chat or Responses reply (which shows no tokens) rebuilt as the Harmony messages its reasoning,
    tool-call and content fields stand for."""
    messages: list[HarmonyMessage] = Field(default_factory=list)
    """Messages in order (at most 12)."""
    stop: str | None = None
    """The token that ended the turn, `<|return|>` or `<|call|>`; for `fields`, what finish_reason says."""
    finish_reason: str | None = None
    """finish_reason reported (provider) or implied (golden)."""
    trailing_tokens: int = 0
    """Tokens generated after the stop token (`tokens` views only)."""


class ExchangeEvidence(Documented):
    """One request of the run and what came back, cut to excerpts: the evidence behind its outcomes."""

    key: str
    """`suite/case/variant#turn`, the key outcomes name in `Outcome.exchange`."""
    suite: str
    """Suite of the case."""
    case_id: str
    """Case id within the suite."""
    variant: str
    """API variant (e.g. `chat`, `responses-stream`) or evidence kind (`score`, `prompt-ids`,
    `greedy-logprobs`, `sampling`); see `verifier.exchange`."""
    turn: int
    """Turn of the tool loop, from 1."""
    status: int | None = None
    """HTTP status (None: no response, or no HTTP request of its own)."""
    error: str | None = None
    """Why no usable response came back, if none did."""
    elapsed_s: float = 0.0
    """Seconds from sending the request to the end of the response."""
    request: str = ""
    """The body sent, as compact JSON, cut to an excerpt."""
    response: str = ""
    """The response body (or a stream's events) as received, cut to an excerpt."""
    provider: HarmonyView | None = None
    """The provider's reply in Harmony terms (None without a usable reply)."""
    golden: HarmonyView | None = None
    """The reference's completion at the same turn (None where golden has no such turn)."""


class RunResult(Documented):
    """Everything a run concluded."""

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this schema (see the module docstring for what changes it)."""
    run_id: str
    """Name of the run directory: UTC start time and a random suffix."""
    created: str
    """UTC start time, ISO 8601."""
    verifier_version: str
    """Version of gpt-oss-verify that ran."""
    provider: ProviderInfo
    """The endpoint verified and what it offered."""
    suites: list[SuiteInfo]
    """Suites run, with the golden records each was judged against."""
    apis: list[str]
    """API variants and evidence kinds exercised, e.g. chat, chat-stream, responses, completions, score."""
    verdict: Literal["pass", "fail", "error"]
    """fail if any check failed; error if none failed but one could not be decided; else pass."""
    checks: list[CheckResult]
    """Every check of the suites run, by family then registration order."""
    cost: Cost
    """Requests and tokens spent at the provider."""
    duration_s: float
    """Wall-clock duration of the run in seconds."""
    evidence: list[ExchangeEvidence] = Field(default_factory=list)
    """Every exchange, as excerpts, in the order sent; outcomes point into it by key."""
    config: RunConfig | None = None
    """How the run was configured (as `run.json` says; never the API key). None in results written before
    it was recorded."""
    capabilities: Capabilities | None = None
    """What the endpoint offered, as the probe found it at the start of the run (None in results written
    before runs probed). What it does not offer was not sent; the checks that needed it skip, saying why."""

    @model_validator(mode="after")
    def _clean(self) -> RunResult:
        _clean_model(self)
        return self


def evidence_key(suite: str, case_id: str, variant: str, turn: int) -> str:
    return f"{suite}/{case_id}/{variant}#{turn}"


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Valid Unicode (lone surrogates become U+FFFD), at most `limit` characters plus a note."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit} more characters)"
    return text


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, PurePath):
        text = str(value)
        cleaned = clean_text(text, limit=max(MAX_TEXT, len(text)))
        return value if cleaned == text else type(value)(cleaned)
    if isinstance(value, BaseModel):
        _clean_model(value)
        return value
    if isinstance(value, list):
        cleaned = [_clean_value(v) for v in value]
        return value if all(a is b for a, b in zip(cleaned, value)) else cleaned
    if isinstance(value, tuple):
        return [_clean_value(v) for v in value]
    if isinstance(value, dict):
        cleaned = {_clean_value(k): _clean_value(v) for k, v in value.items()}
        same = len(cleaned) == len(value) and all(a is b for a, b in zip(cleaned.values(), value.values()))
        return value if same and all(a is b for a, b in zip(cleaned, value)) else cleaned
    return value


def _clean_model(model: BaseModel) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        cleaned = _clean_value(value)
        if cleaned is not value and not (isinstance(value, str) and cleaned == value):
            object.__setattr__(model, name, cleaned)


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


def schema_json() -> str:
    """The JSON Schema of `RunResult`, as `gpt-oss-verify schema` writes it."""
    return json.dumps(RunResult.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_path(root: Path) -> Path:
    """Where the schema of this version goes under `root` (e.g. `reports/schema`)."""
    return Path(root) / f"result-v{SCHEMA_VERSION}.schema.json"


def load(path: Path) -> RunResult:
    """A result.json, or a `VerifierError` saying in one line why it cannot be used."""
    from verifier.errors import VerifierError

    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise VerifierError(f"no result file at {path}") from None
    except OSError as exc:
        raise VerifierError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise VerifierError(f"{path} is not a result.json: not JSON ({exc.__class__.__name__})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise VerifierError(f"{path} has result schema v{version}; this verifier reads v{SCHEMA_VERSION}")
    try:
        return RunResult.model_validate(data)
    except ValueError as exc:
        raise VerifierError(f"{path} is not a result.json of this verifier ({exc.__class__.__name__})") from None
