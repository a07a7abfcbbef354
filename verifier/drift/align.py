"""Greedy chat `top_logprobs` aligned with golden positions, for drift without teacher forcing."""

from __future__ import annotations

from verifier import harmony
from verifier.golden import GoldenTurn
from verifier.observation import TokenLogprob
from verifier.scores import PositionScore


def greedy_positions(golden: GoldenTurn, logprobs: list[TokenLogprob], flip_margin: float
                     ) -> tuple[GoldenTurn, list[PositionScore], str | None]:
    """Align chat `top_logprobs` with golden completion tokens along their common prefix.

    Returns the golden turn from the position where the provider's logprobs begin (a provider may
    leave out the leading header tokens), the positions scored against it, and, if the provider's
    greedy path left golden's, why: at a golden near-tie that is honest (tolerated), at a decisive
    position it is evidence of drift.
    """
    out: list[PositionScore] = []
    texts = [harmony.token_text(t) for t in golden.completion_token_ids]
    start = next((i for i, t in enumerate(texts) if logprobs and t == logprobs[0].token), None)
    if start is None:
        return golden, out, None
    aligned = golden.model_copy(update={"scores": golden.scores[start:]})
    for offset, item in enumerate(logprobs):
        i = start + offset
        if i >= len(golden.scores):
            break
        ref = golden.scores[i]
        candidates = {harmony.token_text(t): t for t in reversed(ref.top_ids)}
        top = {candidates[t.token]: t.logprob for t in item.top if t.token in candidates}
        if item.token != texts[i]:
            if ref.margin >= flip_margin:
                return aligned, out, f"greedy path left golden at a decisive position (margin {ref.margin:.2f} nats)"
            return aligned, out, None
        out.append(PositionScore(token_logprob=item.logprob, top=top))
    return aligned, out, None
