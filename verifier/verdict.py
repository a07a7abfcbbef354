"""Verdicts and outcomes: the vocabulary every check, result and report shares."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    """The evidence could not be gathered (transport failure, unusable response): not a conformance fail."""
    SKIP = "skip"
    """The check does not apply, or the provider offers nothing to check it with."""


class Outcome(BaseModel):
    """One check applied to one piece of evidence."""

    verdict: Verdict
    message: str
    """One line: what was found."""
    case_id: str | None = None
    variant: str | None = None
    """API variant, e.g. `chat`, `responses-stream`, `completions`."""
    turn: int | None = None
    expected: Any = None
    observed: Any = None
