"""Write the shipped suites (verifier/data/suites/): the breadth real gpt-oss traffic has (issue 16).

Model-independent like v1: each case is an exact Chat Completions request body (without `model`) plus the tool
results the runner sends back; nothing states an expected answer. The same files serve gpt-oss-20b/120b:
`max_tokens` is sized per reasoning effort for the real models (`BUDGETS`), eleven tools of realistic schema
shapes (`verifier.testmodel.v2.tools`), choice among many tools, two-round tool loops, structured outputs,
system and developer instructions, prompts longer than the 128-token sliding window. Cases tagged `quick` form
the CI-gate profile.

    python scripts/make_suites.py [OUT_DIR]   # OUT_DIR/<suite>/{suite.yaml,cases.jsonl}; default verifier/data/suites
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from verifier.testmodel.v2.data import LONG_INSTRUCTIONS, PREAMBLES, response_format
from verifier.testmodel.v2.tools import TOOLS, tool

BUDGETS = {"low": 2048, "medium": 4096, "high": 8192}
"""`max_tokens` by reasoning effort: room for the real models' reasoning (high effort runs to thousands)."""
ALL = list(TOOLS)


def user(text):
    return {"role": "user", "content": text}


def system(text, role="system"):
    return {"role": role, "content": text}


def body(messages, effort="medium", tools=(), **extra):
    out = {"messages": messages, "temperature": 0, "max_tokens": BUDGETS[effort], "reasoning_effort": effort}
    if tools:
        out["tools"] = [tool(name) for name in tools]
    out.update(extra)
    return out


def result(**values) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def case(case_id, description, request, results=None, *, quick=False, group=None, send_reasoning=True):
    out = {"id": case_id, "description": description, "request": request}
    if results:
        out["tool_results"] = results
    if group:
        out["group"] = group
    if not send_reasoning:
        out["send_reasoning"] = False
    if quick:
        out["quick"] = True
    return out


WEATHER = {"get_weather": result(temperature=18, condition="sunny")}

HARMONY = [
    case("capital-france", "Plain question, default effort.", body([user("What is the capital of France?")]), quick=True),
    case("system-instructions", "A system message becomes developer instructions.",
         body([system("You are a helpful assistant."), user("What is the capital of Japan?")], "low"), quick=True),
    case("developer-role", "A developer message instead of a system message.",
         body([system("Answer briefly.", "developer"), user("What is the capital of Kenya?")], "high")),
    case("long-instructions", "Instructions longer than the sliding window, then the question.",
         body([system(LONG_INSTRUCTIONS), user("Which city is the capital of Australia?")], "medium"), quick=True),
    case("long-user-message", "A long user message: the question after a preamble.",
         body([user(f"{PREAMBLES[0]}\n\nWhat is the capital of Portugal?")], "low")),
    case("greeting-high", "A greeting at high effort.", body([user("Hello!")], "high")),
    case("eleven-tools-unused", "All eleven tools declared, a plain question: answer on final, call nothing.",
         body([user("What is the capital of Italy?")], "medium", ALL), quick=True),
    case("multi-turn", "A second question after a finished turn.",
         body([user("What is the capital of Spain?"), {"role": "assistant", "content": "The capital of Spain is Madrid."},
               user("What is the capital of Canada?")], "low")),
    case("weather-no-tools", "A weather question with no tool declared.",
         body([user("What's the weather in London?")], "medium")),
    case("reasoning-sent-back", "Past reasoning sent back after a final answer must be dropped.",
         body([user("What is the capital of Egypt?"),
               {"role": "assistant", "content": "The capital of Egypt is Cairo.",
                "reasoning": "The user asks for the capital of Egypt."},
               user("What is the capital of Peru?")], "medium")),
    case("content-parts", "User content as a list of text parts.",
         body([{"role": "user", "content": [{"type": "text", "text": "What is the capital of Norway?"}]}], "medium")),
    case("thanks-low", "Thanks at low effort.", body([user("Thank you very much!")], "low")),
]

TOOL_CASES = [
    ("weather-paris", "Flat schema with an enum and a default.", "What's the weather in Paris?", "low",
     ["get_weather"], WEATHER),
    ("weather-zurich-fahrenheit", "A Unicode city and an optional enum argument.",
     "What is the weather like in Zürich today in fahrenheit?", "medium", ["get_weather"],
     {"get_weather": result(temperature=64, condition="cloudy")}),
    ("currency-usd-eur", "Three arguments, a number among them.", "Convert 100 USD to EUR.", "low",
     ["convert_currency"], {"convert_currency": result(result=92)}),
    ("flights-nested", "A nested object with a default, an enum, a date, a long description.",
     "Find flights from Paris to Tokyo on 2026-05-14 for 2 adults and 1 child in business class.", "medium",
     ["search_flights"], {"search_flights": result(flight="AF276", price=1840)}),
    ("table-nullable", "anyOf with null: a required argument that is null here.",
     "Book a table at Nopa for 4 at 19:30.", "low", ["book_table"], {"book_table": result(confirmation="R-4417")}),
    ("event-array-of-objects", "An array of objects and an integer.",
     "Schedule Design review with Ana <ana@example.com> and Li <li@acme.io> at 2026-03-02T10:00 for 45 minutes.",
     "high", ["create_event"], {"create_event": result(event_id="ev_88")}),
    ("stock-enum", "An optional enum.", "What is the price of NVDA on NASDAQ?", "low", ["get_stock_price"],
     {"get_stock_price": result(price=131.25, currency="USD")}),
    ("translate-unicode", "Unicode in arguments and in the tool's description.",
     'Translate "Où est la gare ?" into Japanese.', "medium", ["translate"],
     {"translate": result(translation="駅はどこですか？")}),
    ("reminder-boolean", "A boolean argument.", "Remind me to water the plants in 30 minutes every day.", "low",
     ["set_reminder"], {"set_reminder": result(ok=True)}),
    ("products-nullable-number", "type [number, null] and an array of strings.",
     "Find running shoes under 100 dollars tagged sport and sale.", "medium", ["search_products"],
     {"search_products": result(results=[{"name": "Trail Mug", "price": 79}])}),
    ("email-array", "An array of strings and an enum set from the wording.",
     "Email bob@example.com and eve@mail.org with subject Lunch saying See you at noon, urgent.", "high",
     ["send_email"], {"send_email": result(sent=True)}),
    ("route-array-of-objects", "Stops as an array of objects, in order.",
     "Plan a trip by train: 2 nights in Vienna, then 3 nights in Lisbon.", "medium", ["plan_route"],
     {"plan_route": result(total_nights=5)}),
]

TOOLS_SUITE = [
    *(case(i, d, body([user(q)], e, t), r, quick=i in {"flights-nested", "event-array-of-objects", "table-nullable"})
      for i, d, q, e, t, r in TOOL_CASES),
    case("choice-among-eleven", "Choosing the one right tool among all eleven.",
         body([user("What is the price of SAP on LSE?")], "medium", ALL),
         {"get_stock_price": result(price=212.4, currency="GBP")}, quick=True),
    case("choice-among-eleven-flights", "Choosing search_flights among all eleven, tools in another order.",
         body([user("Find flights from Berlin to Madrid on 2026-07-01 for 1 adult.")], "high", ALL[::-1]),
         {"search_flights": result(flight="IB3101", price=149)}),
    case("two-rounds", "Two tool tasks in one question: two rounds, then the answer.",
         body([user("Find flights from Paris to Rome on 2026-05-14 for 1 adult. What's the weather in Rome?")],
              "medium", ["search_flights", "get_weather"]),
         {"search_flights": result(flight="AF1404", price=129), "get_weather": result(temperature=24, condition="sunny")},
         quick=True),
    case("two-rounds-long-instructions", "Long instructions, many tools, two rounds.",
         body([system(LONG_INSTRUCTIONS), user("Convert 250 USD to JPY. What is the price of SONY on TSE?")], "low", ALL),
         {"convert_currency": result(result=37120), "get_stock_price": result(price=3120.5, currency="JPY")}),
    case("tool-choice-none", "tool_choice none: tools are not offered, so no call.",
         body([user("What's the weather in Madrid?")], "low", ["get_weather"], tool_choice="none")),
    case("tool-choice-required", "tool_choice required on a question the model would answer directly.",
         body([user("What is the capital of France?")], "low", ["get_weather", "convert_currency"],
              tool_choice="required"), {"get_weather": result(temperature=16, condition="cloudy")}, quick=True),
    case("tool-choice-named", "tool_choice naming a function forces that function.",
         body([user("What is the capital of Japan?")], "medium", ["get_weather", "set_reminder"],
              tool_choice={"type": "function", "function": {"name": "get_weather"}}),
         {"get_weather": result(temperature=12, condition="rainy")}),
    case("loop-without-reasoning", "A tool loop where the client does not send reasoning back.",
         body([user("What's the weather in Toronto?")], "medium", ["get_weather"]),
         {"get_weather": result(temperature=3, condition="snowy")}, send_reasoning=False),
]

STRUCTURED = [
    case("capital-json", "A json_schema answer to a plain question.",
         body([user("What is the capital of Germany?")], "medium", response_format=response_format("capital_answer")),
         quick=True),
    case("greeting-json", "A json_schema answer to a greeting, high effort: the reasoning is not JSON.",
         body([user("Hi there!")], "high", response_format=response_format("reply"))),
    case("weather-json-after-tool", "A tool round first (not constrained), then the JSON answer.",
         body([user("How is the weather in Oslo?")], "medium", ["get_weather"],
              response_format=response_format("weather_report")),
         {"get_weather": result(temperature=-2, condition="snowy")}, quick=True),
    case("conversion-json-many-tools", "Eleven tools and a response format; the answer after the call.",
         body([user("How much is 75 AUD in CHF?")], "low", ALL, response_format=response_format("conversion")),
         {"convert_currency": result(result=44)}),
    case("capital-json-multi-turn", "A response format in a second turn, after a plain answer: a multi-turn chat "
         "where an engine applying the grammar too early breaks the reasoning.",
         body([user("What is the capital of Spain?"), {"role": "assistant", "content": "The capital of Spain is Madrid."},
               user("Which city is the capital of Greece?")], "high", response_format=response_format("capital_answer"))),
]

EFFORT_PROMPTS = [
    ("capital-greece", "What is the capital of Greece?", [], True),
    ("capital-korea", "Which city is the capital of Korea?", [], False),
    ("greeting", "Good morning!", [], False),
    ("weather-rome", "What's the weather in Rome?", ["get_weather"], True),
    ("currency-eur-usd", "Convert 10 EUR to USD.", ["convert_currency"], False),
    ("flights", "Find flights from London to Seoul on 2026-09-03 for 2 adults.", ALL, False),
    ("reminder", "Remind me to stretch in 15 minutes.", ["set_reminder", "send_email"], False),
    ("capital-with-tools", "What is the capital of Mexico?", ["get_weather"], False),
]

DRIFT = [
    case("capital-portugal-high", "Plain answer, long analysis.", body([user("What is the capital of Portugal?")], "high"),
         quick=True),
    case("weather-madrid-loop", "A tool call and the answer after its result.",
         body([user("What's the weather in Madrid?")], "medium", ["get_weather"]),
         {"get_weather": result(temperature=29, condition="sunny")}),
    case("flights-loop-high", "A nested call and the answer, high effort.",
         body([user("Find flights from Oslo to Cairo on 2026-10-10 for 3 adults in economy class.")], "high",
              ["search_flights"]), {"search_flights": result(flight="LH881", price=612)}, quick=True),
    case("event-loop", "An array of objects, then the answer.",
         body([user("Schedule Team sync with Omar <omar@example.com> at 2026-04-20T09:00.")], "high", ALL),
         {"create_event": result(event_id="ev_7")}),
    case("long-instructions-high", "Long instructions, long analysis.",
         body([system(LONG_INSTRUCTIONS), user("What is the capital of Sweden?")], "high")),
    case("preamble-medium", "A long user message.", body([user(f"{PREAMBLES[1]}\n\nThanks!")], "medium")),
    case("greeting-high", "A greeting, long analysis.", body([user("Hi!")], "high")),
    case("translate-loop", "Unicode arguments and result.",
         body([user('Translate "Grüße aus München" into Spanish.')], "high", ["translate"]),
         {"translate": result(translation="Saludos desde Múnich")}),
    case("two-rounds-high", "Two rounds at high effort.",
         body([user("What is the price of MSFT? Remind me to send the report in 10 minutes.")], "high",
              ["get_stock_price", "set_reminder"]),
         {"get_stock_price": result(price=418.2, currency="USD"), "set_reminder": result(ok=True)}),
    case("route-loop", "A route, medium effort.",
         body([user("Plan a trip by car: 1 night in Dublin, then 2 nights in London.")], "medium", ["plan_route"]),
         {"plan_route": result(total_nights=3)}),
    case("products-loop", "A shop search, high effort.",
         body([user("Find coffee beans tagged eco.")], "high", ["search_products", "get_weather"]),
         {"search_products": result(results=[{"name": "Kōan Notebook", "price": 14}])}),
    case("email-loop", "An email, medium effort.",
         body([user("Email priya@acme.io with subject Tickets saying Running late today.")], "medium", ["send_email"]),
         {"send_email": result(sent=True)}),
    case("capital-finland-tools", "Plain answer, tools declared.",
         body([user("What is the capital of Finland?")], "high", ["get_weather"])),
    case("structured-high", "A JSON answer after long reasoning.",
         body([user("What is the capital of Belgium?")], "high", response_format=response_format("capital_answer"))),
]

SUITES = {
    "harmony": ("Harmony rendering and parsing: prompts rendered like the reference (instructions, long prompts, "
                "many tools), reasoning kept apart from content, no control-token text in visible fields, no empty "
                "answers.", ["rendering", "parsing"], HARMONY),
    "tools": ("Tool calls: eleven schemas of real shapes, choice among many tools, two-round loops; <|call|> ends "
              "the turn with finish_reason tool_calls, the golden name and JSON arguments, and the loop continues "
              "to the golden answer.", ["rendering", "parsing", "tools"], TOOLS_SUITE),
    "structured": ("Structured outputs: a json_schema response format binds the final answer (valid JSON of the "
                   "schema) and only the final answer, not the reasoning or tool calls.",
                   ["rendering", "parsing", "structured"], STRUCTURED),
    "effort": ("Reasoning effort: reasoning length rises low < medium < high and each level matches the reference "
               "at that level.", ["effort"], None),
    "drift": ("Numerical drift: the provider's log-probabilities on the golden tokens, teacher-forced, against the "
              "reference's.", ["drift"], DRIFT),
}


def effort_cases() -> list[dict]:
    return [case(f"{name}-{level}", f"{name} at {level} effort.", body([user(q)], level, tools), group=name,
                 quick=quick)
            for name, q, tools, quick in EFFORT_PROMPTS for level in ("low", "medium", "high")]


def all_cases() -> dict[str, list[dict]]:
    return {name: cases if cases is not None else effort_cases() for name, (_, _, cases) in SUITES.items()}


def write(root: Path) -> None:
    for name, cases in all_cases().items():
        description, families, _ = SUITES[name]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        listed = "\n".join(f"  - {f}" for f in families)
        (folder / "suite.yaml").write_text(f"name: {name}\nversion: 2\ndescription: >-\n  {description}\n"
                                           f"families:\n{listed}\n")
        with open(folder / "cases.jsonl", "w") as fh:
            for c in cases:
                fh.write(json.dumps(c, ensure_ascii=False) + "\n")
        print(f"{name}: {len(cases)} cases, {sum(c.get('quick', False) for c in cases)} quick")


ROOT = Path(__file__).resolve().parent.parent / "verifier" / "data" / "suites"

if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit(__doc__)
    write(Path(sys.argv[1]) if len(sys.argv) == 2 else ROOT)
