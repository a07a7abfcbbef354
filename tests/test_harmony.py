"""Offline Harmony: vocabulary set-up, rendering of API requests, parsing of completions."""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import pytest
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params
from pydantic import TypeAdapter, ValidationError

from verifier import harmony
from verifier.errors import EncodingError
from verifier.observation import ToolCall
from verifier.suites import Case, available, load_suite

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def test_vocab_is_unpacked_verified_and_announced(tmp_path, monkeypatch):
    monkeypatch.delenv("TIKTOKEN_ENCODINGS_BASE", raising=False)
    folder = harmony.ensure_vocab(tmp_path / "enc")
    data = (folder / harmony.VOCAB_FILE).read_bytes()
    assert harmony._sha256(data) == harmony.O200K_SHA256
    import os

    assert os.environ["TIKTOKEN_ENCODINGS_BASE"] == str(folder)


def test_corrupt_cached_vocab_is_replaced(tmp_path):
    target = tmp_path / harmony.VOCAB_FILE
    target.write_bytes(b"not a vocabulary")
    harmony.ensure_vocab(tmp_path)
    assert harmony._sha256(target.read_bytes()) == harmony.O200K_SHA256


def test_wrong_bundled_hash_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(harmony, "_bundled_vocab", lambda: gzip.decompress(gzip.compress(b"tampered")))
    with pytest.raises(EncodingError, match="sha256"):
        harmony.ensure_vocab(tmp_path / "fresh")


def test_special_token_ids_match_the_encoding():
    enc = harmony.encoding()
    for text, token in [("<|return|>", harmony.RETURN), ("<|call|>", harmony.CALL), ("<|channel|>", harmony.CHANNEL),
                        ("<|start|>", harmony.START), ("<|end|>", harmony.END), ("<|message|>", harmony.MESSAGE),
                        ("<|constrain|>", harmony.CONSTRAIN)]:
        assert enc.encode(text, allowed_special="all") == [token]
    assert set(harmony.ASSISTANT_STOPS) == set(enc.stop_tokens_for_assistant_actions())


def test_chat_rendering_has_effort_date_instructions_and_tools():
    request = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
               "tools": [WEATHER], "reasoning_effort": "high"}
    text = harmony.decode(harmony.render_chat(request, "2026-01-02"))
    assert "Reasoning: high" in text
    assert "Current date: 2026-01-02" in text
    assert "<|start|>developer<|message|># Instructions\n\nBe brief." in text
    assert "type get_weather = (_: {" in text
    assert text.endswith("<|start|>user<|message|>Hi<|end|><|start|>assistant")


def test_default_effort_is_medium_and_tool_choice_none_hides_tools():
    request = {"messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER], "tool_choice": "none"}
    text = harmony.decode(harmony.render_chat(request))
    assert "Reasoning: medium" in text and "get_weather" not in text


def test_tool_loop_rendering_keeps_analysis_and_uses_constrain():
    request = {"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "reasoning": "Need the tool.",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"t":1}'}], "tools": [WEATHER]}
    text = harmony.decode(harmony.render_chat(request))
    assert "<|channel|>analysis<|message|>Need the tool.<|end|>" in text
    assert "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>" in text
    assert "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"t\":1}<|end|>" in text


def test_analysis_before_a_final_answer_is_dropped():
    request = {"messages": [{"role": "user", "content": "A?"},
                            {"role": "assistant", "content": "B.", "reasoning": "secret thought"},
                            {"role": "user", "content": "C?"}]}
    text = harmony.decode(harmony.render_chat(request))
    assert "secret thought" not in text and "<|channel|>final<|message|>B.<|end|>" in text


# -- Chat <-> Responses, against the OpenAI SDK's request types -------------------------------------------

RESPONSES_BODY = TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming)
CHAT_BODY = TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)

LOOP = {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
                     {"role": "assistant", "content": None, "reasoning": "Think.",
                      "tool_calls": [{"id": "c9", "type": "function",
                                      "function": {"name": "get_weather", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c9", "content": "sunny"}],
        "tools": [WEATHER], "reasoning_effort": "low"}
"""A tool-loop follow-up as the runner sends it: reasoning and a call sent back, then the result."""


def _drained(value):
    """A validated value with every lazily checked `Iterable` field (the SDK's `tools`, reasoning
    `content`, ...) iterated, which is when pydantic validates them."""
    if isinstance(value, dict):
        return {k: _drained(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Iterable):
        return [_drained(v) for v in value]
    return value


def _validate_responses(body: dict) -> dict:
    return _drained(RESPONSES_BODY.validate_python({"model": "m", **body}))


def _validate_chat(body: dict) -> dict:
    return _drained(CHAT_BODY.validate_python({"model": "m", **body}))


def _chat_requests() -> list[tuple[str, dict]]:
    cases = [(f"{name}/{case.id}", case.request) for name in available() for case in load_suite(name).cases]
    return [("tool-loop", LOOP), *cases]


@pytest.mark.parametrize("name,request_", _chat_requests(), ids=[n for n, _ in _chat_requests()])
def test_responses_bodies_are_openai_sdk_requests(name, request_):
    """Every Responses body the runner sends (each suite request, and a tool-loop follow-up) is a valid
    request by the OpenAI SDK's own types, and its Chat original a valid Chat request."""
    _validate_chat(request_)
    _validate_responses(harmony.chat_to_responses(request_))


def test_responses_body_carries_the_conversation():
    body = _validate_responses(harmony.chat_to_responses(LOOP))
    assert body["instructions"] == "Be brief." and body["reasoning"] == {"effort": "low"}
    items = body["input"]
    assert [i["type"] for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[1]["content"] == [{"type": "reasoning_text", "text": "Think."}]
    assert items[2]["call_id"] == items[3]["call_id"] == "c9" and items[2]["name"] == "get_weather"
    assert [t["name"] for t in body["tools"]] == ["get_weather"]


def test_responses_reasoning_items_carry_a_stable_id():
    """The SDK requires an `id` on a reasoning item sent back; the same conversation gets the same ids (a
    resumed run's journal keys hold), and two reasoning items in one conversation get two."""
    twice = {**LOOP, "messages": [*LOOP["messages"], {"role": "assistant", "content": "Sunny.", "reasoning": "Say."},
                                  {"role": "user", "content": "Thanks."}]}
    body = harmony.chat_to_responses(twice)
    ids = [item["id"] for item in body["input"] if item["type"] == "reasoning"]
    assert len(ids) == len(set(ids)) == 2 and all(i.startswith("rs_") for i in ids)
    assert harmony.chat_to_responses(twice) == body
    _validate_responses(body)


@pytest.mark.parametrize("strict, sent", [(None, False), (False, False), (True, True)])
def test_responses_tools_say_whether_strict(strict, sent):
    """`strict` is required in the SDK's Responses tools; an absent Chat `strict` (non-strict in Chat) is sent
    as false, since Responses reads an absent one as true."""
    function = {**WEATHER["function"], **({} if strict is None else {"strict": strict})}
    body = harmony.chat_to_responses({**LOOP, "tools": [{"type": "function", "function": function}]})
    assert body["tools"][0]["strict"] is sent
    _validate_responses(body)


def test_responses_bodies_render_as_their_chat_originals_on_the_server():
    """What the built-in provider does with the Responses body (ids and `strict` included): the same prompt
    as the Chat original."""
    for request in (LOOP, {**LOOP, "tools": [{"type": "function", "function": {**WEATHER["function"], "strict": True}}]}):
        assert harmony.render_chat(harmony.responses_to_chat(harmony.chat_to_responses(request))) == \
            harmony.render_chat(request)


def test_the_sdk_types_refuse_a_reasoning_item_without_id_or_a_tool_without_strict():
    """The validation above can fail: the shapes sent before (no reasoning `id`, no tool `strict`) are refused."""
    body = harmony.chat_to_responses(LOOP)
    no_id = {**body, "input": [{k: v for k, v in i.items() if k != "id"} for i in body["input"]]}
    no_strict = {**body, "tools": [{k: v for k, v in t.items() if k != "strict"} for t in body["tools"]]}
    for wrong in (no_id, no_strict):
        with pytest.raises(ValidationError):
            _validate_responses(wrong)


# -- reasoning inline in Chat content (`<reasoning>…</reasoning>`) ----------------------------------------


@pytest.mark.parametrize("text, reasoning, answer", [
    ("<reasoning>Think.</reasoning>Hi.", "Think.", "Hi."),
    ("\n<reasoning>Think.</reasoning>\n\nHi.", "Think.", "Hi."),
    ("<reasoning>Think.</reasoning>", "Think.", None),
    ("<reasoning>Cut off", "Cut off", None),
    ("Hi. <reasoning>Think.</reasoning>", None, "Hi. <reasoning>Think.</reasoning>"),
    ("The <reasoning> tag.", None, "The <reasoning> tag."),
    ("<reasoning></reasoning>Hi.", None, "Hi."),
    (None, None, None),
])
def test_split_inline_reasoning(text, reasoning, answer):
    assert harmony.split_inline_reasoning(text) == (reasoning, answer)


def test_inline_reasoning_sent_back_renders_as_a_reasoning_field():
    """A tool-loop follow-up for a host that returned reasoning inline carries it back inline, as a client
    does; rendered (and turned into a Responses body) it is the same conversation as with a field."""
    case = Case(id="c", request={k: v for k, v in LOOP.items() if k != "messages"} | {"messages": LOOP["messages"][:2]},
                tool_results={"get_weather": "sunny"})
    calls = [ToolCall(id="c9", name="get_weather", arguments="{}")]
    inline = case.follow_up(case.request, "Think.", calls, harmony.INLINE_REASONING)
    field = case.follow_up(case.request, "Think.", calls, "reasoning")
    assert inline["messages"][2]["content"] == "<reasoning>Think.</reasoning>" and "reasoning" not in inline["messages"][2]
    assert field == LOOP
    assert harmony.render_chat(inline) == harmony.render_chat(field)
    assert harmony.chat_to_responses(inline) == harmony.chat_to_responses(field)
    _validate_chat(inline)


def test_responses_named_tool_choice_has_the_responses_form():
    named = {**LOOP, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    body = _validate_responses(harmony.chat_to_responses(named))
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert harmony.responses_to_chat(body)["tool_choice"] == named["tool_choice"]


@pytest.mark.parametrize("choice, problem", [
    ({"type": "function", "name": "get_weather"}, False), ("required", False), ("auto", False), (None, False),
    ({"type": "function", "function": {"name": "get_weather"}}, True), ({"type": "function"}, True),
])
def test_a_responses_server_takes_only_the_responses_form_of_a_named_choice(choice, problem):
    assert (harmony.responses_tool_choice_problem(choice) is not None) == problem


def test_responses_written_by_hand_render_as_their_chat_twin():
    """The server side: a Responses body in the SDK's form, written by hand, renders as the same
    conversation written as a Chat body."""
    responses = {"instructions": "Be brief.", "reasoning": {"effort": "low"},
                 "tools": [{"type": "function", "name": "get_weather", "description": "Weather.", "strict": None,
                            "parameters": WEATHER["function"]["parameters"]}],
                 "tool_choice": {"type": "function", "name": "get_weather"},
                 "input": [{"type": "message", "role": "user", "content": "Weather?"},
                           {"type": "reasoning", "id": "rs_1", "summary": [],
                            "content": [{"type": "reasoning_text", "text": "Think."}]},
                           {"type": "function_call", "call_id": "c9", "name": "get_weather", "arguments": "{}"},
                           {"type": "function_call_output", "call_id": "c9", "output": "sunny"}]}
    _validate_responses(responses)
    chat = {**LOOP, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    _validate_chat(chat)
    converted = harmony.responses_to_chat(responses)
    assert converted["tool_choice"] == chat["tool_choice"]
    assert harmony.render_chat(converted) == harmony.render_chat(chat)


def test_parse_completion_reads_tool_call_and_trailing_tokens():
    tokens = harmony.encode_with_specials(
        '<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather'
        ' <|constrain|>json<|message|>{"city":"Paris"}<|call|>extra')
    parsed = harmony.parse_completion(tokens)
    assert parsed.reasoning == "Think." and parsed.stop_token == harmony.CALL
    assert [(c.recipient, c.text) for c in parsed.tool_calls] == [("functions.get_weather", '{"city":"Paris"}')]
    assert parsed.trailing_tokens == len(harmony.encode("extra"))


def test_parse_completion_accepts_recipient_in_role_section():
    tokens = harmony.encode_with_specials(
        '<|channel|>analysis<|message|>T.<|end|><|start|>assistant to=functions.f<|channel|>commentary<|constrain|>json'
        '<|message|>{}<|call|>')
    assert [c.recipient for c in harmony.parse_completion(tokens).tool_calls] == ["functions.f"]


def test_parse_completion_reports_malformed_tokens_instead_of_raising():
    tokens = harmony.encode_with_specials("<|channel|>analysis<|message|>T.<|end|>garbage<|message|>x")
    parsed = harmony.parse_completion(tokens)
    assert parsed.error and parsed.reasoning == "T."


def test_content_spans_and_channels():
    tokens = harmony.encode_with_specials("<|channel|>analysis<|message|>a b<|end|><|start|>assistant<|channel|>final<|message|>c<|return|>")
    spans = harmony.content_spans(tokens)
    assert [s.channel for s in spans] == ["analysis", "final"]
    assert harmony.decode(tokens[spans[1].start:spans[1].end]) == "c"


@pytest.mark.parametrize("text,leaks", [
    ("The capital is Paris.", []),
    ("analysis thinking assistantfinal The answer", ["assistantfinal"]),
    ("<|channel|>commentary to=functions.x", ["<|channel|>"]),
    (None, []),
])
def test_leaked_markers(text, leaks):
    assert harmony.leaked_markers(text) == leaks


def test_plain_encode_never_produces_control_tokens():
    assert harmony.CALL not in harmony.encode("<|call|>")


def test_the_builtin_responses_endpoint_refuses_the_chat_form_of_a_named_choice(provider):
    """The built-in provider answers as OpenAI's Responses API does: the Responses form forces the named
    function; the Chat form is a malformed request (400), so a verifier that sent it would be caught."""
    case = next(c for c in load_suite("tools").cases if c.id == "tool-choice-named")
    body = harmony.chat_to_responses(case.request)
    forced = provider.responses(body)
    assert forced.ok and [c.name for c in forced.tool_calls] == ["get_weather"]
    chat_form = provider.responses({**body, "tool_choice": case.request["tool_choice"]})
    assert chat_form.status == 400 and "tool_choice.name" in chat_form.failure.message


# -- response_format: the `# Response Formats` section of the developer message ----------------------------

SHOPPING_SCHEMA = {"properties": {"items": {"type": "array", "description": "entries on the shopping list",
                                            "items": {"type": "string"}}}, "type": "object"}
SHOPPING = {"messages": [{"role": "system", "content": "You are a helpful shopping assistant"},
                         {"role": "user", "content": "I need to buy coffee, soda and eggs"}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "shopping_list", "schema": SHOPPING_SCHEMA}}}
"""The Harmony guide's own structured-output example (OpenAI cookbook, "OpenAI harmony response format",
section "Structured output"), as a Chat request."""


def _developer_part(request: dict) -> str:
    text = harmony.decode(harmony.render_chat(request))
    return text[text.index("<|start|>developer"):]


def test_response_format_renders_the_harmony_guides_example_exactly():
    """The guide's developer message for a shopping-list schema, character for character: the section after the
    instructions, `## {name}`, and the schema as compact JSON in the order its keys were given."""
    assert _developer_part(SHOPPING) == (
        "<|start|>developer<|message|># Instructions\n\nYou are a helpful shopping assistant\n\n"
        "# Response Formats\n\n## shopping_list\n\n"
        '{"properties":{"items":{"type":"array","description":"entries on the shopping list",'
        '"items":{"type":"string"}}},"type":"object"}<|end|>'
        "<|start|>user<|message|>I need to buy coffee, soda and eggs<|end|><|start|>assistant")


def test_response_format_description_is_a_comment_line_before_the_schema():
    """The guide's template: `## {format name}`, a blank line, `// {description or context}`, then the schema."""
    spec = {**SHOPPING["response_format"]["json_schema"], "description": "What to buy", "strict": True}
    request = {**SHOPPING, "response_format": {"type": "json_schema", "json_schema": spec}}
    assert "## shopping_list\n\n// What to buy\n{\"properties\":" in _developer_part(request)
    assert '"strict"' not in _developer_part(request)


def test_response_format_goes_at_the_end_of_the_developer_message_after_the_tools():
    text = _developer_part({**SHOPPING, "tools": [WEATHER]})
    assert text.index("# Instructions") < text.index("# Tools") < text.index("# Response Formats")
    assert text.index("# Response Formats") > text.index("} // namespace functions\n\n")
    assert '"type":"object"}<|end|><|start|>user' in text


def test_response_format_alone_makes_a_developer_message_of_its_own():
    request = {**SHOPPING, "messages": SHOPPING["messages"][1:]}
    assert _developer_part(request).startswith("<|start|>developer<|message|># Response Formats\n\n## shopping_list")


@pytest.mark.parametrize("response_format", [None, {"type": "text"}, {"type": "json_object"}])
def test_text_and_json_object_formats_render_nothing(response_format):
    """No schema, no section: `text` and `json_object` render as a request without `response_format`."""
    plain = {k: v for k, v in SHOPPING.items() if k != "response_format"}
    request = plain if response_format is None else {**plain, "response_format": response_format}
    assert harmony.render_chat(request) == harmony.render_chat(plain)
    assert "# Response Formats" not in harmony.decode(harmony.render_chat(request))


def test_response_format_schema_keeps_non_ascii_text():
    schema = {"type": "object", "properties": {"ville": {"type": "string", "enum": ["Zürich", "東京"]}}}
    request = {**SHOPPING, "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}}
    assert '"enum":["Zürich","東京"]' in _developer_part(request)


@pytest.mark.parametrize("response_format", [
    SHOPPING["response_format"],
    {"type": "json_schema", "json_schema": {**SHOPPING["response_format"]["json_schema"], "description": "d",
                                            "strict": True}},
    {"type": "json_object"}, {"type": "text"},
])
def test_response_format_is_text_format_in_responses_and_renders_the_same(response_format):
    """Chat `response_format` is Responses `text.format` (flat: name and schema beside type), a valid body by the
    OpenAI SDK's types, and the server side renders it as the Chat original."""
    chat = {**SHOPPING, "response_format": response_format}
    _validate_chat(chat)
    body = _validate_responses(harmony.chat_to_responses(chat))
    assert body["text"]["format"]["type"] == response_format["type"]
    if response_format["type"] == "json_schema":
        assert body["text"]["format"]["name"] == "shopping_list" and body["text"]["format"]["schema"] == SHOPPING_SCHEMA
    assert harmony.responses_to_chat(body)["response_format"] == response_format
    assert harmony.render_chat(harmony.responses_to_chat(body)) == harmony.render_chat(chat)


def test_every_api_variant_carries_the_response_format_to_the_builtin_provider(provider):
    """Chat sends `response_format`, Responses `text.format`, Completions the prompt rendered with the section: the
    built-in provider's prompt grows by exactly the section's tokens on each (the date cancels out)."""
    plain = {**{k: v for k, v in SHOPPING.items() if k != "response_format"}, "max_tokens": 1, "temperature": 0}
    structured = {**plain, "response_format": SHOPPING["response_format"]}
    section = len(harmony.render_chat(structured)) - len(harmony.render_chat(plain))
    assert section > len(harmony.encode("# Response Formats"))

    def grown(send) -> int:
        return send(structured).usage.prompt_tokens - send(plain).usage.prompt_tokens

    assert grown(provider.chat) == section
    assert grown(lambda body: provider.responses({**harmony.chat_to_responses(body), "max_output_tokens": 1})) == section
    assert grown(lambda body: provider.completions_harmony(harmony.render_chat(body), 1)) == section
