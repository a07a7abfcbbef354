"""The behaviour the conformance checkpoint is trained to have, as a function of a Chat request.

This is the teacher for training only. Nothing at verification time reads it: golden records come
from running the trained checkpoint, never from here.

Behaviour: an `analysis` message of 1, 3 or 6 sentences for low, medium or high effort, then
either a tool call on `commentary` to `functions.NAME` with compact JSON arguments (when the
question needs a declared tool), or a `final` answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from verifier import harmony

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Germany": "Berlin", "Spain": "Madrid", "Italy": "Rome",
    "Egypt": "Cairo", "Canada": "Ottawa", "Australia": "Canberra", "Kenya": "Nairobi",
    "Peru": "Lima", "Norway": "Oslo", "Ireland": "Dublin", "Austria": "Vienna", "Greece": "Athens",
    "Portugal": "Lisbon", "Poland": "Warsaw", "Finland": "Helsinki", "Sweden": "Stockholm",
    "Belgium": "Brussels", "Thailand": "Bangkok", "Russia": "Moscow", "China": "Beijing",
    "India": "Delhi", "Mexico": "Mexico City", "Netherlands": "Amsterdam", "Korea": "Seoul",
}
CITIES = [
    "Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Sydney", "Toronto", "Mumbai",
    "Amsterdam", "Delhi", "Oslo", "Cairo", "Dublin", "Vienna", "Lisbon", "Seoul", "Lima",
]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]
GREETINGS = ["Hello!", "Hi there!", "Good morning!", "Hi!", "Good evening!"]
THANKS = ["Thanks!", "Thank you!", "Thank you very much!"]

CHAIN = [
    "I should answer clearly.",
    "The request is simple.",
    "Let me check the details.",
    "Everything looks consistent.",
    "I will respond now.",
]
SENTENCES = {"low": 1, "medium": 3, "high": 6}

WEATHER_RE = re.compile(r"weather (?:like )?in ([A-Z][A-Za-z ]*?)(?: today)?\?")
CAPITAL_RE = re.compile(r"capital of ([A-Z][A-Za-z]*)\?")
CURRENCY_RE = re.compile(r"(?:Convert|How much is) (\d+) ([A-Z]{3}) (?:to|in) ([A-Z]{3})")


@dataclass
class Reply:
    """The assistant turn the checkpoint should generate."""

    analysis: str
    final: str | None = None
    call_name: str | None = None
    call_arguments: str | None = None
    forced: str | None = None
    """Text a `tool_choice` constraint forces after `<|channel|>` of the call message (no loss there)."""

    def harmony_text(self) -> str:
        """The completion as Harmony text with control tokens, as the model generates it."""
        head = f"<|channel|>analysis<|message|>{self.analysis}<|end|><|start|>assistant"
        if self.call_name:
            return (f"{head}<|channel|>commentary to=functions.{self.call_name} <|constrain|>json"
                    f"<|message|>{self.call_arguments}<|call|>")
        return f"{head}<|channel|>final<|message|>{self.final}<|return|>"


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _analysis(first: str, effort: str) -> str:
    return " ".join([first, *CHAIN[: SENTENCES[effort] - 1]])


def _tools(request: dict) -> set[str]:
    if request.get("tool_choice") == "none":
        return set()
    return {t["function"]["name"] for t in request.get("tools") or []}


def _after_tool(request: dict, effort: str) -> Reply | None:
    """The answer once the last message is a tool result, or None if it is not."""
    messages = request["messages"]
    if messages[-1].get("role") != "tool":
        return None
    call = next(m for m in reversed(messages) if m.get("tool_calls"))["tool_calls"][-1]["function"]
    args = json.loads(call["arguments"])
    result = json.loads(_text(messages[-1].get("content")))
    if call["name"] == "get_weather":
        said = f"it is {result['temperature']} degrees and {result['condition']} in {args['city']}"
        return Reply(_analysis(f"The tool says {said}.", effort), final=f"{said[0].upper()}{said[1:]}.")
    said = f"{args['amount']} {args['from']} is {result['result']} {args['to']}"
    return Reply(_analysis(f"The tool says {said}.", effort), final=f"{said}.")


def _forced_arguments(name: str, question: str) -> str:
    if name == "get_weather":
        m = CAPITAL_RE.search(question)
        return _compact({"city": CAPITALS[m.group(1)] if m else "London"})
    return _compact({"amount": 1, "from": "USD", "to": "EUR"})


def respond(request: dict) -> Reply:
    """The reply to a Chat Completions request body (tool_choice constraints applied)."""
    reply = _respond(request)
    forced = harmony.forced_header(request.get("tool_choice"))
    tools = [t["function"]["name"] for t in request.get("tools") or []]
    if forced is None or not tools or request["messages"][-1].get("role") == "tool":
        return reply
    name = forced.split("functions.", 1)[1] if "functions." in forced else (reply.call_name or tools[0])
    if reply.call_name != name:
        question = _text(next(m for m in reversed(request["messages"]) if m["role"] == "user")["content"])
        reply = Reply(reply.analysis, call_name=name, call_arguments=_forced_arguments(name, question))
    reply.forced = forced
    return reply


def _respond(request: dict) -> Reply:
    effort = request.get("reasoning_effort") or "medium"
    replied = _after_tool(request, effort)
    if replied:
        return replied
    question = _text(next(m for m in reversed(request["messages"]) if m["role"] == "user")["content"])
    tools = _tools(request)
    if m := WEATHER_RE.search(question):
        city = m.group(1)
        first = f"The user asks about the weather in {city}."
        if "get_weather" in tools:
            return Reply(_analysis(first, effort), call_name="get_weather", call_arguments=_compact({"city": city}))
        return Reply(_analysis(first, effort), final="I cannot check the weather without a weather tool.")
    if m := CURRENCY_RE.search(question):
        amount, source, target = int(m.group(1)), m.group(2), m.group(3)
        first = f"The user wants to convert {amount} {source} to {target}."
        if "convert_currency" in tools:
            args = _compact({"amount": amount, "from": source, "to": target})
            return Reply(_analysis(first, effort), call_name="convert_currency", call_arguments=args)
        return Reply(_analysis(first, effort), final="I cannot convert currencies without a conversion tool.")
    if m := CAPITAL_RE.search(question):
        country = m.group(1)
        capital = CAPITALS[country]
        return Reply(_analysis(f"The user asks for the capital of {country}.", effort),
                     final=f"The capital of {country} is {capital}.")
    if question in THANKS:
        return Reply(_analysis("The user thanks me.", effort), final="You're welcome!")
    if question in GREETINGS:
        return Reply(_analysis("The user greets me.", effort), final="Hello! How can I help you today?")
    raise ValueError(f"the conformance world has no answer for {question!r}")
