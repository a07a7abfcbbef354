"""parsing.*: control-token leaks, reasoning apart from the answer, empty answers, final text where golden
is decisive, HTTP status."""

from __future__ import annotations

from verifier.checks.common import thresholds
from verifier.exchange import EarlierSend, Exchange
from verifier.observation import RESEND_ROUNDS, Failure

from .builders import (
    BETWEEN,
    FINAL,
    NEAR_TIE,
    REASONING,
    calibration,
    call,
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
    tie_in,
)
from .builders import Verdict as V


def _view(obs, golden=None, cal=None):
    return exchange_view(exchange(obs), golden, cal)


# -- parsing.no_control_tokens --------------------------------------------------------------------


@shows("parsing.no_control_tokens", V.PASS)
def test_clean_fields_pass():
    return run("parsing.no_control_tokens", _view(observation(calls=[call()])))


@shows("parsing.no_control_tokens", V.FAIL)
def test_a_raw_channel_header_in_content_fails():
    outcomes = run("parsing.no_control_tokens", _view(observation(content="analysisthinkingassistantfinal Paris")))
    assert "content: assistantfinal" in outcomes[0].message
    return outcomes


@shows("parsing.no_control_tokens", V.FAIL)
def test_a_control_token_in_a_tool_name_fails():
    garbled = call(name="get_weather<|channel|>commentary")
    outcomes = run("parsing.no_control_tokens", _view(observation(calls=[garbled])))
    assert "tool_calls[0].name: <|channel|>" in outcomes[0].message
    return outcomes


# -- parsing.reasoning_separated ------------------------------------------------------------------


def _golden(reasoning: str = REASONING):
    return golden_turn(request(), completion(reasoning=reasoning))


@shows("parsing.reasoning_separated", V.PASS)
def test_reasoning_in_its_own_field_passes():
    outcomes = run("parsing.reasoning_separated", _view(observation(), _golden()))
    assert outcomes[0].observed == ["reasoning_content"]
    return outcomes


@shows("parsing.reasoning_separated", V.FAIL)
def test_no_reasoning_where_golden_reasons_fails():
    return run("parsing.reasoning_separated", _view(observation(reasoning=None), _golden()))


@shows("parsing.reasoning_separated", V.FAIL)
def test_reasoning_repeated_in_content_fails():
    outcomes = run("parsing.reasoning_separated", _view(observation(content=REASONING + " " + FINAL), _golden()))
    assert "also appears in content" in outcomes[0].message
    return outcomes


def test_reasoning_is_not_asked_for_where_golden_has_none():
    assert run("parsing.reasoning_separated", _view(observation(reasoning=None), _golden(reasoning=""))) == []


# -- parsing.no_empty_answer ----------------------------------------------------------------------


@shows("parsing.no_empty_answer", V.PASS)
def test_a_tool_call_without_content_is_an_answer():
    return run("parsing.no_empty_answer", _view(observation(content=None, calls=[call()])))


@shows("parsing.no_empty_answer", V.FAIL)
def test_whitespace_content_and_no_call_fails():
    outcomes = run("parsing.no_empty_answer", _view(observation(content="  \n")))
    assert "unreported completion tokens" in outcomes[0].message
    return outcomes


# -- parsing.final_text: compared only where every golden margin up to the answer is wide ---------


def test_the_margins_used_here_straddle_the_thresholds():
    assert NEAR_TIE < thresholds().wide_margin_nats.value < BETWEEN < calibration().flip_margin


@shows("parsing.final_text", V.PASS)
def test_the_golden_answer_at_decisive_margins_passes():
    return run("parsing.final_text", _view(observation(), golden_turn(request(), completion())))


@shows("parsing.final_text", V.FAIL)
def test_another_answer_at_decisive_margins_fails():
    outcomes = run("parsing.final_text", _view(observation(content="Lyon"), golden_turn(request(), completion())))
    assert (outcomes[0].expected, outcomes[0].observed) == (FINAL, "Lyon")
    return outcomes


@shows("parsing.final_text", V.SKIP)
def test_another_answer_after_a_near_tie_in_the_answer_is_not_compared():
    done = completion()
    outcomes = run("parsing.final_text", _view(observation(content="Lyon"), golden_turn(request(), done,
                                                                                        tie_in(done, "final"))))
    assert outcomes[0].message.startswith("final answer differs after the reply leaves golden near a tie (position")
    assert f"margin {NEAR_TIE:.2f} nats" in outcomes[0].message
    return outcomes


OTHER_BRANCH = "A user asks for the capital of France. That is Paris, so I answer with one word and stop there."
"""REASONING with another first word: the other branch at a near-tie on golden's first analysis token."""
LATE_BRANCH = "The user asks for the capital of France. That is Paris, so I reply with one word and stop there."
"""REASONING with a word changed further on, where `tie_in(done, "analysis")` leaves golden decisive."""


@shows("parsing.final_text", V.SKIP)
def test_another_answer_after_reasoning_that_took_the_other_branch_of_a_near_tie_is_not_compared():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "analysis"))
    outcomes = run("parsing.final_text", _view(observation(reasoning=OTHER_BRANCH, content="Lyon"), golden))
    assert f"position {done.content['analysis'][0]}" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.FAIL)
def test_another_answer_after_reasoning_that_followed_golden_through_its_near_tie_fails():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "analysis"))
    outcomes = run("parsing.final_text", _view(observation(content="Lyon"), golden))
    assert f"position {done.content['final'][0]}" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.FAIL)
def test_reasoning_that_leaves_golden_where_it_is_decisive_fails_whatever_comes_later():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "analysis"))
    outcomes = run("parsing.final_text", _view(observation(reasoning=LATE_BRANCH, content="Lyon"), golden))
    assert "at a decisive position" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.PASS)
def test_the_golden_answer_after_reasoning_on_another_branch_passes():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "analysis"))
    return run("parsing.final_text", _view(observation(reasoning=OTHER_BRANCH), golden))


@shows("parsing.final_text", V.FAIL)
def test_without_reasoning_another_answer_after_decisive_golden_analysis_fails():
    outcomes = run("parsing.final_text", _view(observation(reasoning=None, content="Lyon"),
                                               golden_turn(request(), completion())))
    assert "the provider returned no reasoning" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.SKIP)
def test_without_reasoning_another_answer_after_a_near_tie_in_golden_analysis_cannot_be_located():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "analysis"))
    outcomes = run("parsing.final_text", _view(observation(reasoning=None, content="Lyon"), golden))
    assert "cannot be told" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.SKIP)
def test_another_answer_to_a_request_that_is_not_golden_s_is_not_compared():
    golden = golden_turn(request(), completion())
    view = exchange_view(exchange(observation(content="Lyon"), request("And of Italy?")), golden)
    return run("parsing.final_text", view)


@shows("parsing.final_text", V.SKIP)
def test_leaving_golden_at_a_forced_position_is_left_to_the_tool_choice_check():
    done = completion()
    (position,) = tie_in(done, "final", BETWEEN)
    golden = golden_turn(request(), done, forced=[position])
    outcomes = run("parsing.final_text", _view(observation(content="Lyon"), golden))
    assert "which tool_choice forced" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.SKIP)
def test_reasoning_with_its_edges_trimmed_is_golden_s_reasoning():
    done = completion(reasoning=REASONING + "\n")
    golden = golden_turn(request(), done, tie_in(done, "final"))
    outcomes = run("parsing.final_text", _view(observation(reasoning=" " + REASONING, content="Lyon"), golden))
    assert "near a tie" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.SKIP)
def test_a_reasoning_summary_is_no_reasoning_to_locate_a_branch_in():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "analysis"))
    obs = observation(reasoning="Summary: capital question.", content="Lyon").model_copy(
        update={"reasoning_fields": ["summary_text"]})
    outcomes = run("parsing.final_text", _view(obs, golden))
    assert "returned no reasoning" in outcomes[0].message
    return outcomes


@shows("parsing.final_text", V.FAIL)
def test_a_margin_above_the_default_compares_without_calibration():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "final", BETWEEN))
    return run("parsing.final_text", _view(observation(content="Lyon"), golden))


@shows("parsing.final_text", V.SKIP)
def test_the_same_margin_below_the_calibrated_flip_margin_is_not_compared():
    done = completion()
    golden = golden_turn(request(), done, tie_in(done, "final", BETWEEN))
    return run("parsing.final_text", _view(observation(content="Lyon"), golden, calibration()))


def test_final_text_does_not_apply_to_a_golden_tool_call():
    golden = golden_turn(request(), completion(call=call()))
    assert run("parsing.final_text", _view(observation(content=None, calls=[call()]), golden)) == []


# -- parsing.http_status --------------------------------------------------------------------------


def _status_view(*exchanges_or_observations, started=None):
    items = exchanges_or_observations
    started = started or [None] * len(items)
    exchanges = [item.model_copy(update={"case_id": f"c{i}", "started": t}) if isinstance(item, Exchange)
                 else exchange(item, case_id=f"c{i}", started=t) for i, (item, t) in enumerate(zip(items, started))]
    return suite_view([], [record(ex.case_id) for ex in exchanges], exchanges)


def _sent(status: int, history: list[int | None], kind: str = "http_status") -> Failure:
    return Failure(kind=kind, message=f"HTTP {status} from x", status=status, history=history)


def _resent(first: Failure, then: Failure | None, first_started: float = 1.5, sends: int = 2) -> Exchange:
    """The re-send pass's copy of an exchange whose earlier `sends - 1` sends failed with `first`: answered with
    200 (`then` None) or failing with `then`."""
    obs = observation() if then is None else failed(then.status, kind=then.kind).model_copy(update={"failure": then})
    earlier = [EarlierSend(key="k" + "r" * i, started=first_started + i / 10, failure=first) for i in range(sends - 1)]
    return exchange(obs, earlier=earlier)


@shows("parsing.http_status", V.PASS)
def test_every_request_answered_with_200_passes():
    outcomes = run("parsing.http_status", _status_view(observation(), observation()))
    assert outcomes[0].message == "2 of 2 requests answered with 200"
    return outcomes


@shows("parsing.http_status", V.FAIL)
def test_the_same_500_on_every_attempt_and_again_when_re_sent_fails():
    again = _resent(_sent(500, [500] * 3), _sent(500, [500] * 3), sends=1 + RESEND_ROUNDS)
    outcomes = run("parsing.http_status", _status_view(again, observation(), started=[3.0, 2.0]))
    assert outcomes[0].message == f"HTTP 500 to a valid request on every attempt ({3 * (1 + RESEND_ROUNDS)}), " \
                                  "again when re-sent after the rest of the suite"
    return outcomes


@shows("parsing.http_status", V.ERROR)
def test_the_same_500_on_too_few_sends_is_no_evidence():
    """A repeated server error can be chance: it counts only once every re-send gave it (a budget or an
    interrupted run can leave fewer)."""
    again = _resent(_sent(500, [500] * 3), _sent(500, [500] * 3), sends=RESEND_ROUNDS)
    outcomes = run("parsing.http_status", _status_view(again, observation(), started=[3.0, 2.0]))
    assert "too few to tell a server error from chance" in outcomes[0].message
    return outcomes


@shows("parsing.http_status", V.FAIL)
def test_the_same_4xx_on_two_sends_fails():
    again = _resent(_sent(422, [422]), _sent(422, [422]))
    outcomes = run("parsing.http_status", _status_view(again, observation(), started=[3.0, 2.0]))
    assert outcomes[0].verdict == V.FAIL
    return outcomes


@shows("parsing.http_status", V.PASS)
def test_a_500_that_a_re_send_answers_with_200_was_chance():
    again = _resent(_sent(500, [500] * 5), None)
    outcomes = run("parsing.http_status", _status_view(again, observation(), started=[3.0, 2.0]))
    assert outcomes[0].message == "2 of 2 requests answered with 200 (1 only when re-sent: random errors, not answers)"
    return outcomes


@shows("parsing.http_status", V.ERROR)
def test_500s_mixed_with_429s_are_flaky_not_an_answer():
    again = _resent(_sent(500, [429, 500, 500]), _sent(500, [500, 500, 500]))
    outcomes = run("parsing.http_status", _status_view(again, observation(), started=[3.0, 2.0]))
    assert outcomes[0].message.endswith("flaky: attempts answered 429, 500, 500, 500, 500, 500")
    return outcomes


def test_a_missing_answer_or_another_status_in_the_history_is_flaky_too():
    for first, then in [(_sent(500, [None, 500]), _sent(500, [500, 500])),
                        (_sent(500, [500, 500]), _sent(422, [422]))]:
        outcome = run("parsing.http_status", _status_view(_resent(first, then), observation(), started=[3.0, 2.0]))[0]
        assert outcome.verdict is V.ERROR and "flaky" in outcome.message


@shows("parsing.http_status", V.ERROR)
def test_a_500_not_sent_again_is_no_evidence():
    outcomes = run("parsing.http_status", _status_view(failed(500), observation(), started=[1.0, 2.0]))
    assert outcomes[0].message.endswith("not sent again: a random error cannot be told from the provider's answer")
    return outcomes


@shows("parsing.http_status", V.ERROR)
def test_a_500_in_an_outage_that_lasts_to_the_end_is_no_evidence():
    again = _resent(_sent(500, [500]), _sent(500, [500]), first_started=2.5)
    return run("parsing.http_status", _status_view(observation(), again, started=[1.0, 3.0]))


@shows("parsing.http_status", V.ERROR)
def test_a_provider_unavailable_on_every_attempt_is_no_evidence():
    return run("parsing.http_status", _status_view(failed(503, kind="unavailable"), observation(), started=[1.0, 2.0]))


def test_a_transport_failure_has_no_status_to_judge():
    assert run("parsing.http_status", _status_view(failed(None, "connection refused"))) == []
