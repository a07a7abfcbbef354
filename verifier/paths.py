"""Where the verifier finds its shipped data (inside the package) and keeps files it derives."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout's root; only developer tools (calibration) use it."""


def cache_dir() -> Path:
    """The cache directory: `$GPT_OSS_VERIFY_CACHE`, else `~/.cache/gpt-oss-verify`."""
    root = os.environ.get("GPT_OSS_VERIFY_CACHE") or Path.home() / ".cache" / "gpt-oss-verify"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `lock` (created if missing) across processes: one process builds or
    installs into a shared cache while others wait, then find it done."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def made_once(out: Path, ready: Callable[[], bool], make: Callable[[Path], object]) -> Path:
    """The cached directory `out`: unless `ready()`, `make(folder)` writes it into a sibling folder that is then
    renamed into place, one process at a time (the others wait, then find it ready)."""
    if ready():
        return out
    with exclusive(out.with_name(out.name + ".lock")):
        if not ready():
            partial = out.with_name(out.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            make(partial)
            shutil.rmtree(out, ignore_errors=True)
            partial.rename(out)
    return out


def data_dir() -> Path:
    """The data shipped inside the package (suites, golden records, the result schema)."""
    return Path(str(resources.files("verifier") / "data"))


def suites_dir() -> Path:
    """The suites: `$GPT_OSS_VERIFY_SUITES`, else the ones shipped with the verifier."""
    return Path(os.environ.get("GPT_OSS_VERIFY_SUITES") or data_dir() / "suites")


def golden_dir() -> Path:
    """The golden records: `$GPT_OSS_VERIFY_GOLDEN`, else the ones shipped with the verifier."""
    return Path(os.environ.get("GPT_OSS_VERIFY_GOLDEN") or data_dir() / "golden")


def schema_dir() -> Path:
    """The committed JSON Schema of result.json."""
    return data_dir() / "schema"
