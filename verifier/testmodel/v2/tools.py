"""The function tools of the v2 conformance world: eleven schemas of the shapes real agents declare.

Shapes covered: flat strings and numbers, integers with bounds, enums, booleans with defaults, nested objects,
arrays of strings, arrays of objects, `anyOf` with null, `type: [number, null]`, long descriptions, Unicode
descriptions and values. The suites send these exact schemas; training also sees re-worded descriptions,
so a model learns the tool by its name and parameters, not by one wording.
"""

from __future__ import annotations

import copy
import random


def _fn(name: str, description: str, properties: dict, required: list[str], strict: bool = True) -> dict:
    params: dict = {"type": "object", "properties": properties, "required": required}
    if strict:
        params["additionalProperties"] = False
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


CABINS = ["economy", "premium", "business", "first"]
UNITS = ["celsius", "fahrenheit"]
EXCHANGES = ["NYSE", "NASDAQ", "LSE", "TSE"]
LANGUAGES = ["French", "German", "Japanese", "Spanish"]
PRIORITIES = ["low", "normal", "high"]
MODES = ["car", "train", "plane"]

TOOLS: dict[str, dict] = {t["function"]["name"]: t for t in [
    _fn("get_weather", "Get the current weather in a city.",
        {"city": {"type": "string", "description": "The city name, e.g. Paris."},
         "unit": {"type": "string", "enum": UNITS, "default": "celsius"}},
        ["city"]),
    _fn("convert_currency", "Convert an amount of money from one currency to another.",
        {"amount": {"type": "number", "description": "The amount to convert."},
         "from": {"type": "string", "description": "ISO 4217 code of the source currency."},
         "to": {"type": "string", "description": "ISO 4217 code of the target currency."}},
        ["amount", "from", "to"]),
    _fn("search_flights",
        "Search scheduled flights between two cities on one day. Returns the cheapest matching flight with its "
        "number and price in US dollars. Use IATA city names as the user gives them; do not guess dates.",
        {"origin": {"type": "string"}, "destination": {"type": "string"},
         "date": {"type": "string", "format": "date", "description": "Departure day, YYYY-MM-DD."},
         "passengers": {"type": "object", "properties": {
             "adults": {"type": "integer", "minimum": 1},
             "children": {"type": "integer", "minimum": 0, "default": 0}},
             "required": ["adults"], "additionalProperties": False},
         "cabin": {"type": "string", "enum": CABINS}},
        ["origin", "destination", "date", "passengers"]),
    _fn("book_table", "Reserve a table at a restaurant.",
        {"restaurant": {"type": "string"}, "party_size": {"type": "integer", "minimum": 1, "maximum": 20},
         "time": {"type": "string", "description": "24-hour time, HH:MM."},
         "notes": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "Special requests, or null."}},
        ["restaurant", "party_size", "time", "notes"]),
    _fn("create_event", "Create a calendar event and invite people to it.",
        {"title": {"type": "string"},
         "attendees": {"type": "array", "items": {"type": "object", "properties": {
             "name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
             "required": ["name", "email"], "additionalProperties": False}},
         "start": {"type": "string", "description": "ISO 8601 local date and time."},
         "duration_minutes": {"type": "integer", "default": 30}},
        ["title", "attendees", "start"]),
    _fn("get_stock_price", "Get the latest trade price of a stock.",
        {"symbol": {"type": "string", "description": "Ticker symbol, e.g. AAPL."},
         "exchange": {"type": "string", "enum": EXCHANGES}},
        ["symbol"]),
    _fn("translate", "Translate text into another language. Übersetzt Text; 翻訳します.",
        {"text": {"type": "string"}, "target_language": {"type": "string", "enum": LANGUAGES}},
        ["text", "target_language"]),
    _fn("set_reminder", "Set a reminder that notifies the user after some minutes.",
        {"message": {"type": "string"}, "minutes": {"type": "integer", "minimum": 1},
         "repeat": {"type": "boolean", "default": False, "description": "Repeat every day."}},
        ["message", "minutes"]),
    _fn("search_products", "Search the shop's catalogue.",
        {"query": {"type": "string"}, "max_price": {"type": ["number", "null"]},
         "tags": {"type": "array", "items": {"type": "string"}}},
        ["query", "max_price", "tags"]),
    _fn("send_email", "Send an email on the user's behalf.",
        {"to": {"type": "array", "items": {"type": "string"}, "minItems": 1},
         "subject": {"type": "string"}, "body": {"type": "string"},
         "priority": {"type": "string", "enum": PRIORITIES, "default": "normal"}},
        ["to", "subject", "body"]),
    _fn("plan_route", "Plan a multi-stop trip: the stops in order, nights at each, and the way to travel.",
        {"stops": {"type": "array", "items": {"type": "object", "properties": {
            "city": {"type": "string"}, "nights": {"type": "integer", "minimum": 1}},
            "required": ["city", "nights"], "additionalProperties": False}},
         "mode": {"type": "string", "enum": MODES}},
        ["stops", "mode"]),
]}

REWORDED = {
    "get_weather": ["Look up the weather for a city.", ""],
    "convert_currency": ["Currency conversion.", ""],
    "search_flights": ["Find flights.", ""],
    "book_table": ["Book a restaurant table.", ""],
    "create_event": ["Add an event to the calendar.", ""],
    "get_stock_price": ["Stock quotes.", ""],
    "translate": ["Translate text.", ""],
    "set_reminder": ["Remind the user later.", ""],
    "search_products": ["Product search.", ""],
    "send_email": ["Email someone.", ""],
    "plan_route": ["Route planner.", ""],
}


def tool(name: str) -> dict:
    """The suites' declaration of tool `name` (a copy)."""
    return copy.deepcopy(TOOLS[name])


def varied(name: str, rng: random.Random) -> dict:
    """Tool `name` as some client might declare it: the description re-worded or left out at times."""
    out = tool(name)
    if rng.random() < 0.4:
        out["function"]["description"] = rng.choice(REWORDED[name])
    return out
