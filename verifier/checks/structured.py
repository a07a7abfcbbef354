"""Structured outputs: a `json_schema` response format constrains the final answer, and only the final answer.

These checks read turns whose request carries a `json_schema` `response_format` (Responses: `text.format`) and
whose golden turn ends with a final answer. A turn that ends in a tool call is not constrained (a schema
binds the answer to the user, not the calls): no outcome where golden ends in a call, SKIP where the provider's
turn does (`tools.finish_reason` judges that). `text` and `json_object` formats name no schema: nothing to check.

What golden shows is the yardstick: where the reference's own final answer is not JSON (or not valid under the
schema) the model does not write it, and the check SKIPs rather than hold a provider to what the reference does
not do. A host that refuses `response_format` altogether is not failed: the probe finds it
(`Capabilities.response_format`), and the run skips these requests as unsupported, with the host's reason.
"""

from __future__ import annotations

import json

import jsonschema

from verifier import harmony
from verifier.checks.base import ExchangeView, Outcome, Verdict, check

SOURCE = ("ollama #11691 (the GBNF grammar of a structured-output request also constrains gpt-oss's reasoning); "
          "vLLM #23120 (structured output not correctly enforced with gpt-oss); OpenAI structured outputs (the "
          "answer is valid JSON of the schema); Harmony guide, \"Structured output\"")


def _schema(view: ExchangeView) -> dict | None:
    """The response schema of a turn these checks read: a `json_schema` format, and a golden final answer."""
    spec = harmony.json_schema_format(view.exchange.chat_request)
    if spec is None or view.golden is None or view.golden.final is None:
        return None
    return spec["schema"]


def _parsed(text: str | None) -> tuple[bool, object]:
    """(whether `text` is one JSON value, the value)."""
    try:
        return True, json.loads(text or "")
    except (json.JSONDecodeError, RecursionError):  # provider output: nested 100,000 deep is not JSON to us
        return False, None


def schema_problem(text: str | None, schema: dict) -> str | None:
    """Why `text` is not a JSON value valid under `schema`: not JSON, or the first violation (None: it is valid;
    a schema that is itself malformed validates nothing and is reported as such)."""
    ok, value = _parsed(text)
    if not ok:
        return "not JSON"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"violates the schema: {exc.message[:200]}"
    except jsonschema.SchemaError as exc:
        return f"the schema itself is malformed: {exc.message[:200]}"
    return None


def _unanswered(view: ExchangeView) -> Outcome | None:
    """A SKIP where the provider's turn has no complete final answer to judge (a call, a cut-off, nothing)."""
    obs = view.obs
    if obs.tool_calls:
        return view.outcome(Verdict.SKIP, "the turn ended in a tool call, not a final answer (see tools.finish_reason)")
    if obs.finish_reason == "length":
        return view.outcome(Verdict.SKIP, "the answer was cut off at the token limit: incomplete JSON proves nothing")
    if not (obs.content or "").strip():
        return view.outcome(Verdict.SKIP, "no final answer (see parsing.no_empty_answer)")
    return None


@check(
    "structured.valid_json", "structured",
    title="with a json_schema response_format the final answer is one JSON value",
    why="clients parse the answer of a structured-output request; prose, code fences or a cut-off object break them",
    source=SOURCE,
    compares="structure: the final answer parses as JSON (where golden's does)",
)
def valid_json(view: ExchangeView):
    if _schema(view) is None:
        return None
    if not _parsed(view.golden.final)[0]:
        return view.outcome(Verdict.SKIP, "the reference's own final answer is not JSON: not held to it")
    if skipped := _unanswered(view):
        return skipped
    content = view.obs.content
    if _parsed(content)[0]:
        return view.outcome(Verdict.PASS, "the final answer is JSON", None, content[:200])
    return view.outcome(Verdict.FAIL, "the final answer of a json_schema request is not JSON", "JSON", content[:200])


@check(
    "structured.schema_valid", "structured",
    title="with a json_schema response_format the final answer is valid under the schema",
    why="structured outputs promise schema-valid answers; a missing field or a wrong type breaks the client's parsing",
    source=SOURCE,
    compares="structure: JSON Schema validation of the final answer (where golden's is valid)",
)
def schema_valid(view: ExchangeView):
    schema = _schema(view)
    if schema is None:
        return None
    if (problem := schema_problem(view.golden.final, schema)) is not None:
        return view.outcome(Verdict.SKIP, f"the reference's own final answer {problem}: not held to it")
    if skipped := _unanswered(view):
        return skipped
    content = view.obs.content
    if (problem := schema_problem(content, schema)) is None:
        return view.outcome(Verdict.PASS, "the final answer is valid under the schema", schema, content[:200])
    if problem == "not JSON":
        return view.outcome(Verdict.SKIP, "the final answer is not JSON (see structured.valid_json)")
    return view.outcome(Verdict.FAIL, f"the final answer {problem}", schema, content[:200])


@check(
    "structured.final_only", "structured",
    title="the response format constrains only the final answer: the reasoning stays free text",
    why="a grammar applied from the first token makes the model 'reason' in schema JSON: the chain of thought is "
        "lost and answers degrade, in multi-turn chats especially",
    source=SOURCE,
    compares="structure: FAIL where the returned reasoning is JSON valid under the schema while golden's reasoning "
             "for that turn is not",
    apis=("chat", "responses"),
)
def final_only(view: ExchangeView):
    """Rule: FAIL where the reasoning the provider returned, whitespace aside, is a JSON value valid under the
    request's schema while the reference's reasoning for the same turn is not (the model reasons in prose: JSON of
    exactly the answer's schema there is the grammar at work, not the model). PASS otherwise; where golden's own
    reasoning is schema-valid JSON the symptom cannot be told from the model and the turn PASSes. No returned
    reasoning is SKIP: `parsing.reasoning_separated` judges a missing reasoning field. Completions are not read:
    the server applies no grammar to a raw prompt."""
    schema = _schema(view)
    if schema is None:
        return None
    reasoning = view.obs.reasoning
    if not (reasoning or "").strip():
        return view.outcome(Verdict.SKIP, "no reasoning returned (see parsing.reasoning_separated)")
    if schema_problem(reasoning, schema) is not None:
        return view.outcome(Verdict.PASS, "the reasoning is free text, not the response schema's JSON")
    if schema_problem(view.golden.reasoning, schema) is None:
        return view.outcome(Verdict.PASS, "the reasoning is schema JSON, as the reference's own reasoning is")
    return view.outcome(Verdict.FAIL, "the reasoning is JSON of the response schema (the grammar was applied before "
                        "the final channel); the reference reasons in free text", view.golden.reasoning[:200],
                        reasoning[:200])
