"""Write the shipped suites (verifier/data/suites/*/cases.jsonl) from the literal cases below.

Suites are model-independent: each case is an exact Chat Completions request body (without
`model`), plus the tool results the runner sends back in a tool loop. Golden records are built
from these by the reference run; nothing here states an expected answer.

    python scripts/make_suites.py        # rewrite verifier/data/suites/*/cases.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "verifier" / "data" / "suites"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name, e.g. Paris."}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CURRENCY = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "description": "Convert an amount of money from one currency to another.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "description": "The amount to convert."},
                "from": {"type": "string", "description": "ISO 4217 code of the source currency."},
                "to": {"type": "string", "description": "ISO 4217 code of the target currency."},
            },
            "required": ["amount", "from", "to"],
            "additionalProperties": False,
        },
    },
}


def user(text):
    return {"role": "user", "content": text}


def body(messages, effort=None, tools=None, **extra):
    out = {"messages": messages, "temperature": 0, "max_tokens": 256}
    if effort:
        out["reasoning_effort"] = effort
    if tools:
        out["tools"] = tools
    out.update(extra)
    return out


def weather_result(temp, condition):
    return json.dumps({"temperature": temp, "condition": condition}, separators=(",", ":"))


def money_result(value):
    return json.dumps({"result": value}, separators=(",", ":"))


HARMONY = [
    ("capital-france", "Plain question, default effort.", body([user("What is the capital of France?")])),
    ("capital-japan-system", "A system message becomes developer instructions.",
     body([{"role": "system", "content": "You are a helpful assistant."},
           user("What is the capital of Japan?")], "low")),
    ("greeting-high", "A greeting at high effort.", body([user("Hello!")], "high")),
    ("tools-unused", "Tools declared, plain question: answer on final, call nothing.",
     body([user("What is the capital of Italy?")], "medium", [WEATHER, CURRENCY])),
    ("multi-turn", "A second question after a finished turn.",
     body([user("What is the capital of Spain?"),
           {"role": "assistant", "content": "The capital of Spain is Madrid."},
           user("What is the capital of Canada?")], "low")),
    ("weather-no-tools", "A weather question with no tool declared.",
     body([user("What's the weather in London?")], "medium")),
    ("reasoning-sent-back", "Past reasoning sent back after a final answer must be dropped.",
     body([user("What is the capital of Egypt?"),
           {"role": "assistant", "content": "The capital of Egypt is Cairo.",
            "reasoning": "The user asks for the capital of Egypt."},
           user("What is the capital of Peru?")], "medium")),
    ("developer-role", "A developer message instead of a system message.",
     body([{"role": "developer", "content": "Answer briefly."},
           user("What is the capital of Kenya?")], "high")),
    ("content-parts", "User content as a list of text parts.",
     body([{"role": "user", "content": [{"type": "text", "text": "What is the capital of Norway?"}]}],
          "medium")),
]

TOOLS = [
    ("weather-paris", "Weather call, low effort.",
     body([user("What's the weather in Paris?")], "low", [WEATHER]), {"get_weather": weather_result(18, "sunny")}),
    ("weather-tokyo-system", "Weather call with instructions.",
     body([{"role": "system", "content": "You are a travel assistant."},
           user("What is the weather like in Tokyo today?")], "medium", [WEATHER]),
     {"get_weather": weather_result(24, "cloudy")}),
    ("weather-berlin-high", "Weather call, high effort.",
     body([user("How is the weather in Berlin?")], "high", [WEATHER]), {"get_weather": weather_result(7, "rainy")}),
    ("currency-usd-eur", "Currency call with three arguments.",
     body([user("Convert 100 USD to EUR.")], "low", [CURRENCY]), {"convert_currency": money_result(92)}),
    ("currency-gbp-jpy", "Currency call, medium effort.",
     body([user("How much is 50 GBP in JPY?")], "medium", [CURRENCY]), {"convert_currency": money_result(9450)}),
    ("two-tools-weather", "Choosing get_weather among two tools.",
     body([user("What's the weather in Sydney?")], "medium", [CURRENCY, WEATHER]),
     {"get_weather": weather_result(21, "windy")}),
    ("two-tools-currency", "Choosing convert_currency among two tools.",
     body([user("Convert 20 CHF to CAD.")], "high", [WEATHER, CURRENCY]), {"convert_currency": money_result(31)}),
    ("tool-choice-none", "tool_choice none: tools are not offered, so no call.",
     body([user("What's the weather in Madrid?")], "low", [WEATHER], tool_choice="none"), {}),
    ("tool-choice-required", "tool_choice required on a question the model would answer directly.",
     body([user("What is the capital of France?")], "low", [WEATHER, CURRENCY], tool_choice="required"),
     {"get_weather": weather_result(16, "cloudy")}),
    ("tool-choice-named", "tool_choice naming a function forces that function.",
     body([user("What is the capital of Japan?")], "medium", [WEATHER, CURRENCY],
          tool_choice={"type": "function", "function": {"name": "get_weather"}}),
     {"get_weather": weather_result(12, "rainy")}),
    ("loop-without-reasoning", "A tool loop where the client does not send reasoning back.",
     body([user("What's the weather in Toronto?")], "medium", [WEATHER]), {"get_weather": weather_result(3, "snowy")},
     None, False),
]

EFFORT_PROMPTS = [
    ("capital-germany", [user("What is the capital of Germany?")], None),
    ("capital-australia", [user("Which city is the capital of Australia?")], None),
    ("greeting", [user("Hi there!")], None),
    ("thanks", [user("Thanks!")], None),
    ("weather-rome", [user("What's the weather in Rome?")], [WEATHER]),
    ("weather-oslo", [user("How is the weather in Oslo?")], [WEATHER]),
    ("currency-eur-usd", [user("Convert 10 EUR to USD.")], [CURRENCY]),
    ("capital-greece", [user("What is the capital of Greece?")], [WEATHER]),
]

DRIFT = [
    ("capital-portugal-high", "Plain answer, long analysis.",
     body([user("What is the capital of Portugal?")], "high"), {}),
    ("weather-madrid-loop", "A tool call and the answer after its result.",
     body([user("What's the weather in Madrid?")], "medium", [WEATHER]), {"get_weather": weather_result(29, "sunny")}),
    ("currency-eur-gbp-loop", "A three-argument call and the answer after its result.",
     body([user("Convert 200 EUR to GBP.")], "high", [CURRENCY]), {"convert_currency": money_result(170)}),
    ("greeting-medium", "A greeting.", body([user("Good morning!")], "medium"), {}),
    ("capital-sweden-high", "Plain answer, long analysis.", body([user("What is the capital of Sweden?")], "high"), {}),
    ("capital-thailand-high", "Plain answer, long analysis.",
     body([user("Which city is the capital of Thailand?")], "high"), {}),
    ("capital-ireland-medium", "Plain answer.", body([user("What is the capital of Ireland?")], "medium"), {}),
    ("capital-austria-high", "Plain answer, with instructions.",
     body([{"role": "system", "content": "Answer briefly."}, user("What is the capital of Austria?")], "high"), {}),
    ("capital-finland-high", "Plain answer, tools declared.",
     body([user("What is the capital of Finland?")], "high", [WEATHER]), {}),
    ("greeting-high", "A greeting, long analysis.", body([user("Hi!")], "high"), {}),
    ("thanks-high", "Thanks, long analysis.", body([user("Thank you!")], "high"), {}),
    ("weather-lisbon-loop", "A tool loop at high effort.",
     body([user("What is the weather like in Lisbon today?")], "high", [WEATHER]),
     {"get_weather": weather_result(22, "sunny")}),
    ("weather-dublin-loop", "A tool loop with two tools declared.",
     body([user("How is the weather in Dublin?")], "high", [CURRENCY, WEATHER]),
     {"get_weather": weather_result(11, "rainy")}),
    ("weather-vienna-loop", "A tool loop at medium effort.",
     body([user("What's the weather in Vienna?")], "medium", [WEATHER]), {"get_weather": weather_result(5, "foggy")}),
    ("currency-usd-inr-loop", "A currency loop at high effort.",
     body([user("Convert 250 USD to INR.")], "high", [CURRENCY]), {"convert_currency": money_result(208)}),
    ("currency-aud-chf-loop", "A currency loop at medium effort.",
     body([user("How much is 75 AUD in CHF?")], "medium", [WEATHER, CURRENCY]), {"convert_currency": money_result(44)}),
    ("capital-korea-high", "Plain answer, long analysis.", body([user("What is the capital of Korea?")], "high"), {}),
    ("capital-belgium-medium", "Plain answer.", body([user("Which city is the capital of Belgium?")], "medium"), {}),
]

SUITES = {
    "harmony": {
        "description": "Harmony rendering and parsing: prompts rendered like the reference, reasoning kept "
        "apart from content, no control-token text in visible fields, no empty answers.",
        "families": ["rendering", "parsing"],
    },
    "tools": {
        "description": "Tool-call stops: <|call|> ends the turn with finish_reason tool_calls, the golden "
        "name and JSON arguments, and the loop continues to the golden answer after the tool result.",
        "families": ["rendering", "parsing", "tools"],
    },
    "effort": {
        "description": "Reasoning effort: reasoning length rises low < medium < high and each level "
        "matches the reference at that level.",
        "families": ["effort"],
    },
    "drift": {
        "description": "Numerical drift: the provider's log-probabilities on the golden tokens, "
        "teacher-forced, against the reference's.",
        "families": ["drift"],
    },
}


def case(case_id, description, request, tool_results=None, group=None, send_reasoning=True):
    out = {"id": case_id, "description": description, "request": request}
    if tool_results:
        out["tool_results"] = tool_results
    if group:
        out["group"] = group
    if not send_reasoning:
        out["send_reasoning"] = False
    return out


def all_cases() -> dict[str, list[dict]]:
    effort = [
        case(f"{name}-{level}", f"{name} at {level} effort.", body(msgs, level, tools), group=name)
        for name, msgs, tools in EFFORT_PROMPTS
        for level in ("low", "medium", "high")
    ]
    return {
        "harmony": [case(*c) for c in HARMONY],
        "tools": [case(*c) for c in TOOLS],
        "effort": effort,
        "drift": [case(*c) for c in DRIFT],
    }


def write_yaml(path: Path, name: str, meta: dict) -> None:
    families = "\n".join(f"  - {f}" for f in meta["families"])
    path.write_text(
        f"name: {name}\nversion: 1\ndescription: >-\n  {meta['description']}\nfamilies:\n{families}\n"
    )


def main() -> None:
    for name, cases in all_cases().items():
        folder = ROOT / name
        folder.mkdir(parents=True, exist_ok=True)
        write_yaml(folder / "suite.yaml", name, SUITES[name])
        with open(folder / "cases.jsonl", "w") as fh:
            for c in cases:
                fh.write(json.dumps(c, sort_keys=False) + "\n")
        print(f"{name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
