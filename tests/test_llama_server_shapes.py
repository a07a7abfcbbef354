"""llama-server's answers, recorded from the real server (tests/data/llama_server, conformance checkpoint,
llama-cpp-python 0.3.36's llama.cpp, f32 GGUF), read as the verifier reads them; no server needed.

Each test is one of the verifier's old misreadings of this server: it must now read the answer as the
reference would have produced it.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from verifier import harmony
from verifier.drift.align import greedy_positions
from verifier.golden import load
from verifier.paths import golden_dir
from verifier.providers import Provider, _chat
from verifier.providers._completions import harmony_observation, logprob_ids

DATA = Path(__file__).parent / "data" / "llama_server"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _recorded(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_completion_text_hides_the_call_token_its_logprobs_do_not():
    """llama-server ignores `return_token_ids` and prints no end-of-generation token: from the text alone a
    correct `<|call|>` stop is invisible (finish_reason stop); the logprobs carry its id."""
    text_only = harmony_observation(0, _recorded("completion_tool_call_text.json"), "", False)
    assert harmony.CALL not in text_only.token_ids and text_only.finish_reason == "stop"
    with_ids = harmony_observation(0, _recorded("completion_tool_call_logprobs.json"), "", False)
    assert with_ids.token_ids[-1] == harmony.CALL
    assert with_ids.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in with_ids.tool_calls] == [("get_weather", {"city": "Paris"})]
    # the ids are the text's tokens plus the hidden stop, nothing else
    assert harmony.decode(with_ids.token_ids[:-1]) == _recorded("completion_tool_call_text.json")["choices"][0]["text"]


def test_logprob_ids_need_an_id_on_every_entry():
    entries = _recorded("completion_tool_call_logprobs.json")["choices"][0]["logprobs"]["content"]
    assert logprob_ids({"content": entries}) == [e["id"] for e in entries]
    assert logprob_ids({"content": [*entries[:-1], {"token": "", "logprob": 0.0}]}) is None
    assert logprob_ids({"tokens": ["a"], "token_logprobs": [0.0]}) is None  # vLLM's legacy form: no ids
    assert logprob_ids(None) is None


def test_chat_logprobs_with_empty_control_token_text_follow_golden():
    """End-of-turn tokens come with text "" and the right id: no departure from golden's greedy path."""
    answer = _recorded("chat_logprobs.json")
    obs = _chat.parse_response(answer, json.dumps(answer))
    assert obs.reasoning_fields == ["reasoning_content"]
    assert obs.logprobs[-1].token == "" and obs.logprobs[-1].token_id == harmony.RETURN
    turn = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "harmony.json").record("capital-france").turns[0]
    aligned, positions, departure = greedy_positions(turn, obs.logprobs, 1.0, obs.reasoning_logprobs)
    assert departure is None
    assert aligned.completion_token_ids[-1] == harmony.RETURN and positions[-1].token_logprob is not None


def _server(seen: list[tuple[str, dict]]) -> httpx.MockTransport:
    """The recorded answers of llama-server's prompt-id sources, as the real server gives them."""
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        seen.append((request.url.path, body))
        if request.url.path == "/v1/chat/completions":  # `return_token_ids` ignored: an ordinary answer
            return httpx.Response(200, json=_recorded("chat_logprobs.json"))
        if request.url.path == "/apply-template":
            return httpx.Response(200, json=_recorded("apply_template.json"))
        if request.url.path == "/tokenize" and "content" in body:
            return httpx.Response(200, json=_recorded("tokenize_content.json"))
        if request.url.path == "/tokenize":  # a chat body: no content, so no tokens
            return httpx.Response(200, json=_recorded("tokenize_chat_body.json"))
        return httpx.Response(404, json={"error": {"message": "not found"}})
    return httpx.MockTransport(handle)


def test_prompt_ids_come_from_apply_template_through_tokenize():
    seen: list[tuple[str, dict]] = []
    provider = Provider("http://llama.test/v1", "gpt-oss-conformance", transport=_server(seen))
    request = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": [WEATHER]}
    tokens, source = provider.prompt_token_ids(request)
    assert source == "apply_template" and provider.prompt_ids_mode == "apply_template"
    assert tokens == _recorded("tokenize_content.json")["tokens"]
    tokenized = next(body for path, body in seen if path == "/tokenize" and "content" in body)
    assert tokenized["content"] == _recorded("apply_template.json")["prompt"]
    assert tokenized["parse_special"] is True  # control tokens read as tokens, as the chat path reads them
    # the recorded ids are the server's rendering of this request: openai-harmony's, but for the date
    date = _recorded("apply_template.json")["prompt"].split("Current date: ")[1][:10]
    assert tokens == harmony.render_chat(request, date)


def test_logprob_ids_that_disagree_with_the_text_are_not_trusted():
    """Ids in logprobs replace the text only where they spell it (plus a hidden stop at the end)."""
    answer = _recorded("completion_tool_call_logprobs.json")
    entries = answer["choices"][0]["logprobs"]["content"]
    entries[3] = {**entries[3], "id": entries[3]["id"] + 1}  # one id that is not the text's token
    obs = harmony_observation(0, answer, "", False)
    assert obs.token_ids == harmony.encode_with_specials(answer["choices"][0]["text"])
    assert obs.finish_reason == "stop"  # back to what the text alone shows
