"""Helpers shared by checks: golden margins, token counts, and the fixed thresholds of `thresholds.json`.

Thresholds come from two places:
- `thresholds.json` (next to this module): the fixed thresholds of the parsing, tools and effort checks,
  each with what it means and where its value comes from (`Thresholds` below); none is calibrated;
- a golden directory's `calibration.json` (`verifier.drift.calibration`): the drift boundaries, α and the flip
  margin, measured on honest engines. Where it exists its flip margin replaces `wide_margin_nats`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel

from verifier import harmony
from verifier.drift.calibration import Calibration
from verifier.golden import GoldenTurn
from verifier.observation import ToolCall

THRESHOLDS_FILE = Path(__file__).parent / "thresholds.json"


class Threshold(BaseModel):
    """One fixed threshold and its provenance."""

    value: float
    meaning: str
    """What it bounds, and which check uses it."""
    provenance: str
    """Where the value comes from: measured (on what) or chosen."""


class Thresholds(BaseModel):
    """The fixed thresholds of `thresholds.json`."""

    wide_margin_nats: Threshold
    """Golden margin from which golden text is compared exactly, where there is no calibration."""
    effort_trend_alpha: Threshold
    """Significance level of `effort.trend`."""
    usage_slack_tokens: Threshold
    """Completion tokens beyond the reply's own that `tools.no_tokens_after_call` tolerates."""


@cache
def thresholds() -> Thresholds:
    """The fixed thresholds (see each one's `provenance`: none of them is calibrated)."""
    return Thresholds.model_validate_json(THRESHOLDS_FILE.read_text())


def wide_margin(calibration: Calibration | None = None) -> float:
    """Golden top-1/top-2 gap (nats) from which golden text is stable: the calibrated flip margin (above it
    honest engines never flip the argmax), or the uncalibrated default `wide_margin_nats`."""
    if calibration is not None:
        return calibration.flip_margin
    return thresholds().wide_margin_nats.value


def min_margin(turn: GoldenTurn, end: int | None = None) -> float:
    """Smallest golden margin over completion positions [0, end), forced positions excluded; 0 where
    golden's token is below its teacher-forced top-1 (`TokenScore.off_top1`: golden was not decisive there)."""
    scores = turn.scores[:end] if end is not None else turn.scores
    forced = set(turn.forced_positions)
    return min((s.decisive_margin for i, s in enumerate(scores) if i not in forced),
               default=float("inf"))


def span_end(turn: GoldenTurn, channel: str, recipient: bool = False) -> int | None:
    """End position of the first message on `channel` (with a recipient if asked) in the golden completion."""
    for span in harmony.content_spans(turn.completion_token_ids):
        if span.channel == channel and (not recipient or " to=" in span.header or "to=" in span.header):
            return span.end + 1  # include the token that closes it
    return None


def text_is_comparable(turn: GoldenTurn, channel: str, recipient: bool = False,
                       calibration: Calibration | None = None) -> tuple[bool, float]:
    """Whether golden text on `channel` is stable enough to compare exactly, and the margin that decided it.

    Exact comparison is fair only where every golden token up to the end of that message had a wide
    margin: after a near-tie an honest engine may take the other branch.
    """
    end = span_end(turn, channel, recipient)
    if end is None:
        return False, float("nan")
    margin = min_margin(turn, end)
    return margin >= wide_margin(calibration), margin


def reasoning_length(text: str | None) -> int:
    """Reasoning length in o200k tokens (independent of how a provider counts usage)."""
    return len(harmony.encode(text)) if text else 0


def canonical_completion(reasoning: str | None, content: str | None, calls: list[ToolCall]) -> list[int]:
    """The tokens a Harmony model emits for this reply: analysis, then a call or a final answer.

    Provider text is encoded as plain text, so control-token text inside it cannot pose as a token.
    """
    tokens: list[int] = []

    def message(header: str, text: str, stop: str) -> None:
        if tokens:
            tokens.extend(harmony.encode_with_specials("<|start|>assistant"))
        tokens.extend(harmony.encode_with_specials(header + "<|message|>"))
        tokens.extend(harmony.encode(text))
        tokens.extend(harmony.encode_with_specials(stop))

    if reasoning:
        message("<|channel|>analysis", reasoning, "<|end|>")
    for call in calls:
        message(f"<|channel|>commentary to=functions.{call.name} <|constrain|>json", call.arguments, "<|call|>")
    if not calls:
        message("<|channel|>final", content or "", "<|return|>")
    return tokens
