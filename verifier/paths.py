"""Where the verifier finds its shipped data (inside the package) and keeps files it derives."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout's root; only developer tools (the vLLM harness, calibration) use it."""


def cache_dir() -> Path:
    """The cache directory: `$GPT_OSS_VERIFY_CACHE`, else `~/.cache/gpt-oss-verify`."""
    root = os.environ.get("GPT_OSS_VERIFY_CACHE") or Path.home() / ".cache" / "gpt-oss-verify"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
