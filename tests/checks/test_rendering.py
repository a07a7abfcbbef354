"""rendering.*: the prompt the provider rendered, by its token count and by its token ids (date-aware)."""

from __future__ import annotations

import datetime

from verifier import harmony

from .builders import (
    CREATED,
    DATE,
    exchange,
    exchange_view,
    failure,
    observation,
    record,
    request,
    run,
    shows,
    suite_view,
    tool_request,
    usage,
)
from .builders import Verdict as V

# -- rendering.prompt_tokens ----------------------------------------------------------------------


def _counted(body: dict, prompt_tokens: int | None, created: int | None = CREATED):
    obs = observation(usage=usage(prompt_tokens=prompt_tokens), created=created)
    return run("rendering.prompt_tokens", exchange_view(exchange(obs, body)))


@shows("rendering.prompt_tokens", V.PASS)
def test_the_reference_count_passes():
    body = tool_request()
    outcomes = _counted(body, len(harmony.render_chat(body, DATE)))
    assert outcomes[0].expected == [len(harmony.render_chat(body, DATE))]
    return outcomes


@shows("rendering.prompt_tokens", V.FAIL)
def test_a_prompt_without_the_tools_fails():
    body = tool_request()
    return _counted(body, len(harmony.render_chat(request(body["messages"][0]["content"]), DATE)))


@shows("rendering.prompt_tokens", V.SKIP)
def test_no_reported_count_is_skipped():
    return _counted(request(), None)


# -- rendering.prompt_ids -------------------------------------------------------------------------


def _today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def _ids_view(body: dict, tokens: list[int] | None, **extra):
    ex = exchange(None, body, variant="prompt-ids", tokens=tokens, **extra)
    return suite_view([], [record("c")], [ex])


@shows("rendering.prompt_ids", V.PASS)
def test_the_reference_ids_of_today_pass():
    body = request(reasoning_effort="high")
    return run("rendering.prompt_ids", _ids_view(body, harmony.render_chat(body, _today()), source="tokenize"))


@shows("rendering.prompt_ids", V.FAIL)
def test_another_effort_of_the_same_length_fails():
    body = request(reasoning_effort="high")
    served = harmony.render_chat(request(reasoning_effort="low"), _today())
    assert len(served) == len(harmony.render_chat(body, _today()))  # a count could not tell them apart
    outcomes = run("rendering.prompt_ids", _ids_view(body, served, source="return_token_ids"))
    assert "first difference at token" in outcomes[0].message
    return outcomes


@shows("rendering.prompt_ids", V.FAIL)
def test_a_defect_is_shown_against_the_date_the_provider_rendered():
    """A provider a day behind (its time zone) with a rendering defect: the outcome shows the reference at its
    date, so the difference it names is the defect, not the date line."""
    yesterday = (datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)).isoformat()
    body = request(reasoning_effort="high")
    served = harmony.render_chat(request(reasoning_effort="low"), yesterday)
    outcomes = run("rendering.prompt_ids", _ids_view(body, served, source="return_token_ids"))
    assert outcomes[0].expected == harmony.decode(harmony.render_chat(body, yesterday))
    assert "low" in outcomes[0].message and yesterday not in outcomes[0].message
    return outcomes


@shows("rendering.prompt_ids", V.SKIP)
def test_a_server_without_the_endpoint_is_skipped():
    return run("rendering.prompt_ids", _ids_view(request(), None, failure=failure("no /tokenize", "unsupported")))


@shows("rendering.prompt_ids", V.ERROR)
def test_a_call_that_found_no_service_is_no_evidence():
    return run("rendering.prompt_ids", _ids_view(request(), None, failure=failure("HTTP 502", "unavailable", 502)))


@shows("rendering.prompt_ids", V.SKIP)
def test_an_error_status_to_the_request_is_left_to_http_status():
    """The server answered this request with a 500 (a fault on reasoning input, say): no ids to compare, and
    the status itself is judged by parsing.http_status, not reported as an error of this check."""
    outcomes = run("rendering.prompt_ids", _ids_view(request(), None, failure=failure("HTTP 500", "http_status", 500)))
    assert outcomes[0].message.startswith("HTTP 500: no token ids to check")
    return outcomes


def test_prompt_ids_judges_only_prompt_ids_exchanges():
    view = suite_view([], [record("c")], [exchange(observation())])
    assert run("rendering.prompt_ids", view) == []
