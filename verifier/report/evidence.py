"""Evidence for the report: each exchange cut to excerpts, with its Harmony view beside golden's.

The report is rendered from `result.json` alone, so what it shows of requests and responses is
collected here, when the run ends, into `RunResult.evidence`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from verifier import harmony
from verifier.exchange import API_VARIANTS, DRIFT_EVIDENCE, Exchange
from verifier.golden import GoldenFile, GoldenTurn
from verifier.observation import Observation
from verifier.result import ExchangeEvidence, HarmonyMessage, HarmonyView, clean_text, evidence_key

REQUEST_EXCERPT = 1500
RESPONSE_EXCERPT = 1500
TEXT_EXCERPT = 240
MAX_MESSAGES = 12
MAX_HEADER_TOKENS = 40
STOP_OF = {"tool_calls": "<|call|>", "stop": "<|return|>"}
"""The stop token a finish_reason stands for."""
FINISH_OF = {harmony.CALL: "tool_calls", harmony.RETURN: "stop"}


def _cut(text: str, limit: int) -> str:
    return clean_text(text, limit)


def _header_fields(header: str) -> tuple[str | None, str | None, str | None]:
    """(channel, recipient, constrain) named in a header's text."""
    channel = re.search(r"<\|channel\|>\s*([^\s<]+)", header)
    recipient = re.search(r"to=([^\s<]+)", header)
    constrain = re.search(r"<\|constrain\|>\s*([^\s<]+)", header)
    return tuple(m.group(1) if m else None for m in (channel, recipient, constrain))  # type: ignore[return-value]


def _message(header_tokens: list[int], content: list[int], end: int | None) -> HarmonyMessage:
    channel, recipient, constrain = _header_fields(harmony.decode(header_tokens))
    return HarmonyMessage(header=[harmony.token_text(t) for t in header_tokens[:MAX_HEADER_TOKENS]],
                          channel=channel, recipient=recipient, constrain=constrain, content_tokens=len(content),
                          text=_cut(harmony.decode(content), TEXT_EXCERPT),
                          end=harmony.token_text(end) if end is not None else None)


def token_view(tokens: list[int]) -> HarmonyView:
    """Completion tokens (after `<|start|>assistant`, stop included) as Harmony messages."""
    view = HarmonyView(source="tokens")
    stop = next((i for i, t in enumerate(tokens) if t in harmony.ASSISTANT_STOPS), None)
    if stop is not None:
        view.stop, view.finish_reason = harmony.token_text(tokens[stop]), FINISH_OF[tokens[stop]]
        view.trailing_tokens = len(tokens) - stop - 1
        tokens = tokens[: stop + 1]
    header: list[int] = []
    content: list[int] | None = None
    for token in tokens:
        if content is not None:
            if token in (harmony.END, harmony.RETURN, harmony.CALL):
                view.messages.append(_message(header, content, token))
                header, content = [], None
            else:
                content.append(token)
        elif token == harmony.MESSAGE:
            content = []
        elif token == harmony.START:
            header = [token]
        else:
            header.append(token)
    if content is not None:
        view.messages.append(_message(header, content, None))
    view.messages = view.messages[:MAX_MESSAGES]
    return view


def fields_view(obs: Observation) -> HarmonyView:
    """A Chat or Responses reply as the Harmony messages its fields stand for (no tokens are shown by
    those APIs): analysis for the reasoning, a commentary call per tool call, final for the content.
    Provider text is encoded as plain text, so control-token text in it cannot pose as a token."""
    view = HarmonyView(source="fields", finish_reason=obs.finish_reason, stop=STOP_OF.get(obs.finish_reason or ""))

    def add(header: list[int], text: str, end: str) -> None:
        if view.messages:
            header = harmony.encode_with_specials("<|start|>") + harmony.encode("assistant") + header
        channel, recipient, constrain = _header_fields(harmony.decode(header))
        view.messages.append(HarmonyMessage(
            header=[harmony.token_text(t) for t in header[:MAX_HEADER_TOKENS]], channel=channel,
            recipient=recipient, constrain=constrain, content_tokens=len(harmony.encode(text)),
            text=_cut(text, TEXT_EXCERPT), end=end))

    channel, constrain = harmony.encode_with_specials("<|channel|>"), harmony.encode_with_specials("<|constrain|>")
    if obs.reasoning:
        add(channel + harmony.encode("analysis"), obs.reasoning, "<|end|>")
    for call in obs.tool_calls:
        # header text as plain text between the markers, tokenized as a model writes it
        header = channel + harmony.encode(f"commentary to=functions.{call.name} ") + constrain + harmony.encode("json")
        add(header, call.arguments, "<|call|>")
        # the provider's name verbatim, whatever characters it holds (the header parse stops at spaces)
        view.messages[-1].recipient = _cut(f"functions.{call.name}", TEXT_EXCERPT)
        view.messages[-1].channel, view.messages[-1].constrain = "commentary", "json"
    if obs.content or not obs.tool_calls:
        add(channel + harmony.encode("final"), obs.content or "", "<|return|>")
    view.messages = view.messages[:MAX_MESSAGES]
    return view


def provider_view(obs: Observation | None) -> HarmonyView | None:
    if obs is None or not obs.ok or (obs.status is not None and obs.status >= 400):
        return None
    if obs.api == "completions" and obs.token_ids is not None:
        view = token_view(obs.token_ids)
        view.finish_reason = obs.finish_reason
        return view
    return fields_view(obs)


def golden_view(turn: GoldenTurn | None) -> HarmonyView | None:
    if turn is None:
        return None
    view = token_view(turn.completion_token_ids)
    view.finish_reason = turn.finish_reason
    return view


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def exchange_evidence(ex: Exchange, golden: GoldenFile | None) -> ExchangeEvidence:
    """One exchange as evidence."""
    obs = ex.observation
    record = golden.record(ex.case_id) if golden is not None else None
    turn = record.turns[ex.turn - 1] if record is not None and ex.turn <= len(record.turns) else None
    response = ""
    if obs is not None:
        response = obs.raw
    elif ex.score is not None:
        response = _json({"mode": getattr(ex.score, "mode", None), "positions": len(ex.score.positions)})
    elif ex.tokens is not None:
        response = _json({"source": ex.source, "prompt_token_ids": ex.tokens})
    failure = ex.failure or (obs.failure if obs is not None else None)
    error = failure.message if failure is not None else None
    return ExchangeEvidence(
        key=evidence_key(ex.suite, ex.case_id, ex.variant, ex.turn), suite=ex.suite, case_id=ex.case_id,
        variant=ex.variant, turn=ex.turn, status=obs.status if obs is not None else None,
        error=_cut(error, 1000) if error else None, elapsed_s=round(ex.elapsed_s, 3),
        request=_cut(_json(ex.request), REQUEST_EXCERPT), response=_cut(response, RESPONSE_EXCERPT),
        provider=provider_view(obs), golden=golden_view(turn) if ex.variant not in ("prompt-ids",) else None)


VARIANT_ORDER = [*DRIFT_EVIDENCE, "prompt-ids", *API_VARIANTS]
"""Order of the evidence of one case: drift evidence, prompt ids, then each API variant."""


def collect(exchanges: Iterable[Exchange], goldens: dict[str, GoldenFile]) -> list[ExchangeEvidence]:
    """Evidence of every exchange of a run; `goldens` by suite name, in run order. Sorted by suite,
    case (golden order), API variant and turn, whatever order concurrent requests completed in."""
    suites = list(goldens)
    cases = {name: {r.case_id: i for i, r in enumerate(g.records)} for name, g in goldens.items()}

    def order(ex) -> tuple:
        variant = VARIANT_ORDER.index(ex.variant) if ex.variant in VARIANT_ORDER else len(VARIANT_ORDER)
        return (suites.index(ex.suite) if ex.suite in suites else len(suites),
                cases.get(ex.suite, {}).get(ex.case_id, 1 << 30), variant, ex.variant, ex.turn)

    return [exchange_evidence(ex, goldens.get(ex.suite)) for ex in sorted(exchanges, key=order)]
