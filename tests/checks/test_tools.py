"""tools.*: finish_reason, the golden call (differing arguments judged where the reply first leaves golden), tokens
after the stop, the tool loop, tool_choice."""

from __future__ import annotations

from verifier import harmony
from verifier.checks.common import thresholds

from .builders import (
    CALL_ARGUMENTS,
    REASONING,
    calibration,
    call,
    case,
    completion,
    exchange,
    exchange_view,
    failed,
    golden_turn,
    observation,
    record,
    request,
    run,
    shows,
    suite_view,
    tie_at,
    tie_in,
    tool_request,
    usage,
)
from .builders import Verdict as V


def _call_golden(body=None, margins=None, arguments=CALL_ARGUMENTS):
    done = completion(call=call(arguments=arguments))
    return golden_turn(body or tool_request(), done, margins(done) if margins else None)


def _view(obs, golden=None, body=None, cal=None):
    return exchange_view(exchange(obs, body or tool_request()), golden, cal)


# -- tools.finish_reason --------------------------------------------------------------------------


@shows("tools.finish_reason", V.PASS)
def test_tool_calls_after_a_call_passes():
    return run("tools.finish_reason", _view(observation(content=None, calls=[call()]), _call_golden()))


@shows("tools.finish_reason", V.FAIL)
def test_stop_after_a_call_fails():
    obs = observation(content=None, calls=[call()], finish_reason="stop")
    outcomes = run("tools.finish_reason", _view(obs, _call_golden()))
    assert (outcomes[0].expected, outcomes[0].observed) == ("tool_calls", "stop")
    return outcomes


@shows("tools.finish_reason", V.PASS)
def test_stop_for_a_call_forced_by_a_named_tool_choice_is_the_openai_convention():
    named = tool_request({"type": "function", "function": {"name": "get_weather"}})
    obs = observation(content=None, calls=[call()], finish_reason="stop")
    return run("tools.finish_reason", _view(obs, _call_golden(named), named))


@shows("tools.finish_reason", V.FAIL)
def test_tool_calls_after_an_answer_fails():
    golden = golden_turn(request(), completion())
    return run("tools.finish_reason", _view(observation(finish_reason="tool_calls"), golden, request()))


def test_a_golden_turn_cut_by_length_has_no_finish_reason_to_match():
    golden = _call_golden().model_copy(update={"finish_reason": "length"})
    assert run("tools.finish_reason", _view(observation(), golden)) == []


# -- tools.call_match -----------------------------------------------------------------------------


@shows("tools.call_match", V.PASS)
def test_the_golden_call_passes():
    return run("tools.call_match", _view(observation(content=None, calls=[call()]), _call_golden()))


@shows("tools.call_match", V.FAIL)
def test_another_function_fails():
    outcomes = run("tools.call_match", _view(observation(calls=[call(name="get_time")]), _call_golden()))
    assert (outcomes[0].expected, outcomes[0].observed) == (["get_weather"], ["get_time"])
    return outcomes


@shows("tools.call_match", V.FAIL)
def test_arguments_that_are_not_json_fail():
    outcomes = run("tools.call_match", _view(observation(calls=[call(arguments='{"city": "Par')]), _call_golden()))
    assert "not JSON" in outcomes[0].message
    return outcomes


@shows("tools.call_match", V.FAIL)
def test_arguments_outside_the_schema_fail():
    outcomes = run("tools.call_match", _view(observation(calls=[call(arguments='{"town":"Paris"}')]),
                                             _call_golden(margins=lambda done: tie_in(done, "call"))))
    assert "violate its schema" in outcomes[0].message
    return outcomes


@shows("tools.call_match", V.FAIL)
def test_other_valid_arguments_where_golden_is_decisive_fail():
    outcomes = run("tools.call_match", _view(observation(calls=[call(arguments='{"city":"Lyon"}')]), _call_golden()))
    assert outcomes[0].observed == {"city": "Lyon"}
    return outcomes


@shows("tools.call_match", V.PASS)
def test_other_valid_arguments_that_leave_golden_at_a_near_tie_pass():
    golden = _call_golden(margins=lambda done: tie_at(done, "call", "Paris"))
    outcomes = run("tools.call_match", _view(observation(calls=[call(arguments='{"city":"Lyon"}')]), golden))
    assert "differ from the reference's, not compared: the reply leaves golden near a tie" in outcomes[0].message
    return outcomes


@shows("tools.call_match", V.PASS)
def test_other_arguments_in_another_json_layout_are_judged_where_their_values_part():
    golden = _call_golden(margins=lambda done: tie_at(done, "call", "Paris"))
    outcomes = run("tools.call_match", _view(observation(calls=[call(arguments='{ "city": "Lyon" }')]), golden))
    assert "near a tie" in outcomes[0].message
    return outcomes


@shows("tools.call_match", V.FAIL)
def test_other_valid_arguments_after_following_golden_through_a_near_tie_fail():
    golden = _call_golden(margins=lambda done: tie_in(done, "call"))
    return run("tools.call_match", _view(observation(calls=[call(arguments='{"city":"Lyon"}')]), golden))


@shows("tools.call_match", V.PASS)
def test_other_arguments_after_reasoning_on_another_branch_pass():
    golden = _call_golden(margins=lambda done: tie_in(done, "analysis"))
    obs = observation(reasoning="A" + REASONING[3:], calls=[call(arguments='{"city":"Lyon"}')])
    return run("tools.call_match", _view(obs, golden))


@shows("tools.call_match", V.PASS)
def test_arguments_are_not_compared_when_the_request_renders_to_another_prompt():
    golden = _call_golden()
    other = tool_request(content="And the weather in Lyon?")
    return run("tools.call_match", _view(observation(calls=[call(arguments='{"city":"Lyon"}')]), golden, other))


@shows("tools.call_match", V.FAIL)
def test_a_margin_above_the_default_compares_arguments_without_calibration():
    golden = _call_golden(margins=lambda done: tie_at(done, "call", "Paris", 1.5))
    return run("tools.call_match", _view(observation(calls=[call(arguments='{"city":"Lyon"}')]), golden))


@shows("tools.call_match", V.PASS)
def test_the_same_margin_below_the_calibrated_flip_margin_leaves_arguments_uncompared():
    golden = _call_golden(margins=lambda done: tie_at(done, "call", "Paris", 1.5))
    obs = observation(calls=[call(arguments='{"city":"Lyon"}')])
    return run("tools.call_match", _view(obs, golden, cal=calibration()))


def test_call_match_does_not_apply_where_golden_answers():
    golden = golden_turn(tool_request(), completion())
    assert run("tools.call_match", _view(observation(), golden)) == []


# -- tools.no_tokens_after_call -------------------------------------------------------------------


def _reply_tokens() -> int:
    return len(completion().tokens)


@shows("tools.no_tokens_after_call", V.PASS)
def test_completion_tokens_ending_at_the_stop_pass():
    obs = observation(api="completions", token_ids=completion().tokens)
    return run("tools.no_tokens_after_call", _view(obs, body=request()))


@shows("tools.no_tokens_after_call", V.FAIL)
def test_completion_tokens_after_the_stop_fail():
    tokens = completion().tokens + harmony.encode_with_specials("<|start|>assistant<|channel|>final<|message|>Hi")
    outcomes = run("tools.no_tokens_after_call", _view(observation(api="completions", token_ids=tokens)))
    assert outcomes[0].observed == len(tokens) - len(completion().tokens)
    return outcomes


@shows("tools.no_tokens_after_call", V.PASS)
def test_a_count_within_the_slack_passes():
    slack = int(thresholds().usage_slack_tokens.value)
    obs = observation(usage=usage(completion_tokens=_reply_tokens() + slack))
    return run("tools.no_tokens_after_call", _view(obs, body=request()))


@shows("tools.no_tokens_after_call", V.FAIL)
def test_a_count_beyond_the_slack_fails():
    slack = int(thresholds().usage_slack_tokens.value)
    obs = observation(usage=usage(completion_tokens=_reply_tokens() + slack + 1))
    outcomes = run("tools.no_tokens_after_call", _view(obs, body=request()))
    assert outcomes[0].expected == _reply_tokens()
    return outcomes


@shows("tools.no_tokens_after_call", V.PASS)
def test_a_call_accounts_for_its_own_tokens():
    tokens = len(completion(call=call()).tokens)
    obs = observation(content=None, calls=[call()], usage=usage(completion_tokens=tokens))
    return run("tools.no_tokens_after_call", _view(obs))


@shows("tools.no_tokens_after_call", V.SKIP)
def test_an_unreported_count_is_skipped():
    return run("tools.no_tokens_after_call", _view(observation()))


# -- tools.loop -----------------------------------------------------------------------------------


def _loop_view(*observations):
    body = tool_request()
    golden = record("loop", _call_golden(body), golden_turn(body, completion(reasoning="", final="Sunny.")))
    exchanges = [exchange(obs, body, case_id="loop", turn=i) for i, obs in enumerate(observations, 1)]
    return suite_view([case("loop", body, tool_results={"get_weather": "sunny"})], [golden], exchanges)


@shows("tools.loop", V.PASS)
def test_a_call_then_an_answer_passes():
    outcomes = run("tools.loop", _loop_view(observation(content=None, calls=[call()]), observation(content="Sunny.")))
    assert outcomes[0].message == "2 turns, the last ending stop"
    return outcomes


@shows("tools.loop", V.FAIL)
def test_calling_again_after_the_result_fails():
    return run("tools.loop", _loop_view(observation(content=None, calls=[call()]),
                                        observation(content=None, calls=[call()])))


@shows("tools.loop", V.FAIL)
def test_a_loop_that_stops_at_the_call_fails():
    outcomes = run("tools.loop", _loop_view(observation(content=None, calls=[call()], finish_reason="stop")))
    assert outcomes[0].observed == {"turns": 1, "last_finish_reason": "stop"}
    return outcomes


@shows("tools.loop", V.SKIP)
def test_an_http_error_on_the_second_turn_is_left_to_http_status():
    return run("tools.loop", _loop_view(observation(content=None, calls=[call()]), failed(500)))


@shows("tools.loop", V.ERROR)
def test_a_transport_failure_on_the_second_turn_is_no_evidence():
    return run("tools.loop", _loop_view(observation(content=None, calls=[call()]), failed(None, "timed out")))


# -- tools.tool_choice ----------------------------------------------------------------------------


def _choice(choice, calls):
    return run("tools.tool_choice", _view(observation(content=None if calls else "Sunny.", calls=calls),
                                          body=tool_request(choice)))


@shows("tools.tool_choice", V.PASS)
def test_none_with_no_call_passes():
    return _choice("none", [])


@shows("tools.tool_choice", V.FAIL)
def test_none_with_a_call_fails():
    return _choice("none", [call()])


@shows("tools.tool_choice", V.PASS)
def test_required_with_a_declared_call_passes():
    return _choice("required", [call(name="get_time")])


@shows("tools.tool_choice", V.FAIL)
def test_required_without_a_call_fails():
    return _choice("required", [])


@shows("tools.tool_choice", V.FAIL)
def test_required_with_an_undeclared_function_fails():
    return _choice("required", [call(name="get_stock_price")])


@shows("tools.tool_choice", V.PASS)
def test_a_named_function_called_passes():
    return _choice({"type": "function", "function": {"name": "get_time"}}, [call(name="get_time")])


@shows("tools.tool_choice", V.FAIL)
def test_another_function_than_the_named_one_fails():
    outcomes = _choice({"type": "function", "function": {"name": "get_time"}}, [call()])
    assert outcomes[0].expected == "a call to get_time"
    return outcomes


def test_auto_is_not_checked():
    assert _choice("auto", [call()]) == []
