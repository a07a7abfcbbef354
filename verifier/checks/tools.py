"""Tool-call stops: `<|call|>` ends the turn as `tool_calls`, with the golden call, and the loop goes on."""

from __future__ import annotations

import json
from collections import defaultdict

import jsonschema

from verifier import harmony
from verifier.checks.base import ExchangeView, Outcome, SuiteView, Verdict, check
from verifier.checks.common import Departure, canonical_completion, departure, thresholds


@check(
    "tools.finish_reason", "tools",
    title="finish_reason is tool_calls when the model calls a tool and stop when it answers",
    why="agents loop on finish_reason; `stop` after a call (or `tool_calls` after an answer) breaks them",
    source="sglang #9244, #10576 (a call ended with <|return|>)",
    compares="structure",
)
def finish_reason(view: ExchangeView):
    golden = view.golden
    if golden is None or golden.finish_reason == "length":
        return None
    want = golden.finish_reason
    got = view.obs.finish_reason
    if got == want:
        return view.outcome(Verdict.PASS, f"finish_reason {got}", want, got)
    named = isinstance(view.exchange.chat_request.get("tool_choice"), dict)
    if named and want == "tool_calls" and got == "stop" and view.obs.tool_calls:
        return view.outcome(Verdict.PASS, "finish_reason stop for a call forced by a named tool_choice, as the "
                            "OpenAI API reports it", want, got)
    return view.outcome(Verdict.FAIL, f"finish_reason {got!r}, the reference ends this turn with {want!r}", want, got)


def _schema(view: ExchangeView, name: str) -> dict | None:
    for tool in view.exchange.chat_request.get("tools") or []:
        fn = tool.get("function") or {}
        if fn.get("name") == name:
            return fn.get("parameters")
    return None


@check(
    "tools.call_match", "tools",
    title="the tool call has the golden name and valid JSON arguments (equal to golden unless the reply "
          "left golden near a tie)",
    why="a garbled name or malformed arguments cannot be executed; different arguments mean a different model",
    source="ollama #11704 (garbled names); vLLM #22337 (calls not extracted)",
    compares="structure (names, count, schema validity); differing arguments are judged where the reply first "
             "leaves golden (common.departure): near a tie they are another honest branch, at a decisive "
             "position they fail",
)
def call_match(view: ExchangeView):
    golden = view.golden
    if golden is None or not golden.tool_calls:
        return None
    want = [m.recipient.removeprefix("functions.") for m in golden.tool_calls]
    calls = view.obs.tool_calls
    got = [c.name for c in calls]
    if got != want:
        return view.outcome(Verdict.FAIL, f"tool calls {got}, the reference calls {want}", want, got)
    differing = []
    for call, ref in zip(calls, golden.tool_calls):
        try:
            arguments = json.loads(call.arguments)
        except (json.JSONDecodeError, RecursionError):  # nested too deep to parse is not usable JSON either
            return view.outcome(Verdict.FAIL, f"arguments of {call.name} are not JSON", ref.text, call.arguments)
        schema = _schema(view, call.name)
        if (problem := _schema_problem(schema, arguments)) is not None:
            return view.outcome(Verdict.FAIL, f"arguments of {call.name} violate its schema: {problem}",
                                schema, arguments)
        if arguments != (expected := _json_or_none(ref.text)):
            differing.append((call.name, expected, arguments))
    branched = ""
    if differing and view.same_prompt:
        left = departure(golden, view.obs, calls, view.calibration)
        name, expected, observed = differing[0]
        if isinstance(left, Departure) and not left.honest:
            return view.outcome(Verdict.FAIL, f"arguments of {name} differ from the reference's: {left.describe()}",
                                expected, observed)
        reason = left if isinstance(left, str) else left.describe()
        branched = f" (arguments of {', '.join(d[0] for d in differing)} differ from the reference's, not compared: {reason})"
    return view.outcome(Verdict.PASS, f"calls {want} with valid arguments{branched}",
                        [m.text for m in golden.tool_calls], [c.arguments for c in calls])


def _schema_problem(schema: dict | None, arguments: object) -> str | None:
    if not schema:
        return None
    try:
        jsonschema.validate(arguments, schema)
    except jsonschema.ValidationError as exc:
        return exc.message[:200]
    except jsonschema.SchemaError:
        return None
    return None


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


@check(
    "tools.no_tokens_after_call", "tools",
    title="nothing is generated after <|call|> or <|return|>",
    why="tokens after a stop are billed, can carry a second invented turn, and mean the stop set is wrong",
    source="sglang #10576; servers that omit <|call|> from the stop tokens",
    compares="structure: completion token count against the reply's own Harmony tokens",
)
def no_tokens_after_call(view: ExchangeView):
    obs = view.obs
    if obs.api == "completions":
        if obs.token_ids is None:
            return view.outcome(Verdict.SKIP, "no completion token ids reported")
        trailing = harmony.parse_completion(obs.token_ids).trailing_tokens
        if trailing:
            return view.outcome(Verdict.FAIL, f"{trailing} tokens generated after the stop token", 0, trailing)
        return view.outcome(Verdict.PASS, "generation ended at the stop token", 0, 0)
    spent = obs.usage.completion_tokens
    if spent is None:
        return view.outcome(Verdict.SKIP, "the provider reports no completion token count")
    if not (obs.reasoning or obs.content or obs.tool_calls):
        return view.outcome(Verdict.SKIP, "nothing was returned to account for (see parsing.no_empty_answer)")
    expected = len(canonical_completion(obs.reasoning, obs.content, obs.tool_calls))
    if spent > expected + thresholds().usage_slack_tokens.value:
        return view.outcome(Verdict.FAIL, f"usage reports {spent} completion tokens but the reply accounts for "
                            f"{expected}: tokens generated after the stop, or output the server dropped", expected, spent)
    return view.outcome(Verdict.PASS, f"{spent} completion tokens, consistent with the reply ({expected})",
                        expected, spent)


@check(
    "tools.loop", "tools",
    title="after the tool result is sent back the conversation continues to the golden kind of answer",
    why="multi-turn tool loops are how agents use gpt-oss; a loop that stalls or calls again is broken",
    source="vLLM #27653 (CoT lost in tool loops); llama.cpp #19701 (HTTP 500 when reasoning is sent back)",
    compares="structure: number of turns and how the last one ends (each turn's finish_reason is "
             "tools.finish_reason's)", scope="suite",
)
def loop(view: SuiteView):
    turns: dict[tuple[str, str], list] = defaultdict(list)
    for ex in view.exchanges:
        if ex.observation is not None:
            turns[(ex.case_id, ex.variant)].append(ex)
    out = []
    for (case_id, variant), exchanges in sorted(turns.items()):
        record = view.golden.record(case_id)
        if record is None or len(record.turns) < 2:
            continue
        exchanges.sort(key=lambda e: e.turn)
        last = exchanges[-1].observation
        want = (len(record.turns), record.turns[-1].finish_reason)
        got = (len(exchanges), last.finish_reason)
        base = dict(case_id=case_id, variant=variant, turn=len(exchanges),
                    expected={"turns": want[0], "last_finish_reason": want[1]},
                    observed={"turns": got[0], "last_finish_reason": got[1]})
        if last.status is not None and last.status >= 400:
            out.append(Outcome(verdict=Verdict.SKIP, message=f"turn {len(exchanges)} got HTTP {last.status} "
                               "(see parsing.http_status)", **base))
        elif last.failure:
            out.append(Outcome(verdict=Verdict.ERROR, message=f"turn {len(exchanges)} failed: {last.failure.message}",
                               **base))
        elif got == want:
            out.append(Outcome(verdict=Verdict.PASS, message=f"{want[0]} turns, the last ending {want[1]}", **base))
        else:
            out.append(Outcome(verdict=Verdict.FAIL, message=f"{got[0]} turns, the last ending {got[1]!r}; the "
                               f"reference's loop has {want[0]} turns ending {want[1]!r}", **base))
    return out


@check(
    "tools.tool_choice", "tools",
    title="tool_choice is honoured: required returns a call, a named function is the one called, none calls nothing",
    why="agents rely on forcing or forbidding calls; an ignored tool_choice silently changes control flow",
    source="vLLM #22337, #44216",
    compares="structure", apis=("chat", "responses"),
)
def tool_choice(view: ExchangeView):
    choice = view.exchange.chat_request.get("tool_choice")
    if choice is None or choice == "auto":
        return None
    declared = [t.get("function", {}).get("name") for t in view.exchange.chat_request.get("tools") or []]
    got = [c.name for c in view.obs.tool_calls]
    if choice == "none":
        ok, want = not got, "no tool call"
    elif choice == "required":
        ok, want = bool(got) and set(got) <= set(declared), f"a call to one of {declared}"
    else:
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        ok, want = bool(got) and set(got) == {name}, f"a call to {name}"
    label = json.dumps(choice) if isinstance(choice, dict) else choice
    if ok:
        return view.outcome(Verdict.PASS, f"tool_choice {label}: got {got or 'no call'}", want, got)
    return view.outcome(Verdict.FAIL, f"tool_choice {label} wants {want}; got {got or 'no call'}", want, got)
