"""Provider parsing edge cases, with httpx.MockTransport (no server): streams fold into the same
observation as non-streamed responses; malformed answers become errors, not verdicts."""

from __future__ import annotations

import json

import httpx
import pytest

from verifier.errors import ProviderError
from verifier.providers import Provider, ScoringUnsupported


def _provider(handler) -> Provider:
    return Provider("http://test/v1", "m", transport=httpx.MockTransport(handler))


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
    assert obs.error and "response.completed" in obs.error


def test_http_errors_become_error_observations_with_status():
    obs = _provider(lambda r: httpx.Response(500, json={"error": {"message": "parser crashed"}})).chat({"messages": []})
    assert obs.status == 500 and "parser crashed" in obs.error and not obs.ok


def test_non_json_body_is_a_protocol_error():
    obs = _provider(lambda r: httpx.Response(200, text="<html>hi</html>")).chat({"messages": []})
    assert obs.error and "did not answer with JSON" in obs.error


def test_malformed_stream_event_is_a_protocol_error():
    body = b"data: {\"choices\": [\n\ndata: [DONE]\n\n"
    obs = _provider(lambda r: httpx.Response(200, content=body)).chat({"messages": []}, stream=True)
    assert obs.error and "not JSON" in obs.error


def test_transport_failure_is_an_error_without_status():
    def handler(request):
        raise httpx.ConnectError("refused")

    obs = _provider(handler).chat({"messages": []})
    assert obs.status is None and "ConnectError" in obs.error


def test_models_rejects_a_non_openai_endpoint():
    with pytest.raises(ProviderError, match="model list"):
        _provider(lambda r: httpx.Response(200, json={"hello": "world"})).models()


def test_score_prefers_prompt_logprobs_then_falls_back_to_echo():
    tokens, start = [5, 6, 7], 1
    seen = []

    def handler(request):
        body = json.loads(request.content)
        seen.append("prompt_logprobs" if "prompt_logprobs" in body else "echo")
        if "prompt_logprobs" in body:
            return httpx.Response(400, json={"error": {"message": "unknown field"}})
        from verifier import harmony
        texts = [harmony.token_text(t) for t in tokens]
        return httpx.Response(200, json={"choices": [{"logprobs": {
            "tokens": texts, "token_logprobs": [None, -0.1, -0.2],
            "top_logprobs": [None, {texts[1]: -0.1}, {texts[2]: -0.2}]}}]})

    p = _provider(handler)
    result = p.score(tokens, start, 20, {1: [6], 2: [7]})
    assert result.mode == "echo_logprobs" and seen == ["prompt_logprobs", "echo"]
    assert [pos.token_logprob for pos in result.positions] == [-0.1, -0.2]
    assert result.positions[0].top == {6: -0.1}
    p.score(tokens, start, 20, {1: [6], 2: [7]})
    assert seen[-1] == "echo"  # remembered


def test_score_unsupported_is_reported():
    p = _provider(lambda r: httpx.Response(200, json={"choices": [{"text": "x"}]}))
    with pytest.raises(ScoringUnsupported, match="no teacher-forced"):
        p.score([1, 2], 1, 20, {})
