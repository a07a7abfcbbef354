"""Wire formats of the built-in provider: Chat, Responses and Completions objects and their streams."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import verifier.serve.faults as fault_modes
from verifier import harmony
from verifier.reference.engine import Generation, ScoredToken


@dataclass
class Meta:
    id: str
    created: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass
class Piece:
    """A piece of streamed output: which message it belongs to and its text."""

    message: int
    channel: str | None
    recipient: str | None
    text: str


def pieces(tokens: list[int]) -> list[Piece]:
    """Replay the Harmony parser over generated tokens, as a streaming server does."""
    from openai_harmony import HarmonyError, Role, StreamableParser

    parser = StreamableParser(harmony.encoding(), Role.ASSISTANT, strict=False)
    out = []
    for token in tokens:
        try:
            parser.process(token)
        except HarmonyError:
            break
        if parser.last_content_delta:
            out.append(Piece(len(parser.messages), parser.current_channel, parser.current_recipient,
                             parser.last_content_delta))
    return out


@dataclass
class Reply:
    """An assistant reply in API terms."""

    reasoning: str | None
    content: str | None
    tool_calls: list[dict]
    finish_reason: str
    tokens: list[int] = field(default_factory=list)
    """The completion tokens the reply was built from (as the model emitted them)."""
    raw_content: bool = False
    """True when content is unparsed Harmony text (a fault), so streams carry it verbatim."""
    quirks: frozenset[str] = frozenset()

    @classmethod
    def build(cls, gen: Generation, faults: frozenset[str], quirks: frozenset[str]) -> Reply:
        """Parse generated tokens into a reply, as a server with these faults and quirks does."""
        tokens = gen.tokens
        parsed = harmony.parse_completion(tokens)
        calls = [{"id": f"call_{uuid.uuid4().hex[:16]}", "name": m.recipient.removeprefix("functions."),
                  "arguments": m.text} for m in parsed.tool_calls]
        content = parsed.final
        if content is None:  # a preamble to the user on commentary, without recipient
            content = "".join(m.text for m in parsed.messages if m.channel == "commentary" and not m.recipient) or None
        finish = "tool_calls" if calls else ("stop" if gen.stopped else "length")
        reply = cls(parsed.reasoning or None, content, calls, finish, tokens, quirks=quirks)
        if "raw-harmony-content" in faults:
            return cls(None, fault_modes.visible_text(tokens), [], "stop" if gen.stopped else "length", tokens, True, quirks)
        if (calls and "tool-call-in-content" in faults) or ("strict-header-parser" in faults and fault_modes.strict_parse_fails(tokens)):
            reply.content, reply.tool_calls, reply.finish_reason, reply.raw_content = harmony.decode(tokens), [], "stop", True
        if reply.tool_calls and "http-500-on-tool-call" in faults:
            raise fault_modes.ServerError(500, "Internal Server Error: Unexpected token 200005 while expecting start token 200006")
        if "garbled-tool-name" in faults:
            for call in reply.tool_calls:
                call["name"] += "<|channel|>commentary"
        if reply.tool_calls and "call-ends-with-stop" in faults:
            reply.finish_reason = "stop"
        if not reply.tool_calls and "empty-answer" in faults:
            reply.content = reply.reasoning = None
        return reply


def _logprob_entry(scored: ScoredToken) -> dict:
    text = harmony.token_text(scored.token)
    return {"token": text, "logprob": scored.logprob, "bytes": list(text.encode()),
            "top_logprobs": [{"token": harmony.token_text(t), "logprob": lp, "bytes": list(harmony.token_text(t).encode())}
                             for t, lp in zip(scored.top.ids, scored.top.logprobs)]}


def _chat_usage(meta: Meta) -> dict:
    return {"prompt_tokens": meta.prompt_tokens, "completion_tokens": meta.completion_tokens,
            "total_tokens": meta.prompt_tokens + meta.completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": meta.reasoning_tokens}}


def reasoning_fields(reply: Reply) -> list[str]:
    """Chat fields that carry reasoning: both by default, as vLLM and others send one or the other."""
    if reply.reasoning is None:
        return []
    if "reasoning-content-only" in reply.quirks:
        return ["reasoning_content"]
    if "reasoning-only" in reply.quirks:
        return ["reasoning"]
    return ["reasoning_content", "reasoning"]


def chat_response(reply: Reply, gen: Generation, meta: Meta, logprobs: bool, prompt: list[int] | None = None) -> dict:
    message: dict = {"role": "assistant", "content": reply.content}
    for name in reasoning_fields(reply):
        message[name] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}} for c in reply.tool_calls]
    choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason,
              "logprobs": {"content": [_logprob_entry(s) for s in gen.scored]} if logprobs else None}
    out = {"id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
           "choices": [choice], "usage": _chat_usage(meta)}
    if prompt is not None:  # vLLM's return_token_ids
        out["prompt_token_ids"] = prompt
        choice["token_ids"] = reply.tokens
    return out


def chat_chunks(reply: Reply, gen: Generation, meta: Meta, logprobs: bool, include_usage: bool) -> list[dict]:
    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        out = {"id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
               "choices": choices}
        if usage:
            out["usage"] = usage
        return out

    out = [chunk({"role": "assistant", "content": ""})]
    if reply.raw_content or (reply.content is None and reply.reasoning is None and not reply.tool_calls):
        out += [chunk({"content": d}) for d in _split(reply.content or "")] if reply.content else []
    else:
        calls = iter(reply.tool_calls)
        started: dict[int, int] = {}
        for piece in pieces(reply.tokens):
            if piece.channel == "analysis":
                out.append(chunk({name: piece.text for name in reasoning_fields(reply)}))
            elif (piece.recipient or "").startswith("functions."):
                if piece.message not in started:
                    started[piece.message] = len(started)
                    call = next(calls)
                    out.append(chunk({"tool_calls": [{"index": started[piece.message], "id": call["id"], "type": "function",
                                                      "function": {"name": call["name"], "arguments": ""}}]}))
                out.append(chunk({"tool_calls": [{"index": started[piece.message], "function": {"arguments": piece.text}}]}))
            elif reply.content is not None:
                out.append(chunk({"content": piece.text}))
    if logprobs and gen.scored:
        out[-1]["choices"][0]["logprobs"] = {"content": [_logprob_entry(s) for s in gen.scored]}
    out.append(chunk({}, reply.finish_reason))
    if include_usage:
        out.append(chunk({}, usage=_chat_usage(meta)))
    return out


# -- Responses ----------------------------------------------------------------------------------


def _items(reply: Reply) -> list[dict]:
    items: list[dict] = []
    if reply.reasoning and "responses-summary" in reply.quirks:
        items.append({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex[:16]}", "content": [],
                      "summary": [{"type": "summary_text", "text": reply.reasoning}], "status": "completed"})
    elif reply.reasoning:
        items.append({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex[:16]}", "summary": [],
                      "content": [{"type": "reasoning_text", "text": reply.reasoning}], "status": "completed"})
    for call in reply.tool_calls:
        items.append({"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:16]}", "call_id": call["id"],
                      "name": call["name"], "arguments": call["arguments"], "status": "completed"})
    if reply.content is not None:
        items.append({"type": "message", "id": f"msg_{uuid.uuid4().hex[:16]}", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": reply.content, "annotations": []}]})
    return items


def responses_object(reply: Reply, gen: Generation, meta: Meta) -> dict:
    incomplete = reply.finish_reason == "length"
    return {
        "id": meta.id, "object": "response", "created_at": meta.created, "model": meta.model,
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "output": _items(reply),
        "usage": {"input_tokens": meta.prompt_tokens, "output_tokens": meta.completion_tokens,
                  "total_tokens": meta.prompt_tokens + meta.completion_tokens,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": meta.reasoning_tokens}},
    }


def _split(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def responses_events(response: dict) -> list[dict]:
    """The event stream whose accumulation is `response`."""
    events: list[dict] = [{"type": "response.created",
                           "response": {**response, "status": "in_progress", "output": [], "usage": None}}]
    for index, item in enumerate(response["output"]):
        kind, item_id = item["type"], item["id"]
        empty = {**item, "status": "in_progress"}
        if kind == "function_call":
            empty["arguments"] = ""
        elif kind == "reasoning":
            empty["content"], empty["summary"] = [], []
        elif kind == "message":
            empty["content"] = []
        events.append({"type": "response.output_item.added", "output_index": index, "item": empty})
        if kind == "reasoning":
            part = (item["content"] or item["summary"])[0]
            event = "response.reasoning_text" if part["type"] == "reasoning_text" else "response.reasoning_summary_text"
            events += [{"type": f"{event}.delta", "item_id": item_id, "output_index": index,
                        "content_index": 0, "delta": d} for d in _split(part["text"])]
            events.append({"type": f"{event}.done", "item_id": item_id, "output_index": index,
                           "content_index": 0, "text": part["text"]})
        elif kind == "message":
            text = item["content"][0]["text"]
            events.append({"type": "response.content_part.added", "item_id": item_id, "output_index": index,
                           "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})
            events += [{"type": "response.output_text.delta", "item_id": item_id, "output_index": index,
                        "content_index": 0, "delta": d} for d in _split(text)]
            events.append({"type": "response.output_text.done", "item_id": item_id, "output_index": index,
                           "content_index": 0, "text": text})
        else:
            events += [{"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": index,
                        "delta": d} for d in _split(item["arguments"])]
            events.append({"type": "response.function_call_arguments.done", "item_id": item_id,
                           "output_index": index, "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


# -- Completions --------------------------------------------------------------------------------


def _visible(tokens: list[int], skip_special: bool) -> str:
    kept = [t for t in tokens if not (skip_special and t >= harmony.START_OF_TEXT)]
    return harmony.decode(kept)


def completion_response(prompt: list[int], gen: Generation, meta: Meta, body: dict, scored, logprobs, prompt_logprobs,
                        echo: bool, chosen_in_top: bool = False) -> dict:
    skip = body.get("skip_special_tokens", True) is not False
    out_tokens = gen.tokens[:-1] if gen.stopped else gen.tokens
    text = (_visible(prompt, skip) if echo else "") + _visible(out_tokens, skip)
    choice: dict = {"index": 0, "text": text, "finish_reason": "stop" if gen.stopped else "length", "logprobs": None}
    if prompt_logprobs is not None and body.get("prompt_logprobs") is not None:
        choice["prompt_logprobs"] = [None] + [
            {str(t): {"logprob": lp, "rank": rank + 1, "decoded_token": harmony.token_text(t)}
             for rank, (t, lp) in enumerate(zip(s.top.ids[:prompt_logprobs], s.top.logprobs[:prompt_logprobs]))}
            | {str(s.token): {"logprob": s.logprob, "rank": _rank(s), "decoded_token": harmony.token_text(s.token)}}
            for s in scored
        ]
    if logprobs is not None:
        choice["logprobs"] = _legacy_logprobs(prompt, echo, scored, gen, logprobs, chosen_in_top)
    if body.get("return_token_ids"):
        choice["token_ids"] = gen.tokens
        choice["prompt_token_ids"] = prompt
    return {"id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model,
            "choices": [choice], "usage": {"prompt_tokens": meta.prompt_tokens, "completion_tokens": meta.completion_tokens,
                                           "total_tokens": meta.prompt_tokens + meta.completion_tokens}}


def _rank(scored: ScoredToken) -> int:
    return 1 + sum(1 for lp in scored.top.logprobs if lp > scored.logprob)


def _legacy_logprobs(prompt: list[int], echo: bool, scored, gen: Generation, k: int, chosen_in_top: bool) -> dict:
    """OpenAI's legacy `logprobs`: per token its text, log-probability, top-k texts and character offset
    (into the tokens' texts laid end to end, from the prompt's start); with `echo` the prompt's tokens
    come first, the first without a log-probability. `chosen_in_top` adds the chosen token to each
    top-k, as OpenAI's API does (up to k+1 entries)."""
    entries: list[ScoredToken | None] = ([None] + list(scored)) if echo else []
    tokens = (list(prompt) if echo else []) + gen.tokens
    entries += gen.scored
    offset = 0 if echo else sum(len(harmony.token_text(t)) for t in prompt)
    offsets = []
    for t in tokens:
        offsets.append(offset)
        offset += len(harmony.token_text(t))

    def top(e: ScoredToken) -> dict:
        out = {harmony.token_text(t): lp for t, lp in zip(e.top.ids[:k], e.top.logprobs[:k])}
        if chosen_in_top:
            out.setdefault(harmony.token_text(e.token), e.logprob)
        return out

    return {
        "tokens": [harmony.token_text(t) for t in tokens],
        "token_logprobs": [e.logprob if e else None for e in entries],
        "top_logprobs": [top(e) if e else None for e in entries],
        "text_offset": offsets,
    }


def completion_chunks(response: dict, include_usage: bool) -> list[dict]:
    choice = response["choices"][0]
    base = {k: response[k] for k in ("id", "object", "created", "model")}
    out = [{**base, "choices": [{"index": 0, "text": choice["text"], "finish_reason": None, "logprobs": choice["logprobs"],
                                 **({"token_ids": choice["token_ids"]} if "token_ids" in choice else {})}]},
           {**base, "choices": [{"index": 0, "text": "", "finish_reason": choice["finish_reason"], "logprobs": None}]}]
    if include_usage:
        out.append({**base, "choices": [], "usage": response["usage"]})
    return out
