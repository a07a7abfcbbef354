"""Check framework: verdicts, outcomes, the registry, and what a check gets to look at.

A check is a pure function registered under a stable id. Exchange checks see one request and
response at a time (`ExchangeView`) and return an `Outcome`, or None where they do not apply;
suite checks see every exchange of a suite at once (`SuiteView`) and return outcomes of their own.
No check does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field

from verifier import harmony
from verifier.drift.calibration import Calibration
from verifier.exchange import Exchange
from verifier.golden import GoldenFile, GoldenRecord, GoldenTurn
from verifier.observation import Observation
from verifier.suites import Case, Suite
from verifier.verdict import Outcome, Verdict


@dataclass
class ExchangeView:
    """What an exchange check sees."""

    case: Case
    exchange: Exchange
    golden: GoldenTurn | None
    """The golden turn at the same position of the tool loop (None if the reference had no such turn)."""
    record: GoldenRecord
    golden_date: str
    """The conversation date golden prompts were rendered with."""
    calibration: Calibration | None = None

    @cached_property
    def same_prompt(self) -> bool:
        """Whether this request renders to exactly the golden prompt (so golden text is the right yardstick)."""
        if self.golden is None:
            return False
        return harmony.render_chat(self.exchange.chat_request, self.golden_date) == self.golden.prompt_token_ids

    @property
    def obs(self) -> Observation:
        assert self.exchange.observation is not None
        return self.exchange.observation

    @property
    def api(self) -> str:
        return self.obs.api

    def outcome(self, verdict: Verdict, message: str, expected: Any = None, observed: Any = None) -> Outcome:
        ex = self.exchange
        return Outcome(verdict=verdict, message=message, case_id=ex.case_id, variant=ex.variant, turn=ex.turn,
                       expected=expected, observed=observed)


@dataclass
class SuiteView:
    """What a suite check sees."""

    suite: Suite
    golden: GoldenFile
    exchanges: list[Exchange]
    calibration: Calibration | None = None
    """Drift thresholds for this golden (None: uncalibrated)."""


class CheckSpec(BaseModel):
    """A registered check."""

    id: str
    family: str
    title: str
    """What it checks, in one line."""
    why: str
    """Why it matters, in one line."""
    source: str
    """Where the failure mode was seen."""
    compares: str
    """How strictly it compares: `structure`, `text where margins are wide`, `statistics`."""
    apis: tuple[str, ...] = ("chat", "responses", "completions")
    scope: str = "exchange"
    """`exchange` (one response at a time), `suite` (all responses of a suite) or `offline` (judged after the run
    from its journal, by `gpt-oss-verify score`, with the reference model at hand)."""
    every_suite: bool = False
    """Applies to every suite, whatever families the suite names."""
    fn: Callable = Field(exclude=True)


REGISTRY: dict[str, CheckSpec] = {}


def check(id: str, family: str, title: str, why: str, source: str, compares: str,
          apis: tuple[str, ...] = ("chat", "responses", "completions"), scope: str = "exchange",
          every_suite: bool = False):
    """Register a check function under a stable id."""

    def register(fn: Callable) -> Callable:
        if id in REGISTRY:
            raise ValueError(f"check {id} registered twice")
        REGISTRY[id] = CheckSpec(id=id, family=family, title=title, why=why, source=source, compares=compares,
                                 apis=apis, scope=scope, every_suite=every_suite, fn=fn)
        return fn

    return register
