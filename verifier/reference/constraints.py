"""Decoding constraints the reference applies, identically when building golden and when serving."""

from __future__ import annotations

import torch

from verifier import harmony

ANALYSIS = harmony.encode("analysis")[0]


class ToolChoice:
    """A forcing `tool_choice` as a decoding constraint.

    At the first `<|channel|>` where the model does not choose `analysis`, the tokens of the forced
    header (`commentary`, or `commentary to=functions.NAME`) are emitted whatever the model prefers;
    everything else is the model's own choice. `positions` records which steps were forced.
    """

    def __init__(self, header: str):
        self.cache_key = f"tool_choice:{header}"
        self.forced = harmony.encode(header)
        self.queue: list[int] = []
        self.used = False
        self.positions: list[int] = []

    def __call__(self, history: list[int], logits: torch.Tensor) -> torch.Tensor:
        if not self.queue and not self.used and history and history[-1] == harmony.CHANNEL:
            if int(torch.argmax(logits)) == ANALYSIS:
                return logits
            self.queue, self.used = list(self.forced), True
        if not self.queue:
            return logits
        token = self.queue.pop(0)
        self.positions.append(len(history))
        forced = torch.full_like(logits, float("-inf"))
        forced[token] = logits[token]
        return forced


def for_request(chat_request: dict) -> ToolChoice | None:
    """The constraint a Chat request's tool_choice imposes, if any."""
    header = harmony.forced_header(chat_request.get("tool_choice"))
    if header is None or not chat_request.get("tools"):
        return None
    return ToolChoice(header)
