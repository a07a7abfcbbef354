"""Run the built-in reference provider: in the foreground (CLI) or on a background thread (runs, tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from verifier.errors import ProviderError
from verifier.reference.engine import Engine
from verifier.serve.app import Settings, create_app
from verifier.serve.faults import FAULTS, QUIRKS, parse_names
from verifier.serve.surfaces import SURFACES, parse_surfaces

__all__ = ["FAULTS", "QUIRKS", "SURFACES", "BackgroundServer", "start_background", "serve_forever", "parse_names",
           "parse_surfaces"]


def _app(checkpoint: Path, model: str, faults: list[str] | None, date: str | None, dtype: str,
         quirks: list[str] | None = None, surfaces: list[str] | None = None):
    from verifier.reference import perturb
    from verifier.serve.faults import of_kind

    fault_set, quirk_set = parse_names(faults, quirks)
    offer = parse_surfaces(surfaces)
    for kind in of_kind(fault_set, "checkpoint"):
        checkpoint = perturb.cached(checkpoint, kind)
    engine = Engine(checkpoint, dtype, numeric_faults=of_kind(fault_set, "numeric"))
    return create_app(engine, Settings(model=model, faults=fault_set, quirks=quirk_set, date=date,
                                             offer=offer))


def _config(app, host: str, port: int):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")


@dataclass
class BackgroundServer:
    """A provider serving on loopback from a daemon thread."""

    url: str
    """Base URL ending in /v1."""
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_background(checkpoint: Path, model: str, faults: list[str] | None = None, date: str | None = None,
                     dtype: str = "fp32", quirks: list[str] | None = None,
                     surfaces: list[str] | None = None) -> BackgroundServer:
    """Start the provider on a free loopback port and wait until it answers."""
    import uvicorn

    app = _app(checkpoint, model, faults, date, dtype, quirks, surfaces)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="reference-provider")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ProviderError("the built-in provider did not start")
        time.sleep(0.02)
    return BackgroundServer(f"http://127.0.0.1:{port}/v1", server, thread)


def serve_forever(checkpoint: Path, model: str, host: str, port: int, faults: list[str] | None, date: str | None,
                  dtype: str, quirks: list[str] | None = None, surfaces: list[str] | None = None) -> None:
    import uvicorn

    uvicorn.Server(_config(_app(checkpoint, model, faults, date, dtype, quirks, surfaces), host, port)).run()
