"""Providers: OpenAI-compatible endpoints behind one object. All HTTP of the verifier lives here.

`Provider.chat`, `.responses` and `.completions_harmony` return an `Observation` whether or not
the call streamed; a failed call returns an observation whose `failure` says what kind of failure it
was (and `status` when an HTTP status arrived) rather than raising, so one bad response never loses
the rest of a run. `Provider.score` returns teacher-forced log-probabilities or raises
`ScoringUnsupported`; `Provider.prompt_token_ids` raises `TokenizeUnsupported`.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

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
from verifier.scores import PositionScore, ScoreResult

__all__ = ["Provider", "RetryPolicy", "request_id"]


class Provider:
    """One endpoint (base URL ending in `/v1`) and model name."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None, retry: RetryPolicy | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.http = Transport(self.base_url, api_key, timeout, transport, retry)
        self.score_mode: str | None = None
        self.prompt_ids_mode: str | None = None

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
        which renders through the chat template. Raises `TokenizeUnsupported` where neither exists.
        """
        modes = [self.prompt_ids_mode] if self.prompt_ids_mode else ["return_token_ids", "tokenize"]
        failures = []
        for mode in modes:
            try:
                tokens = self._prompt_ids(mode, request)
            except ProviderHTTPError as exc:
                failures.append(f"{mode}: HTTP {exc.status}")
                continue
            if tokens is not None:
                self.prompt_ids_mode = mode
                return tokens, mode
            failures.append(f"{mode}: no token ids in the response")
        raise TokenizeUnsupported("the server shows no prompt token ids (" + "; ".join(failures) + ")")

    def _prompt_ids(self, mode: str, request: dict) -> list[int] | None:
        if mode == "return_token_ids":
            body = {**request, "model": self.model, "max_tokens": 1, "return_token_ids": True}
            body.pop("max_completion_tokens", None)
            data, _ = self.http.post_json("/chat/completions", body)
        else:
            body = {**request, "model": self.model, "add_generation_prompt": True}
            data, _ = self.http.post_json(f"{self.base_url.removesuffix('/v1')}/tokenize", body)
        tokens = data.get("prompt_token_ids" if mode == "return_token_ids" else "tokens")
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, int) for t in tokens):
            return None
        return tokens

    def score(self, tokens: list[int], start: int, k: int, candidates: dict[int, list[int]]) -> ScoreResult:
        """Log-probabilities the provider assigns to tokens[start:] given their prefixes.

        Tries vLLM's `prompt_logprobs`, then OpenAI's `echo` with `logprobs`; remembers which worked.
        """
        modes = [self.score_mode] if self.score_mode else ["prompt_logprobs", "echo_logprobs"]
        failures = []
        for mode in modes:
            try:
                positions = self._score(mode, tokens, start, k, candidates)
            except ProviderHTTPError as exc:
                failures.append(f"{mode}: HTTP {exc.status}")
                continue
            if positions is not None:
                self.score_mode = mode
                return ScoreResult(mode=mode, positions=positions)
            failures.append(f"{mode}: not in the response")
        raise ScoringUnsupported("no teacher-forced log-probabilities (" + "; ".join(failures) + ")")

    def _score(self, mode: str, tokens: list[int], start: int, k: int, candidates) -> list[PositionScore] | None:
        body = {"model": self.model, "prompt": tokens, "temperature": 0}
        if mode == "prompt_logprobs":
            body.update(max_tokens=1, prompt_logprobs=k)
        else:
            body.update(max_tokens=0, echo=True, logprobs=min(k, 5))
        data, _ = self.http.post_json("/completions", body)
        choice = (data.get("choices") or [{}])[0]
        if mode == "prompt_logprobs":
            entries = choice.get("prompt_logprobs")
            return _completions.parse_prompt_logprobs(entries, tokens, start) if entries else None
        logprobs = choice.get("logprobs")
        if not logprobs or not logprobs.get("token_logprobs"):
            return None
        return _completions.parse_echo_logprobs(logprobs, tokens, start, candidates)
