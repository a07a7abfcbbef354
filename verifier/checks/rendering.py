"""Harmony rendering: the provider must render a request to the tokens the reference renders."""

from __future__ import annotations

import datetime

from verifier import harmony
from verifier.checks.base import ExchangeView, Verdict, check


def _dates(created: int | None) -> list[str]:
    """Dates the provider may have rendered: its own UTC date and the neighbours (time zones)."""
    base = (datetime.datetime.fromtimestamp(created, datetime.UTC).date() if created
            else datetime.datetime.now(datetime.UTC).date())
    return [(base + datetime.timedelta(days=d)).isoformat() for d in (0, -1, 1)]


@check(
    "rendering.prompt_tokens", "rendering",
    title="usage.prompt_tokens equals the reference rendering of the same request (date-aware)",
    why="a different count means a different prompt: missing <|constrain|>, no date line, ChatML "
        "fallback, tools or instructions rendered elsewhere, reasoning not dropped",
    source="vLLM #27653; chat templates without <|constrain|> or the date line",
    compares="structure: exact token count", apis=("chat", "responses"),
)
def prompt_tokens(view: ExchangeView):
    reported = view.obs.usage.prompt_tokens
    if reported is None:
        return view.outcome(Verdict.SKIP, "the provider reports no prompt token count")
    counts = {len(harmony.render_chat(view.exchange.chat_request, d)) for d in _dates(view.obs.created)}
    if reported in counts:
        return view.outcome(Verdict.PASS, f"{reported} prompt tokens, as rendered by the reference",
                            sorted(counts), reported)
    return view.outcome(Verdict.FAIL, f"{reported} prompt tokens; the reference renders this request to "
                        f"{' or '.join(map(str, sorted(counts)))}", sorted(counts), reported)
