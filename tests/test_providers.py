"""Provider parsing edge cases, with httpx.MockTransport (no server): streams fold into the same
observation as non-streamed responses; malformed answers become failures of a kind, not verdicts."""

from __future__ import annotations

import json

import httpx
import pytest

from verifier import harmony
from verifier.capabilities import Capabilities
from verifier.checks import parsing
from verifier.checks.base import SuiteView
from verifier.errors import ProviderError, ProviderHTTPError, ScoringUnsupported, TokenizeUnsupported
from verifier.exchange import EarlierSend, Exchange
from verifier.observation import RESEND_ROUNDS, Failure, Observation
from verifier.providers import Provider, RetryPolicy
from verifier.providers._http import parse_retry_after
from verifier.verdict import Verdict

FAST = RetryPolicy(attempts=3, base_s=0.001, cap_s=0.002, max_retry_after_s=0.01, cooldown_s=60)


def _provider(handler, retry: RetryPolicy = FAST, api_key: str | None = None) -> Provider:
    return Provider("http://test/v1", "m", api_key, transport=httpx.MockTransport(handler), retry=retry)


def _sse(events: list[dict], named: bool = False) -> bytes:
    out = []
    for e in events:
        if named:
            out.append(f"event: {e['type']}")
        out.append(f"data: {json.dumps(e)}\n")
    if not named:
        out.append("data: [DONE]\n")
    return "\n".join(out).encode()


CHAT = {"choices": [{"message": {"role": "assistant", "content": None, "reasoning_content": "Think.",
                                 "tool_calls": [{"id": "c1", "type": "function",
                                                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                     "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 2}},
        "created": 1}

CHUNKS = [
    {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}], "created": 1},
    {"choices": [{"delta": {"reasoning_content": "Thi"}}]},
    {"choices": [{"delta": {"reasoning_content": "nk."}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                            "function": {"name": "get_weather", "arguments": ""}}]}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}}]},
    {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": CHAT["usage"]},
]


def _same(a, b) -> None:
    for field in ("content", "reasoning", "reasoning_fields", "tool_calls", "finish_reason", "usage"):
        assert getattr(a, field) == getattr(b, field), field


def test_chat_stream_accumulates_to_the_non_stream_observation():
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("stream"):
            assert body["stream_options"] == {"include_usage": True}
            return httpx.Response(200, content=_sse(CHUNKS), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=CHAT)

    p = _provider(handler)
    plain, streamed = p.chat({"messages": []}), p.chat({"messages": []}, stream=True)
    _same(plain, streamed)
    assert streamed.stream and streamed.events == len(CHUNKS)
    assert plain.tool_calls[0].arguments == '{"city":"Paris"}' and plain.reasoning_fields == ["reasoning_content"]


def test_chat_reasoning_field_variants_are_reported():
    data = json.loads(json.dumps(CHAT))
    message = data["choices"][0]["message"]
    message["reasoning"] = message.pop("reasoning_content")
    obs = _provider(lambda r: httpx.Response(200, json=data)).chat({"messages": []})
    assert obs.reasoning == "Think." and obs.reasoning_fields == ["reasoning"]


def test_non_string_arguments_are_serialised():
    data = json.loads(json.dumps(CHAT))
    data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris"}
    obs = _provider(lambda r: httpx.Response(200, json=data)).chat({"messages": []})
    assert json.loads(obs.tool_calls[0].arguments) == {"city": "Paris"}


RESPONSE = {"status": "completed", "created_at": 2, "output": [
    {"type": "reasoning", "content": [{"type": "reasoning_text", "text": "Think."}], "summary": []},
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'}],
    "usage": {"input_tokens": 10, "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}}}
EVENTS = [
    {"type": "response.created", "response": {"status": "in_progress"}},
    {"type": "response.output_item.added", "item": {"type": "reasoning", "id": "r"}},
    {"type": "response.reasoning_text.delta", "item_id": "r", "delta": "Thi"},
    {"type": "response.reasoning_text.delta", "item_id": "r", "delta": "nk."},
    {"type": "response.output_item.added", "item": {"type": "function_call", "id": "f", "call_id": "c1",
                                                    "name": "get_weather", "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "item_id": "f", "delta": '{"city":'},
    {"type": "response.function_call_arguments.delta", "item_id": "f", "delta": '"Paris"}'},
    {"type": "response.completed", "response": RESPONSE},
]


def test_responses_stream_accumulates_to_the_non_stream_observation():
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=_sse(EVENTS, named=True))
        return httpx.Response(200, json=RESPONSE)

    p = _provider(handler)
    plain, streamed = p.responses({"input": "x"}), p.responses({"input": "x"}, stream=True)
    _same(plain, streamed)
    assert plain.finish_reason == "tool_calls" and plain.reasoning_fields == ["reasoning_text"]


def test_responses_stream_without_completion_is_an_error():
    obs = _provider(lambda r: httpx.Response(200, content=_sse(EVENTS[:-1], named=True))).responses({}, stream=True)
    assert obs.failure.kind == "unavailable" and "cut short" in obs.failure.message


def test_http_errors_become_error_observations_with_status():
    obs = _provider(lambda r: httpx.Response(500, json={"error": {"message": "parser crashed"}})).chat({"messages": []})
    assert obs.status == 500 and "parser crashed" in obs.failure.message and not obs.ok


def test_non_json_body_is_a_protocol_error():
    obs = _provider(lambda r: httpx.Response(200, text="<html>hi</html>")).chat({"messages": []})
    assert obs.failure.kind == "protocol" and "did not answer with JSON" in obs.failure.message


def test_malformed_stream_event_is_a_protocol_error():
    body = b"data: {\"choices\": [\n\ndata: [DONE]\n\n"
    obs = _provider(lambda r: httpx.Response(200, content=body)).chat({"messages": []}, stream=True)
    assert obs.failure.kind == "protocol" and "not JSON" in obs.failure.message


def test_transport_failure_is_an_error_without_status():
    def handler(request):
        raise httpx.ConnectError("refused")

    obs = _provider(handler).chat({"messages": []})
    assert obs.status is None and obs.failure.kind == "unavailable" and "ConnectError" in obs.failure.message


def test_models_rejects_a_non_openai_endpoint():
    with pytest.raises(ProviderError, match="model list"):
        _provider(lambda r: httpx.Response(200, json={"hello": "world"})).models()


def _echo_only(tokens: list[int], seen: list[str], refusal: int):
    """A host that answers `prompt_logprobs` with the status `refusal` and scores the prompt by echo."""
    def handler(request):
        body = json.loads(request.content)
        seen.append("prompt_logprobs" if "prompt_logprobs" in body else "echo")
        if "prompt_logprobs" in body:
            return httpx.Response(refusal, json={"error": {"message": "unknown field" if refusal < 500
                                                           else "internal error"}})
        texts = [harmony.token_text(t) for t in tokens]
        return httpx.Response(200, json={"choices": [{"logprobs": {
            "tokens": texts, "token_logprobs": [None, -0.1, -0.2],
            "top_logprobs": [None, {texts[1]: -0.1}, {texts[2]: -0.2}]}}]})
    return handler


def test_score_prefers_prompt_logprobs_then_falls_back_to_echo():
    tokens, start, seen = [5, 6, 7], 1, []
    p = _provider(_echo_only(tokens, seen, 400))
    result = p.score(tokens, start, 20, {1: [6], 2: [7]})
    assert result.mode == "echo_logprobs" and seen == ["prompt_logprobs", "echo"]
    assert [pos.token_logprob for pos in result.positions] == [-0.1, -0.2]
    assert result.positions[0].top == {6: -0.1}
    p.score(tokens, start, 20, {1: [6], 2: [7]})
    assert seen[-1] == "echo"  # remembered


def test_score_moves_past_a_server_error_on_an_unconfirmed_mode():
    tokens, seen = [5, 6, 7], []
    p = _provider(_echo_only(tokens, seen, 500))
    result = p.score(tokens, 1, 20, {1: [6], 2: [7]})
    assert result.mode == "echo_logprobs" and seen == ["prompt_logprobs"] * 3 + ["echo"]  # 3 attempts, then on


def test_score_raises_a_server_error_on_a_mode_the_probe_confirmed():
    tokens, seen = [5, 6, 7], []
    p = _provider(_echo_only(tokens, seen, 500))
    p.capabilities = Capabilities(completions=True, token_id_prompts=True, prompt_logprobs=20, echo_logprobs=20)
    with pytest.raises(ProviderHTTPError) as raised:
        p.score(tokens, 1, 20, {1: [6], 2: [7]})
    assert raised.value.status == 500 and set(seen) == {"prompt_logprobs"}  # no weaker method chosen by chance


def test_score_raises_the_server_error_when_no_mode_works():
    p = _provider(lambda r: httpx.Response(500, json={"error": {"message": "internal error"}}))
    with pytest.raises(ProviderHTTPError):  # an error, not "unsupported"
        p.score([1, 2], 1, 20, {})


def test_score_unsupported_is_reported():
    p = _provider(lambda r: httpx.Response(200, json={"choices": [{"text": "x"}]}))
    with pytest.raises(ScoringUnsupported, match="no teacher-forced"):
        p.score([1, 2], 1, 20, {})


# -- retries, outages, caps, secrets (transport edge cases; the real thing is tests/test_reliability.py) --

CHAT_OK = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}


def _flaky(failures: list):
    """A handler that answers each queued failure once, then succeeds; records every request."""
    seen = []

    def handler(request):
        seen.append(request)
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return httpx.Response(200, json=CHAT_OK)

    return handler, seen


@pytest.mark.parametrize("failure", [
    httpx.Response(429, headers={"retry-after": "0"}, json={}), httpx.Response(503, text="busy"),
    httpx.Response(500, text="oops"), httpx.Response(502), httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("peer closed connection"),
])
def test_transient_failures_are_retried(failure):
    handler, seen = _flaky([failure, failure])
    obs = _provider(handler).chat({"messages": []})
    assert obs.ok and obs.content == "hi" and len(seen) == 3


def test_client_errors_are_not_retried():
    handler, seen = _flaky([httpx.Response(400, json={"error": "bad"})])
    obs = _provider(handler).chat({"messages": []})
    assert obs.status == 400 and obs.failure.kind == "http_status" and len(seen) == 1


def test_spent_attempts_make_an_unavailable_observation_not_a_verdict():
    handler, seen = _flaky([httpx.Response(503, text="down")] * 10)
    obs = _provider(handler).chat({"messages": []})
    assert obs.failure.kind == "unavailable" and obs.status == 503 and len(seen) == 3
    assert "after 3 attempts" in obs.failure.message


def test_a_persistent_500_is_the_providers_answer():
    handler, seen = _flaky([httpx.Response(500, text="parser crashed")] * 10)
    obs = _provider(handler).chat({"messages": []})
    assert obs.status == 500 and obs.failure.kind == "http_status" and len(seen) == 3


def test_retry_after_is_honoured_up_to_its_cap(monkeypatch):
    sleeps = []
    monkeypatch.setattr("verifier.providers._http.time.sleep", sleeps.append)
    handler, _ = _flaky([httpx.Response(429, headers={"retry-after": "7"}), httpx.Response(429, headers={"retry-after": "900"})])
    policy = RetryPolicy(attempts=3, base_s=0.001, cap_s=0.002, max_retry_after_s=60)
    assert _provider(handler, policy).chat({"messages": []}).ok
    assert sleeps == [7.0, 60.0]


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 25 Nov 2026 10:00:10 GMT", now=1795600800.0) == 10.0


def test_backoff_is_capped_exponential_with_full_jitter():
    import random

    policy, rng = RetryPolicy(base_s=1.0, cap_s=5.0), random.Random(0)
    delays = {n: [policy.delay(n, None, rng) for _ in range(500)] for n in (1, 2, 3, 6)}
    assert max(delays[1]) <= 1.0 and max(delays[2]) <= 2.0 and max(delays[6]) <= 5.0
    assert min(delays[3]) < 0.5 < 3.5 < max(delays[3])  # jitter spreads over [0, 4]


def test_circuit_opens_after_consecutive_outages_and_stops_sending():
    handler, seen = _flaky([httpx.ConnectError("refused")] * 1000)
    provider = _provider(handler, RetryPolicy(attempts=2, base_s=0.0, cap_s=0.0, breaker=3, cooldown_s=60))
    observations = [provider.chat({"messages": []}) for _ in range(10)]
    assert all(o.failure.kind == "unavailable" for o in observations)
    assert len(seen) == 6 and "circuit open" in observations[-1].failure.message


def test_circuit_lets_a_probe_through_after_cooldown():
    handler, seen = _flaky([httpx.ConnectError("refused")] * 2)
    provider = _provider(handler, RetryPolicy(attempts=1, base_s=0.0, cap_s=0.0, breaker=2, cooldown_s=0.0))
    assert [provider.chat({"messages": []}).ok for _ in range(3)] == [False, False, True]


def test_streams_cut_short_are_retried():
    cut = _sse([{"choices": [{"delta": {"content": "h"}}]}]).replace(b"data: [DONE]\n", b"")
    whole = _sse([{"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}])
    handler, seen = _flaky([httpx.Response(200, content=cut)])
    failures_then_whole = handler

    def answer(request):
        response = failures_then_whole(request)
        return response if response.status_code != 200 or len(seen) == 1 else httpx.Response(200, content=whole)

    obs = _provider(answer).chat({"messages": []}, stream=True)
    assert obs.ok and obs.content == "hi" and len(seen) == 2


def test_oversized_bodies_are_refused_without_retry():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, content=b"x" * 2048)

    provider = _provider(handler)
    provider.http.max_body_bytes = 1024
    obs = provider.chat({"messages": []})
    assert obs.failure.kind == "protocol" and "exceeds 1024 bytes" in obs.failure.message and len(seen) == 1


def test_an_echoed_api_key_is_scrubbed_from_everything_kept():
    key = "sk-test-0123456789abcdef"

    def handler(request):
        assert request.headers["authorization"] == f"Bearer {key}"
        return httpx.Response(200, json={"choices": [{"message": {"content": f"your key is {key}"}}]})

    obs = _provider(handler, api_key=key).chat({"messages": []})
    assert key not in obs.model_dump_json() and "[REDACTED]" in obs.content


def test_requests_carry_the_exchange_key():
    from verifier.providers import request_id

    handler, seen = _flaky([])
    with request_id("abc123"):
        _provider(handler).chat({"messages": []})
    assert seen[0].headers["x-client-request-id"] == "abc123"


def test_lone_surrogates_from_a_provider_become_replacement_characters():
    body = b'{"choices": [{"message": {"content": "a\\ud800b", "reasoning": "\\udfff"}}]}'
    obs = _provider(lambda r: httpx.Response(200, content=body)).chat({"messages": []})
    assert obs.content == "a\ufffdb" and obs.reasoning == "\ufffd"
    obs.model_dump_json()  # writable as UTF-8 (the journal's job)


def test_persistent_500s_do_not_open_the_circuit():
    handler, seen = _flaky([httpx.Response(500, text="parser crashed")] * 10)
    provider = _provider(handler, RetryPolicy(attempts=2, base_s=0.0, cap_s=0.0, breaker=3, cooldown_s=60))
    observations = [provider.chat({"messages": []}) for _ in range(6)]
    assert [o.status for o in observations[:5]] == [500] * 5 and observations[5].ok
    assert all(o.failure.kind == "http_status" for o in observations[:5]) and len(seen) == 11


# -- failure kinds: made once at the seam, read by kind downstream --------------------------------------------


def _seam_failure(handler, call) -> Failure:
    """The failure a provider call records (an observation's), or makes of what it raises (score, prompt ids)."""
    provider = _provider(handler)
    try:
        obs = call(provider)
    except ProviderError as exc:
        return Failure.of(exc)
    assert isinstance(obs, Observation) and not obs.ok
    return obs.failure


def _refused(_request):
    raise httpx.ConnectError("connection refused")


def score_call(provider: Provider):
    return provider.score([1, 2, 3], 1, 20, {})


def prompt_ids_call(provider: Provider):
    return provider.prompt_token_ids({"messages": []})


def chat_call(provider: Provider):
    return provider.chat({"messages": []})


@pytest.mark.parametrize("handler, call, kind, status, says", [
    (lambda r: httpx.Response(404, text="no such route"), score_call, "unsupported", None, "no teacher-forced"),
    (lambda r: httpx.Response(404, text="no such route"), prompt_ids_call, "unsupported", None, "no prompt token ids"),
    (lambda r: httpx.Response(429, headers={"retry-after": "0"}, text="slow down"), chat_call, "unavailable", 429,
     "HTTP 429"),
    (lambda r: httpx.Response(503, text="down"), score_call, "unavailable", 503, "after 3 attempts"),
    (lambda r: httpx.Response(500, text="parser crashed"), chat_call, "http_status", 500, "parser crashed"),
    (lambda r: httpx.Response(422, text="bad tool"), lambda p: p.responses({"input": "x"}), "http_status", 422,
     "HTTP 422"),
    (lambda r: httpx.Response(200, text='{"choices": ['), chat_call, "protocol", None, "did not answer with JSON"),
    (lambda r: httpx.Response(200, text="[1, 2]"), score_call, "protocol", None, "not an object"),
    (lambda r: httpx.Response(200, json={"choices": []}), chat_call, "protocol", None, "no choices"),
    (lambda r: httpx.Response(200, json={"choices": [{"text": ""}]}), lambda p: p.completions_harmony([1], 4),
     "protocol", None, "no text and no token ids"),
    (_refused, chat_call, "unavailable", None, "ConnectError"),
    (_refused, score_call, "unavailable", None, "ConnectError"),
])
def test_each_failure_kind_is_made_at_the_seam(handler, call, kind, status, says):
    failure = _seam_failure(handler, call)
    assert (failure.kind, failure.status) == (kind, status) and says in failure.message


def test_unsupported_endpoints_raise_the_unsupported_kinds():
    with pytest.raises(ScoringUnsupported) as scoring:
        score_call(_provider(lambda r: httpx.Response(404)))
    with pytest.raises(TokenizeUnsupported) as tokenize:
        prompt_ids_call(_provider(lambda r: httpx.Response(404)))
    assert scoring.value.kind == tokenize.value.kind == "unsupported"


def _exchange(failure: Failure | None = None, observation: Failure | None = None, variant: str = "chat",
              started: float | None = None) -> Exchange:
    answered = observation is None or observation.kind == "protocol"  # a protocol failure came with HTTP 200
    obs = Observation(api="chat", stream=False, status=200 if answered else observation.status, failure=observation)
    return Exchange(suite="s", case_id="c", variant=variant, turn=1, request={}, chat_request={}, key="k",
                    observation=None if variant == "score" else obs, failure=failure, started=started)


def test_an_exchange_failed_by_its_own_failure_or_its_observations():
    unavailable = Failure(kind="unavailable", message="HTTP 503", status=503)
    unsupported = Failure(kind="unsupported", message="no teacher-forced log-probabilities")
    assert _exchange(observation=unavailable).failed("unavailable")
    assert _exchange(failure=unsupported, variant="score").failed("unsupported")
    assert not _exchange(failure=unsupported, variant="score").failed("unavailable")
    assert not _exchange().failed("unavailable") and not _exchange().failed("unsupported")


def test_failures_survive_the_journal():
    ex = _exchange(observation=Failure(kind="http_status", message="HTTP 500 from x: boom", status=500))
    assert Exchange.model_validate_json(ex.model_dump_json()) == ex


@pytest.mark.parametrize("observation, kind, status", [
    ({"status": 503, "error": "HTTP 503 from x", "unavailable": True}, "unavailable", 503),
    ({"status": None, "error": "ConnectError while calling x", "unavailable": True}, "unavailable", None),
    ({"status": 500, "error": "HTTP 500 from x: boom"}, "http_status", 500),
    ({"status": 200, "error": "response has no choices"}, "protocol", None),
])
def test_journal_lines_of_the_previous_version_are_read_as_failures(observation, kind, status):
    line = {"suite": "s", "case_id": "c", "variant": "chat", "turn": 1, "request": {}, "chat_request": {},
            "unavailable": kind == "unavailable", "observation": {"api": "chat", "stream": False, **observation}}
    ex = Exchange.model_validate_json(json.dumps(line))
    assert not ex.observation.ok and (ex.observation.failure.kind, ex.observation.failure.status) == (kind, status)
    assert ex.observation.failure.message == observation["error"]


@pytest.mark.parametrize("flags, kind", [({"unsupported": True}, "unsupported"), ({"unavailable": True}, "unavailable"),
                                         ({}, "protocol")])
def test_score_journal_lines_of_the_previous_version_are_read_as_failures(flags, kind):
    line = {"suite": "s", "case_id": "c", "variant": "score", "turn": 1, "request": {}, "chat_request": {},
            "error": "no teacher-forced log-probabilities", **flags}
    assert Exchange.model_validate_json(json.dumps(line)).failed(kind)
    ok = {k: v for k, v in line.items() if k != "error"}
    assert Exchange.model_validate_json(json.dumps(ok)).failure is None


def _http_status(exchanges: list[Exchange]) -> list[tuple[str, str]]:
    view = SuiteView(suite=None, golden=None, exchanges=exchanges)  # http_status reads the exchanges only
    return [(o.verdict.value, o.message) for o in parsing.http_status(view)]


def _crashed_every_time(first_started: float) -> Exchange:
    """The re-send pass's last copy of an exchange answered with 500 on every attempt, every time (the first
    send and RESEND_ROUNDS re-sends: what it takes for a server error to be the provider's answer)."""
    crashed = Failure(kind="http_status", message="HTTP 500 from x: boom", status=500, history=[500, 500])
    again = _exchange(observation=crashed, started=first_started + 10)
    again.earlier = [EarlierSend(key="k" + "r" * i, started=first_started + i, failure=crashed)
                     for i in range(RESEND_ROUNDS)]
    return again


def test_http_status_judges_by_failure_kind():
    limited = Failure(kind="unavailable", message="HTTP 429 from x (after 5 attempts)", status=429)
    garbled = Failure(kind="protocol", message="response has no choices")
    outcomes = _http_status([_crashed_every_time(1.0), _exchange(observation=limited, started=2.0),
                             _exchange(observation=garbled, started=3.0), _exchange(started=4.0)])
    assert outcomes == [
        (Verdict.FAIL.value, f"HTTP 500 to a valid request on every attempt ({2 * (1 + RESEND_ROUNDS)}), again "
                             "when re-sent after the rest of the suite"),
        (Verdict.ERROR.value, "HTTP 429 to a valid request on every attempt: the provider was unavailable"),
        (Verdict.PASS.value, "2 of 4 requests answered with 200"),
    ]


def test_an_error_status_after_the_last_answer_is_an_outage_not_a_fail():
    assert _http_status([_exchange(started=1.0), _crashed_every_time(2.0)])[0][0] == "error"


def test_every_attempts_status_is_kept_on_the_failure():
    handler, seen = _flaky([httpx.Response(429, headers={"retry-after": "0"}), httpx.ConnectError("refused"),
                            httpx.Response(500, text="parser crashed")] * 3)
    obs = _provider(handler).chat({"messages": []})
    assert obs.failure.kind == "http_status" and obs.failure.history == [429, None, 500] and len(seen) == 3
    assert obs.failure.outage_seen
    handler, _ = _flaky([httpx.Response(500)] * 2 + [httpx.Response(400, text="bad")])
    assert _provider(handler).chat({"messages": []}).failure.history == [500, 500, 400]


# -- reasoning inline in content (`<reasoning>…</reasoning>`), as some hosts return it -------------------------


def _inline_chat(content: str, finish: str = "stop", calls: list | None = None) -> dict:
    message = {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}
    return {"choices": [{"message": message, "finish_reason": finish}], "created": 1}


def _content_chunks(pieces: list[str], finish: str = "stop") -> list[dict]:
    return ([{"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}], "created": 1}]
            + [{"choices": [{"delta": {"content": p}, "finish_reason": None}]} for p in pieces]
            + [{"choices": [{"delta": {}, "finish_reason": finish}]}])


def _plain_and_streamed(data: dict, chunks: list[dict]) -> tuple[Observation, Observation]:
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=_sse(chunks), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=data)

    p = _provider(handler)
    return p.chat({"messages": []}), p.chat({"messages": []}, stream=True)


def test_inline_reasoning_is_read_apart_from_the_answer_with_tags_split_across_deltas():
    plain, streamed = _plain_and_streamed(
        _inline_chat("<reasoning>The user asks about Paris.</reasoning>\n\nSunny in Paris."),
        _content_chunks(["<reas", "oning>The user", " asks about Paris.</", "reasoning", ">\n\nSunny", " in Paris."]))
    _same(plain, streamed)
    assert plain.reasoning == "The user asks about Paris." and plain.content == "Sunny in Paris."
    assert plain.reasoning_fields == ["inline"]


def test_inline_reasoning_before_a_tool_call_leaves_no_answer_text():
    calls = CHAT["choices"][0]["message"]["tool_calls"]
    obs = _provider(lambda r: httpx.Response(200, json=_inline_chat("<reasoning>Think.</reasoning>", "tool_calls",
                                                                    calls))).chat({"messages": []})
    assert (obs.reasoning, obs.content, obs.reasoning_fields) == ("Think.", None, ["inline"])
    assert obs.tool_calls[0].name == "get_weather"


def test_inline_reasoning_cut_off_before_its_closing_tag_is_all_reasoning():
    plain, streamed = _plain_and_streamed(_inline_chat("<reasoning>The user asks", "length"),
                                          _content_chunks(["<reasoning>The", " user asks"], "length"))
    _same(plain, streamed)
    assert (plain.reasoning, plain.content, plain.finish_reason) == ("The user asks", None, "length")


def test_empty_inline_reasoning_tags_are_no_part_of_the_answer():
    plain, streamed = _plain_and_streamed(_inline_chat("<reasoning></reasoning>Hi."),
                                          _content_chunks(["<reasoning>", "</reasoning>", "Hi."]))
    _same(plain, streamed)
    assert (plain.reasoning, plain.content, plain.reasoning_fields) == (None, "Hi.", ["inline"])


@pytest.mark.parametrize("answer", [
    "Wrap it as <reasoning>notes</reasoning> in the prompt.",
    "The tag is `<reasoning>`.",
    "Answer first.\n<reasoning>not reasoning</reasoning>",
])
def test_an_answer_that_mentions_the_tag_is_all_answer(answer):
    split = [answer[:9], answer[9:20], answer[20:]]
    plain, streamed = _plain_and_streamed(_inline_chat(answer), _content_chunks(split))
    _same(plain, streamed)
    assert (plain.content, plain.reasoning, plain.reasoning_fields) == (answer, None, [])


def test_a_reasoning_field_wins_over_a_tag_in_content():
    data = _inline_chat("<reasoning>x</reasoning>Hi.")
    data["choices"][0]["message"]["reasoning"] = "Think."
    obs = _provider(lambda r: httpx.Response(200, json=data)).chat({"messages": []})
    assert (obs.reasoning, obs.content, obs.reasoning_fields) == ("Think.", "<reasoning>x</reasoning>Hi.", ["reasoning"])
