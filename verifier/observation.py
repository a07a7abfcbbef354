"""What a provider answered, normalised so that every check runs on every API and on streams.

A streamed response is accumulated into the same `Observation` as a non-streamed one; the
checks never see the wire format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from verifier.errors import FailureKind, ProviderError

Api = Literal["chat", "responses", "completions"]

OUTAGE_STATUSES = frozenset({408, 429, 502, 503, 504, 520, 521, 522, 523, 524, 529})
"""HTTP statuses that mean "not now" (timeout, rate limit, gateway, overload): they say nothing about the request."""


class Failure(BaseModel):
    """Why a provider call gave no usable answer: made once, where the failure is caught, and read by kind."""

    kind: FailureKind
    """`unavailable`: no service on any attempt (no evidence; `--resume` sends it again); `unsupported`: the
    provider has no endpoint for it; `http_status`: the provider answered with an HTTP error status;
    `protocol`: the answer does not follow the protocol (not JSON, no choices, a stream without its end)."""
    message: str
    """What happened, in one line, as the report shows it."""
    status: int | None = None
    """The HTTP error status the provider answered with (`http_status`; `unavailable` after 429, 503 …)."""
    history: list[int | None] = Field(default_factory=list)
    """The status of every attempt of this send, in order (None: no answer, e.g. a connection error, a timeout,
    a stream cut short; or an answer that broke the protocol). Empty in journals written before it was kept."""

    @classmethod
    def of(cls, exc: ProviderError) -> Failure:
        return cls(kind=exc.kind, message=str(exc), status=exc.status, history=list(exc.history))

    @property
    def outage_seen(self) -> bool:
        """Whether some attempt found no service: no answer, or a timeout, rate-limit or gateway status."""
        return any(status is None or status in OUTAGE_STATUSES for status in self.history)


def looks_random(sends: list[Failure]) -> bool:
    """Whether the failed sends of one request could be chance rather than the provider's answer to it: no
    service on some send, a rate-limit, gateway or missing answer among their attempts, or attempts answered
    with different statuses. The re-send pass sends such a request again; `parsing.http_status` judges one
    that still fails as no evidence."""
    statuses = {status for send in sends for status in send.history or [send.status]}
    return any(send.kind == "unavailable" or send.outage_seen for send in sends) or len(statuses) != 1


RESEND_ROUNDS = 3
"""Re-sends at most of one failed request after the rest of the suite (`runner.Runner.resend_failures`)."""


def deterministic(sends: list[Failure]) -> bool:
    """Whether the failed sends of one request are the provider's answer to it: not `looks_random`, and the
    same status on every attempt of two sends for a 4xx, of all 1 + `RESEND_ROUNDS` sends for a 5xx (a server
    error that repeats by chance is likelier than a refusal that does: at a 30% error rate and two attempts a
    send, 0.09 per send)."""
    if not sends or looks_random(sends):
        return False
    status = sends[-1].status or 0
    return len(sends) >= (2 if status < 500 else 1 + RESEND_ROUNDS)


def legacy_failure(data: Any, kind: FailureKind) -> Any:
    """A journal line written before `failure` existed, its `error` string made a `Failure` of `kind`."""
    if not isinstance(data, dict) or data.get("error") is None or "failure" in data:
        return data
    status = data.get("status")
    failure = Failure(kind=kind, message=data["error"], status=status if status and status >= 400 else None)
    return {**data, "failure": failure}


class ToolCall(BaseModel):
    """A function call as the API reports it."""

    id: str
    name: str
    arguments: str


class Usage(BaseModel):
    """Token accounting as the provider reported it (None where it reported nothing)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def reported(cls, prompt_tokens=None, completion_tokens=None, reasoning_tokens=None) -> Usage:
        """Counts as a provider sent them (untrusted): a value that is not a whole non-negative number is
        read as not reported."""
        return cls(prompt_tokens=_count(prompt_tokens), completion_tokens=_count(completion_tokens),
                   reasoning_tokens=_count(reasoning_tokens))


def _count(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**53 or value != int(value):
        return None
    return int(value)


class TopLogprob(BaseModel):
    token: str
    """The token as text, as the provider sent it."""
    logprob: float
    token_id: int | None = None
    """The token id, when the provider reports ids."""


class TokenLogprob(BaseModel):
    """One position's log-probabilities, as the provider reported them."""

    token: str
    logprob: float | None
    token_id: int | None = None
    top: list[TopLogprob] = Field(default_factory=list)


class Observation(BaseModel):
    """One response of a provider, in API-independent terms."""

    api: Api
    stream: bool
    status: int | None = None
    """HTTP status (None if no response arrived)."""
    failure: Failure | None = None
    """Why the response is unusable (None: it is usable); the observation then says nothing about conformance."""
    content: str | None = None
    """User-visible answer text (Chat `content`, Responses `output_text`, Completions `text`)."""
    reasoning: str | None = None
    """Reasoning text, from whichever field carried it."""
    reasoning_fields: list[str] = Field(default_factory=list)
    """Names of the fields that carried reasoning, e.g. `reasoning_content`, `reasoning_text`."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    """Chat/Completions finish_reason; for Responses derived from the output items and status."""
    usage: Usage = Field(default_factory=Usage)
    logprobs: list[TokenLogprob] | None = None
    """Per-output-token log-probabilities, when requested and provided."""
    reasoning_logprobs: list[TokenLogprob] | None = None
    """Log-probabilities of reasoning tokens, where a host reports them apart from `logprobs`."""
    token_ids: list[int] | None = None
    """Completion token ids, when the provider returns them."""
    created: int | None = None
    """Provider's creation timestamp (seconds since the epoch), for date-aware rendering."""
    raw: str = ""
    """The response body (or the concatenated SSE payloads), truncated, for evidence."""
    events: int = 0
    """Number of SSE events received (streams only)."""

    @model_validator(mode="before")
    @classmethod
    def _old_journal(cls, data: Any) -> Any:
        """Journals written before `failure` said `error` and `unavailable`; `--resume` still reads them."""
        if not isinstance(data, dict):
            return data
        http = (data.get("status") or 0) >= 400
        return legacy_failure(data, "unavailable" if data.get("unavailable") else "http_status" if http else "protocol")

    @property
    def ok(self) -> bool:
        return self.failure is None
