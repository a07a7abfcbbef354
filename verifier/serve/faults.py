"""Fault modes and server quirks of the built-in provider.

A fault reproduces a defect real gpt-oss providers shipped. The fault table is data, faults.yaml:
for each fault its `targets`, the checks that must fail with it on, and `may_also_fail`, the
collateral failures it may cause; the fault-matrix test holds every fault to that. A server quirk
(`--quirk`) is an honest behaviour a conforming server may have (reasoning in another field, a header
form the model may emit); with any quirk on, every check must still pass.

Each fault acts at one stage of handling a request: the request itself, the prompt rendering, the
decoding, or the reply built from the generated tokens. The functions below are those stages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from verifier import harmony
from verifier.errors import UsageError


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key in faults.yaml is an error, not dropped

    name: str
    mode: int
    """The failure mode it reproduces: 1-10 as in the behavioural-conformance issue (9: structured outputs), 11
    numerical drift."""
    kind: Literal["behaviour", "checkpoint", "numeric"] = "behaviour"
    """`behaviour` (request handling), `checkpoint` (a perturbed checkpoint is served) or `numeric`
    (the engine computes differently)."""
    description: str
    seen_in: str
    targets: list[str]
    """Check ids whose purpose is to catch this fault: each must fail with it on."""
    may_also_fail: list[str] = []
    """Check ids that may fail as a consequence (collateral), never by design."""
    run_args: list[str] = []
    """`gpt-oss-verify run` options needed to catch it: subtle drift needs every position scored."""
    undetected: str | None = None
    """Why no run of the shipped suites tells it from honest engines on the shipped checkpoint (measured);
    such a fault stays servable, for benchmarks and surfaces, and the fault matrix leaves it out."""


class Quirk(BaseModel):
    """An honest behaviour of a conforming server, which the built-in provider can switch on."""

    name: str
    description: str


TABLE = Path(__file__).with_name("faults.yaml")


def load_faults(path: Path = TABLE) -> dict[str, Fault]:
    """The fault table (faults.yaml): name -> Fault."""
    table = yaml.safe_load(path.read_text())
    return {name: Fault(name=name, **fields) for name, fields in table.items()}


FAULTS: dict[str, Fault] = load_faults()

QUIRKS: dict[str, Quirk] = {q.name: q for q in [
    Quirk(name="header-role-recipient", description="the model's tool header puts the recipient in the role "
            "section and <|constrain|> without a leading space (a correct parser accepts it)"),
    Quirk(name="reasoning-content-only", description="Chat reasoning only in `reasoning_content`"),
    Quirk(name="reasoning-only", description="Chat reasoning only in `reasoning`"),
    Quirk(name="responses-summary", description="Responses reasoning as `summary_text` (events "
            "`response.reasoning_summary_text.delta`)"),
    Quirk(name="no-prompt-logprobs", description="Completions refuses prompt_logprobs and echo (no teacher "
            "forcing): drift falls back to greedy top_logprobs"),
    Quirk(name="no-logprobs", description="no log-probabilities anywhere: drift falls back to sampling"),
    Quirk(name="fp32", description="`run` without a base URL: the built-in provider computes in fp32, the engine "
            "golden came from (drift zero up to golden's rounding), instead of bf16, an honest engine golden never saw"),
]}


def parse_names(faults: list[str] | None, quirks: list[str] | None = None) -> tuple[frozenset[str], frozenset[str]]:
    """Validate fault and server-quirk names (UsageError for an unknown one)."""
    for name in faults or []:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    if len([f for f in faults or [] if FAULTS[f].kind == "checkpoint"]) > 1:
        raise UsageError("at most one checkpoint fault at a time")
    for name in quirks or []:
        if name not in QUIRKS:
            raise UsageError(f"unknown server quirk {name!r}; known quirks: {', '.join(sorted(QUIRKS))}")
    return frozenset(faults or []), frozenset(quirks or [])


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


def emitted_tokens(tokens: list[int], faults: frozenset[str], quirks: frozenset[str]) -> list[int]:
    """The tokens as the model emitted them (quirky header forms are a property of the model)."""
    if "header-role-recipient" in quirks or "strict-header-parser" in faults:
        text = harmony.decode(tokens)
        text = _CANONICAL_CALL.sub(r"<|start|>assistant to=\1<|channel|>commentary<|constrain|>json<|message|>", text)
        return harmony.encode_with_specials(text)
    return tokens


def grammar_in_reasoning(chat_body: dict, tokens: list[int], faults: frozenset[str]) -> list[int]:
    """`grammar-in-reasoning`: a server that applies a `json_schema` response format's grammar from the first
    token, not from the final channel on, makes the model write the answer's JSON as its reasoning. Seen from
    outside: each analysis message of a turn that ends in a final answer carries that answer's JSON. Turns
    without such a format, or ending in a tool call, are left alone."""
    if "grammar-in-reasoning" not in faults or harmony.json_schema_format(chat_body) is None:
        return tokens
    final = harmony.parse_completion(tokens).final
    if final is None:
        return tokens
    out = list(tokens)
    for span in reversed(harmony.content_spans(tokens)):
        if span.channel == "analysis":
            out[span.start:span.end] = harmony.encode(final)
    return out


def strict_parse_fails(tokens: list[int]) -> bool:
    """Whether a parser that knows only the canonical tool header chokes on these tokens."""
    return "<|start|>assistant to=" in harmony.decode(tokens)


def visible_text(tokens: list[int]) -> str:
    """What a server that skips Harmony parsing and strips control tokens returns as content."""
    return harmony.decode([t for t in tokens if t < harmony.START_OF_TEXT])
