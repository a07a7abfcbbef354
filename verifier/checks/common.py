"""Helpers shared by checks: golden margins, token counts, and the fixed thresholds of `thresholds.json`.

Thresholds come from two places:
- `thresholds.json` (next to this module): the fixed thresholds of the parsing, tools and effort checks,
  each with what it means and where its value comes from (`Thresholds` below); none is calibrated;
- a golden directory's `calibration.json` (`verifier.drift.calibration`): the drift boundaries, α and the flip
  margin, measured on honest engines. Where it exists its flip margin replaces `wide_margin_nats`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from verifier import harmony
from verifier.drift.calibration import Calibration
from verifier.golden import GoldenTurn
from verifier.observation import Observation, ToolCall

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


@dataclass(frozen=True)
class Departure:
    """Where a reply first leaves golden's greedy completion, and whether an honest engine may leave there."""

    position: int
    """Golden completion position of the first token that differs."""
    margin: float
    """Golden's top-1/top-2 gap there (nats)."""
    honest: bool
    """Golden was near a tie there, or the reply took a token an honest engine may take
    (`TokenScore.honest_departure`): text after it is another branch, not a defect."""
    reasoning_assumed: bool = False
    """The provider returned no reasoning; golden's analysis (decisive throughout) stood in for it."""

    def describe(self) -> str:
        kind = "near a tie" if self.honest else "at a decisive position"
        where = " after golden's analysis (the provider returned no reasoning)" if self.reasoning_assumed else ""
        return f"the reply leaves golden {kind} (position {self.position}{where}, margin {self.margin:.2f} nats)"


def departure(turn: GoldenTurn, obs: Observation, calls: list[ToolCall] | None = None,
              calibration: Calibration | None = None) -> Departure | str:
    """Where a reply that differs from golden first leaves it, or why that cannot be told.

    The one rule for a turn that left golden: the reply and golden are compared as Harmony tokens
    (`canonical_completion` of each), and what decides is golden's margin at the first token that differs.
    Leaving golden near a tie is an honest branch, so what follows it is not compared; leaving it where
    golden was decisive is a different computation. What an honest server may change without computing
    otherwise is undone first: whitespace around the reasoning, and the layout of JSON arguments (spaces,
    key order, escapes). A provider that returns no reasoning (or only a summary of it) is judged after
    golden's analysis only where that analysis was decisive throughout (an honest engine would have
    written the same); otherwise where it left golden cannot be told. A position a `tool_choice`
    constraint forced is the constraint's to judge (`tools.tool_choice`), not this rule's.
    """
    wide = wide_margin(calibration)
    calls = obs.tool_calls if calls is None else calls
    reasoning = None if set(obs.reasoning_fields) == {"summary_text"} else obs.reasoning
    if reasoning is not None and reasoning.strip() == turn.reasoning.strip():
        reasoning = turn.reasoning
    assumed = bool(turn.reasoning) and not reasoning
    if assumed:
        analysis_end = span_end(turn, "analysis")
        margin = min_margin(turn, analysis_end) if analysis_end is not None else float("inf")
        if margin < wide:
            return ("the provider returned no reasoning and golden's analysis has a near-tie "
                    f"(margin {margin:.2f} nats): where the reply left golden cannot be told")
        reasoning = turn.reasoning
    golden_calls = [ToolCall(id="golden", name=m.recipient.removeprefix("functions."), arguments=m.text)
                    for m in turn.tool_calls]
    calls = [c.model_copy(update={"arguments": laid_out_like(c.arguments, g.arguments)})
             for c, g in zip(calls, golden_calls)] + calls[len(golden_calls):]
    expected = canonical_completion(turn.reasoning, turn.final, golden_calls)
    got = canonical_completion(reasoning, obs.content, calls)
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    if expected[:at] != turn.completion_token_ids[:at] or at >= len(turn.scores):
        return "golden's tokens are not its text's canonical tokens up to where the reply differs: not located"
    if at in turn.forced_positions:
        return f"the reply leaves golden at position {at}, which tool_choice forced (tools.tool_choice judges it)"
    score = turn.scores[at]
    took = got[at] if at < len(got) else None
    return Departure(position=at, margin=score.margin, honest=score.honest_departure(lambda t: t == took, wide),
                     reasoning_assumed=assumed)


def laid_out_like(arguments: str, golden: str) -> str:
    """`arguments` in golden's JSON layout (compact, golden's key order where the keys are golden's,
    Unicode unescaped) when both parse and golden's text is that layout; otherwise as given."""
    try:
        value, reference = json.loads(arguments), json.loads(golden)
    except (json.JSONDecodeError, RecursionError):
        return arguments
    if _compact(reference) != golden:
        return arguments
    return _compact(_ordered_like(value, reference))


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _ordered_like(value: object, reference: object) -> object:
    if isinstance(value, dict) and isinstance(reference, dict):
        keys = [k for k in reference if k in value] + [k for k in value if k not in reference]
        return {k: _ordered_like(value[k], reference.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(reference, list):
        return [_ordered_like(v, r) for v, r in zip(value, reference)] + value[len(reference):]
    return value


def reasoning_length(text: str | None) -> int:
    """Reasoning length in o200k tokens (independent of how a provider counts usage)."""
    return len(harmony.encode(text)) if text else 0


def canonical_completion(reasoning: str | None, content: str | None, calls: list[ToolCall]) -> list[int]:
    """The tokens a Harmony model emits for this reply: analysis, then a call or a final answer
    (`harmony.generated_tokens`; provider text is encoded as plain text, so control-token text inside it cannot
    pose as a token)."""
    return harmony.generated_tokens(reasoning, None if calls else content or "",
                                    [(call.name, call.arguments) for call in calls])[0]
