"""Find what an endpoint offers within a few cheap requests (1-4 generated tokens each).

The probe reads answers and error messages: 404/405/501, or a message saying "not found" / "unsupported",
means not offered; a parameter the answer ignores is not offered either; a 4xx naming a cap ("at most 5")
gives the cap, which is then confirmed. An HTTP 500 after every retry says nothing either way (could not
be checked), nor does a request that found no service on any attempt (rate limits, resets; retried as any
request is); when no API could be reached at all that is an outage, and `ProviderUnavailable` propagates.
Probe requests are not journaled and not counted in a run's cost; they and the tokens their answers report
count towards a run's budget (`run --max-requests/--max-tokens`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from verifier import harmony
from verifier.capabilities import Capabilities
from verifier.errors import ProviderError, ProviderHTTPError, ProviderUnavailable, UsageError
from verifier.observation import Usage
from verifier.providers import PROMPT_IDS_MODES, _chat, _completions, _message, _responses
from verifier.providers.messages import named_cap, printable

NOT_OFFERED_STATUSES = frozenset({404, 405, 501})
NOT_OFFERED_WORDS = ("not found", "unsupported", "not supported", "not implemented", "not available",
                     "unknown endpoint", "no route", "not allowed", "unrecognized", "not permitted",
                     "unknown parameter")
PARAMETER = re.compile(r"param|argument|field|property|\b(temperature|max_tokens|max_output_tokens|stream)\b",
                       re.IGNORECASE)
TRIES = (20, 5, 1)
"""The k asked for in turn when no cap is named: the common caps."""
PROBE_CHAT = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0,
              "max_tokens": 4}
PROBE_TOOL = {"type": "function", "function": {"name": "get_time", "description": "Current time.",
                                               "parameters": {"type": "object", "properties": {}}}}
PROBE_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
MAX_NOTE = 160


class Failed(Exception):
    """A probe request the provider refused: its status and message, made printable (`messages.printable`:
    provider text goes into notes and onto the terminal; the words are read from the same text)."""

    def __init__(self, status: int | None, message: str):
        self.message = printable(message)
        super().__init__(self.message)
        self.status = status

    @property
    def not_offered(self) -> bool:
        """The endpoint or parameter does not exist here (rather than the request being wrong for it)."""
        return self.status in NOT_OFFERED_STATUSES or any(w in self.message.lower() for w in NOT_OFFERED_WORDS)

    @property
    def undecided(self) -> bool:
        """An answer that says nothing about the capability: a server error, or no answer that parses."""
        return self.status is None or self.status >= 500

    @property
    def about_a_parameter(self) -> bool:
        """The refusal names a parameter or field of the request (so the endpoint itself exists)."""
        return bool(PARAMETER.search(self.message))

    @property
    def exists(self) -> bool | None:
        """What the answer says of the endpoint: missing on 404/405/501 or a message saying it is; a 4xx
        about the request, or one refusing a parameter ("Unsupported parameter: 'temperature'"), means it
        exists."""
        if self.undecided:
            return None
        if self.status in NOT_OFFERED_STATUSES:
            return False
        return self.about_a_parameter or not self.not_offered

    def offered(self, *names: str) -> bool | None:
        """What the answer says of a request feature named by `names`: not offered (False) only where the
        endpoint or parameter is missing, or the refusal says it is unsupported and names the feature; None
        otherwise (any other 4xx is left to the run, where refusing a feature the host takes is a finding)."""
        named = any(name in self.message.lower() for name in names)
        refused = self.status in NOT_OFFERED_STATUSES or (self.not_offered and named)
        return False if refused and not self.undecided else None

    def note(self) -> str:
        """The refusal as a capability note: one printable line, cut to `MAX_NOTE`."""
        text = self.message
        return (f"HTTP {self.status}: " if self.status else "") + (text[:MAX_NOTE] + "…" if len(text) > MAX_NOTE else text)


def _error_message(exc: ProviderError) -> str:
    """The provider's own message (`{"error": {"message": …}}`, decoded as the run reads it), else its body,
    else the exception."""
    body = getattr(exc, "body", "") or ""
    return _message(body) if body else str(exc)


def _attempt(send: Callable[[], Any]) -> Any:
    """`send()`, a provider's refusal as `Failed` (no service on any attempt: undecided, status None)."""
    try:
        return send()
    except ProviderUnavailable as exc:
        raise Failed(None, f"no service: {exc}") from None
    except ProviderHTTPError as exc:
        raise Failed(exc.status, _error_message(exc)) from None
    except ProviderError as exc:
        raise Failed(None, str(exc)) from None


def _next_tries(k: int, failed: Failed, tried: set[int]) -> list[int]:
    named = named_cap(failed.message)
    if named is not None and 0 < named < k:
        return [named]
    if named is None and failed.not_offered:
        return []
    return [t for t in TRIES if t < k and t not in tried]


def find_cap(send: Callable[[int], Any], measure: Callable[[Any], int | None]) -> tuple[int | None, str]:
    """The largest k (of 20, a cap the endpoint names, 5, 1) with which `send(k)` works; 0 if none does.

    `measure(answer)` is the top-list length the answer really carries, the scored token's own log-probability
    alone counting as 1 (None: the parameter was ignored, or the answer carries no log-probability at all).
    Returns (k, note); k None where a server error left it undecided.
    """
    queue, tried, notes = [TRIES[0]], set(), []
    while queue:
        k = queue.pop(0)
        tried.add(k)
        try:
            answer = _attempt(lambda k=k: send(k))
        except Failed as failed:
            notes.append(f"k={k}: {failed.note()}")
            if failed.undecided:
                return None, "; ".join(notes)
            queue = _next_tries(k, failed, tried)
            continue
        got = measure(answer)
        if got is None:
            return 0, "; ".join(notes + [f"k={k}: accepted but not in the answer"])
        return min(k, got), "; ".join(notes)
    return 0, "; ".join(notes)


class Prober:
    """The probe requests of one provider, each setting the capabilities it shows."""

    def __init__(self, provider):
        self.provider = provider
        self.http = provider.http
        self.caps = Capabilities()
        self.outage: ProviderUnavailable | None = None
        """The last request that found no service on any attempt (its capability is left undecided)."""
        self.prompt_ids = harmony.render_chat(PROBE_CHAT, harmony.DEFAULT_DATE)
        self.prompt_text = harmony.decode(self.prompt_ids)

    def post(self, path: str, body: dict) -> dict:
        answer = self.sent(lambda: self.http.post_json(path, {**body, "model": self.provider.model})[0])
        self.count_tokens(_reported_usage(path, answer))
        return answer

    def stream(self, path: str, body: dict) -> list:
        events = self.sent(lambda: self.http.post_sse(path, {**body, "model": self.provider.model, "stream": True}))
        self.count_tokens(_reported_usage(path, events))
        return events

    def count_tokens(self, usage: Usage) -> None:
        self.caps.prompt_tokens += usage.prompt_tokens or 0
        self.caps.completion_tokens += usage.completion_tokens or 0

    def sent(self, call: Callable[[], Any]) -> Any:
        """One probe request, counted; an outage remembered."""
        self.caps.requests += 1
        try:
            return call()
        except ProviderUnavailable as exc:
            self.outage = exc
            raise

    def offered(self, name: str, send: Callable[[], Any]) -> Any:
        """Send one request that shows whether an endpoint exists; set `name`; the answer if it worked."""
        try:
            answer = _attempt(send)
        except Failed as failed:
            self.caps.notes[name] = failed.note()
            setattr(self.caps, name, failed.exists)
            return None
        setattr(self.caps, name, True)
        return answer

    # -- chat ------------------------------------------------------------------------------------

    def chat(self) -> None:
        answer = self.offered("chat", lambda: self.post("/chat/completions", PROBE_CHAT))
        if self.caps.chat is False:
            self.caps.chat_stream = self.caps.chat_logprobs = False
            return
        if answer is not None:
            self.caps.reasoning_field = _reasoning_field(answer)
        self.offered("chat_stream", lambda: self.stream("/chat/completions", {**PROBE_CHAT, "max_tokens": 1}))
        self.chat_logprobs()
        self.prompt_id_sources()
        self.tool_choice()
        self.response_format()

    def chat_logprobs(self) -> None:
        def send(k: int) -> dict:
            return self.post("/chat/completions", {**PROBE_CHAT, "logprobs": True, "top_logprobs": k})

        k, note = find_cap(send, _chat_top)
        if k == 0 and note and "accepted but not in the answer" not in note:
            k, more = self._chat_logprobs_alone(note)
            note = "; ".join(filter(None, [note, more]))
        elif k == 0:
            k = None  # accepted, yet none in a few tokens (some hosts report content tokens only): undecided
        self.caps.chat_top_logprobs = k
        self.caps.chat_logprobs = None if k is None else bool(k) or self.caps.chat_logprobs is True
        if note:
            self.caps.notes["chat_top_logprobs"] = note
            if not self.caps.chat_logprobs:
                self.caps.notes["chat_logprobs"] = note

    def _chat_logprobs_alone(self, note: str) -> tuple[int | None, str]:
        """`logprobs: true` without `top_logprobs`, after every k was refused."""
        try:
            answer = _attempt(lambda: self.post("/chat/completions", {**PROBE_CHAT, "max_tokens": 1, "logprobs": True}))
        except Failed as failed:
            return (None if failed.undecided else 0), f"logprobs alone: {failed.note()}"
        self.caps.chat_logprobs = _chat_top(answer) is not None
        return 0, "" if self.caps.chat_logprobs else "logprobs alone: accepted but not in the answer"

    def prompt_id_sources(self) -> None:
        """Each way the provider shows a chat request's prompt ids, asked as the run asks it
        (`Provider.prompt_ids_by`)."""
        sources, notes, undecided = [], [], False
        for mode in PROMPT_IDS_MODES:
            try:
                tokens = _attempt(lambda mode=mode: self.sent(lambda: self.provider.prompt_ids_by(mode, PROBE_CHAT)))
            except Failed as failed:
                notes.append(f"{mode}: {failed.note()}")
                undecided |= failed.undecided
                continue
            if tokens:
                sources.append(mode)
                self.caps.requests += mode == "apply_template"  # two requests: the template, then /tokenize
            else:
                notes.append(f"{mode}: no token ids in the answer")
        self.caps.prompt_ids_sources = None if undecided and not sources else sources
        if notes:
            self.caps.notes["prompt_ids_sources"] = "; ".join(notes)

    def tool_choice(self) -> None:
        forms = {"string": "required", "named": {"type": "function", "function": {"name": "get_time"}}}
        for form, choice in forms.items():
            body = {**PROBE_CHAT, "max_tokens": 32, "tools": [PROBE_TOOL], "tool_choice": choice}
            try:
                _attempt(lambda body=body: self.post("/chat/completions", body))
            except Failed as failed:
                self.caps.notes[f"tool_choice.{form}"] = failed.note()
                self.caps.tool_choice[form] = failed.offered("tool_choice")
                continue
            self.caps.tool_choice[form] = True

    def response_format(self) -> None:
        """A `json_schema` response format: unsupported only where the refusal says so (`Failed.offered`)."""
        try:
            _attempt(lambda: self.post("/chat/completions", {**PROBE_CHAT, "response_format": PROBE_FORMAT}))
        except Failed as failed:
            self.caps.notes["response_format"] = failed.note()
            self.caps.response_format = failed.offered("response_format", "json_schema")
            return
        self.caps.response_format = True

    # -- responses -------------------------------------------------------------------------------

    def responses(self) -> None:
        body = {"input": "Say hi.", "max_output_tokens": 16, "temperature": 0}
        self.offered("responses", lambda: self.post("/responses", body))
        if self.caps.responses is False:
            self.caps.responses_stream = False
            return
        self.offered("responses_stream", lambda: self.stream("/responses", body))

    # -- completions -----------------------------------------------------------------------------

    def completions(self) -> None:
        """Token ids first (what the run sends), then a string when ids are refused."""
        try:
            _attempt(lambda: self.post("/completions", self.completion(self.prompt_ids)))
            self.caps.completions = self.caps.token_id_prompts = True
        except Failed as refused:
            self._string_prompts(refused)
        if self.caps.completions is False:
            self._no_completions()
        if self.caps.completions is not True:
            return
        self.offered("completions_stream", lambda: self.stream("/completions", self.completion(self.prompt())))
        self.prompt_logprobs()
        self.echo_logprobs()
        if self.caps.token_id_prompts:
            self.completion_logprobs()

    def _string_prompts(self, refused: Failed) -> None:
        """Token ids refused: if a string works, completions are offered for strings only."""
        self.caps.token_id_prompts = None if refused.undecided else False
        self.caps.notes["token_id_prompts"] = refused.note()
        if refused.status in NOT_OFFERED_STATUSES:
            self.caps.completions = False
            self.caps.notes["completions"] = refused.note()
            return
        try:
            _attempt(lambda: self.post("/completions", self.completion(self.prompt_text)))
        except Failed as failed:
            self.caps.notes["completions"] = f"token ids: {refused.note()}; text: {failed.note()}"
            self.caps.completions = failed.exists
            return
        self.caps.completions = True

    def _no_completions(self) -> None:
        self.caps.completions_stream = self.caps.token_id_prompts = False
        self.caps.prompt_logprobs = self.caps.echo_logprobs = 0

    def prompt(self) -> list[int] | str:
        return self.prompt_ids if self.caps.token_id_prompts else self.prompt_text

    def completion(self, prompt: list[int] | str) -> dict:
        return {"prompt": prompt, "max_tokens": 1, "temperature": 0}

    def prompt_logprobs(self) -> None:
        k, note = find_cap(lambda k: self.post("/completions", {**self.completion(self.prompt()), "prompt_logprobs": k}),
                           _prompt_logprobs_k)
        self.caps.prompt_logprobs = k
        if note:
            self.caps.notes["prompt_logprobs"] = note

    def echo_logprobs(self) -> None:
        def send(k: int) -> dict:
            return self.post("/completions", {**self.completion(self.prompt()), "echo": True, "logprobs": k})

        k, note = find_cap(send, _echo_k)
        self.caps.echo_logprobs = k
        if note:
            self.caps.notes["echo_logprobs"] = note

    def completion_logprobs(self) -> None:
        """Whether `logprobs: 1` on a completion brings the generated tokens' ids (llama-server's logprobs
        carry `id`; the run then reads the ids, end-of-generation token included, from them)."""
        try:
            answer = _attempt(lambda: self.post("/completions", {**self.completion(self.prompt_ids), "logprobs": 1}))
        except Failed as failed:
            self.caps.completion_logprob_ids = None if failed.undecided else False
            self.caps.notes["completion_logprob_ids"] = failed.note()
            return
        self.caps.completion_logprob_ids = bool(_completions.logprob_ids(_choice(answer).get("logprobs")))
        if not self.caps.completion_logprob_ids:
            self.caps.notes["completion_logprob_ids"] = "no token ids in the answer's logprobs"


def probe(provider) -> Capabilities:
    """What `provider` offers (see the module docstring). A `UsageError` when it offers no API at all;
    `ProviderUnavailable` when no API could be reached (a request that found no service leaves only its own
    capability undecided)."""
    prober = Prober(provider)
    prober.chat()
    prober.responses()
    prober.completions()
    caps = prober.caps
    if prober.outage is not None and (caps.chat, caps.responses, caps.completions) == (None, None, None):
        raise prober.outage
    if not any((caps.chat, caps.responses, caps.completions)) and None not in (caps.chat, caps.responses,
                                                                             caps.completions):
        raise UsageError(f"{provider.base_url} offers no chat, responses or completions API for model "
                         f"{provider.model!r} ({caps.notes.get('chat', 'not offered')})")
    return caps


# -- reading answers ------------------------------------------------------------------------------


def _reported_usage(path: str, answer: dict | list) -> Usage:
    """The tokens a probe answer reports, read as the run reads them: a JSON answer's `usage`, a stream's in
    the last event that carries it (a Responses stream in its final `response`); none where none is given."""
    if isinstance(answer, list):
        found = [data.get("usage") or (data.get("response") or {}).get("usage") for _, data in answer
                 if isinstance(data.get("response") or {}, dict)]
        usage = next((u for u in reversed(found) if isinstance(u, dict)), None)
    else:
        usage = answer.get("usage")
    parse = _responses._usage if path == "/responses" else _chat._usage
    return parse(usage if isinstance(usage, dict) else None)  # counts that are not numbers read as none


def _choice(answer: dict) -> dict:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}


def _reasoning_field(answer: dict) -> str | None:
    message = _choice(answer).get("message") or {}
    for name in ("reasoning", "reasoning_content"):
        if isinstance(message.get(name), str) and message[name]:
            return name
    if harmony.split_inline_reasoning(message.get("content"))[0] is not None:  # as the run reads it (`_chat`)
        return harmony.INLINE_REASONING
    present = [name for name in ("reasoning", "reasoning_content") if name in message]
    return present[0] if len(present) == 1 else None


def _chat_top(answer: dict) -> int | None:
    """Top alternatives per token in a chat answer's logprobs, read by the parser the run uses (`_chat`): every
    shape it knows, reasoning logprobs reported apart included. Empty top lists beside the chosen tokens'
    log-probabilities are top-1 (at temperature 0 the chosen token is the first); None: no log-probability in
    the answer (no entries, or entries without a number)."""
    choice = _choice(answer)
    items = [*(_chat._logprobs(choice.get("logprobs")) or []), *(_chat._reasoning_logprobs(choice) or [])]
    if not any(item.logprob is not None or item.top for item in items):
        return None
    return max(len(item.top) for item in items) or 1


def _prompt_logprobs_k(answer: dict) -> int | None:
    """Entries per prompt position (the prompt token and its alternatives; None: no entry has any)."""
    entries = _choice(answer).get("prompt_logprobs")
    if not isinstance(entries, list) or not any(isinstance(e, dict) and e for e in entries):
        return None
    return max(len(e) for e in entries if isinstance(e, dict))


def _echo_k(answer: dict) -> int | None:
    """Top alternatives per token of an echoed prompt; empty top lists beside the prompt tokens' own
    log-probabilities count as 1 (the scored token alone). None: the prompt was not scored (one generated
    token, or no number among the prompt's log-probabilities)."""
    logprobs = _choice(answer).get("logprobs")
    tokens = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list) or len(tokens) < 2:  # one generated token: the prompt was not scored
        return None
    if not any(isinstance(t, int | float) and not isinstance(t, bool) for t in tokens[1:-1]):
        return None
    tops = [t for t in logprobs.get("top_logprobs") or [] if isinstance(t, dict)]
    return max((len(t) for t in tops), default=0) or 1
