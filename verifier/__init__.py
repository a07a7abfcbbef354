"""gpt-oss conformance verifier: does an endpoint compute gpt-oss and speak Harmony like the reference?

`verifier.verify(...)` runs a verification and returns its `RunResult`; `verifier.load_result(path)` reads a
`result.json` (see `verifier.api`). They are loaded on first use, so `import verifier.<module>` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_result", "verify"]
_API = ("verify", "load_result")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("verifier.api"), name)
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
