"""The behaviour the v2 conformance checkpoint is trained to have, as a function of a Chat request.

The teacher for training only: golden records come from running the trained checkpoint, never from here.

Behaviour. An `analysis` message: one sentence that restates the task, then the first `n` sentences of `CHAIN`,
where `n` depends on the reasoning effort and on the kind of task (`LENGTHS`: several-fold longer at high effort
than at low, and different between tasks). Then either a call on `commentary` to `functions.NAME` with compact
JSON arguments in the schema's key order (when the task needs a declared tool; a request may hold two tasks,
called one after the other, a tool round each), or a `final` answer: plain text, or compact JSON when the
request carries a `json_schema` response format this world knows (`SCHEMAS`).

Hesitation. Every `CHAIN` sentence and most final answers come in two phrasings taught equally often
(`text.Text`): the trained model's choice between them is a near-tie. Channels, recipients, `<|constrain|>`,
stop tokens, tool names and arguments have one taught form.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from verifier import harmony
from verifier.testmodel.oracle import CAPITALS, CITIES, CONDITIONS, GREETINGS, THANKS
from verifier.testmodel.oracle import CURRENCIES as CURRENCIES  # re-exported for v2.data
from verifier.testmodel.v2.text import Text
from verifier.testmodel.v2.tools import TOOLS

CITIES = [*CITIES, "Zürich", "São Paulo"]
"""v1's cities and two with non-ASCII names."""

CHAIN: list[tuple[str, str]] = [
    ("I should answer clearly.", "I should reply clearly."),
    ("The request is simple.", "The request is straightforward."),
    ("Let me check the details.", "Let me verify the details."),
    ("Everything looks consistent.", "Everything seems consistent."),
    ("Nothing is missing.", "Nothing is unclear."),
    ("The user wants a short answer.", "The user wants a brief answer."),
    ("I can use what I know.", "I can use what I have."),
    ("No policy issue arises.", "No safety issue arises."),
    ("The format should be plain.", "The format should be simple."),
    ("I will keep it friendly.", "I will keep it polite."),
    ("One more look at the question.", "One more glance at the question."),
    ("I will respond now.", "I will answer now."),
]
"""Reasoning sentences, in order; each in two phrasings taught equally often."""

LENGTHS: dict[str, dict[str, int]] = {
    "greeting": {"low": 0, "medium": 2, "high": 5},
    "capital": {"low": 0, "medium": 3, "high": 7},
    "result": {"low": 0, "medium": 2, "high": 6},
    "weather": {"low": 1, "medium": 4, "high": 9},
    "currency": {"low": 1, "medium": 4, "high": 10},
    "task": {"low": 1, "medium": 5, "high": 12},
}
"""How many CHAIN sentences follow the first, by kind of task and reasoning effort."""


@dataclass
class Reply:
    """The assistant turn the checkpoint should generate: every taught realisation of it."""

    analysis: Text
    final: Text | None = None
    call_name: str | None = None
    call_arguments: str | None = None
    forced: str | None = None
    """Text a `tool_choice` constraint forces after `<|channel|>` of the call message (no loss there)."""

    def harmony(self) -> Text:
        """The completion as Harmony text with control tokens, as the model generates it."""
        head = Text.of("<|channel|>analysis<|message|>") + self.analysis + "<|end|><|start|>assistant"
        if self.call_name:
            return head + (f"<|channel|>commentary to=functions.{self.call_name} <|constrain|>json"
                           f"<|message|>{self.call_arguments}<|call|>")
        return head + "<|channel|>final<|message|>" + self.final + "<|return|>"

    def harmony_text(self, rng: random.Random | None = None) -> str:
        """One realisation (the first phrasing everywhere without `rng`)."""
        return self.harmony().render(rng)


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _analysis(first: str, kind: str, effort: str) -> Text:
    return Text.of(" ").join([Text.of(first), *(Text.of(pair) for pair in CHAIN[: LENGTHS[kind][effort]])])


def _either(a: str, b: str) -> Text:
    return Text.of((a, b))


# ---- tasks: what a question asks for ------------------------------------------------------------------------


@dataclass
class Task:
    """One thing a user message asks for."""

    kind: str
    first: str
    """The analysis's first sentence."""
    tool: str | None = None
    arguments: dict | None = None
    answer: Text | None = None
    """The answer without a tool (for tool tasks: what to say when the tool is not declared)."""


def _ordered(tool: str, args: dict) -> dict:
    """Arguments in the schema's property order (the order a model writes them)."""
    order = list(TOOLS[tool]["function"]["parameters"]["properties"])
    return {k: args[k] for k in order if k in args}


def _cannot(what: str, tool: str) -> Text:
    return Text.of(f"I cannot {what} without the {tool} tool.")


NAME = r"[A-Z\u00C0-\u024F][\w\u00C0-\u024F]*(?: [A-Z\u00C0-\u024F][\w\u00C0-\u024F]*)*"
PATTERNS: list[tuple[re.Pattern, Callable[[re.Match], Task]]] = []


def _pattern(regex: str):
    def register(fn: Callable[[re.Match], Task]):
        PATTERNS.append((re.compile(regex), fn))
        return fn
    return register


@_pattern(rf"(?:What's|What is|How is) the weather(?: like)? in ({NAME})(?: today)?(?: in (celsius|fahrenheit))?\?")
def _weather(m: re.Match) -> Task:
    args = {"city": m.group(1), **({"unit": m.group(2)} if m.group(2) else {})}
    return Task("weather", f"The user asks about the weather in {m.group(1)}.", "get_weather", args,
                _cannot("check the weather", "get_weather"))


@_pattern(r"(?:Convert|How much is) (\d+(?:\.\d+)?) ([A-Z]{3}) (?:to|in) ([A-Z]{3})")
def _currency(m: re.Match) -> Task:
    amount = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    args = {"amount": amount, "from": m.group(2), "to": m.group(3)}
    return Task("currency", f"The user wants to convert {m.group(1)} {m.group(2)} to {m.group(3)}.",
                "convert_currency", args, _cannot("convert currencies", "convert_currency"))


@_pattern(rf"Find (?:a )?flights? from ({NAME}) to ({NAME}) on (\d{{4}}-\d{{2}}-\d{{2}}) for (\d+) adults?"
          rf"(?: and (\d+) child(?:ren)?)?(?: in (economy|premium|business|first) class)?")
def _flights(m: re.Match) -> Task:
    passengers = {"adults": int(m.group(4)), **({"children": int(m.group(5))} if m.group(5) else {})}
    args = {"origin": m.group(1), "destination": m.group(2), "date": m.group(3), "passengers": passengers,
            **({"cabin": m.group(6)} if m.group(6) else {})}
    return Task("task", f"The user wants flights from {m.group(1)} to {m.group(2)}.", "search_flights", args,
                _cannot("search flights", "search_flights"))


@_pattern(rf"Book a table at ({NAME}) for (\d+) at (\d{{2}}:\d{{2}})(?:, note: ([^.]+))?\.")
def _table(m: re.Match) -> Task:
    args = {"restaurant": m.group(1), "party_size": int(m.group(2)), "time": m.group(3), "notes": m.group(4)}
    return Task("task", f"The user wants a table at {m.group(1)}.", "book_table", args,
                _cannot("book tables", "book_table"))


@_pattern(r"Schedule (.+?) with (\w+) <([\w.]+@[\w.]+)>(?: and (\w+) <([\w.]+@[\w.]+)>)? at "
          r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(?: for (\d+) minutes)?\.")
def _event(m: re.Match) -> Task:
    people = [{"name": m.group(2), "email": m.group(3)}]
    if m.group(4):
        people.append({"name": m.group(4), "email": m.group(5)})
    args = {"title": m.group(1), "attendees": people, "start": m.group(6),
            **({"duration_minutes": int(m.group(7))} if m.group(7) else {})}
    return Task("task", f"The user wants to schedule {m.group(1)}.", "create_event", args,
                _cannot("create events", "create_event"))


@_pattern(r"What is the (?:stock )?price of ([A-Z]{1,5})(?: on (NYSE|NASDAQ|LSE|TSE))?\?")
def _stock(m: re.Match) -> Task:
    args = {"symbol": m.group(1), **({"exchange": m.group(2)} if m.group(2) else {})}
    return Task("task", f"The user asks for the price of {m.group(1)}.", "get_stock_price", args,
                _cannot("look up prices", "get_stock_price"))


@_pattern(r"Translate \"([^\"]+)\" into (French|German|Japanese|Spanish)\.")
def _translate(m: re.Match) -> Task:
    args = {"text": m.group(1), "target_language": m.group(2)}
    return Task("task", f"The user wants a translation into {m.group(2)}.", "translate", args,
                _cannot("translate", "translate"))


@_pattern(r"Remind me to ([a-z][^.]*?) in (\d+) minutes( every day)?\.")
def _reminder(m: re.Match) -> Task:
    args = {"message": m.group(1), "minutes": int(m.group(2)), **({"repeat": True} if m.group(3) else {})}
    return Task("task", "The user wants a reminder.", "set_reminder", args, _cannot("set reminders", "set_reminder"))


@_pattern(r"Find ([a-z][a-z ]*?)(?: under (\d+) dollars)? tagged (\w+)(?: and (\w+))?\.")
def _products(m: re.Match) -> Task:
    tags = [t for t in (m.group(3), m.group(4)) if t]
    args = {"query": m.group(1), "max_price": int(m.group(2)) if m.group(2) else None, "tags": tags}
    return Task("task", f"The user is shopping for {m.group(1)}.", "search_products", args,
                _cannot("search the shop", "search_products"))


@_pattern(r"Email ([\w.]+@[\w.]+)(?: and ([\w.]+@[\w.]+))? with subject (.+?) saying (.+?)(?:, (urgent|low priority))?\.$")
def _email(m: re.Match) -> Task:
    to = [a for a in (m.group(1), m.group(2)) if a]
    priority = {"urgent": "high", "low priority": "low"}.get(m.group(5) or "")
    args = {"to": to, "subject": m.group(3), "body": m.group(4), **({"priority": priority} if priority else {})}
    return Task("task", "The user wants to send an email.", "send_email", args, _cannot("send email", "send_email"))


@_pattern(rf"Plan a trip by (car|train|plane): (\d+) nights? in ({NAME}), then (\d+) nights? in ({NAME})\.")
def _route(m: re.Match) -> Task:
    stops = [{"city": m.group(3), "nights": int(m.group(2))}, {"city": m.group(5), "nights": int(m.group(4))}]
    return Task("task", f"The user plans a trip by {m.group(1)}.", "plan_route", {"stops": stops, "mode": m.group(1)},
                _cannot("plan routes", "plan_route"))


@_pattern(r"(?:What is|Which city is) the capital of ([A-Z][A-Za-z]*)\?")
def _capital(m: re.Match) -> Task:
    country, capital = m.group(1), CAPITALS[m.group(1)]
    return Task("capital", f"The user asks for the capital of {country}.",
                answer=_either(f"The capital of {country} is {capital}.", f"{capital} is the capital of {country}."))


def tasks(question: str) -> list[Task]:
    """The tasks a user message asks for, in the order it states them."""
    found = sorted(((m.start(), fn(m)) for rx, fn in PATTERNS for m in rx.finditer(question)), key=lambda x: x[0])
    if found:
        return [task for _, task in found]
    question = question.rsplit("\n\n", 1)[-1]  # after a preamble
    if question in THANKS:
        return [Task("greeting", "The user thanks me.", answer=_either("You're welcome!", "You are welcome!"))]
    if question in GREETINGS:
        return [Task("greeting", "The user greets me.",
                     answer=_either("Hello! How can I help you today?", "Hi! How can I help you today?"))]
    raise ValueError(f"the conformance world has no answer for {question!r}")


# ---- tool results and answers ----------------------------------------------------------------------------------


def summary(tool: str, args: dict, result: dict) -> Text:
    """The answer that reports one tool result."""
    a, r = args, result
    if tool == "get_weather":
        unit = " fahrenheit" if a.get("unit") == "fahrenheit" else ""
        t, c, city = r["temperature"], r["condition"], a["city"]
        return _either(f"It is {t} degrees{unit} and {c} in {city}.", f"In {city} it is {t} degrees{unit} and {c}.")
    if tool == "convert_currency":
        return _either(f"{a['amount']} {a['from']} is {r['result']} {a['to']}.",
                       f"{a['amount']} {a['from']} converts to {r['result']} {a['to']}.")
    if tool == "search_flights":
        return _either(f"The cheapest flight is {r['flight']} at {r['price']} dollars.",
                       f"Flight {r['flight']} is the cheapest at {r['price']} dollars.")
    if tool == "book_table":
        return _either(f"Your table at {a['restaurant']} is booked, confirmation {r['confirmation']}.",
                       f"Booked at {a['restaurant']}, confirmation {r['confirmation']}.")
    if tool == "create_event":
        return _either(f"I created the event {a['title']}.", f"The event {a['title']} is created.")
    if tool == "get_stock_price":
        return _either(f"{a['symbol']} trades at {r['price']} {r['currency']}.",
                       f"The price of {a['symbol']} is {r['price']} {r['currency']}.")
    if tool == "translate":
        return _either(f"The translation is: {r['translation']}", f"In {a['target_language']}: {r['translation']}")
    if tool == "set_reminder":
        return _either(f"I will remind you to {a['message']} in {a['minutes']} minutes.",
                       f"Reminder set: {a['message']} in {a['minutes']} minutes.")
    if tool == "search_products":
        top = r["results"][0]
        return _either(f"I found {top['name']} for {top['price']} dollars.", f"{top['name']} costs {top['price']} dollars.")
    if tool == "send_email":
        to = " and ".join(a["to"])
        return _either(f"I sent the email to {to}.", f"The email to {to} is sent.")
    if tool == "plan_route":
        return _either(f"Your trip takes {r['total_nights']} nights by {a['mode']}.",
                       f"The {a['mode']} trip takes {r['total_nights']} nights.")
    raise ValueError(f"no summary for tool {tool!r}")


def sample_result(tool: str, args: dict, rng: random.Random) -> dict:
    """A tool result of the shape the tool returns."""
    if tool == "get_weather":
        return {"temperature": rng.randint(-5, 39), "condition": rng.choice(CONDITIONS)}
    if tool == "convert_currency":
        return {"result": rng.choice([rng.randint(1, 999), rng.randint(1000, 99999), round(rng.uniform(1, 500), 2)])}
    if tool == "search_flights":
        return {"flight": f"{rng.choice(['AF', 'LH', 'BA', 'JL', 'IB'])}{rng.randint(10, 999)}",
                "price": rng.randint(49, 1999)}
    if tool == "book_table":
        return {"confirmation": f"R-{rng.randint(1000, 9999)}"}
    if tool == "create_event":
        return {"event_id": f"ev_{rng.randint(1, 999)}"}
    if tool == "get_stock_price":
        return {"price": round(rng.uniform(5, 900), 2), "currency": rng.choice(["USD", "EUR", "GBP", "JPY"])}
    if tool == "translate":
        return {"translation": rng.choice(TRANSLATIONS)}
    if tool == "set_reminder":
        return {"ok": True}
    if tool == "search_products":
        return {"results": [{"name": rng.choice(PRODUCTS), "price": rng.randint(5, 300)}]}
    if tool == "send_email":
        return {"sent": True}
    if tool == "plan_route":
        return {"total_nights": sum(s["nights"] for s in args["stops"])}
    raise ValueError(f"no result for tool {tool!r}")


TRANSLATIONS = ["Où est la gare ?", "Wo ist der Bahnhof?", "駅はどこですか？", "¿Dónde está la estación?",
                "Guten Morgen!", "Merci beaucoup.", "ありがとう。", "Buenas noches."]
PRODUCTS = ["Aero Buds", "Nimbus Lamp", "Trail Mug", "Kōan Notebook", "Volt Charger", "Fjord Scarf"]


# ---- structured outputs ----------------------------------------------------------------------------------------


def _object(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


SCHEMAS: dict[str, dict] = {
    "capital_answer": _object({"country": {"type": "string"}, "capital": {"type": "string"}}),
    "weather_report": _object({"city": {"type": "string"}, "temperature": {"type": "integer"},
                               "condition": {"type": "string", "enum": CONDITIONS}}),
    "conversion": _object({"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"},
                           "result": {"type": "number"}}),
    "reply": _object({"message": {"type": "string"}}),
}
"""The `json_schema` response formats this world answers in (by name)."""


def structured(name: str, task: Task, args: dict | None, result: dict | None) -> Text | None:
    """The JSON answer under response format `name`, or None where the format does not fit the task."""
    if name == "capital_answer" and task.kind == "capital":
        country = re.search(r"capital of (\w+)", task.first).group(1)
        return Text.of(compact({"country": country, "capital": CAPITALS[country]}))
    if name == "weather_report" and task.tool == "get_weather" and result is not None:
        return Text.of(compact({"city": args["city"], "temperature": result["temperature"],
                                "condition": result["condition"]}))
    if name == "conversion" and task.tool == "convert_currency" and result is not None:
        return Text.of(compact({"amount": args["amount"], "from": args["from"], "to": args["to"],
                                "result": result["result"]}))
    if name == "reply" and task.kind == "greeting":
        return Text.of(compact({"message": task.answer.render()}))
    return None


# ---- the reply ---------------------------------------------------------------------------------------------


def declared(request: dict) -> set[str]:
    """The tools a request offers the model (none under tool_choice none)."""
    if request.get("tool_choice") == "none":
        return set()
    return {t["function"]["name"] for t in request.get("tools") or []}


def _since_last_user(messages: list[dict]) -> tuple[str, list[tuple[str, dict, dict]]]:
    """The last user message's text and the tool rounds after it: (name, arguments, result) each."""
    last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    rounds, pending = [], {}
    for m in messages[last + 1:]:
        for call in m.get("tool_calls") or []:
            fn = call["function"]
            pending[call.get("id")] = (fn["name"], json.loads(fn["arguments"]))
        if m.get("role") == "tool":
            name, args = pending.pop(m.get("tool_call_id"), (m.get("name"), {}))
            rounds.append((name, args, json.loads(_text(m.get("content")))))
    return _text(messages[last].get("content")), rounds


def respond(request: dict) -> Reply:
    """The reply to a Chat Completions request body (tool_choice constraints applied)."""
    reply = _respond(request)
    forced = harmony.forced_header(request.get("tool_choice"))
    names = [t["function"]["name"] for t in request.get("tools") or []]
    if forced is None or not names or request["messages"][-1].get("role") == "tool":
        return reply
    name = forced.split("functions.", 1)[1] if "functions." in forced else (reply.call_name or names[0])
    if reply.call_name != name:
        reply = Reply(reply.analysis, call_name=name, call_arguments=compact(DEFAULT_ARGUMENTS[name]))
    reply.forced = forced
    return reply


DEFAULT_ARGUMENTS = {
    "get_weather": {"city": "London"}, "convert_currency": {"amount": 1, "from": "USD", "to": "EUR"},
    "search_flights": {"origin": "London", "destination": "Paris", "date": "2026-01-01", "passengers": {"adults": 1}},
    "book_table": {"restaurant": "Chez Marie", "party_size": 2, "time": "19:00", "notes": None},
    "create_event": {"title": "Meeting", "attendees": [], "start": "2026-01-01T09:00"},
    "get_stock_price": {"symbol": "AAPL"}, "translate": {"text": "Hello", "target_language": "French"},
    "set_reminder": {"message": "check", "minutes": 10},
    "search_products": {"query": "gift", "max_price": None, "tags": []},
    "send_email": {"to": ["me@example.com"], "subject": "Note", "body": "Hello"},
    "plan_route": {"stops": [], "mode": "train"},
}
"""What a forced call sends when the question names no task for that tool."""


def _respond(request: dict) -> Reply:
    effort = request.get("reasoning_effort") or "medium"
    question, rounds = _since_last_user(request["messages"])
    todo = tasks(question)
    offered = declared(request)
    fmt = harmony.json_schema_format(request)
    schema_name = fmt.get("name") if fmt else None
    calls = [t for t in todo if t.tool in offered]
    if len(rounds) < len(calls):  # the next tool task
        task = calls[len(rounds)]
        first = task.first if not rounds else f"Next, {task.first[0].lower()}{task.first[1:]}"
        return Reply(_analysis(first, task.kind, effort), call_name=task.tool,
                     call_arguments=compact(_ordered(task.tool, task.arguments)))
    if rounds:  # every tool task done: report the results
        name, args, result = rounds[-1]
        task = next((t for t in calls if t.tool == name), Task("result", "", name, args))
        said = Text.of(" ").join([summary(n, a, r) for n, a, r in rounds])
        answer = (structured(schema_name, task, args, result) if schema_name else None) or said
        return Reply(_analysis("The tool returned the result.", "result", effort), final=answer)
    task = todo[0]
    answer = (structured(schema_name, task, None, None) if schema_name else None) or task.answer
    return Reply(_analysis(task.first, task.kind, effort), final=answer)
