"""Completions API: raw Harmony prompts (token ids in, Harmony tokens out) and teacher-forced scoring."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from verifier import harmony
from verifier.errors import ProviderProtocolError, ScoringUnsupported
from verifier.observation import Failure, Observation, ToolCall, Usage
from verifier.providers._chat import token_id
from verifier.providers._http import RAW_EXCERPT
from verifier.scores import PositionScore


def logprob_ids(logprobs) -> list[int] | None:
    """The generated tokens' ids carried by a completion's logprobs (llama-server: chat-shaped `content`
    entries with `id`), None unless every entry has one. Servers that hide control tokens in the text
    (end-of-generation included) still report their ids here."""
    entries = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    ids = [token_id(e) if isinstance(e, dict) else None for e in entries]
    return None if None in ids else ids


def _spelling(ids: list[int] | None, text: str) -> list[int] | None:
    """`ids` if they spell `text`, control tokens the text leaves out at its end allowed (a hidden stop);
    None otherwise: ids that disagree with the text are not trusted over it."""
    trimmed = list(ids or [])
    while trimmed and harmony.decode(trimmed) != text and _is_special(trimmed[-1]):
        trimmed.pop()
    return ids if ids and harmony.decode(trimmed) == text else None


def harmony_observation(prompt_len: int, data: dict, raw: str, stream: bool, events: int = 0) -> Observation:
    """Interpret a raw-Harmony completion: parse its tokens as the reference parser does. The tokens are the
    `token_ids` the server returned, else the ids in its logprobs, else its text encoded (control tokens the
    text does not show are then missing)."""
    choice = (data.get("choices") or [{}])[0]
    text = choice.get("text") or ""
    token_ids = choice.get("token_ids") or _spelling(logprob_ids(choice.get("logprobs")), text)
    tokens = list(token_ids) if token_ids else harmony.encode_with_specials(text)
    parsed = harmony.parse_completion(tokens)
    calls = [ToolCall(id=f"harmony_{i}", name=m.recipient.removeprefix("functions."), arguments=m.text)
             for i, m in enumerate(parsed.tool_calls)]
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    finish = choice.get("finish_reason")
    if parsed.stop_token == harmony.CALL:
        finish = "tool_calls"
    return Observation(
        api="completions", stream=stream, status=200, content=parsed.final, reasoning=parsed.reasoning or None,
        reasoning_fields=["analysis"] if parsed.reasoning else [], tool_calls=calls, finish_reason=finish,
        usage=Usage.reported(usage.get("prompt_tokens"), usage.get("completion_tokens")),
        token_ids=tokens, created=data.get("created"), raw=raw, events=events,
        failure=None if token_ids or text else Failure(kind="protocol",
                                                       message="completion returned no text and no token ids"),
    )


def accumulate(prompt_len: int, events: Iterable[tuple[str | None, dict]]) -> Observation:
    text, ids, logprobs, finish, usage, created, raw, count = [], [], [], None, None, None, [], 0
    for _, chunk in events:
        count += 1
        if sum(len(r) for r in raw) < RAW_EXCERPT:
            raw.append(json.dumps(chunk))
        created = created or chunk.get("created")
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            text.append(choice.get("text") or "")
            ids.extend(choice.get("token_ids") or [])
            if isinstance(choice.get("logprobs"), dict) and isinstance(choice["logprobs"].get("content"), list):
                logprobs.extend(choice["logprobs"]["content"])
            finish = choice.get("finish_reason") or finish
    data = {"choices": [{"text": "".join(text), "token_ids": ids or None, "finish_reason": finish,
                         "logprobs": {"content": logprobs} if logprobs else None}],
            "usage": usage, "created": created}
    return harmony_observation(prompt_len, data, "\n".join(raw)[:RAW_EXCERPT], True, count)


def _finite(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) or out == float("-inf") else None


def parse_prompt_logprobs(entries: list, tokens: list[int], start: int) -> list[PositionScore]:
    """vLLM `prompt_logprobs`: per prompt position, {token id: {logprob, rank, decoded_token}}."""
    out = []
    for pos in range(start, len(tokens)):
        entry = entries[pos] if pos < len(entries) else None
        top = {}
        for key, value in (entry or {}).items():
            logprob = _finite(value.get("logprob") if isinstance(value, dict) else value)
            if logprob is not None:
                top[int(key)] = logprob
        out.append(PositionScore(token_logprob=top.get(tokens[pos]), top=top))
    return out


def parse_echo_logprobs(logprobs: dict, tokens: list[int], start: int, candidates: dict[int, list[int]]
                        ) -> list[PositionScore]:
    """OpenAI legacy `echo` + `logprobs`: token strings, mapped back to ids through `candidates`.

    `candidates[pos]` are the ids whose text may appear at position `pos` (the golden top-K); a
    reported string maps to the first candidate that decodes to it.
    """
    token_logprobs = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    out = []
    for pos in range(start, len(tokens)):
        texts = {}
        for cid in candidates.get(pos, []):
            texts.setdefault(harmony.token_text(cid), cid)
        top = {}
        for text, value in ((tops[pos] if pos < len(tops) else None) or {}).items():
            if text in texts and (logprob := _finite(value)) is not None:
                top[texts[text]] = logprob
        lp = _finite(token_logprobs[pos]) if pos < len(token_logprobs) else None
        out.append(PositionScore(token_logprob=lp, top=top))
    return out


def reported_k(tops: list, asked: int) -> int:
    """Top entries per position a provider reported: at most `asked` (some add the chosen token beyond it)."""
    return min(asked, max((len(entry) for entry in tops if isinstance(entry, dict)), default=0))


def _is_special(token: int) -> bool:
    return harmony.token_text(token) in harmony.SPECIAL_TEXTS


def same_token(text: str, token: int) -> bool:
    """Whether a token the host reported as `text` is golden's `token`: the same text; an empty text where
    golden has a control token (engines that print them as ""); a byte fragment where golden has one."""
    golden = harmony.token_text(token)
    if text == golden:
        return True
    if text == "":
        return _is_special(token)
    return "\ufffd" in golden and (text.startswith("bytes:") or "\ufffd" in text)


def align_echo(reported: list, tokens: list[int]) -> int:
    """Where golden's tokens begin in the host's echoed tokens (0, or 1 after a start-of-text token it
    added), checking that they are golden's tokens one to one. A host that tokenised the prompt string
    otherwise raises: `ScoringUnsupported` where it split a control token into text (it does not read
    them in string prompts), `ProviderProtocolError` (with the first differing position) otherwise."""
    shift = 1 if reported and tokens and reported[0] in ("", "<|startoftext|>") and len(reported) > len(tokens) \
        and not same_token(str(reported[0]), tokens[0]) else 0
    for i, token in enumerate(tokens):
        got = reported[i + shift] if i + shift < len(reported) else None
        if got is not None and same_token(str(got), token):
            continue
        golden = harmony.token_text(token)
        if got is None:
            raise ProviderProtocolError(f"the echoed prompt has {len(reported) - shift} tokens, golden {len(tokens)}: "
                                        f"the host tokenises the prompt string differently (from position {i})")
        if _is_special(token) and golden.startswith(str(got)):
            raise ScoringUnsupported(f"the host does not read control tokens in a string prompt (position {i}: "
                                     f"golden {golden!r}, host {got!r})")
        raise ProviderProtocolError(f"the host tokenises the prompt string differently from golden at position {i} "
                                    f"(golden {golden!r}, host {got!r})")
    return shift


def parse_echo_text(logprobs: dict, tokens: list[int], start: int, candidates: dict[int, list[int]]
                    ) -> list[PositionScore]:
    """OpenAI legacy `echo` + `logprobs` on a prompt sent as text: the echoed `tokens` must be golden's
    (`align_echo`), then they are read as `parse_echo_logprobs` reads those of a token-id prompt."""
    shift = align_echo(list(logprobs.get("tokens") or []), tokens)
    shifted = {key: list(values)[shift:] for key, values in logprobs.items() if isinstance(values, list)}
    return parse_echo_logprobs(shifted, tokens, start, candidates)
