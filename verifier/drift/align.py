"""Greedy chat `top_logprobs` aligned with golden positions, for drift without teacher forcing.

A reported token is golden's by id where the host gives ids, by text otherwise; an empty text where
golden has a control token is that token (llama.cpp prints `<|return|>` and `<|call|>` as ""). Top
entries map to ids the same way (by text through the golden top-K at the position). Hosts that return
reasoning-token logprobs separately (`reasoning_logprobs`) and leave the control tokens between the
channels out of both lists are aligned segment by segment: each segment from where its first tokens
meet golden, after the previous one.
"""

from __future__ import annotations

from functools import partial

from verifier import harmony
from verifier.golden import GoldenTurn, TokenScore
from verifier.observation import TokenLogprob
from verifier.scores import PositionScore

ANCHOR = 3
"""Tokens of a segment that must match golden where it is placed (fewer if the segment is shorter)."""


def matches(item: TokenLogprob, token: int) -> bool:
    """Whether a reported token is golden's `token`: by id where reported, by text otherwise."""
    if item.token_id is not None:
        return item.token_id == token
    text = harmony.token_text(token)
    return item.token == text or (item.token == "" and text in harmony.SPECIAL_TEXTS)


def top_ids(item: TokenLogprob, ref: TokenScore) -> dict[int, float]:
    """The reported top entries as token id -> log-probability: ids where reported, else texts mapped
    through the golden top-K at the position (texts it does not hold are left out)."""
    candidates = {harmony.token_text(t): t for t in reversed(ref.top_ids)}
    out = {}
    for entry in item.top:
        token = entry.token_id if entry.token_id is not None else candidates.get(entry.token)
        if token is None and entry.token == "":
            specials = [t for t in ref.top_ids if harmony.token_text(t) in harmony.SPECIAL_TEXTS]
            token = specials[0] if len(specials) == 1 else None
        if token is not None:
            out.setdefault(token, entry.logprob)
    return out


def _anchor(golden: list[int], segment: list[TokenLogprob], cursor: int) -> int | None:
    """The first golden position >= cursor where the segment's first ANCHOR tokens match golden's, else
    where its first token does (a greedy path may leave golden's within its first tokens)."""
    for n in (min(ANCHOR, len(segment)), 1):
        for i in range(cursor, len(golden) - n + 1):
            if all(matches(segment[j], golden[i + j]) for j in range(n)):
                return i
    return None


def greedy_positions(golden: GoldenTurn, logprobs: list[TokenLogprob], flip_margin: float,
                     reasoning: list[TokenLogprob] | None = None
                     ) -> tuple[GoldenTurn, list[PositionScore], str | None]:
    """Align chat `top_logprobs` (and separately reported reasoning logprobs) with golden completion
    tokens along their common prefix.

    Returns the golden turn at the positions scored (a provider may leave out the leading header
    tokens, or the control tokens between channels), the positions scored against it, and, if the
    provider's greedy path left golden's, why: at a golden near-tie that is honest (tolerated), at a
    decisive position it is evidence of drift. Where golden's own token is below its teacher-forced
    top-1 (`TokenScore.off_top1`) leaving it for that top-1 is tolerated whatever the margin
    (`TokenScore.honest_choices`); leaving it for a third token is not.
    """
    ids = golden.completion_token_ids
    scores: list[TokenScore] = []
    out: list[PositionScore] = []
    cursor = 0
    for segment in [s for s in (reasoning, logprobs) if s]:
        start = _anchor(ids, segment, cursor)
        if start is None:
            break
        for offset, item in enumerate(segment):
            i = start + offset
            if i >= len(golden.scores):
                break
            ref = golden.scores[i]
            if not matches(item, ids[i]):
                aligned = golden.model_copy(update={"scores": scores})
                if not ref.honest_departure(partial(matches, item), flip_margin):
                    return aligned, out, f"greedy path left golden at a decisive position (margin {ref.margin:.2f} nats)"
                return aligned, out, None
            scores.append(ref)
            out.append(PositionScore(token_logprob=item.logprob, top=top_ids(item, ref)))
            cursor = i + 1
    return golden.model_copy(update={"scores": scores}), out, None
