"""A run's configuration: what to verify, where to write it, how hard to retry.

`run.json` keeps it so that `--resume` can finish a run, and `result.json` keeps it so that a result says
how it was obtained. The API key is never written to either.
"""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic.json_schema import SkipJsonSchema

from verifier.verdict import Documented

DEFAULT_SUITES = ["harmony", "tools", "structured", "effort", "drift"]
DRIFT_METHODS = ("auto", "teacher", "greedy", "sampling")
"""`auto` tries teacher forcing, else greedy logprobs, else sampling; the others force one."""


class RetryPolicy(Documented):
    """How hard to try before calling the provider unavailable."""

    attempts: int = 5
    """Attempts per request, the first included."""
    base_s: float = 0.5
    """Backoff before the second attempt; doubles each time, with full jitter."""
    cap_s: float = 20.0
    """Longest backoff between two attempts."""
    max_retry_after_s: float = 60.0
    """Longest `Retry-After` honoured; a longer one is cut to this."""
    breaker: int = 6
    """Requests finding no service in a row (every attempt spent) before the circuit opens."""
    cooldown_s: float = 30.0
    """How long an open circuit waits before letting one probe through."""

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after_s))
        return backoff


class RunConfig(Documented):
    """What to verify and where to write it."""

    base_url: str | None = None
    """Provider base URL ending in /v1; None starts the built-in provider on the conformance checkpoint."""
    model: str | None = None
    """Model name requested (None: the built-in provider's model)."""
    api_key: SkipJsonSchema[str | None] = Field(default=None, exclude=True, repr=False)
    """Credential, from the environment; never written anywhere."""
    suites: list[str] = Field(default_factory=lambda: list(DEFAULT_SUITES))
    """Suites to run, by name or directory."""
    golden: Path | None = None
    """Directory of golden files (`<suite>.json`); default: the conformance checkpoint's fp32 golden."""
    profile: str = "full"
    """`full` every case, or `quick` the cases each suite tags `quick` (see `Suite.for_profile`)."""
    apis: list[str] | None = None
    """`--api`: restrict to these API variants and evidence kinds (see `verifier.exchange`); None: the defaults."""
    out: Path = Path("reports")
    """Directory the run directory is made in."""
    faults: list[str] = Field(default_factory=list)
    """Fault modes of the built-in provider (see `gpt-oss-verify faults`)."""
    quirks: list[str] = Field(default_factory=list, validation_alias=AliasChoices("quirks", "variants"))
    """Server quirks of the built-in provider: honest behaviours a conforming server may show (see
    `gpt-oss-verify faults`). Read from `variants` too, as run.json files written before the rename say."""
    surfaces: list[str] = Field(default_factory=list)
    """API surfaces of the built-in provider (`--surface`, see `verifier.serve.surfaces`)."""
    drift_method: str = "auto"
    """`auto` (teacher forcing, else greedy logprobs, else sampling) or one of them forced."""
    score_all: bool = False
    """Score every golden position instead of passing once the calibrated power is reached."""
    timeout: float = 120.0
    """Per-request limit in seconds, for the whole response (a stream included)."""
    concurrency: int = 4
    """Requests in flight at once (tool loops run in parallel; the sequential drift test does not)."""
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    """Retries on outages and rate limits."""
