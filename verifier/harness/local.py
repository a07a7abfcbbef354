"""What every real engine under test shares: a free loopback port, a server process with its log, waiting
until it answers, and stopping it (its whole process group) however the caller ends."""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from verifier.errors import ProviderError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 20 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def pinned_clock(date: str) -> dict[str, str]:
    """Environment that starts a server's wall clock at noon UTC of `date` (libfaketime, preloaded; the
    `libfaketime` package of the test extras ships the library). A real engine renders its date into every chat
    prompt, and a hesitant checkpoint answers differently on different days: what an engine was seen to write
    is seen again only on the same date. Monotonic clocks and file times stay real, so timeouts and caches hold."""
    try:
        day = datetime.date.fromisoformat(date)
    except ValueError as exc:
        raise ProviderError(f"not a date (YYYY-MM-DD): {date!r}") from exc
    spec = importlib.util.find_spec("libfaketime")
    lib = (Path(next(iter(spec.submodule_search_locations))) / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
           if spec is not None and spec.submodule_search_locations else None)
    if lib is None or not lib.is_file():
        raise ProviderError("pinning a server's date needs the libfaketime package (pip install libfaketime)")
    if platform.machine() not in ("x86_64", "AMD64") or sys.platform != "linux":
        raise ProviderError(f"the libfaketime package ships an x86-64 Linux library only; this is {sys.platform} "
                            f"{platform.machine()}")
    preload = ":".join(filter(None, [str(lib), os.environ.get("LD_PRELOAD")]))
    return {"LD_PRELOAD": preload, "FAKETIME": f"@{day.isoformat()} 12:00:00", "TZ": "UTC",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"}


@dataclass
class LocalServer:
    name: str
    """The engine, as errors name it (`vLLM`, `llama-server`)."""
    url: str
    """Base URL ending in /v1."""
    model: str
    process: subprocess.Popen
    log: Path
    started_s: float = 0.0
    """Seconds from launch to the first answer of its readiness URL."""
    date: str | None = None
    """The day its clock was pinned to (`pinned_clock`), None: the real date."""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def launched(name: str, command: list[str], port: int, model: str, log_dir: Path | None, ready_path: str,
             timeout: float, poll_s: float, env: dict | None = None) -> Iterator[LocalServer]:
    """Start `command` (serving on `port`) with its output in a log under `log_dir`, wait until
    `ready_path` (relative to the server's root) answers 200, and always stop it."""
    log_dir = Path(log_dir or Path(os.environ.get("TMPDIR", "/tmp")))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name.lower()}-{port}.log"
    began = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log_dir,
                                   start_new_session=True)
    server = LocalServer(name, f"http://127.0.0.1:{port}/v1", model, process, log)
    try:
        _wait(server, f"http://127.0.0.1:{port}{ready_path}", began, timeout, poll_s)
        yield server
    finally:
        stop(process)


def _wait(server: LocalServer, ready: str, began: float, timeout: float, poll_s: float) -> None:
    while time.monotonic() - began < timeout:
        if server.process.poll() is not None:
            raise ProviderError(f"{server.name} exited with code {server.process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                server.started_s = round(time.monotonic() - began, 1)
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    raise ProviderError(f"{server.name} did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def until_interrupted(server: LocalServer, what: str) -> None:
    """Announce a server started from the command line and keep it until Ctrl-C or SIGTERM (both stop it:
    the caller's `launched` block exits)."""
    print(f"{what} at {server.url} (up in {server.started_s} s); Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass


def until_stop(tokens: list[int], stop: tuple[int, ...]) -> list[int]:
    """`tokens` up to and including the first of `stop` (a server may run past it or leave it out)."""
    for i, token in enumerate(tokens):
        if token in stop:
            return tokens[: i + 1]
    return tokens
