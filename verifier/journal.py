"""The run journal: every exchange appended to `journal.jsonl`, flushed and synced as it completes.

A run killed at any point loses at most the exchanges in flight. `--resume RUN_DIR` reads the
journal back and replays each exchange whose key it holds instead of sending it again: the key is
a hash of everything that determines the request (suite, case, variant, turn and both bodies), and
requests after the first of a tool loop are computed from replayed responses, so they hash alike.
Exchanges the provider was unavailable for are not replayed: resuming sends them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import defaultdict, deque
from pathlib import Path

from pydantic import ValidationError

from verifier.errors import VerifierError
from verifier.exchange import Exchange

FILE = "journal.jsonl"


def exchange_key(suite: str, case_id: str, variant: str, turn: int, request: dict, chat_request: dict) -> str:
    """A stable hash of what determines one request."""
    canonical = json.dumps([suite, case_id, variant, turn, request, chat_request], sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class Journal:
    """Append-only JSONL of exchanges; safe to write from several threads."""

    def __init__(self, path: Path, secret: str | None = None):
        self.path = Path(path)
        self.secret = secret or None
        drop_torn_tail(self.path)
        self.lock = threading.Lock()
        self.fh = open(self.path, "a", encoding="utf-8")

    def write(self, exchange: Exchange) -> None:
        line = exchange.model_dump_json()
        if self.secret:
            line = line.replace(self.secret, "[REDACTED]")
        with self.lock:
            self.fh.write(line + "\n")
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a killed process, so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def complete_lines(path: Path) -> list[bytes]:
    """The complete lines of an append-only JSONL file (none if it does not exist); a torn last line (a kill
    mid-write) is left out."""
    if not Path(path).exists():
        return []
    return Path(path).read_bytes().split(b"\n")[:-1]  # the last piece is b"" or a torn line


def read(path: Path) -> list[Exchange]:
    """Every complete exchange in a journal; a torn last line (a kill mid-write) is ignored."""
    out = []
    for number, line in enumerate(complete_lines(path), 1):
        if not line.strip():
            continue
        try:
            out.append(Exchange.model_validate_json(line))
        except ValidationError:
            raise VerifierError(f"{path}: line {number} is not a journal entry; the journal is corrupt") from None
    return out


class Replay:
    """Journaled exchanges, handed out once each by key."""

    def __init__(self, exchanges: list[Exchange]):
        self.by_key: dict[str, deque[Exchange]] = defaultdict(deque)
        for ex in exchanges:
            if ex.key and not ex.failed("unavailable"):
                self.by_key[ex.key].append(ex)
        self.lock = threading.Lock()
        self.replayed = 0

    def take(self, key: str) -> Exchange | None:
        with self.lock:
            queue = self.by_key.get(key)
            if not queue:
                return None
            self.replayed += 1
            return queue.popleft()
