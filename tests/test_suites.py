"""Suites: loading, validation with file:line errors, the tool-loop follow-up."""

from __future__ import annotations

import json

import pytest

from verifier.errors import SuiteError
from verifier.observation import ToolCall
from verifier.suites import available, load_suite, reasoning_field


def test_shipped_suites_load():
    names = available()
    assert {"harmony", "tools", "structured", "effort", "drift"} <= set(names)
    for name in names:
        suite = load_suite(name)
        assert suite.cases and len(suite.sha256) == 64
        for case in suite.cases:
            assert "model" not in case.request


def _write(tmp_path, cases: str, meta: str = "name: x\nversion: 1\nfamilies: [parsing]\n"):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "suite.yaml").write_text(meta)
    (folder / "cases.jsonl").write_text(cases)
    return folder


@pytest.mark.parametrize("cases,message", [
    ('{"id": "a", "request": {"messages": [{"role": "user", "content": "hi"}]}}\n{not json\n', "cases.jsonl:2: not valid JSON"),
    ('{"id": "a", "request": {"messages": []}}\n', "request.messages must be a non-empty list"),
    ('{"id": "A b", "request": {"messages": [1]}}\n', "cases.jsonl:1: id"),
    ('{"id": "a", "request": {"messages": [1]}}\n{"id": "a", "request": {"messages": [1]}}\n', "duplicate case id"),
    ("", "no cases"),
])
def test_malformed_cases_name_file_and_line(tmp_path, cases, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(_write(tmp_path, cases))


def test_unknown_family_and_unknown_suite(tmp_path):
    with pytest.raises(SuiteError, match="unknown families"):
        load_suite(_write(tmp_path, '{"id":"a","request":{"messages":[1]}}\n', "name: x\nversion: 1\nfamilies: [vibes]\n"))
    with pytest.raises(SuiteError, match="unknown suite 'nope'"):
        load_suite("nope")


def test_follow_up_appends_calls_results_and_reasoning():
    case = load_suite("tools").cases[0]
    calls = [ToolCall(id="x1", name="get_weather", arguments='{"city":"Paris"}')]
    follow = case.follow_up(case.request, "Thinking.", calls)
    assistant, tool = follow["messages"][-2:]
    assert assistant["reasoning"] == "Thinking." and assistant["tool_calls"][0]["id"] == "x1"
    assert tool == {"role": "tool", "tool_call_id": "x1", "content": case.tool_results["get_weather"]}
    assert case.follow_up(case.request, None, [ToolCall(id="y", name="unknown", arguments="{}")]) is None
    assert case.follow_up(case.request, None, []) is None
    assert json.loads(json.dumps(follow)) == follow


def test_reasoning_goes_back_in_the_field_the_host_returned():
    assert reasoning_field(["reasoning_content"]) == "reasoning_content"
    assert reasoning_field(["reasoning"]) == "reasoning"
    assert reasoning_field(["reasoning_content", "reasoning"]) == "reasoning"  # both returned: either is taken
    assert reasoning_field(["reasoning_text"]) == reasoning_field([]) == "reasoning"  # Responses, none: Chat's own
    case = load_suite("tools").cases[0]
    calls = [ToolCall(id="x1", name="get_weather", arguments='{"city":"Paris"}')]
    assistant = case.follow_up(case.request, "Thinking.", calls, "reasoning_content")["messages"][-2]
    assert assistant["reasoning_content"] == "Thinking." and "reasoning" not in assistant


@pytest.mark.parametrize("quirks, field", [([], "reasoning"), (["reasoning-content-only"], "reasoning_content")])
def test_a_tool_loop_sends_reasoning_back_as_the_host_returned_it(checkpoint, tmp_path, quirks, field):
    """On a real server: the second turn of a Chat tool loop carries the first turn's reasoning in the
    field the server put it in (only `reasoning_content` with that quirk)."""
    from verifier.journal import Journal
    from verifier.providers import Provider
    from verifier.runner import BUILTIN_MODEL, Runner
    from verifier.serve import start_background

    suite = load_suite("tools")
    with start_background(checkpoint, BUILTIN_MODEL, quirks=quirks) as server:
        provider = Provider(server.url, BUILTIN_MODEL)
        loop = Runner(provider, Journal(tmp_path / "journal.jsonl")).run_loop(suite, suite.cases[0], "chat", "2026-01-01")
        provider.close()
    assert len(loop) >= 2, "the case's first turn calls a tool"
    assistant = loop[1].chat_request["messages"][-2]
    assert assistant["role"] == "assistant" and assistant[field] == loop[0].observation.reasoning
    assert set(assistant) & {"reasoning", "reasoning_content"} == {field}


def test_quick_profile_runs_the_cases_a_suite_tags_quick(tmp_path):
    case = '{{"id": "{}", "request": {{"messages": [{{"role": "user", "content": "hi"}}]}}{}}}'
    (tmp_path / "tagged").mkdir()
    (tmp_path / "untagged").mkdir()
    tagged = _write(tmp_path / "tagged", "\n".join([case.format("a", ', "quick": true'), case.format("b", ""),
                                                     case.format("c", ', "quick": true')]))
    suite = load_suite(tagged)
    assert [c.id for c in suite.for_profile("quick").cases] == ["a", "c"]
    assert suite.for_profile("quick").sha256 == suite.sha256  # the same suite: its golden file still applies
    assert [c.id for c in suite.for_profile("full").cases] == ["a", "b", "c"]
    untagged = load_suite(_write(tmp_path / "untagged", "\n".join([case.format("a", ""), case.format("b", "")])))
    assert [c.id for c in untagged.for_profile("quick").cases] == ["a", "b"]  # nothing tagged: the whole suite
