"""A chaos proxy for tests: loopback only, in front of a provider, failing requests on purpose.

Each request meets, with probability `rate`, one of the disruptions a hosted API shows: HTTP 429 with
`Retry-After`, HTTP 500 or 503, a connection reset before any answer, a body cut off mid-way
(connection dropped), a stream closed cleanly before its end (no `[DONE]`), or a slow answer.
Choices come from a seeded generator, so a run is repeatable. `outage` makes every request fail
with 503 until it is cleared. Every request is logged with its `X-Client-Request-Id` and whether
it reached the provider, so tests can count what the provider really received.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DISRUPTIONS = ("429", "500", "503", "reset", "cut-body", "cut-stream", "slow")
"""What the proxy can do to a request (not to be confused with the built-in server's fault modes,
`verifier.serve.faults.FAULTS`, which are conformance defects)."""
FORWARDED_HEADERS = ("content-type", "authorization", "x-client-request-id", "accept")


@dataclass
class Logged:
    """One request the proxy received."""

    path: str
    request_id: str | None
    disruption: str | None
    """What the proxy did to it (None: forwarded untouched)."""
    forwarded: bool
    """True when the request reached the provider behind the proxy."""
    at: float = field(default_factory=time.monotonic)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """Clients that vanish mid-request (a killed run) are part of the test, not news."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class ChaosProxy:
    """Start with `with ChaosProxy(upstream, rate=0.2, seed=1) as proxy:`; `proxy.url` ends in /v1."""

    def __init__(self, upstream: str, rate: float = 0.0, seed: int = 0, disruptions: tuple[str, ...] = DISRUPTIONS,
                 retry_after: str = "1", slow_s: tuple[float, float] = (0.2, 0.8), api_key: str | None = None,
                 echo_key: bool = False, latency_s: float = 0.0):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/").removesuffix("/v1")
        self.rate, self.disruptions, self.retry_after, self.slow_s = rate, disruptions, retry_after, slow_s
        self.api_key = api_key
        self.echo_key = echo_key
        self.latency_s = latency_s
        """Added to every forwarded request, so that a run has requests in flight when it is killed."""
        """Append the caller's Authorization header to every text field of every answer (a hostile provider)."""
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.log: list[Logged] = []
        self.outage = False
        self.outage_after: int | None = None
        """Start an outage once this many requests have reached the provider."""
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="chaos-proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> ChaosProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _pick(self) -> str | None:
        with self.lock:
            if self.outage_after is not None and sum(e.forwarded for e in self.log) >= self.outage_after:
                self.outage = True
            if self.outage:
                return "outage"
            return self.rng.choice(self.disruptions) if self.rng.random() < self.rate else None

    def _record(self, entry: Logged) -> None:
        with self.lock:
            self.log.append(entry)

    def forwarded(self) -> list[Logged]:
        with self.lock:
            return [e for e in self.log if e.forwarded]

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def finish(self):
                try:
                    super().finish()
                except (OSError, ValueError):
                    pass  # the connection was reset on purpose

            def do_GET(self):
                self._serve(b"")

            def do_POST(self):
                self._serve(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def _serve(self, body: bytes) -> None:
                if proxy.api_key is not None and self.headers.get("authorization") != f"Bearer {proxy.api_key}":
                    return self._send_json(401, {"error": {"message": "invalid api key "
                                                           f"{self.headers.get('authorization')}"}})
                disruption = proxy._pick()
                entry = Logged(self.path, self.headers.get("x-client-request-id"), disruption, forwarded=False)
                proxy._record(entry)
                if disruption in ("429", "500", "503", "outage"):
                    status = 503 if disruption == "outage" else int(disruption)
                    headers = {"Retry-After": proxy.retry_after} if disruption == "429" else {}
                    return self._send_json(status, {"error": {"message": f"chaos {disruption}"}}, headers)
                if disruption == "reset":
                    return self._reset()
                if disruption == "slow":
                    time.sleep(proxy.rng.uniform(*proxy.slow_s))
                time.sleep(proxy.latency_s)
                status, headers, payload = self._forward(body)
                entry.forwarded = True
                if proxy.echo_key:
                    payload = _echo(payload, self.headers.get("authorization") or "")
                if disruption == "cut-body" and len(payload) > 1:
                    return self._send(status, headers, payload, cut=len(payload) // 2)
                if disruption == "cut-stream" and b"data: " in payload:
                    events = payload.split(b"\n\n")
                    return self._send(status, headers, b"\n\n".join(events[: max(1, len(events) // 2)]) + b"\n\n")
                return self._send(status, headers, payload)

            def _forward(self, body: bytes) -> tuple[int, dict, bytes]:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
                try:
                    conn.request(self.command, proxy.prefix + self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    return response.status, {"Content-Type": response.getheader("content-type", "")}, payload
                finally:
                    conn.close()

            def _send_json(self, status: int, data: dict, headers: dict | None = None) -> None:
                self._send(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode())

            def _send(self, status: int, headers: dict, payload: bytes, cut: int | None = None) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if cut is None:
                    self.wfile.write(payload)
                    return
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self._reset()

            def _reset(self) -> None:
                """Drop the connection with a TCP reset."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

        return Handler


TEXT_FIELDS = ("content", "text", "delta", "reasoning", "reasoning_content", "arguments")


def _echo(payload: bytes, secret: str) -> bytes:
    """The answer with `secret` appended to each text field, in a JSON body or in each SSE event."""

    def walk(value):
        if isinstance(value, dict):
            return {k: (v + " " + secret if k in TEXT_FIELDS and isinstance(v, str) else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    if not payload.lstrip().startswith((b"data:", b"event:")):
        try:
            return json.dumps(walk(json.loads(payload))).encode()
        except ValueError:
            return payload
    lines = []
    for line in payload.split(b"\n"):
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            line = b"data: " + json.dumps(walk(json.loads(line[6:]))).encode()
        lines.append(line)
    return b"\n".join(lines)
