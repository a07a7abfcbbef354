"""Providers: OpenAI-compatible endpoints behind one object, the verifier's HTTP client for the
endpoint under test (the vLLM harness and the chaos proxy speak HTTP for their own servers).

`Provider.chat`, `.responses` and `.completions_harmony` return an `Observation` whether or not
the call streamed; a failed call returns an observation whose `failure` says what kind of failure it
was (and `status` when an HTTP status arrived) rather than raising, so one bad response never loses
the rest of a run. `Provider.score` returns teacher-forced log-probabilities or raises
`ScoringUnsupported`; `Provider.prompt_token_ids` raises `TokenizeUnsupported`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx

from verifier import harmony
from verifier.capabilities import Capabilities
from verifier.errors import (
    ProviderError,
    ProviderHTTPError,
    ProviderProtocolError,
    ScoringUnsupported,
    TokenizeUnsupported,
)
from verifier.observation import Failure, Observation
from verifier.providers import _chat, _completions, _responses
from verifier.providers._http import RetryPolicy, Transport, request_id
from verifier.providers.messages import named_cap
from verifier.scores import ScoreResult

__all__ = ["Provider", "RetryPolicy", "logprobs_cap", "request_id"]

SCORE_MODES = ("prompt_logprobs", "echo_logprobs", "echo_logprobs_text")
"""Teacher-forcing request shapes, strongest first: vLLM `prompt_logprobs` on token ids; OpenAI legacy
`echo` + `logprobs` on token ids; the same on the prompt as text."""
PROMPT_IDS_MODES = ("return_token_ids", "tokenize", "apply_template")
"""Where a server shows the prompt ids of a chat request, most direct first: vLLM's chat `return_token_ids`;
vLLM's `/tokenize` with a chat body; llama-server's `/apply-template` text through its `/tokenize`."""
SHAPE_STATUSES = (400, 404, 405, 422, 501)
"""Statuses that say a request shape or endpoint is not offered (the next scoring mode may be)."""
TOO_LARGE_PATTERN = re.compile(r"too (?:large|big|many)|exceed|maximum|at most|must be (?:less|smaller)")


class Provider:
    """One endpoint (base URL ending in `/v1`) and model name."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None, retry: RetryPolicy | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.http = Transport(self.base_url, api_key, timeout, transport, retry)
        self.score_mode: str | None = None
        self.score_k: int | None = None
        """The `logprobs` cap a scoring request met (None: none met yet)."""
        self.prompt_ids_mode: str | None = None
        self.capabilities: Capabilities | None = None
        """What a probe found the endpoint offers (None: not probed; every shape is tried)."""

    def close(self) -> None:
        self.http.close()

    def models(self) -> list[str]:
        """Model ids the endpoint lists (raises ProviderError if it is not OpenAI-compatible)."""
        data = self.http.get_json("/models")
        items = data.get("data")
        if not isinstance(items, list):
            raise ProviderProtocolError(f"{self.base_url}/models did not return an OpenAI model list")
        return [str(m.get("id")) for m in items if isinstance(m, dict)]

    def _call(self, api: str, stream: bool, path: str, body: dict, parse: Callable, fold: Callable) -> Observation:
        try:
            if stream:
                return fold(self.http.post_sse(path, body))
            data, raw = self.http.post_json(path, body)
            return parse(data, raw)
        except ProviderError as exc:
            return Observation(api=api, stream=stream, status=exc.status, failure=Failure.of(exc), raw=exc.body)

    def chat(self, request: dict, stream: bool = False) -> Observation:
        body = {**request, "model": self.model}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return self._call("chat", stream, "/chat/completions", body, _chat.parse_response, _chat.accumulate)

    def responses(self, request: dict, stream: bool = False) -> Observation:
        """`request` is a Responses body (see `harmony.chat_to_responses`)."""
        body = {**request, "model": self.model, "stream": stream}
        return self._call("responses", stream, "/responses", body, _responses.parse_response, _responses.accumulate)

    def completions_harmony(self, prompt: list[int], max_tokens: int, stream: bool = False) -> Observation:
        """Send a rendered Harmony prompt as token ids and parse the Harmony tokens that come back."""
        body = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                "skip_special_tokens": False, "return_token_ids": True}
        if self.capabilities is not None and self.capabilities.completion_logprob_ids:
            body["logprobs"] = 1  # the ids, where `return_token_ids` is ignored (`_completions.logprob_ids`)
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        n = len(prompt)
        return self._call("completions", stream, "/completions", body,
                          lambda data, raw: _completions.harmony_observation(n, data, raw, False),
                          lambda events: _completions.accumulate(n, events))

    def prompt_token_ids(self, request: dict) -> tuple[list[int], str]:
        """The prompt token ids the server renders for a Chat body, and where they came from.

        Asks the chat endpoint itself (vLLM's `return_token_ids`, one generated token), which shows
        the prompt that chat completions really use; falls back to vLLM's `/tokenize` (at the root),
        which renders through the chat template, then to llama-server's `/apply-template` (the chat
        template's text) read by its `/tokenize` (text in, ids out, control tokens parsed as in chat).
        Raises `TokenizeUnsupported` where none exists.
        """
        modes = [self.prompt_ids_mode] if self.prompt_ids_mode else list(PROMPT_IDS_MODES)
        failures = []
        for mode in modes:
            try:
                tokens = self.prompt_ids_by(mode, request)
            except ProviderHTTPError as exc:
                if exc.status not in SHAPE_STATUSES:
                    raise  # a 500 is an answer to this request, not a sign that the endpoint is missing
                failures.append(f"{mode}: HTTP {exc.status}")
                continue
            if tokens is not None:
                self.prompt_ids_mode = mode
                return tokens, mode
            failures.append(f"{mode}: no token ids in the response")
        raise TokenizeUnsupported("the server shows no prompt token ids (" + "; ".join(failures) + ")")

    def prompt_ids_by(self, mode: str, request: dict) -> list[int] | None:
        """The prompt ids one way of asking shows (None: the answer has none); HTTP errors raise."""
        root = self.base_url.removesuffix("/v1")
        if mode == "return_token_ids":
            body = {**request, "model": self.model, "max_tokens": 1, "return_token_ids": True}
            body.pop("max_completion_tokens", None)
            data, _ = self.http.post_json("/chat/completions", body)
            return _token_list(data.get("prompt_token_ids"))
        if mode == "tokenize":
            body = {**request, "model": self.model, "add_generation_prompt": True}
            data, _ = self.http.post_json(f"{root}/tokenize", body)
            return _token_list(data.get("tokens"))
        data, _ = self.http.post_json(f"{root}/apply-template", {**request, "model": self.model})
        if not isinstance(data.get("prompt"), str) or not data["prompt"]:
            return None
        data, _ = self.http.post_json(f"{root}/tokenize", {"content": data["prompt"], "add_special": False,
                                                           "parse_special": True})
        return _token_list(data.get("tokens"))

    def score(self, tokens: list[int], start: int, k: int, candidates: dict[int, list[int]]) -> ScoreResult:
        """Log-probabilities the provider assigns to tokens[start:] given their prefixes.

        Tries, strongest first, vLLM's `prompt_logprobs` on token ids, OpenAI's `echo` with `logprobs`
        on token ids, then `echo` with `logprobs` on the prompt as text (aligned back to the token ids,
        `candidates[pos]` naming the ids a reported text may stand for); remembers which worked. A 400
        that says the shape is not offered moves to the next mode; one that caps `logprobs` asks again
        at the cap (`ScoreResult.top_k` says what the provider reported). A server error on a mode neither
        settled nor confirmed by the probe moves on too (a host may fail on a parameter it does not know), and is
        raised if no later mode works; on a known mode it is this request's answer and is raised at once.
        """
        modes = [self.score_mode] if self.score_mode else self._score_modes()
        failures, errors = [], []
        for mode in modes:
            try:
                result = self._score_capped(mode, tokens, start, min(k, self.score_k or k, self._cap(mode) or k),
                                             candidates)
            except ProviderHTTPError as exc:
                if exc.status not in SHAPE_STATUSES:
                    if self.score_mode or self._cap(mode):
                        raise
                    errors.append(exc)
                failures.append(f"{mode}: HTTP {exc.status} {_message(exc.body)}".rstrip())
                continue
            if result is not None:
                self.score_mode = mode
                return result
            failures.append(f"{mode}: not in the response")
        if errors:
            raise errors[0]
        raise ScoringUnsupported("no teacher-forced log-probabilities (" + "; ".join(failures) + ")")

    def _score_modes(self) -> list[str]:
        """The scoring modes worth trying, strongest first, less those the probe found missing."""
        caps = self.capabilities
        if caps is None:
            return list(SCORE_MODES)
        out = []
        for mode in SCORE_MODES:
            if mode != "echo_logprobs_text" and caps.token_id_prompts is False:
                continue
            if (mode == "prompt_logprobs" and caps.prompt_logprobs == 0) or (
                    mode != "prompt_logprobs" and caps.echo_logprobs == 0) or caps.completions is False:
                continue
            out.append(mode)
        return out

    def _cap(self, mode: str) -> int | None:
        """The probe's top-k cap for a scoring mode (None: not known)."""
        caps = self.capabilities
        if caps is None:
            return None
        return caps.prompt_logprobs if mode == "prompt_logprobs" else caps.echo_logprobs

    def _score_capped(self, mode: str, tokens: list[int], start: int, k: int, candidates) -> ScoreResult | None:
        """One scoring mode at top-k; once more at the cap a 400 names (or 5 where it names none)."""
        try:
            return self._score(mode, tokens, start, k, candidates)
        except ProviderHTTPError as exc:
            cap = logprobs_cap(exc.body, k) if exc.status == 400 else None
            if cap is None:
                raise
        self.score_k = cap
        return self._score(mode, tokens, start, cap, candidates)

    def _score(self, mode: str, tokens: list[int], start: int, k: int, candidates) -> ScoreResult | None:
        body: dict = {"model": self.model, "prompt": tokens, "temperature": 0}
        if mode == "prompt_logprobs":
            body.update(max_tokens=1, prompt_logprobs=k)
        elif mode == "echo_logprobs":
            body.update(max_tokens=0, echo=True, logprobs=k)
        else:
            body.update(prompt=harmony.decode(tokens), max_tokens=1, echo=True, logprobs=k)
        data, _ = self.http.post_json("/completions", body)
        choice = (data.get("choices") or [{}])[0]
        if mode == "prompt_logprobs":
            entries = choice.get("prompt_logprobs")
            if not entries:
                return None
            positions = _completions.parse_prompt_logprobs(entries, tokens, start)
            return ScoreResult(mode=mode, positions=positions, top_k=_completions.reported_k(entries[start:], k))
        logprobs = choice.get("logprobs")
        if not logprobs or not logprobs.get("token_logprobs"):
            return None
        if mode == "echo_logprobs_text":
            positions = _completions.parse_echo_text(logprobs, tokens, start, candidates)
        else:
            positions = _completions.parse_echo_logprobs(logprobs, tokens, start, candidates)
        top_k = _completions.reported_k((logprobs.get("top_logprobs") or [])[start:], k)
        return ScoreResult(mode=mode, positions=positions, top_k=top_k)


def _token_list(tokens) -> list[int] | None:
    """A non-empty list of token ids, or None."""
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, int) and not isinstance(t, bool)
                                                               for t in tokens):
        return None
    return tokens


def logprobs_cap(message: str, asked: int) -> int | None:
    """The cap on `logprobs`/`top_logprobs` a 400's message names, when it is below `asked`: the number it
    gives, or 5 (the common cap) where it says the value is too large without one. None: not about a cap."""
    text = _message(message).lower()
    if "logprob" not in text:
        return None
    cap = named_cap(text)
    if cap is not None:
        return cap if 0 <= cap < asked else None
    return 5 if asked > 5 and TOO_LARGE_PATTERN.search(text) else None


def _message(body: str) -> str:
    """The error message of an OpenAI-style error body (the body itself if it is not one)."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body or "")[:300]
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else (data.get("message") if isinstance(data, dict) else None)
    return str(message if message is not None else body)[:300]
