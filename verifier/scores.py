"""Teacher-forced scores: what a provider reports about given tokens, as plain models.

A leaf module (imports nothing from the verifier), so the providers that make these values, the
checks and the drift statistics that read them can all import it without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class PositionScore(BaseModel):
    """The provider's distribution at one teacher-forced position."""

    token_logprob: float | None
    """Log-probability of the token actually at this position (None if not reported)."""
    top: dict[int, float] = Field(default_factory=dict)
    """Top-K token id -> log-probability, as reported."""


class ScoreResult(BaseModel):
    """Teacher-forced scores of tokens[start:]."""

    mode: str
    """How they were obtained: `prompt_logprobs` (vLLM), `echo_logprobs` (OpenAI legacy, token ids) or
    `echo_logprobs_text` (OpenAI legacy, the prompt as text, aligned back to token ids)."""
    positions: list[PositionScore]
    top_k: int | None = None
    """Top entries per position the provider reported (its cap, or what was asked; None: not recorded)."""
