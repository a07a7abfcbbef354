"""structured.*: the final answer of a json_schema request is JSON valid under the schema; the reasoning is not
constrained. Observations are built by hand: no checkpoint answers JSON yet."""

from __future__ import annotations

import json

from verifier import harmony
from verifier.checks import REGISTRY, evaluate
from verifier.reference.engine import Generation
from verifier.serve.faults import grammar_in_reasoning
from verifier.serve.render import Reply
from verifier.suites import FAMILIES

from .builders import Verdict as V
from .builders import (
    call,
    case,
    completion,
    exchange,
    exchange_view,
    golden_file,
    golden_turn,
    observation,
    record,
    request,
    run,
    shows,
    suite,
)

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "temperature": {"type": "integer"},
                                           "condition": {"type": "string", "enum": ["sunny", "rainy"]}},
          "required": ["city", "temperature", "condition"], "additionalProperties": False}
ANSWER = '{"city":"Paris","temperature":21,"condition":"sunny"}'
PROSE = "The user wants the weather in Paris as a weather_report object; the tool said 21 degrees and sunny."


def _request(fmt: dict | None = None) -> dict:
    fmt = fmt or {"type": "json_schema", "json_schema": {"name": "weather_report", "schema": SCHEMA, "strict": True}}
    return request("Weather in Paris as JSON?", response_format=fmt)


def _view(obs, body=None, golden_final=ANSWER, golden_reasoning=PROSE, golden_call=None):
    body = body or _request()
    golden = golden_turn(body, completion(reasoning=golden_reasoning, final=golden_final, call=golden_call))
    return exchange_view(exchange(obs, body), golden)


def _answered(content=ANSWER, reasoning=PROSE, **extra):
    return observation(content=content, reasoning=reasoning, **extra)


# -- structured.valid_json ------------------------------------------------------------------------------------


@shows("structured.valid_json", V.PASS)
def test_a_json_answer_passes():
    return run("structured.valid_json", _view(_answered()))


@shows("structured.valid_json", V.FAIL)
def test_prose_or_a_fenced_or_cut_object_fails():
    outcomes = []
    for content in ("It is sunny in Paris, 21 degrees.", f"```json\n{ANSWER}\n```", ANSWER[:-1]):
        outcomes += run("structured.valid_json", _view(_answered(content)))
    assert [o.verdict for o in outcomes] == [V.FAIL] * 3
    return outcomes


@shows("structured.valid_json", V.SKIP)
def test_an_answer_cut_at_the_token_limit_or_a_call_is_not_judged():
    cut = run("structured.valid_json", _view(_answered(ANSWER[:20], finish_reason="length")))
    called = run("structured.valid_json", _view(observation(content=None, calls=[call()])))
    assert "token limit" in cut[0].message and "tool call" in called[0].message
    return cut + called


@shows("structured.valid_json", V.SKIP)
def test_a_reference_that_does_not_answer_json_holds_no_one_to_it():
    return run("structured.valid_json", _view(_answered("Sunny."), golden_final="Sunny."))


def test_requests_without_a_schema_or_turns_ending_in_a_call_are_not_read():
    """No outcome: no response_format, `text`, `json_object` (no schema), or golden ends with a tool call."""
    plain = request("Weather in Paris?")
    for body in (plain, {**plain, "response_format": {"type": "text"}}, {**plain, "response_format": {"type": "json_object"}}):
        for check_id in ("structured.valid_json", "structured.schema_valid", "structured.final_only"):
            assert run(check_id, _view(_answered("Sunny."), body=body)) == []
    ends_in_call = _view(observation(content=None, calls=[call()]), golden_final=None, golden_call=call())
    assert run("structured.valid_json", ends_in_call) == []


def test_the_same_request_on_responses_is_read_from_text_format():
    """The Responses form (`text.format`) of the request is the same turn: the checks read the Chat original."""
    body = harmony.responses_to_chat(harmony.chat_to_responses(_request()))
    outcomes = run("structured.schema_valid", _view(_answered('{"city":"Paris"}', api="responses"), body=body))
    assert [o.verdict for o in outcomes] == [V.FAIL]


# -- structured.schema_valid ----------------------------------------------------------------------------------


@shows("structured.schema_valid", V.PASS)
def test_a_schema_valid_answer_passes():
    return run("structured.schema_valid", _view(_answered()))


@shows("structured.schema_valid", V.FAIL)
def test_a_missing_field_a_wrong_type_an_extra_field_or_a_value_outside_the_enum_fails():
    wrong = [{"city": "Paris", "temperature": 21},
             {"city": "Paris", "temperature": "21", "condition": "sunny"},
             {"city": "Paris", "temperature": 21, "condition": "sunny", "humidity": 3},
             {"city": "Paris", "temperature": 21, "condition": "foggy"}]
    outcomes = [o for value in wrong for o in run("structured.schema_valid", _view(_answered(json.dumps(value))))]
    assert [o.verdict for o in outcomes] == [V.FAIL] * 4
    assert "'condition' is a required property" in outcomes[0].message
    return outcomes


@shows("structured.schema_valid", V.SKIP)
def test_invalid_json_is_valid_json_s_finding_not_schema_valid_s():
    return run("structured.schema_valid", _view(_answered("Sunny, 21 degrees.")))


# -- structured.final_only ------------------------------------------------------------------------------------


@shows("structured.final_only", V.PASS)
def test_free_text_reasoning_passes():
    return run("structured.final_only", _view(_answered()))


@shows("structured.final_only", V.FAIL)
def test_reasoning_in_the_answers_json_fails():
    """The symptom of a grammar applied from the first token: the reasoning is the schema's JSON (here the answer
    itself, and in a later turn of a chat), while the reference reasons in prose."""
    first = run("structured.final_only", _view(_answered(reasoning=ANSWER)))
    later = {**_request(), "messages": [
        {"role": "user", "content": "Weather in Rome as JSON?"},
        {"role": "assistant", "content": '{"city":"Rome","temperature":25,"condition":"sunny"}'},
        {"role": "user", "content": "And in Paris?"}]}
    spaced = json.dumps(json.loads(ANSWER), indent=2)
    second = run("structured.final_only", _view(_answered(reasoning=f"\n{spaced}\n"), body=later))
    assert [o.verdict for o in first + second] == [V.FAIL, V.FAIL]
    return first + second


@shows("structured.final_only", V.PASS)
def test_json_reasoning_is_no_finding_where_the_reference_reasons_in_json_too():
    return run("structured.final_only", _view(_answered(reasoning=ANSWER), golden_reasoning=ANSWER))


@shows("structured.final_only", V.PASS)
def test_reasoning_that_quotes_json_not_of_the_schema_passes():
    return run("structured.final_only", _view(_answered(reasoning='{"note": "not the answer"}')))


@shows("structured.final_only", V.SKIP)
def test_no_reasoning_returned_is_reasoning_separated_s_finding():
    return run("structured.final_only", _view(_answered(reasoning=None)))


def test_final_only_reads_chat_and_responses_only():
    assert REGISTRY["structured.final_only"].apis == ("chat", "responses")
    assert "completions" in REGISTRY["structured.valid_json"].apis


# -- the serve fault grammar-in-reasoning is what structured.final_only catches -------------------------------


def _served(body: dict, done, faults: frozenset[str]):
    """The Chat observation of the built-in provider's reply to `body` when the model emitted `done`."""
    tokens = grammar_in_reasoning(body, done.tokens, faults)
    reply = Reply.build(Generation(tokens=tokens, stopped=True), faults, frozenset())
    calls = [call(c["name"], c["arguments"], c["id"]) for c in reply.tool_calls]
    return observation(content=reply.content, reasoning=reply.reasoning, calls=calls, finish_reason=reply.finish_reason)


def test_the_grammar_in_reasoning_fault_fails_final_only_and_only_with_the_fault_on():
    done = completion(reasoning=PROSE, final=ANSWER)
    faulty = _served(_request(), done, frozenset({"grammar-in-reasoning"}))
    assert faulty.reasoning == faulty.content == ANSWER
    assert [o.verdict for o in run("structured.final_only", _view(faulty))] == [V.FAIL]
    honest = _served(_request(), done, frozenset())
    assert honest.reasoning == PROSE
    assert [o.verdict for o in run("structured.final_only", _view(honest))] == [V.PASS]
    for check_id in ("structured.valid_json", "structured.schema_valid"):
        assert [o.verdict for o in run(check_id, _view(faulty))] == [V.PASS]


def test_the_grammar_in_reasoning_fault_leaves_calls_and_plain_requests_alone():
    fault = frozenset({"grammar-in-reasoning"})
    to_call = completion(reasoning=PROSE, call=call())
    assert grammar_in_reasoning(_request(), to_call.tokens, fault) == to_call.tokens
    plain = completion(reasoning=PROSE, final="Sunny.")
    assert grammar_in_reasoning(request("Weather in Paris?"), plain.tokens, fault) == plain.tokens


def test_a_suite_of_the_structured_family_evaluates_the_three_checks():
    """Registered under the `structured` family: a suite naming it gets the three checks, in registration order,
    and the runner's typed view (case, exchange, golden turn) reaches them."""
    body = _request()
    golden = golden_turn(body, completion(reasoning=PROSE, final=ANSWER))
    the_case = case("rf", body)
    exchanges = [exchange(_answered(reasoning=ANSWER), body, case_id="rf")]
    results = evaluate(suite([the_case], families=["structured"]), golden_file([record("rf", golden)]), exchanges)
    verdicts = {r.id: r.verdict for r in results if r.family == "structured"}
    assert verdicts == {"structured.valid_json": V.PASS, "structured.schema_valid": V.PASS,
                        "structured.final_only": V.FAIL}
    assert "structured" in FAMILIES


def test_json_nested_beyond_the_parsers_depth_is_not_json_rather_than_a_crash():
    from verifier.checks.structured import schema_problem

    assert schema_problem("[" * 100_000 + "]" * 100_000, {"type": "array"}) == "not JSON"
