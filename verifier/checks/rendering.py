"""Harmony rendering: the provider must render a request to the tokens the reference renders."""

from __future__ import annotations

import datetime

from verifier import harmony
from verifier.checks.base import ExchangeView, Outcome, SuiteView, Verdict, check
from verifier.exchange import Exchange


def provider_dates(created: int | None) -> list[str]:
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
    counts = {len(harmony.render_chat(view.exchange.chat_request, d)) for d in provider_dates(view.obs.created)}
    if reported in counts:
        return view.outcome(Verdict.PASS, f"{reported} prompt tokens, as rendered by the reference",
                            sorted(counts), reported)
    return view.outcome(Verdict.FAIL, f"{reported} prompt tokens; the reference renders this request to "
                        f"{' or '.join(map(str, sorted(counts)))}", sorted(counts), reported)


def _shared(got: list[int], want: list[int]) -> int:
    """How many leading tokens agree."""
    return next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))


def _first_difference(got: list[int], want: list[int]) -> str:
    i = _shared(got, want)
    return (f"first difference at token {i}: provider {harmony.decode(got[max(0, i - 8):i + 8])!r}, "
            f"reference {harmony.decode(want[max(0, i - 8):i + 8])!r}")


@check(
    "rendering.prompt_ids", "rendering",
    title="the prompt token ids the server reports equal the reference rendering (date-aware)",
    why="the exact ids catch what a count cannot: effort level, role order, header forms",
    source="vLLM's return_token_ids (the chat prompt itself) or /tokenize (the chat template), or llama-server's "
           "/apply-template read by its /tokenize; rendering bugs that keep the token count",
    compares="structure: exact token ids", apis=("chat",), scope="suite",
)
def prompt_ids(view: SuiteView):
    out = []
    for ex in view.exchanges:
        if ex.variant != "prompt-ids":
            continue
        out.append(_prompt_ids_outcome(ex))
    return out


def _prompt_ids_outcome(ex: Exchange) -> Outcome:
    """One `prompt-ids` exchange judged; the message names where the ids came from (`ex.source`)."""
    base = dict(case_id=ex.case_id, variant=ex.variant, turn=ex.turn)
    if ex.tokens is None:
        if ex.failed("http_status"):  # the server answered this request with an error status: its finding
            status = ex.failure.status if ex.failure else None
            return Outcome(verdict=Verdict.SKIP, message=f"HTTP {status}: no token ids to check (see "
                                                         "parsing.http_status)", **base)
        verdict = Verdict.SKIP if ex.failed("unsupported") else Verdict.ERROR
        return Outcome(verdict=verdict, message=f"no token ids: {ex.failure.message if ex.failure else None}", **base)
    candidates = [harmony.render_chat(ex.chat_request, d) for d in provider_dates(None)]
    if ex.tokens in candidates:
        return Outcome(verdict=Verdict.PASS,
                       message=f"{len(ex.tokens)} ids (from {ex.source}) equal the reference rendering", **base)
    closest = max(candidates, key=lambda c: _shared(ex.tokens, c))  # the date the provider rendered, most likely
    return Outcome(verdict=Verdict.FAIL, expected=harmony.decode(closest), observed=harmony.decode(ex.tokens),
                   message=f"ids from {ex.source}: {_first_difference(ex.tokens, closest)}", **base)
