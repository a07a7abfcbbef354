"""HTTP transport: JSON requests, server-sent events, size caps. The only module that talks HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from verifier.errors import ProviderError, ProviderHTTPError

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest response body or stream accepted; beyond it the response is an error, not a verdict."""
RAW_EXCERPT = 64 * 1024
"""How much of a raw body an observation keeps as evidence."""


class Transport:
    """A thin httpx client bound to one base URL and credentials."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def close(self) -> None:
        self.client.close()

    def _fail(self, exc: Exception, path: str) -> ProviderError:
        reason = exc.__class__.__name__
        return ProviderError(f"{reason} while calling {self.base_url}{path}")

    def get_json(self, path: str) -> dict:
        try:
            response = self.client.get(path)
        except httpx.HTTPError as exc:
            raise self._fail(exc, path) from None
        return self._decode(response, path)

    def post_json(self, path: str, body: dict) -> tuple[dict, str]:
        """POST and decode a JSON answer: (object, raw text)."""
        try:
            response = self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise self._fail(exc, path) from None
        return self._decode(response, path), response.text[:RAW_EXCERPT]

    def _decode(self, response: httpx.Response, path: str) -> dict:
        if len(response.content) > MAX_BODY_BYTES:
            raise ProviderError(f"response from {path} exceeds {MAX_BODY_BYTES} bytes")
        if response.status_code >= 400:
            raise ProviderHTTPError(response.status_code, response.text[:2000], f"{self.base_url}{path}")
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProviderError(f"{self.base_url}{path} did not answer with JSON "
                                f"(content-type {response.headers.get('content-type', 'none')})") from None
        if not isinstance(data, dict):
            raise ProviderError(f"{self.base_url}{path} answered JSON that is not an object")
        return data

    def post_sse(self, path: str, body: dict) -> Iterator[tuple[str | None, dict]]:
        """POST and yield (event name, data object) for each SSE event until `[DONE]` or the end."""
        try:
            with self.client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ProviderHTTPError(response.status_code, response.text[:2000], f"{self.base_url}{path}")
                yield from self._events(response, path)
        except httpx.HTTPError as exc:
            raise self._fail(exc, path) from None

    def _events(self, response: httpx.Response, path: str) -> Iterator[tuple[str | None, dict]]:
        received, event, data_lines = 0, None, []
        for line in response.iter_lines():
            received += len(line) + 1
            if received > MAX_BODY_BYTES:
                raise ProviderError(f"stream from {path} exceeds {MAX_BODY_BYTES} bytes")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data_lines.append(line[5:].strip())
            elif not line.strip() and data_lines:
                payload = "\n".join(data_lines)
                data_lines = []
                if payload == "[DONE]":
                    return
                yield event, _parse_event(payload, path)
                event = None
        if data_lines and data_lines != ["[DONE]"]:
            yield event, _parse_event("\n".join(data_lines), path)


def _parse_event(payload: str, path: str) -> dict:
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        raise ProviderError(f"stream from {path} sent an event that is not JSON: {payload[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProviderError(f"stream from {path} sent an event that is not a JSON object")
    return data
