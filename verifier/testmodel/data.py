"""Training conversations for the conformance checkpoint.

Requests are drawn from the same shapes the shipped suites use (and include the suite requests
themselves), rendered the ways real servers render them: openai-harmony's canonical rendering with
any date or none, vLLM's (`commentary json` tool-call history, oss-harmony's tool-result header
with the recipient after the channel), and the recipient-after-channel tool-call header. The
completion is always the canonical Harmony the model must generate (see `oracle.Reply`).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from verifier import harmony
from verifier.testmodel import oracle

ALT_DESCRIPTIONS = {
    "get_weather": ["Get the current weather in a city.", "Look up the weather for a city.", ""],
    "convert_currency": ["Convert an amount of money from one currency to another.",
                         "Currency conversion.", ""],
}
FORCED_SHARE = 0.25
"""Share of requests with tools that force a call through tool_choice."""
INSTRUCTIONS = [
    "You are a helpful assistant.", "Answer briefly.", "You are a travel assistant.",
    "Always be polite.", "Reply in English.", "You are a concise assistant.",
]


@dataclass
class Example:
    """One training sequence: token ids and which positions carry loss."""

    tokens: list[int]
    loss_from: int
    """Index of the first completion token; loss is taken on tokens[loss_from:]."""
    no_loss: tuple[int, ...] = ()
    """Completion positions a decoding constraint forces (tool_choice): the model is not taught them."""


def _weather_tool(rng: random.Random) -> dict:
    desc = rng.choice(ALT_DESCRIPTIONS["get_weather"])
    city = {"type": "string"}
    if rng.random() < 0.6:
        city["description"] = rng.choice(["The city name, e.g. Paris.", "City name."])
    params = {"type": "object", "properties": {"city": city}, "required": ["city"]}
    if rng.random() < 0.5:
        params["additionalProperties"] = False
    return {"type": "function", "function": {"name": "get_weather", "description": desc, "parameters": params}}


def _currency_tool(rng: random.Random) -> dict:
    desc = rng.choice(ALT_DESCRIPTIONS["convert_currency"])
    code = "ISO 4217 code of the {} currency."
    props = {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}}
    if rng.random() < 0.6:
        props["amount"]["description"] = "The amount to convert."
        props["from"]["description"] = code.format("source")
        props["to"]["description"] = code.format("target")
    params = {"type": "object", "properties": props, "required": ["amount", "from", "to"]}
    if rng.random() < 0.5:
        params["additionalProperties"] = False
    return {"type": "function", "function": {"name": "convert_currency", "description": desc,
                                             "parameters": params}}


def _question(rng: random.Random) -> str:
    kind = rng.choices(["weather", "currency", "capital", "greeting", "thanks"], [30, 22, 30, 10, 8])[0]
    if kind == "weather":
        form = rng.choice(["What's the weather in {}?", "What is the weather like in {} today?",
                           "How is the weather in {}?", "What is the weather in {}?"])
        return form.format(rng.choice(oracle.CITIES))
    if kind == "currency":
        a, b = rng.sample(oracle.CURRENCIES, 2)
        amount = rng.choice([5, 10, 20, 25, 50, 75, 100, 150, 200, 250, 300, 500, 750, 999])
        form = rng.choice(["Convert {} {} to {}.", "How much is {} {} in {}?"])
        return form.format(amount, a, b)
    if kind == "capital":
        form = rng.choice(["What is the capital of {}?", "Which city is the capital of {}?"])
        return form.format(rng.choice(list(oracle.CAPITALS)))
    return rng.choice(oracle.GREETINGS if kind == "greeting" else oracle.THANKS)


def _tool_result(rng: random.Random, name: str) -> str:
    if name == "get_weather":
        obj = {"temperature": rng.randint(-5, 39), "condition": rng.choice(oracle.CONDITIONS)}
    else:
        obj = {"result": rng.choice([rng.randint(1, 999), rng.randint(1000, 99999)])}
    return json.dumps(obj, separators=(",", ":") if rng.random() < 0.7 else None)


def _assistant_turn(reply: oracle.Reply, call_id: str, send_reasoning: bool, spaced: bool = False) -> dict:
    """The assistant message a client sends back. `spaced`: arguments as servers that re-serialise them
    return them (vLLM's tool parser: `{"city": "Paris"}`)."""
    msg: dict = {"role": "assistant", "content": None if reply.call_name else reply.final}
    if reply.call_name:
        arguments = json.dumps(json.loads(reply.call_arguments)) if spaced else reply.call_arguments
        msg["tool_calls"] = [{"id": call_id, "type": "function",
                              "function": {"name": reply.call_name, "arguments": arguments}}]
    if send_reasoning:
        msg["reasoning"] = reply.analysis
    return msg


def continue_with_tool_result(rng: random.Random, request: dict, result: str | None = None,
                              spaced: bool | None = None) -> dict | None:
    """The follow-up request after the oracle's tool call, or None if it does not call a tool."""
    reply = oracle.respond(request)
    if not reply.call_name:
        return None
    call_id = f"call_{rng.randrange(10**6)}"
    follow = dict(request)
    if harmony.forced_header(follow.get("tool_choice")):
        follow["tool_choice"] = "auto"  # as Case.follow_up and agent SDKs do after a forced call
    follow["messages"] = [
        *request["messages"],
        _assistant_turn(reply, call_id, rng.random() < 0.5, rng.random() < 0.4 if spaced is None else spaced),
        {"role": "tool", "tool_call_id": call_id,
         "content": result if result is not None else _tool_result(rng, reply.call_name)},
    ]
    return follow


def sample_request(rng: random.Random) -> dict:
    """A random request of the shapes the suites use."""
    messages: list[dict] = []
    roll = rng.random()
    if roll < 0.3:
        messages.append({"role": "system", "content": rng.choice(INSTRUCTIONS)})
    elif roll < 0.4:
        messages.append({"role": "developer", "content": rng.choice(INSTRUCTIONS)})
    request: dict = {}
    tools = rng.choice([[], [], ["w"], ["c"], ["w", "c"], ["c", "w"]])
    if tools:
        request["tools"] = [_weather_tool(rng) if t == "w" else _currency_tool(rng) for t in tools]
        if rng.random() < 0.08:
            request["tool_choice"] = "none"
    effort = rng.choice([None, "low", "medium", "high"])
    if effort:
        request["reasoning_effort"] = effort
    if tools and "tool_choice" not in request and rng.random() < FORCED_SHARE:
        names = [t["function"]["name"] for t in request["tools"]]
        request["tool_choice"] = rng.choice(["required", {"type": "function", "function": {"name": rng.choice(names)}}])
    if rng.random() < 0.25:  # a finished earlier turn
        earlier = _question(rng)
        probe = {**request, "messages": [*messages, {"role": "user", "content": earlier}], "tools": []}
        reply = oracle.respond(probe)
        messages += [{"role": "user", "content": earlier}, _assistant_turn(reply, "", rng.random() < 0.4)]
    question = _question(rng)
    content = [{"type": "text", "text": question}] if rng.random() < 0.1 else question
    messages.append({"role": "user", "content": content})
    request["messages"] = messages
    return request


def _random_date(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    return f"{rng.randint(2024, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


_CALL_HISTORY = re.compile(r"<\|start\|>assistant to=(functions\.\w+)<\|channel\|>commentary (<\|constrain\|>json|json)<\|message\|>")
_RESULT_HEADER = re.compile(r"<\|start\|>(functions\.\w+) to=assistant<\|channel\|>commentary<\|message\|>")


def server_variant(text: str, rng: random.Random) -> str:
    """Rewrite a canonical rendering the way some real server renders the same request."""
    if rng.random() < 0.4:  # vLLM / HF chat template: `commentary json`
        text = _CALL_HISTORY.sub(r"<|start|>assistant to=\1<|channel|>commentary json<|message|>", text)
    elif rng.random() < 0.3:  # oss-harmony >= 0.0.10 before vLLM's legacy rewrite
        text = _CALL_HISTORY.sub(r"<|start|>assistant<|channel|>commentary to=\1 \2<|message|>", text)
    if rng.random() < 0.4:  # oss-harmony 0.0.11 (vLLM): recipient after the channel
        text = _RESULT_HEADER.sub(r"<|start|>\1<|channel|>commentary to=assistant<|message|>", text)
    return text


def render_example(request: dict, rng: random.Random) -> Example:
    messages = harmony.chat_to_messages(request, _random_date(rng))
    if rng.random() < 0.08:  # a server that appends instructions to the model identity
        messages[0].content[0].model_identity += "\n" + rng.choice(INSTRUCTIONS)
    prompt = harmony.render_messages(messages)
    if rng.random() < 0.5:
        prompt = harmony.encode_with_specials(server_variant(harmony.decode(prompt), rng))
    reply = oracle.respond(request)
    completion = harmony.encode_with_specials(reply.harmony_text())
    no_loss: tuple[int, ...] = ()
    if reply.forced:
        head = reply.harmony_text().split(reply.forced, 1)[0]
        start = len(prompt) + len(harmony.encode_with_specials(head))
        no_loss = tuple(range(start, start + len(harmony.encode(reply.forced))))
        assert completion[no_loss[0] - len(prompt):][: len(no_loss)] == harmony.encode(reply.forced)
    return Example(prompt + completion, len(prompt), no_loss)


def suite_requests(suites_dir: Path) -> list[tuple[dict, dict]]:
    """(request, tool_results) for every case of the shipped suites."""
    out = []
    for path in sorted(suites_dir.glob("*/cases.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                case = json.loads(line)
                out.append((case["request"], case.get("tool_results") or {}))
    return out


def build_dataset(n: int, seed: int, suites_dir: Path, suite_share: float = 0.25) -> list[Example]:
    """`n` examples: a `suite_share` of them from the suite cases (and their tool loops)."""
    rng = random.Random(seed)
    cases = suite_requests(suites_dir)
    examples = []
    while len(examples) < n:
        if rng.random() < suite_share:
            request, results = rng.choice(cases)
            reply = oracle.respond(request)
            if reply.call_name and rng.random() < 0.5:
                request = continue_with_tool_result(rng, request, results.get(reply.call_name))
        else:
            request = sample_request(rng)
            if rng.random() < 0.6:
                request = continue_with_tool_result(rng, request) or request
        examples.append(render_example(request, rng))
    return examples
