"""What a provider answered, normalised so that every check runs on every API and on streams.

A streamed response is accumulated into the same `Observation` as a non-streamed one; the
checks never see the wire format.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from verifier.suites import ToolCall

Api = Literal["chat", "responses", "completions"]


class Usage(BaseModel):
    """Token accounting as the provider reported it (None where it reported nothing)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None


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
    error: str | None = None
    """Transport or protocol failure: the observation says nothing about conformance."""
    unavailable: bool = False
    """The provider was unavailable on every attempt (outage, rate limit): `--resume` sends it again."""
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
    token_ids: list[int] | None = None
    """Completion token ids, when the provider returns them."""
    created: int | None = None
    """Provider's creation timestamp (seconds since the epoch), for date-aware rendering."""
    raw: str = ""
    """The response body (or the concatenated SSE payloads), truncated, for evidence."""
    events: int = 0
    """Number of SSE events received (streams only)."""

    @property
    def ok(self) -> bool:
        return self.error is None
