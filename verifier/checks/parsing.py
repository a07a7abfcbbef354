"""Harmony parsing: reasoning apart from content, no control-token text, no silently empty answers."""

from __future__ import annotations

from verifier import harmony
from verifier.checks.base import ExchangeView, Outcome, SuiteView, Verdict, check
from verifier.checks.common import departure
from verifier.exchange import Exchange
from verifier.observation import Failure, deterministic, looks_random


def _visible_fields(view: ExchangeView) -> dict[str, str]:
    obs = view.obs
    fields = {"content": obs.content or "", "reasoning": obs.reasoning or ""}
    for i, call in enumerate(obs.tool_calls):
        fields[f"tool_calls[{i}].name"] = call.name
        fields[f"tool_calls[{i}].arguments"] = call.arguments
    return fields


@check(
    "parsing.no_control_tokens", "parsing",
    title="no Harmony control-token text (<|channel|>, <|message|>, assistantfinal …) in any visible field",
    why="leaked headers mean the server did not parse the model's output; clients show garbage or miss tool calls",
    source="sglang #9244, #10638; ollama #11704 (tool name `assistant<|channel|>analysis`)",
    compares="structure", apis=("chat", "responses"),
)
def no_control_tokens(view: ExchangeView):
    leaks = {name: found for name, text in _visible_fields(view).items() if (found := harmony.leaked_markers(text))}
    if leaks:
        where = "; ".join(f"{name}: {', '.join(found)}" for name, found in leaks.items())
        return view.outcome(Verdict.FAIL, f"control-token text in {where}", [], leaks)
    return view.outcome(Verdict.PASS, "no control-token text in visible fields")


@check(
    "parsing.reasoning_separated", "parsing",
    title="reasoning is returned in a reasoning field, apart from the answer",
    why="reasoning shown as the answer, or dropped, breaks clients and chain-of-thought round trips",
    source="field-name drift: Chat `reasoning` vs `reasoning_content`, Responses `reasoning_text`",
    compares="structure", apis=("chat", "responses"),
)
def reasoning_separated(view: ExchangeView):
    golden = view.golden
    if golden is None or not golden.reasoning:
        return None
    obs = view.obs
    if not obs.reasoning:
        return view.outcome(Verdict.FAIL, "the reference reasons on the analysis channel; the provider returned "
                            "no reasoning", "reasoning", None)
    probe = obs.reasoning.strip()[:40]
    if obs.content and len(probe) >= 16 and probe in obs.content:
        return view.outcome(Verdict.FAIL, "reasoning text also appears in content", None, obs.content[:200])
    return view.outcome(Verdict.PASS, f"reasoning in {', '.join(obs.reasoning_fields) or 'a reasoning field'}",
                        None, obs.reasoning_fields)


@check(
    "parsing.no_empty_answer", "parsing",
    title="a finished turn carries an answer or a tool call, never nothing",
    why="HTTP 200 with content null and no tool call after tokens were generated silently loses the answer",
    source="vLLM #41902",
    compares="structure",
)
def no_empty_answer(view: ExchangeView):
    obs = view.obs
    if obs.tool_calls or (obs.content or "").strip():
        return view.outcome(Verdict.PASS, "the turn carries an answer or a tool call")
    spent = obs.usage.completion_tokens
    return view.outcome(Verdict.FAIL, f"no content and no tool call (finish_reason {obs.finish_reason!r}, "
                        f"{spent if spent is not None else 'unreported'} completion tokens spent)",
                        "content or tool call", None)


@check(
    "parsing.final_text", "parsing",
    title="the final answer equals the reference's greedy answer unless the reply left golden near a tie",
    why="a different answer under greedy decoding means a different computation, unless the reply took "
        "another branch where the reference itself was near a tie",
    source="temperature-0 comparisons; transformers' own gpt-oss fixtures differ across kernels after near-ties",
    compares="text; a differing answer is judged where the reply first leaves golden (reasoning included): "
             "near a tie it is an honest branch and skipped, at a decisive position it fails",
)
def final_text(view: ExchangeView):
    golden = view.golden
    if golden is None or golden.final is None:
        return None
    obs = view.obs
    if (obs.content or "") == golden.final:
        return view.outcome(Verdict.PASS, "final answer equals the reference's", golden.final, obs.content)
    if not view.same_prompt:
        return view.outcome(Verdict.SKIP, "the request does not render to golden's prompt (in a tool loop: an "
                            "earlier turn took another branch): text not compared")
    left = departure(golden, obs, calibration=view.calibration)
    if isinstance(left, str):
        return view.outcome(Verdict.SKIP, f"final answer differs, but {left}")
    if left.honest:
        return view.outcome(Verdict.SKIP, f"final answer differs after {left.describe()}: another honest branch",
                            golden.final, obs.content)
    return view.outcome(Verdict.FAIL, f"final answer differs from the reference's: {left.describe()}",
                        golden.final, obs.content)


@check(
    "parsing.http_status", "parsing",
    title="every valid request is answered with HTTP 200",
    why="parser crashes surface as HTTP 500 on exactly the requests that exercise Harmony: tool calls, "
        "reasoning sent back",
    source="vLLM #22519, #22515, #23567; openai-harmony #33, #38, #48; llama.cpp #19701",
    compares="structure: HTTP status of suite requests (all valid by construction); an error status counts "
             "only when deterministic: the same on every attempt, again when re-sent after the rest of the suite",
    scope="suite", every_suite=True,
)
def http_status(view: SuiteView):
    answered = [ex for ex in view.exchanges if ex.observation is not None and ex.observation.status is not None]
    bad = [ex for ex in answered if _error_status(ex) is not None]
    healthy = [ex for ex in answered if _error_status(ex) is None]
    out = [_status_outcome(ex, _error_status(ex), healthy) for ex in bad]
    if healthy:
        resent = sum(1 for ex in healthy if ex.earlier)
        note = f" ({resent} only when re-sent: random errors, not answers)" if resent else ""
        out.append(Outcome(verdict=Verdict.PASS,
                           message=f"{len(healthy)} of {len(answered)} requests answered with 200{note}"))
    return out


def _status_outcome(ex: Exchange, failure: Failure, healthy: list[Exchange]) -> Outcome:
    verdict, why = _status_verdict(ex, failure, healthy)
    return Outcome(verdict=verdict, case_id=ex.case_id, variant=ex.variant, turn=ex.turn, expected=200,
                   observed=ex.observation.raw[:500], message=f"HTTP {failure.status} to a valid request{why}")


def _error_status(ex: Exchange) -> Failure | None:
    """The exchange's failure if the provider answered it with an HTTP error status."""
    failure = ex.observation.failure
    return failure if failure is not None and failure.status is not None else None


def _status_verdict(ex: Exchange, failure: Failure, healthy: list[Exchange]) -> tuple[Verdict, str]:
    """FAIL only for the provider's own answer to the request (`observation.deterministic`): the same error
    status on every attempt of the first send and of every re-send after the rest of the suite (of all
    1 + RESEND_ROUNDS sends for a 5xx), no rate limit, gateway error or missing answer
    among them, while the provider answered other requests (some request sent after the first was answered
    with 200: not an outage that lasted to the end). Anything else is no evidence (ERROR), with the reason."""
    if failure.kind == "unavailable":
        return Verdict.ERROR, " on every attempt: the provider was unavailable"
    if not ex.earlier:
        return Verdict.ERROR, ", not sent again: a random error cannot be told from the provider's answer"
    sends = [send.failure for send in ex.earlier] + [failure]
    statuses = [status for send in sends for status in send.history or [send.status]]
    if looks_random(sends):
        return Verdict.ERROR, f", flaky: attempts answered {_attempts(statuses)}"
    if not deterministic(sends):
        return Verdict.ERROR, f", on {len(sends)} sends only: too few to tell a server error from chance"
    first = ex.earlier[0].started
    if not any(first is None or (h.started or 0) > first for h in healthy):
        return Verdict.ERROR, ", and no later request was answered: an outage, not an answer"
    return Verdict.FAIL, f" on every attempt ({len(statuses)}), again when re-sent after the rest of the suite"


def _attempts(statuses: list[int | None]) -> str:
    return ", ".join("no answer" if status is None else str(status) for status in statuses)
