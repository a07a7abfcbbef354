"""API surfaces of the built-in provider: what a hosted endpoint offers, reproduced honestly.

A surface (`--surface NAME`) narrows what the server offers the way hosted APIs do, without changing
what the model computes: no `/v1/completions`, string prompts only, capped log-probabilities, random
5xx and 429 answers. Every check must still pass on each surface (what it does not offer is
unsupported, never non-conformant), and with a perturbed checkpoint (`--fault int4-experts`) a drift
check must still fail where the surface allows drift to be measured.

Names, with optional `:`-separated arguments:

- `chat-only`: Chat and Responses; `/v1/completions` and `/tokenize` answer 404; chat `logprobs` or
  `top_logprobs` answer 400 "logprobs are not supported".
- `string-completions[:K]`: `/v1/completions` takes string prompts only (token ids -> 400), `echo` +
  integer `logprobs` at most K (default 5) scoring the prompt as OpenAI's legacy API does, no
  `prompt_logprobs`, no `/tokenize`, chat `top_logprobs` at most K; no token ids returned.
- `capped-logprobs[:K]`: every API as by default, each `logprobs`/`top_logprobs`/`prompt_logprobs`
  count at most K (default 5).
- `random-5xx[:RATE[:SEED]]`: a random share RATE (default 0.2) of POST requests answer 500 or 429
  (`Retry-After: 0`), drawn from one seeded generator per server: never the same request every time.
- `inline-reasoning`: Chat returns reasoning inline, `<reasoning>…</reasoning>` opening `content` (in a
  stream each tag split across two deltas), and no reasoning field; an assistant message sent back with
  its reasoning in that form is read as reasoning (as every prompt is rendered: `harmony`).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, replace

from pydantic import BaseModel

from verifier import harmony
from verifier.errors import UsageError


class Surface(BaseModel):
    name: str
    usage: str
    description: str


SURFACES: dict[str, Surface] = {s.name: s for s in [
    Surface(name="chat-only", usage="chat-only", description="Chat and Responses only: /v1/completions and "
            "/tokenize answer 404, chat logprobs answer 400 (hosts without logprobs)"),
    Surface(name="string-completions", usage="string-completions[:K]", description="completions take string "
            "prompts only, echo + logprobs <= K (default 5) score the prompt, no prompt_logprobs, no /tokenize, "
            "chat top_logprobs <= K, no token ids returned"),
    Surface(name="capped-logprobs", usage="capped-logprobs[:K]", description="every API as by default, with "
            "logprobs, top_logprobs and prompt_logprobs at most K (default 5)"),
    Surface(name="random-5xx", usage="random-5xx[:RATE[:SEED]]", description="a random share RATE (default "
            "0.2) of POST requests answer 500 or 429 (Retry-After: 0), seeded per server (default seed 0)"),
    Surface(name="inline-reasoning", usage="inline-reasoning", description="Chat reasoning inline in content, "
            "<reasoning>…</reasoning> before the answer, instead of a reasoning field"),
]}

DEFAULT_CAP = 5
DEFAULT_ERROR_RATE = 0.2
UNARY = ("chat-only", "inline-reasoning")
"""Surfaces that take no argument."""
COMBINING = ("random-5xx", "inline-reasoning")
"""Surfaces that combine with any other."""


@dataclass(frozen=True)
class Offer:
    """What the server offers, from the surfaces switched on (the default offers everything)."""

    names: tuple[str, ...] = ()
    """The surface specs as given, e.g. ("string-completions", "random-5xx:0.3")."""
    completions: bool = True
    """`/v1/completions` is served."""
    tokenize: bool = True
    """`/tokenize` is served."""
    chat_logprobs: bool = True
    token_id_prompts: bool = True
    prompt_logprobs: bool = True
    token_ids_returned: bool = True
    """`return_token_ids` is honoured (vLLM); hosts ignore it."""
    chosen_in_top: bool = False
    """Legacy completions `top_logprobs` include the chosen token (up to K+1 entries), as OpenAI's do."""
    cap: int | None = None
    """The most log-probabilities per position any parameter may ask for; None: no cap."""
    error_rate: float = 0.0
    seed: int = 0
    inline_reasoning: bool = False
    """Chat reasoning is returned inline in `content` (`<reasoning>…</reasoning>`), not in a field."""


def _int_arg(spec: str, value: str, low: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"surface {spec!r}: {value!r} is not an integer") from None
    if number < low:
        raise UsageError(f"surface {spec!r}: {number} is below {low}")
    return number


def _rate_arg(spec: str, value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise UsageError(f"surface {spec!r}: {value!r} is not a number") from None
    if not 0 <= rate < 1:
        raise UsageError(f"surface {spec!r}: the rate must be in [0, 1)")
    return rate


def _apply(offer: Offer, spec: str) -> Offer:
    name, *args = spec.split(":")
    if name not in SURFACES:
        raise UsageError(f"unknown surface {spec!r}; known surfaces: {', '.join(s.usage for s in SURFACES.values())}")
    most = 2 if name == "random-5xx" else (0 if name in UNARY else 1)
    if len(args) > most:
        raise UsageError(f"surface {spec!r}: usage {SURFACES[name].usage}")
    if name == "random-5xx":
        return replace(offer, error_rate=_rate_arg(spec, args[0]) if args else DEFAULT_ERROR_RATE,
                       seed=_int_arg(spec, args[1], 0) if len(args) > 1 else 0)
    if name == "inline-reasoning":
        return replace(offer, inline_reasoning=True)
    if name == "chat-only":
        return replace(offer, completions=False, tokenize=False, chat_logprobs=False, token_ids_returned=False)
    cap = _int_arg(spec, args[0], 0) if args else DEFAULT_CAP
    if name == "capped-logprobs":
        return replace(offer, cap=cap)
    return replace(offer, tokenize=False, token_id_prompts=False, prompt_logprobs=False, token_ids_returned=False,
                   chosen_in_top=True, cap=cap)


def parse_surfaces(specs: list[str] | None) -> Offer:
    """The offer of these surface specs (UsageError for an unknown or conflicting one)."""
    specs = list(specs or [])
    shaping = [s.split(":")[0] for s in specs if s.split(":")[0] not in COMBINING]
    if len(shaping) > 1:
        raise UsageError(f"surfaces {', '.join(shaping)} conflict: at most one of chat-only, string-completions, "
                         "capped-logprobs (random-5xx and inline-reasoning combine with any)")
    offer = Offer(names=tuple(specs))
    for spec in specs:
        offer = _apply(offer, spec)
    return offer


class BadParameter(Exception):
    """A request parameter the surface does not offer (answered 400 with this message)."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def _capped(offer: Offer, body: dict, *names: str) -> None:
    for name in names:
        value = body.get(name)
        if offer.cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > offer.cap:
            raise BadParameter(f"{name} must be at most {offer.cap}", name)


def check_chat(offer: Offer, body: dict) -> None:
    """Refuse chat parameters this surface does not offer."""
    if not offer.chat_logprobs and (body.get("logprobs") or body.get("top_logprobs") is not None):
        raise BadParameter("logprobs are not supported", "logprobs")
    _capped(offer, body, "top_logprobs")


def check_completions(offer: Offer, body: dict) -> None:
    """Refuse completions parameters this surface does not offer."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if not offer.token_id_prompts and not isinstance(prompt, str):
        raise BadParameter("prompt must be a string", "prompt")
    if not offer.prompt_logprobs and body.get("prompt_logprobs") is not None:
        raise BadParameter("prompt_logprobs is not supported", "prompt_logprobs")
    _capped(offer, body, "logprobs", "prompt_logprobs")


def without_token_ids(offer: Offer, body: dict) -> dict:
    """The body as the server reads it: `return_token_ids` dropped where it is not honoured."""
    if offer.token_ids_returned or "return_token_ids" not in body:
        return body
    return {k: v for k, v in body.items() if k != "return_token_ids"}


@dataclass
class Flaky:
    """Random 500 and 429 answers at `rate`, from one seeded generator (shared by all requests)."""

    rate: float
    seed: int = 0
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> int | None:
        """The error status this request gets (500 or 429), or None to serve it."""
        if self.rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return 500 if self._rng.random() < 0.5 else 429


# -- inline reasoning -------------------------------------------------------------------------------

REASONING_KEYS = ("reasoning_content", "reasoning")
"""The Chat fields the default server puts reasoning in (`render.reasoning_fields`)."""


def _pop_reasoning(holder: dict) -> str | None:
    found = [holder.pop(name) for name in REASONING_KEYS if name in holder]
    return next((text for text in found if isinstance(text, str)), None)


def _inline_message(response: dict) -> dict:
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        if reasoning := _pop_reasoning(message):
            message["content"] = harmony.inline_reasoning(reasoning, message.get("content"))
    return response


def _halves(tag: str) -> list[str]:
    return [tag[: len(tag) // 2], tag[len(tag) // 2 :]]


def _content_chunk(like: dict, text: str) -> dict:
    return {**{k: like[k] for k in ("id", "object", "created", "model")},
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None, "logprobs": None}]}


def _inline_chunks(chunks: list[dict]) -> list[dict]:
    """Reasoning deltas as content deltas, each run of them opened and closed by tags split across two deltas
    (as a host streaming token by token splits them): the closing tag before the next answer text, call or
    finish."""
    out: list[dict] = []
    opened = False
    for chunk in chunks:
        choice = (chunk.get("choices") or [{}])[0]
        delta = choice.get("delta")
        text = _pop_reasoning(delta) if isinstance(delta, dict) else None
        if text is not None:
            out += [] if opened else [_content_chunk(chunk, half) for half in _halves(harmony.REASONING_OPEN)]
            opened = True
            delta["content"] = text
        elif opened and isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")
                                                     or choice.get("finish_reason")):
            out += [_content_chunk(chunk, half) for half in _halves(harmony.REASONING_CLOSE)]
            opened = False
        out.append(chunk)
    return out


def chat_answer(offer: Offer, answer: dict | list[dict]) -> dict | list[dict]:
    """A Chat answer (a response, or a stream's chunks) as this surface sends it: reasoning inline where
    `inline-reasoning` is on, else unchanged."""
    if not offer.inline_reasoning:
        return answer
    return _inline_chunks(answer) if isinstance(answer, list) else _inline_message(answer)
