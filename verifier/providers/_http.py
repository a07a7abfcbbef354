"""HTTP transport: JSON requests, server-sent events, retries, size caps, secret scrubbing.

Every request the verifier sends to a provider goes through this module (only the test harnesses
talk HTTP otherwise: harness/vllm_cpu.py polls `/models` of the vLLM server it starts, harness/chaos.py
is a proxy). Every request is retried with capped exponential backoff and full
jitter on connection errors, timeouts, truncated streams and HTTP 408/429/5xx, honouring
`Retry-After`, for a bounded number of attempts. When they are spent the caller gets
`ProviderUnavailable` (an outage: it says nothing about conformance), except for a persistent HTTP
500, which is the provider's own answer to that request (`ProviderHTTPError`). After several
requests in a row have failed that way the circuit opens: requests fail at once, without being
sent, until a probe after `cooldown_s` succeeds, so an outage ends a run quickly and `--resume`
sends what it missed. A persistent 500 does not count towards opening it: a provider that crashes on
one kind of request (a conformance failure) must not cost the evidence of every other request.
"""

from __future__ import annotations

import contextvars
import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import httpx

from verifier.config import RetryPolicy
from verifier.errors import ProviderError, ProviderHTTPError, ProviderProtocolError, ProviderUnavailable
from verifier.observation import OUTAGE_STATUSES

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest response body or stream accepted; beyond it the response is an error, not a verdict."""
RAW_EXCERPT = 64 * 1024
"""How much of a raw body an observation keeps as evidence."""
RETRY_STATUSES = OUTAGE_STATUSES | {500}
"""Statuses worth another attempt. All but 500 mean "not now" (rate limit, gateway, overload)."""
REDACTED = "[REDACTED]"
STREAM_TERMINALS = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""Responses events that end a stream (Chat and Completions streams end with `[DONE]`)."""

LONE_SURROGATE = re.compile("[\ud800-\udfff]")

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""Sent as `X-Client-Request-Id` when set: the journal key of the exchange a request belongs to."""


@contextmanager
def request_id(value: str):
    """Tag every request made inside the block (in this thread) with `value`."""
    token = REQUEST_ID.set(value)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Retry(Exception):
    """One attempt failed in a way another attempt may not."""

    def __init__(self, final: ProviderError, retry_after: float | None = None):
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


class _Breaker:
    """Counts requests that failed in a row; open after `limit`, half-open after `cooldown_s`."""

    def __init__(self, limit: int, cooldown_s: float):
        self.limit, self.cooldown_s = limit, cooldown_s
        self.failures, self.opened = 0, None
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            if self.opened is None:
                return True
            if time.monotonic() - self.opened >= self.cooldown_s:
                self.opened = time.monotonic()  # one probe per cooldown
                return True
            return False

    def record(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures, self.opened = 0, None
            else:
                self.failures += 1
                if self.failures >= self.limit:
                    self.opened = time.monotonic()


class Transport:
    """A thin httpx client bound to one base URL and credentials."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None, retry: RetryPolicy | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES):
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.secret = api_key or None
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_body_bytes = max_body_bytes
        self.rng = random.Random()
        self.breaker = _Breaker(self.retry.breaker, self.retry.cooldown_s)
        self.client = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def close(self) -> None:
        self.client.close()

    def scrub(self, text: str) -> str:
        """Provider text with the API key cut out (a provider may echo it back)."""
        return text.replace(self.secret, REDACTED) if self.secret and self.secret in text else text

    # -- one request, with retries ------------------------------------------------------------

    def _with_retries(self, path: str, once: Callable[[], object]):
        history: list[int | None] = []  # each attempt's status, kept on the error raised (`Failure.history`)
        for attempt in range(1, self.retry.attempts + 1):
            if not self.breaker.allow():
                error = ProviderUnavailable(f"{self.base_url}{path} not sent: the provider failed "
                                            f"{self.retry.breaker} requests in a row (circuit open)")
                error.history = tuple(history)
                raise error
            try:
                result = once()
            except ProviderError as exc:
                self.breaker.record(True)  # the provider answered, if not as hoped
                exc.history = (*history, exc.status)
                raise
            except _Retry as retry:
                failure = retry
                history.append(retry.final.status)
                if attempt < self.retry.attempts:
                    time.sleep(self.retry.delay(attempt, retry.retry_after, self.rng))
                continue
            self.breaker.record(True)
            return result
        final = failure.final
        # a persistent 500 is the provider answering that request; only a want of service opens the circuit
        self.breaker.record(not isinstance(final, ProviderUnavailable))
        final.args = (f"{final} (after {self.retry.attempts} attempts)",)
        final.history = tuple(history)
        raise final

    def _headers(self) -> dict[str, str]:
        rid = REQUEST_ID.get()
        return {"X-Client-Request-Id": rid} if rid else {}

    def _transport_failure(self, exc: httpx.HTTPError, path: str) -> _Retry:
        return _Retry(ProviderUnavailable(f"{exc.__class__.__name__} while calling {self.base_url}{path}"))

    def _status_failure(self, response: httpx.Response, body: str, path: str) -> Exception:
        """The error for an HTTP error status, wrapped in _Retry when another attempt may help."""
        status, url, body = response.status_code, f"{self.base_url}{path}", self.scrub(body[:2000])
        if status in RETRY_STATUSES and status != 500:
            error: ProviderError = ProviderUnavailable(f"HTTP {status} from {url}: {body[:200]}", status, body)
        else:
            error = ProviderHTTPError(status, body, url)
        if status in RETRY_STATUSES:
            return _Retry(error, parse_retry_after(response.headers.get("retry-after")))
        return error

    def _read(self, response: httpx.Response, path: str, deadline: float) -> str:
        """The whole body as text, within the size cap and the deadline."""
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ProviderProtocolError(f"response from {self.base_url}{path} exceeds {self.max_body_bytes} bytes")
            if time.monotonic() > deadline:
                raise _Retry(ProviderUnavailable(f"response from {self.base_url}{path} took over {self.timeout:g} s"))
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def get_json(self, path: str) -> dict:
        return self._with_retries(path, lambda: self._once("GET", path, None)[0])

    def post_json(self, path: str, body: dict) -> tuple[dict, str]:
        """POST and decode a JSON answer: (object, raw text)."""
        return self._with_retries(path, lambda: self._once("POST", path, body))

    def _once(self, method: str, path: str, body: dict | None) -> tuple[dict, str]:
        deadline = time.monotonic() + self.timeout
        try:
            with self.client.stream(method, path, json=body, headers=self._headers()) as response:
                text = self.scrub(self._read(response, path, deadline))
        except httpx.HTTPError as exc:
            raise self._transport_failure(exc, path) from None
        if response.status_code >= 400:
            raise self._status_failure(response, text, path)
        return self._decode(response, text, path), text[:RAW_EXCERPT]

    def _decode(self, response: httpx.Response, text: str, path: str) -> dict:
        try:
            data = _mended(json.loads(text))
        except json.JSONDecodeError:
            raise ProviderProtocolError(f"{self.base_url}{path} did not answer with JSON "
                                f"(content-type {response.headers.get('content-type', 'none')})") from None
        if not isinstance(data, dict):
            raise ProviderProtocolError(f"{self.base_url}{path} answered JSON that is not an object")
        return data

    # -- server-sent events ---------------------------------------------------------------------

    def post_sse(self, path: str, body: dict) -> list[tuple[str | None, dict]]:
        """POST and return every SSE event as (event name, data object).

        The whole stream is read before anything is parsed, so a stream cut short (no `[DONE]`, no
        terminal Responses event, a reset mid-body) is retried like any other failed attempt.
        """
        return self._with_retries(path, lambda: self._stream_once(path, body))

    def _stream_once(self, path: str, body: dict) -> list[tuple[str | None, dict]]:
        deadline = time.monotonic() + self.timeout
        try:
            with self.client.stream("POST", path, json=body, headers=self._headers()) as response:
                if response.status_code >= 400:
                    raise self._status_failure(response, self.scrub(self._read(response, path, deadline)), path)
                events, complete = self._events(response, path, deadline)
        except httpx.HTTPError as exc:
            raise self._transport_failure(exc, path) from None
        if not complete:
            raise _Retry(ProviderUnavailable(f"stream from {self.base_url}{path} was cut short "
                                             f"({len(events)} events, no end of stream)"))
        return events

    def _events(self, response: httpx.Response, path: str, deadline: float) -> tuple[list, bool]:
        received, event, data_lines, events = 0, None, [], []
        for line in response.iter_lines():
            received += len(line) + 1
            if received > self.max_body_bytes:
                raise ProviderProtocolError(f"stream from {path} exceeds {self.max_body_bytes} bytes")
            if time.monotonic() > deadline:
                raise _Retry(ProviderUnavailable(f"stream from {self.base_url}{path} took over {self.timeout:g} s"))
            line = self.scrub(line)
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data_lines.append(line[5:].strip())
            elif not line.strip() and data_lines:
                payload, data_lines = "\n".join(data_lines), []
                if payload == "[DONE]":
                    return events, True
                events.append((event, _parse_event(payload, path)))
                event = None
        if data_lines and data_lines != ["[DONE]"]:
            events.append((event, _parse_event("\n".join(data_lines), path)))
        complete = data_lines == ["[DONE]"] or any((e.get("type") or name) in STREAM_TERMINALS for name, e in events)
        return events, complete


def _parse_event(payload: str, path: str) -> dict:
    try:
        data = _mended(json.loads(payload))
    except json.JSONDecodeError:
        raise ProviderProtocolError(f"stream from {path} sent an event that is not JSON: {payload[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProviderProtocolError(f"stream from {path} sent an event that is not a JSON object")
    return data


def _mended(value):
    """Decoded JSON with lone surrogates (a `"\\ud800"` escape decodes to one) made U+FFFD, so that
    everything kept from a provider can be written as UTF-8."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value) if LONE_SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_mended(k): _mended(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mended(v) for v in value]
    return value
