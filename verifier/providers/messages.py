"""Providers' error messages: the cap a refusal names, and provider text made fit to print.

One reading of a cap for every caller: the probe (`probe.find_cap`) and the run's re-asking at a cap
(`providers.logprobs_cap`). Phrasings hosts use: "must be less than or equal to 5" (OpenAI-style), "at most
5", "<= 5", "≤ 5", "max allowed: 5" / "max allowed is 5" (vLLM: "Requested sample logprobs of 30, which is
greater than max allowed: 20"), "maximum (value) of 5", "no more than 5", "must not exceed 5", "the limit
of 5", "up to 5", "between 0 and 5", "range [0, 5]".
"""

from __future__ import annotations

import re
import unicodedata

CAP_PATTERN = re.compile(
    r"(?:\bat most|<=|≤|\bless than or equal to|\b(?:no|not) (?:more|larger|greater|bigger) than|\bexceed(?:s|ing)?"
    r"|\bup to|\bmax(?:imum)?(?: allowed)?(?: value)?(?: of| is)?[:=]?|\blimit(?: of| is)?:?|\bbetween \d+ and"
    r"|\brange \[?\d+ ?(?:,|-|to) ?)\s*\(?(\d+)",
    re.IGNORECASE)
"""A number given as the most a parameter may be (group 1)."""

ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_]?)|\x9b[0-?]*[ -/]*[@-~]")
"""Terminal escape sequences: CSI (colours, cursor moves; ESC [ or the one-byte CSI), OSC (window titles,
links), and the other two-character escapes."""


def named_cap(message: str, about: str = "logprob") -> int | None:
    """The most a refusal says a parameter may be ("at most 5", "≤ 5", …; see the module docstring), None where
    it names no such number. Where it names several ("max_tokens up to 4096; top_logprobs at most 5"), the
    first after the message first mentions `about`."""
    text = message or ""
    found = list(CAP_PATTERN.finditer(text))
    at = text.lower().find(about)
    after = [match for match in found if 0 <= at < match.start()]
    return int((after or found)[0].group(1)) if found else None


def printable(text: str) -> str:
    """Provider text fit for a terminal and a one-line note: escape sequences removed, control characters
    (`\\r`, `\\n`, tabs, C1) and invisible format characters (bidi overrides, zero-width) made spaces, runs of
    whitespace one space."""
    text = ESCAPE_SEQUENCE.sub("", text or "")
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)
    return " ".join(text.split())
