"""Where the verifier keeps files it derives (never anything downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The cache directory: `$GPT_OSS_VERIFY_CACHE`, else `~/.cache/gpt-oss-verify`."""
    root = os.environ.get("GPT_OSS_VERIFY_CACHE") or Path.home() / ".cache" / "gpt-oss-verify"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def suites_dir() -> Path:
    """The suites shipped with the verifier."""
    return Path(os.environ.get("GPT_OSS_VERIFY_SUITES") or REPO_ROOT / "suites")


def golden_dir() -> Path:
    """The golden records shipped with the verifier."""
    return Path(os.environ.get("GPT_OSS_VERIFY_GOLDEN") or REPO_ROOT / "golden")
