"""Providers: OpenAI-compatible endpoints behind one object. All HTTP of the verifier lives here.

`Provider.chat`, `.responses` and `.completions_harmony` return an `Observation` whether or not
the call streamed; a failed call returns an observation with `error` set (and `status` when an
HTTP status arrived) rather than raising, so one bad response never loses the rest of a run.
`Provider.score` returns teacher-forced log-probabilities or raises `ScoringUnsupported`.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import BaseModel

from verifier.errors import ProviderError, ProviderHTTPError
from verifier.observation import Observation
from verifier.providers import _chat, _completions, _responses
from verifier.providers._completions import PositionScore
from verifier.providers._http import Transport

__all__ = ["Provider", "PositionScore", "ScoreResult", "ScoringUnsupported"]


class ScoringUnsupported(ProviderError):
    """The provider offers no way to get log-probabilities of given tokens."""


class ScoreResult(BaseModel):
    """Teacher-forced scores of tokens[start:]."""

    mode: str
    """How they were obtained: `prompt_logprobs` (vLLM) or `echo_logprobs` (OpenAI legacy)."""
    positions: list[PositionScore]


class Provider:
    """One endpoint (base URL ending in `/v1`) and model name."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.http = Transport(self.base_url, api_key, timeout, transport)
        self.score_mode: str | None = None

    def close(self) -> None:
        self.http.close()

    def models(self) -> list[str]:
        """Model ids the endpoint lists (raises ProviderError if it is not OpenAI-compatible)."""
        data = self.http.get_json("/models")
        items = data.get("data")
        if not isinstance(items, list):
            raise ProviderError(f"{self.base_url}/models did not return an OpenAI model list")
        return [str(m.get("id")) for m in items if isinstance(m, dict)]

    def _call(self, api: str, stream: bool, path: str, body: dict, parse: Callable, fold: Callable) -> Observation:
        try:
            if stream:
                return fold(self.http.post_sse(path, body))
            data, raw = self.http.post_json(path, body)
            return parse(data, raw)
        except ProviderHTTPError as exc:
            return Observation(api=api, stream=stream, status=exc.status, error=str(exc), raw=exc.body)
        except ProviderError as exc:
            return Observation(api=api, stream=stream, error=str(exc))

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
