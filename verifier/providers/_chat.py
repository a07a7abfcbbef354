"""Chat Completions: one response object, or a stream of chunks accumulated into the same shape."""

from __future__ import annotations

import json
from collections.abc import Iterable

from verifier import harmony
from verifier.observation import Failure, Observation, TokenLogprob, ToolCall, TopLogprob, Usage
from verifier.providers._http import RAW_EXCERPT

REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where servers put gpt-oss reasoning in a Chat message (vLLM sends `reasoning`, others the first)."""


def _usage(data: dict | None) -> Usage:
    data = data if isinstance(data, dict) else {}
    details = data.get("completion_tokens_details")
    details = details if isinstance(details, dict) else {}
    return Usage.reported(data.get("prompt_tokens"), data.get("completion_tokens"), details.get("reasoning_tokens"))


def token_id(item: dict) -> int | None:
    """The token id a logprob entry carries (`token_id`, or llama.cpp's `id`), if any."""
    for name in ("token_id", "id"):
        value = item.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _or_floor(value) -> float:
    found = _float(value)
    return float("-inf") if found is None else found


def _chat_entries(items: list) -> list[TokenLogprob]:
    """Chat `logprobs.content`: per token {token, logprob, id?, top_logprobs: [{token, logprob, id?}]}."""
    out = []
    for item in (i for i in items if isinstance(i, dict)):
        top = [TopLogprob(token=str(t.get("token", "")), logprob=_or_floor(t.get("logprob")),
                          token_id=token_id(t)) for t in item.get("top_logprobs") or [] if isinstance(t, dict)]
        out.append(TokenLogprob(token=str(item.get("token", "")), logprob=_float(item.get("logprob")),
                                token_id=token_id(item), top=top))
    return out


def _legacy_entries(data: dict) -> list[TokenLogprob]:
    """OpenAI-legacy logprobs in a chat answer (hosts that take `logprobs` as an integer): parallel lists
    `tokens`, `token_logprobs`, `top_logprobs` (text -> logprob) and, at some, `token_ids`."""
    tokens, values = data.get("tokens") or [], data.get("token_logprobs") or []
    tops, ids = data.get("top_logprobs") or [], data.get("token_ids") or []
    out = []
    for i, token in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        token_id = ids[i] if i < len(ids) and isinstance(ids[i], int) else None
        out.append(TokenLogprob(token=str(token), logprob=_float(values[i]) if i < len(values) else None,
                                token_id=token_id,
                                top=[TopLogprob(token=str(t), logprob=_or_floor(v)) for t, v in top.items()]))
    return out


def _logprobs(data: dict | list | None) -> list[TokenLogprob] | None:
    """Per-token logprobs in any of the shapes hosts send: Chat's `{content: [...]}` (or the list alone),
    or OpenAI-legacy parallel lists."""
    if isinstance(data, list):
        return _chat_entries(data)
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("content"), list):
        return _chat_entries(data["content"])
    if isinstance(data.get("tokens"), list):
        return _legacy_entries(data)
    return None


def _reasoning_logprobs(choice: dict) -> list[TokenLogprob] | None:
    """Reasoning-token logprobs reported apart from the answer's: `choice.reasoning_logprobs`, or a
    `reasoning_content`/`reasoning` list inside `choice.logprobs`."""
    if (found := _logprobs(choice.get("reasoning_logprobs"))) is not None:
        return found
    inner = choice.get("logprobs")
    if isinstance(inner, dict):
        for name in REASONING_FIELDS:
            if isinstance(inner.get(name), list):
                return _chat_entries(inner[name])
    return None


def _reasoning(message: dict, content: str | None) -> tuple[str | None, list[str], str | None]:
    """The reasoning text, the field names that carried it (identical copies count once) and the answer text:
    reasoning from a reasoning field, else inline tags opening `content` (`harmony.INLINE_REASONING`), which
    are then no part of the answer."""
    found = [(name, message[name]) for name in REASONING_FIELDS if isinstance(message.get(name), str) and message[name]]
    if found:
        return found[0][1], [name for name, _ in found], content
    reasoning, answer = harmony.split_inline_reasoning(content)
    if reasoning is None and answer == content:  # no tags open the content
        return None, [], content
    return reasoning, [harmony.INLINE_REASONING], answer  # empty tags still go: they are no part of the answer


def _tool_calls(raw: list | None) -> list[ToolCall]:
    calls = []
    for call in raw or []:
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(id=str(call.get("id") or ""), name=str(fn.get("name") or ""), arguments=arguments))
    return calls


def parse_response(data: dict, raw: str) -> Observation:
    """A non-streamed Chat Completions response."""
    choices = data.get("choices") or []
    if not choices:
        return Observation(api="chat", stream=False, status=200, raw=raw,
                           failure=Failure(kind="protocol", message="response has no choices"))
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    reasoning, fields, content = _reasoning(message, content)
    return Observation(
        api="chat", stream=False, status=200, content=content, reasoning=reasoning, reasoning_fields=fields,
        tool_calls=_tool_calls(message.get("tool_calls")), finish_reason=choice.get("finish_reason"),
        usage=_usage(data.get("usage")), logprobs=_logprobs(choice.get("logprobs")),
        reasoning_logprobs=_reasoning_logprobs(choice),
        created=data.get("created"), raw=raw,
    )


def accumulate(events: Iterable[tuple[str | None, dict]]) -> Observation:
    """Fold a stream of chunks into the message a non-streamed response would have carried (content deltas
    joined before they are read, so inline reasoning tags split across deltas read as one)."""
    content, reasoning = [], {name: [] for name in REASONING_FIELDS}
    calls: dict[int, dict] = {}
    logprobs: list[dict] = []
    reasoning_logprobs: list[dict] = []
    finish, usage, created, raw, count = None, None, None, [], 0
    for _, chunk in events:
        count += 1
        if sum(len(r) for r in raw) < RAW_EXCERPT:
            raw.append(json.dumps(chunk))
        created = created or chunk.get("created")
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for name in REASONING_FIELDS:
                if isinstance(delta.get(name), str):
                    reasoning[name].append(delta[name])
            for part in delta.get("tool_calls") or []:
                slot = calls.setdefault(part.get("index", len(calls)), {"id": "", "function": {"name": "", "arguments": ""}})
                slot["id"] = part.get("id") or slot["id"]
                fn = part.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if (choice.get("logprobs") or {}).get("content"):
                logprobs.extend(choice["logprobs"]["content"])
            if (choice.get("reasoning_logprobs") or {}).get("content"):
                reasoning_logprobs.extend(choice["reasoning_logprobs"]["content"])
            finish = choice.get("finish_reason") or finish
    message = {"content": "".join(content) or None,
               **{name: "".join(parts) for name, parts in reasoning.items() if parts},
               "tool_calls": [calls[i] for i in sorted(calls)]}
    obs = parse_response({"choices": [{"message": message, "finish_reason": finish,
                                       "logprobs": {"content": logprobs} if logprobs else None,
                                       "reasoning_logprobs": {"content": reasoning_logprobs} if reasoning_logprobs
                                       else None}],
                          "usage": usage, "created": created}, "\n".join(raw)[:RAW_EXCERPT])
    obs.stream, obs.events = True, count
    return obs
