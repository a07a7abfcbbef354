"""The built-in reference provider on loopback: every API, streamed or not, and the OpenAI SDK."""

from __future__ import annotations

import datetime
import statistics

import httpx
import pytest
from openai_harmony import (
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    load_harmony_encoding,
)

from verifier import harmony
from verifier.golden import load
from verifier.paths import golden_dir
from verifier.suites import load_suite

TOOLS = load_suite("tools")
WEATHER_CASE = TOOLS.cases[0].request


@pytest.fixture(scope="module")
def reference():
    """openai-harmony's own encoding (only the offline vocabulary comes from the verifier): the
    independent reference the built-in server's tokens are checked against."""
    harmony.ensure_vocab()
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def _weather_prompt(encoding, date: str) -> list[int]:
    """WEATHER_CASE as openai-harmony renders it, built by hand from its own message types."""
    fn = WEATHER_CASE["tools"][0]["function"]
    assert WEATHER_CASE["reasoning_effort"] == "low" and len(WEATHER_CASE["messages"]) == 1
    system = SystemContent.new().with_reasoning_effort(ReasoningEffort.LOW).with_conversation_start_date(date)
    developer = DeveloperContent.new().with_function_tools(
        [ToolDescription.new(fn["name"], fn["description"], fn["parameters"])])
    conversation = Conversation.from_messages([
        Message.from_role_and_content(Role.SYSTEM, system),
        Message.from_role_and_content(Role.DEVELOPER, developer),
        Message.from_role_and_content(Role.USER, WEATHER_CASE["messages"][0]["content"]),
    ])
    return encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)


def _fields(obs):
    return (obs.content, obs.reasoning, [(c.name, c.arguments) for c in obs.tool_calls], obs.finish_reason,
            obs.usage.prompt_tokens, obs.usage.completion_tokens)


def test_models_lists_the_served_model(provider):
    assert provider.models() == ["gpt-oss-conformance"]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_stream_and_non_stream_agree(provider, api):
    send = provider.chat if api == "chat" else provider.responses
    body = WEATHER_CASE if api == "chat" else harmony.chat_to_responses(WEATHER_CASE) | {"temperature": 0}
    plain, streamed = send(body), send(body, stream=True)
    assert plain.ok and streamed.ok
    assert _fields(plain) == _fields(streamed)
    assert plain.finish_reason == "tool_calls" and plain.tool_calls[0].name == "get_weather"


def test_chat_reports_reasoning_in_both_fields_and_usage(provider, reference):
    obs = provider.chat(WEATHER_CASE)
    assert obs.reasoning_fields == ["reasoning_content", "reasoning"]
    assert obs.usage.reasoning_tokens == len(reference.encode(obs.reasoning, disallowed_special=()))


def test_chat_answer_matches_golden_greedy(provider):
    golden = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "harmony.json")
    case = load_suite("harmony").cases[0]
    obs = provider.chat(case.request)
    turn = golden.record(case.id).turns[0]
    assert obs.content == turn.final and obs.reasoning == turn.reasoning
    assert obs.usage.completion_tokens == len(turn.completion_token_ids)


def test_completions_prompt_logprobs_equal_reference_scores(provider, engine):
    golden = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "drift.json")
    turn = golden.records[0].turns[0]
    tokens = turn.prompt_token_ids + turn.completion_token_ids
    start = len(turn.prompt_token_ids)
    result = provider.score(tokens, start, 20, {})
    assert result.mode == "prompt_logprobs"
    for ref, got in zip(turn.scores, result.positions):
        assert got.token_logprob == pytest.approx(ref.logprob, abs=1e-4)
        assert set(got.top) >= set(ref.top_ids[:5])


def test_completions_echo_logprobs_legacy_format(server):
    golden = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "drift.json")
    turn = golden.records[0].turns[0]
    tokens = turn.prompt_token_ids + turn.completion_token_ids
    r = httpx.post(f"{server.url}/completions", json={"model": "gpt-oss-conformance", "prompt": tokens,
                                                     "max_tokens": 0, "echo": True, "logprobs": 5}, timeout=60)
    lp = r.json()["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(tokens) and lp["token_logprobs"][0] is None
    assert lp["token_logprobs"][-1] == pytest.approx(turn.scores[-1].logprob, abs=1e-4)
    assert len(lp["top_logprobs"][-1]) == 5


def test_completions_harmony_round_trip(provider, reference):
    """A raw Harmony prompt from openai-harmony: the completion's token ids, parsed by openai-harmony's
    own parser, say what the reply's fields say, and end in its `<|call|>`."""
    prompt = _weather_prompt(reference, harmony.DEFAULT_DATE)
    plain, streamed = provider.completions_harmony(prompt, 200), provider.completions_harmony(prompt, 200, stream=True)
    assert plain.token_ids[-1] == reference.encode("<|call|>", allowed_special="all")[0]
    assert plain.finish_reason == "tool_calls"
    parsed = reference.parse_messages_from_completion_tokens(plain.token_ids, Role.ASSISTANT)
    analysis = [m.content[0].text for m in parsed if m.channel == "analysis"]
    calls = [(m.recipient, m.content[0].text) for m in parsed if m.recipient]
    assert [plain.reasoning] == analysis
    assert calls == [(f"functions.{c.name}", c.arguments) for c in plain.tool_calls] == [
        ("functions.get_weather", plain.tool_calls[0].arguments)]
    assert _fields(plain)[:4] == _fields(streamed)[:4]


@pytest.mark.parametrize("body,status,needle", [
    ({"model": "gpt-oss-conformance", "messages": []}, 400, "messages"),
    ({"model": "gpt-oss-conformance", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}, 400,
     "reasoning_effort"),
    ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404, "does not exist"),
    ({"model": "gpt-oss-conformance", "messages": [{"role": "user", "content": "x"}], "temperature": 9}, 400, "temperature"),
])
def test_bad_requests_get_openai_errors(server, body, status, needle):
    r = httpx.post(f"{server.url}/chat/completions", json=body, timeout=30)
    assert r.status_code == status and needle in r.json()["error"]["message"]


def test_non_json_body_is_a_400(server):
    r = httpx.post(f"{server.url}/chat/completions", content=b"{oops", timeout=30)
    assert r.status_code == 400


def test_openai_sdk_understands_every_api(server):
    import openai

    client = openai.OpenAI(base_url=server.url, api_key="unused")
    chat = client.chat.completions.create(model="gpt-oss-conformance", **WEATHER_CASE)
    assert chat.choices[0].finish_reason == "tool_calls"
    assert chat.choices[0].message.tool_calls[0].function.name == "get_weather"
    stream = client.chat.completions.create(model="gpt-oss-conformance", stream=True, **WEATHER_CASE)
    names = [tc.function.name for chunk in stream for c in chunk.choices for tc in (c.delta.tool_calls or [])
             if tc.function and tc.function.name]
    assert names == ["get_weather"]
    resp = client.responses.create(model="gpt-oss-conformance", temperature=0, **harmony.chat_to_responses(WEATHER_CASE))
    assert [item.type for item in resp.output] == ["reasoning", "function_call"]
    done = [e for e in client.responses.create(model="gpt-oss-conformance", stream=True, temperature=0,
                                               **harmony.chat_to_responses(WEATHER_CASE))
            if e.type == "response.completed"]
    assert done[0].response.output[1].name == "get_weather"
    comp = client.completions.create(model="gpt-oss-conformance", prompt=harmony.render_chat(WEATHER_CASE),
                                     max_tokens=200, temperature=0)
    assert comp.choices[0].finish_reason == "stop"


def test_sampling_is_seeded(provider):
    body = {**load_suite("harmony").cases[2].request, "temperature": 1.0, "seed": 7}
    assert provider.chat(body).reasoning == provider.chat(body).reasoning


def test_tokenize_renders_like_openai_harmony(server, reference):
    """/tokenize against openai-harmony's rendering of the same conversation, built without the verifier."""
    r = httpx.post(f"{server.url.removesuffix('/v1')}/tokenize", json={"model": "gpt-oss-conformance", **WEATHER_CASE},
                   timeout=30)
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert r.json()["tokens"] == _weather_prompt(reference, today)


def test_chat_usage_counts_the_openai_harmony_prompt(provider, reference):
    """usage.prompt_tokens of a Chat request equals the length of openai-harmony's rendering (today's date:
    the built-in server renders with its own date)."""
    obs = provider.chat(WEATHER_CASE)
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert obs.usage.prompt_tokens == len(_weather_prompt(reference, today))


def _tools_case(case_id: str):
    return next(case for case in load_suite("tools").cases if case.id == case_id)


def test_tool_choice_constraint_forces_the_header(engine):
    from verifier.reference import constraints

    request = _tools_case("tool-choice-required").request  # capital question, tool_choice required
    assert request["tool_choice"] == "required"
    prompt = harmony.render_chat(request)
    free = harmony.parse_completion(engine.generate(prompt, 200, harmony.ASSISTANT_STOPS).tokens)
    constraint = constraints.for_request(request)
    gen = engine.generate(prompt, 200, harmony.ASSISTANT_STOPS, transform=constraint)
    forced = harmony.parse_completion(gen.tokens)
    assert free.final and not free.tool_calls  # left alone, the model answers
    assert forced.tool_calls and forced.stop_token == harmony.CALL
    assert [gen.tokens[i] for i in gen.forced] == harmony.encode("commentary")
    assert constraints.for_request({**request, "tool_choice": "auto"}) is None
    assert constraints.for_request({**request, "tools": []}) is None


def test_named_tool_choice_forces_the_recipient(engine):
    from verifier.reference import constraints

    request = _tools_case("tool-choice-named").request  # capital question, get_weather named
    gen = engine.generate(harmony.render_chat(request), 200, harmony.ASSISTANT_STOPS,
                          transform=constraints.for_request(request))
    assert [c.recipient for c in harmony.parse_completion(gen.tokens).tool_calls] == ["functions.get_weather"]
    assert [gen.tokens[i] for i in gen.forced] == harmony.encode("commentary to=functions.get_weather")


def test_logprob_noise_changes_the_reported_numbers_not_the_tokens(engine, checkpoint):
    """The logprob-noise fault (faults.yaml) reports every log-probability plus N(0, 0.05²) nats; the tokens
    chosen, greedy or sampled, stay the model's."""
    from verifier.reference.engine import LOGPROB_NOISE_SD, Engine

    noisy = Engine(checkpoint, "fp32", model=engine.model, numeric_faults=frozenset({"logprob-noise"}))
    prompt = harmony.render_chat(WEATHER_CASE)
    honest, faulty = (e.generate(prompt, 40, harmony.ASSISTANT_STOPS, k=5) for e in (engine, noisy))
    assert faulty.tokens == honest.tokens
    errors = [f.logprob - h.logprob for f, h in zip(faulty.scored, honest.scored)]
    for f, h in zip(faulty.scored, honest.scored):
        reported = dict(zip(f.top.ids, f.top.logprobs))
        errors += [reported[t] - lp for t, lp in zip(h.top.ids, h.top.logprobs) if t in reported]
    assert 0.6 * LOGPROB_NOISE_SD < statistics.pstdev(errors) < 1.4 * LOGPROB_NOISE_SD
    sampled = [e.generate(prompt, 40, harmony.ASSISTANT_STOPS, temperature=1.0, seed=3).tokens for e in (engine, noisy)]
    assert sampled[0] == sampled[1]
