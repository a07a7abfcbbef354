"""Offline Harmony: vocabulary set-up, rendering of API requests, parsing of completions."""

from __future__ import annotations

import gzip

import pytest

from verifier import harmony
from verifier.errors import EncodingError

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


def test_responses_and_chat_bodies_render_identically():
    request = {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
                            {"role": "assistant", "content": None, "reasoning": "Think.",
                             "tool_calls": [{"id": "c9", "type": "function",
                                             "function": {"name": "get_weather", "arguments": "{}"}}]},
                            {"role": "tool", "tool_call_id": "c9", "content": "sunny"}],
               "tools": [WEATHER], "reasoning_effort": "low"}
    responses = harmony.chat_to_responses(request)
    assert responses["reasoning"] == {"effort": "low"} and responses["instructions"] == "Be brief."
    assert harmony.render_chat(harmony.responses_to_chat(responses)) == harmony.render_chat(request)


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
