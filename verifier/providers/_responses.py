"""Responses API: output items, or a stream of events accumulated into the same shape."""

from __future__ import annotations

import json
from collections.abc import Iterable

from verifier.observation import Failure, Observation, ToolCall, Usage
from verifier.providers._http import RAW_EXCERPT

REASONING_PARTS = ("reasoning_text", "summary_text", "text")
REASONING_DELTAS = {
    "response.reasoning_text.delta": "reasoning_text",
    "response.reasoning.delta": "reasoning",
    "response.reasoning_summary_text.delta": "summary_text",
}


def _usage(data: dict | None) -> Usage:
    data = data if isinstance(data, dict) else {}
    details = data.get("output_tokens_details")
    details = details if isinstance(details, dict) else {}
    return Usage.reported(data.get("input_tokens"), data.get("output_tokens"), details.get("reasoning_tokens"))


def _finish(status: str | None, calls: list[ToolCall], incomplete: dict | None) -> str | None:
    if calls:
        return "tool_calls"
    if status == "completed":
        return "stop"
    if status == "incomplete":
        return "length" if (incomplete or {}).get("reason") == "max_output_tokens" else "incomplete"
    return status


def _reasoning_of(item: dict) -> tuple[str, str | None]:
    for part in (item.get("content") or []) + (item.get("summary") or []):
        if isinstance(part, dict) and part.get("type") in REASONING_PARTS and part.get("text"):
            return part["text"], part["type"]
    return "", None


def parse_response(data: dict, raw: str) -> Observation:
    """A non-streamed Responses object."""
    content, reasoning, fields, calls = [], [], [], []
    for item in data.get("output") or []:
        kind = item.get("type")
        if kind == "reasoning":
            text, field = _reasoning_of(item)
            reasoning.append(text)
            if field and field not in fields:
                fields.append(field)
        elif kind == "message":
            for part in item.get("content") or []:
                if part.get("type") in ("output_text", "text"):
                    content.append(part.get("text") or "")
        elif kind == "function_call":
            arguments = item.get("arguments")
            calls.append(ToolCall(id=str(item.get("call_id") or item.get("id") or ""), name=str(item.get("name") or ""),
                                  arguments=arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return Observation(
        api="responses", stream=False, status=200, content="".join(content) if content else None,
        reasoning="".join(reasoning) or None, reasoning_fields=fields, tool_calls=calls,
        finish_reason=_finish(data.get("status"), calls, data.get("incomplete_details")),
        usage=_usage(data.get("usage")), created=data.get("created_at"), raw=raw,
    )


def accumulate(events: Iterable[tuple[str | None, dict]]) -> Observation:
    """Fold a Responses event stream into the object a non-streamed call would have returned."""
    text, reasoning, fields = [], [], []
    calls: dict[str, dict] = {}
    final, raw, count = {}, [], 0
    for name, event in events:
        count += 1
        if sum(len(r) for r in raw) < RAW_EXCERPT:
            raw.append(json.dumps(event))
        kind = event.get("type") or name or ""
        if kind == "response.output_text.delta":
            text.append(event.get("delta") or "")
        elif kind in REASONING_DELTAS:
            reasoning.append(event.get("delta") or "")
            if REASONING_DELTAS[kind] not in fields:
                fields.append(REASONING_DELTAS[kind])
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item") or {}
            if item.get("type") == "function_call":
                slot = calls.setdefault(item.get("id") or item.get("call_id") or str(len(calls)),
                                        {"call_id": "", "name": "", "arguments": "", "deltas": ""})
                slot["call_id"] = item.get("call_id") or slot["call_id"]
                slot["name"] = item.get("name") or slot["name"]
                slot["arguments"] = item.get("arguments") or slot["arguments"]
        elif kind == "response.function_call_arguments.delta":
            key = event.get("item_id") or next(reversed(calls), "0")
            calls.setdefault(key, {"call_id": "", "name": "", "arguments": "", "deltas": ""})["deltas"] += event.get("delta") or ""
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event.get("response") or {}
    tool_calls = [ToolCall(id=c["call_id"], name=c["name"], arguments=c["deltas"] or c["arguments"])
                  for c in calls.values()]
    return Observation(
        api="responses", stream=True, status=200, content="".join(text) if text else None,
        reasoning="".join(reasoning) or None, reasoning_fields=fields, tool_calls=tool_calls,
        finish_reason=_finish(final.get("status"), tool_calls, final.get("incomplete_details")),
        usage=_usage(final.get("usage")), created=final.get("created_at"),
        raw="\n".join(raw)[:RAW_EXCERPT], events=count,
        failure=None if final else Failure(kind="protocol", message="stream ended without response.completed"),
    )
