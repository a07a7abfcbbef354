"""What a run sends and keeps: the API variants, the evidence kinds, and `Exchange`, one request and its answer.

Two vocabularies name what an exchange is:
- an **API variant** is one way of sending a behavioural request: an API (`chat`, `responses`,
  `completions`) with or without streaming; `API_VARIANTS` lists them;
- an **evidence kind** is a request the runner makes to gather evidence rather than behaviour:
  teacher-forced scores (`score`), the server's rendering of a prompt (`prompt-ids`), greedy chat with
  log-probabilities (`greedy-logprobs`) and temperature-1 samples (`sampling`); `EVIDENCE_KINDS` lists them.

`Exchange.variant` (and the `variant` field of the journal and of `result.json`) holds one name of either list.
`--api` takes names of both lists.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, model_validator

from verifier.errors import FailureKind
from verifier.observation import Api, Failure, Observation, legacy_failure
from verifier.scores import ScoreResult

ApiVariantName = Literal["chat", "chat-stream", "responses", "responses-stream", "completions", "completions-stream"]
EvidenceKind = Literal["score", "prompt-ids", "greedy-logprobs", "sampling"]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = get_args(EvidenceKind)
DRIFT_EVIDENCE: tuple[EvidenceKind, ...] = ("score", "greedy-logprobs", "sampling")
"""The evidence kinds of the drift test, in the order `auto` tries them."""


class ApiVariant(BaseModel):
    """One way of sending a behavioural request: an API, streamed or not."""

    name: ApiVariantName
    api: Api
    stream: bool


API_VARIANTS: dict[ApiVariantName, ApiVariant] = {
    v.name: v
    for v in [
        ApiVariant(name="chat", api="chat", stream=False),
        ApiVariant(name="chat-stream", api="chat", stream=True),
        ApiVariant(name="responses", api="responses", stream=False),
        ApiVariant(name="responses-stream", api="responses", stream=True),
        ApiVariant(name="completions", api="completions", stream=False),
        ApiVariant(name="completions-stream", api="completions", stream=True),
    ]
}

DEFAULT_API_VARIANTS: tuple[ApiVariantName, ...] = ("chat", "chat-stream", "responses", "responses-stream", "completions")
"""The API variants a behavioural suite runs on unless `--api` names others (`completions-stream` only on request)."""
FAMILY_API_VARIANTS: dict[str, tuple[ApiVariantName, ...]] = {"effort": ("chat", "responses")}
"""Families whose checks need only some API variants (effort: the APIs that carry `reasoning_effort`)."""


RESEND_SUFFIX = "-resend"
"""Ends the journal key of the re-send pass's copy of an exchange (its key is the first send's plus this)."""


class EarlierSend(BaseModel):
    """A send of the same request that failed, kept by the re-send pass (see `Runner.resend_failures`)."""

    key: str
    """The journal key of that send."""
    started: float | None = None
    failure: Failure


class Exchange(BaseModel):
    """One request sent to the provider and what came back."""

    suite: str
    case_id: str
    variant: ApiVariantName | EvidenceKind
    """An API variant (see `API_VARIANTS`) or an evidence kind (see `EVIDENCE_KINDS`)."""
    turn: int
    request: dict
    """The body sent (without `model`), in the API's own shape."""
    chat_request: dict
    """The same request as a Chat body: what golden rendering and follow-ups are computed from."""
    observation: Observation | None = None
    score: ScoreResult | None = None
    """Teacher-forced scores, for `score` exchanges."""
    tokens: list[int] | None = None
    """Prompt token ids the server reported, for `prompt-ids` exchanges."""
    source: str | None = None
    """Where they came from: `return_token_ids` (the chat endpoint itself) or `tokenize`."""
    failure: Failure | None = None
    """Why a `score` or `prompt-ids` exchange has no result (an API variant's failure is its observation's)."""
    key: str = ""
    """Journal key: a hash of suite, case, variant, turn and both request bodies (see `verifier.journal`)."""
    started: float | None = None
    """Wall-clock time the request was sent (seconds since the epoch)."""
    elapsed_s: float = 0.0
    earlier: list[EarlierSend] = Field(default_factory=list)
    """Failed sends of this request before this one: set on the re-send pass's copy of an exchange, which
    the checks judge instead of the first send (a random error, or the same answer again)."""

    @model_validator(mode="before")
    @classmethod
    def _old_journal(cls, data: Any) -> Any:
        """Journals written before `failure` said `error`, `unsupported`, `unavailable`; `--resume` still reads them."""
        if not isinstance(data, dict):
            return data
        return legacy_failure(data, "unavailable" if data.get("unavailable")
                              else "unsupported" if data.get("unsupported") else "protocol")

    def failed(self, kind: FailureKind) -> bool:
        """Whether this exchange, or the response it got, failed in this way (see `Failure.kind`)."""
        failure = self.failure or (self.observation.failure if self.observation is not None else None)
        return failure is not None and failure.kind == kind
