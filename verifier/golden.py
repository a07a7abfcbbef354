"""Golden records: what the reference computed for each case of a suite, with provenance.

Layout: `golden/<checkpoint>/<dtype>/<suite>.json`, one `GoldenFile` per (checkpoint, dtype,
suite). Format version 1. A file names the suite content (`suite_sha256`) and checkpoint
(`checkpoint_sha256`) it was built from and carries `content_sha256`, the hash of its records, so a
corrupt or stale file is refused with a clear cause instead of producing wrong verdicts.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from verifier.errors import GoldenError
from verifier.suites import Suite

FORMAT_VERSION = 1
PLACES = 6
"""Decimal places of the stored log-probabilities."""


class TokenScore(BaseModel):
    """The reference's distribution at one completion position (teacher-forced)."""

    token: int
    """The golden token at this position."""
    logprob: float
    """Its log-probability under the reference."""
    top_ids: list[int]
    """The K most likely token ids, best first."""
    top_logprobs: list[float]
    """Their log-probabilities."""

    @property
    def margin(self) -> float:
        """Log-probability gap between the best and second-best token: small means a near-tie."""
        return self.top_logprobs[0] - self.top_logprobs[1]

    @property
    def off_top1(self) -> bool:
        """Golden's own token is below its teacher-forced top-1 here: greedy decoding (KV cache, one token
        at a time) and the teacher-forced pass (the whole sequence at once) rounded differently enough
        to choose differently (bf16 at real widths, see the README), or a decoding constraint forced the
        token. An exact tie with the top-1 (common in bf16 logits; top-K and argmax break ties
        differently) is not counted. Golden is not decisive at such a position, whatever its margin: an
        honest engine may take either token (the drift rules in `verifier.drift` read this). Compared
        at the stored rounding, so a saved file says the same as the build did."""
        return (bool(self.top_ids) and self.token != self.top_ids[0]
                and round(self.logprob, PLACES) < round(self.top_logprobs[0], PLACES))

    @property
    def decisive_margin(self) -> float:
        """The margin from which golden is decisive here: `margin`, or 0 where golden's token is below its
        teacher-forced top-1 (`off_top1`). The one rule the text-stability and drift checks read."""
        return 0.0 if self.off_top1 else self.margin

    @property
    def honest_choices(self) -> set[int]:
        """Tokens an honest engine may take here: the teacher-forced top-1 and golden's own greedy token (the
        two differ only where `off_top1` or at an exact tie)."""
        return {self.top_ids[0], self.token} if self.top_ids else {self.token}

    def honest_departure(self, took: Callable[[int], bool], wide_margin: float) -> bool:
        """Whether an honest engine may leave golden's token here for the one `took` recognises: golden was
        near a tie (margin below `wide_margin`), or the token taken is one of `honest_choices`."""
        return self.margin < wide_margin or any(took(t) for t in self.honest_choices)


class GoldenMessage(BaseModel):
    """One Harmony message of the golden completion."""

    channel: str | None
    recipient: str | None
    content_type: str | None
    text: str


class GoldenTurn(BaseModel):
    """One request of a case (a tool loop has several) and the reference's greedy answer."""

    request: dict
    """The Chat Completions body of this turn; later turns carry the golden tool calls and results."""
    prompt_token_ids: list[int]
    """The request rendered by openai-harmony with the pinned date."""
    completion_token_ids: list[int]
    """The greedy continuation, its stop token included."""
    scores: list[TokenScore]
    """Teacher-forced top-K log-probabilities, one per completion token."""
    messages: list[GoldenMessage]
    """The completion parsed into Harmony messages."""
    finish_reason: Literal["stop", "tool_calls", "length"]
    reasoning_tokens: int
    """Completion tokens inside `analysis` messages' content."""
    forced_positions: list[int] = Field(default_factory=list)
    """Completion positions a decoding constraint (tool_choice) forced: not the model's choice, so
    their margins say nothing about stability."""
    off_top1_positions: list[int] = Field(default_factory=list)
    """Completion positions, forced ones excluded, where the greedy token is below the teacher-forced
    top-1 (`TokenScore.off_top1`): recorded by `golden build` for the reader; the drift rules derive
    the same from `scores`, so golden files from before this field are handled alike."""

    @property
    def reasoning(self) -> str:
        return "".join(m.text for m in self.messages if m.channel == "analysis")

    @property
    def final(self) -> str | None:
        texts = [m.text for m in self.messages if m.channel == "final"]
        return "".join(texts) if texts else None

    @property
    def tool_calls(self) -> list[GoldenMessage]:
        return [m for m in self.messages if (m.recipient or "").startswith("functions.")]


class GoldenRecord(BaseModel):
    """Everything the reference did for one case."""

    case_id: str
    turns: list[GoldenTurn]


class Provenance(BaseModel):
    """Where a golden file came from."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    checkpoint: str
    """Checkpoint name (its directory name, or the name in conformance.json)."""
    checkpoint_sha256: str
    """Hash over config.json and every weight file of the checkpoint."""
    backend: str
    """Reference backend, e.g. `transformers`."""
    dtype: str
    """Precision the reference computed in, e.g. `fp32`, `bf16`."""
    device: str
    """Device the reference ran on, e.g. `cpu`."""
    libraries: dict[str, str]
    """Versions of torch, transformers, openai-harmony and the verifier."""
    suite: str
    """Name of the suite the records were built from."""
    suite_version: int
    """Its version (suite.yaml)."""
    suite_sha256: str
    """Hash of its content (suite.yaml and cases.jsonl)."""
    date: str
    """Conversation date rendered into every system message."""
    top_k: int
    """Top-K log-probabilities kept at each golden position."""
    max_tokens: int | None = None
    """Cap on completion tokens per turn the build ran with (`golden build --max-tokens`; each turn's
    request carries it); None: every case's own limit."""
    created: str
    """UTC time of the build, ISO 8601."""


class GoldenFile(BaseModel):
    """A suite's golden records for one checkpoint and dtype."""

    format_version: Literal[1] = FORMAT_VERSION
    provenance: Provenance
    records: list[GoldenRecord]
    content_sha256: str = Field(default="")
    """sha256 of the canonical JSON of `records`."""

    def record(self, case_id: str) -> GoldenRecord | None:
        return next((r for r in self.records if r.case_id == case_id), None)


def _digest(raw_records: list) -> str:
    """sha256 of records as stored (canonical JSON), so fields added later with defaults do not change it."""
    payload = json.dumps(raw_records, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def records_digest(records: list[GoldenRecord]) -> str:
    """sha256 of records (canonical JSON): a golden file's `content_sha256`."""
    return _digest([r.model_dump(mode="json") for r in records])


def _round(records: list[GoldenRecord], places: int = PLACES) -> None:
    for record in records:
        for turn in record.turns:
            for s in turn.scores:
                s.logprob = round(s.logprob, places)
                s.top_logprobs = [round(v, places) for v in s.top_logprobs]


def golden_path(root: Path, checkpoint: str, dtype: str, suite: str) -> Path:
    return Path(root) / checkpoint / dtype / f"{suite}.json"


def save(golden: GoldenFile, path: Path) -> Path:
    """Write a golden file (log-probabilities rounded to 1e-6, hash recomputed)."""
    _round(golden.records)
    golden.content_sha256 = records_digest(golden.records)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(golden.model_dump_json())
    tmp.replace(path)
    return path


def load(path: Path) -> GoldenFile:
    """Read and integrity-check a golden file."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GoldenError(f"no golden file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenError(f"{path}: not a readable golden file ({exc.__class__.__name__})") from None
    if isinstance(raw, dict) and raw.get("format_version") not in (None, FORMAT_VERSION):
        raise GoldenError(f"{path}: golden format {raw.get('format_version')} is not supported "
                          f"(this verifier reads format {FORMAT_VERSION})")
    try:
        golden = GoldenFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GoldenError(f"{path}: malformed golden file at {where}: {first['msg']}") from None
    if _digest(raw["records"]) != golden.content_sha256:
        raise GoldenError(f"{path}: content hash mismatch (the file is corrupt or was edited by hand)")
    return golden


def check_matches(golden: GoldenFile, suite: Suite, path: Path) -> None:
    """Refuse golden built from another suite or another version of this suite."""
    prov = golden.provenance
    if prov.suite != suite.name:
        raise GoldenError(f"{path}: golden is for suite {prov.suite!r}, not {suite.name!r}")
    if prov.suite_sha256 != suite.sha256:
        raise GoldenError(f"{path}: golden is stale: built from suite {suite.name!r} content "
                          f"{prov.suite_sha256[:12]}, the suite is now {suite.sha256[:12]}; rebuild it")
    missing = [c.id for c in suite.cases if golden.record(c.id) is None]
    if missing:
        raise GoldenError(f"{path}: no golden record for cases {missing[:5]}")
    cap = prov.max_tokens
    longer = [c.id for c in suite.cases if cap is not None and c.max_tokens > cap]
    if longer:
        raise GoldenError(f"{path}: golden was built with --max-tokens {cap}, shorter than the limit of cases "
                          f"{longer[:5]}: its turns stop early where the provider's would not; rebuild it")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
