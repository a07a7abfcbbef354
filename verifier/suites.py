"""Suites (shipped in `verifier/data/suites/`): `NAME/suite.yaml` (metadata) and `NAME/cases.jsonl` (one case a line).

A case is an exact Chat Completions request body (without `model`); the runner derives the
Responses and Completions requests from it. Suites say nothing about what a model answers:
expectations live in golden records built by the reference run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from verifier import harmony
from verifier.errors import SuiteError
from verifier.observation import ToolCall
from verifier.paths import suites_dir

FAMILIES = ("rendering", "parsing", "tools", "structured", "effort", "drift")
HISTORY_FIELDS = ("reasoning", "reasoning_content")
"""The Chat message fields that carry an assistant's earlier reasoning back to the server."""


def reasoning_field(returned: list[str]) -> str:
    """The field a client sends earlier reasoning back in: the Chat field the host returned it in (hosts
    differ, and some reject the other; `reasoning` where it returned both; `harmony.INLINE_REASONING`: inline
    in content), else `reasoning` (the Responses and Completions forms are made from the Chat request).
    `returned` is `Observation.reasoning_fields`."""
    return next((name for name in (*HISTORY_FIELDS, harmony.INLINE_REASONING) if name in returned), "reasoning")


DEFAULT_MAX_TOKENS = 256
"""The completion limit of a request that sets none."""


def max_tokens_of(request: dict) -> int:
    """The completion limit of a request: its `max_tokens`, else `max_completion_tokens`, else 256."""
    return int(request.get("max_tokens") or request.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)


class Case(BaseModel):
    """One request of a suite."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    """Stable identifier, unique within the suite."""
    description: str = ""
    """What the case exercises, in one line."""
    request: dict
    """The Chat Completions request body, exactly as sent (the runner adds `model`)."""
    tool_results: dict[str, str] = Field(default_factory=dict)
    """Tool name -> the result content the runner sends back when the model calls that tool."""
    send_reasoning: bool = True
    """Whether the runner sends the assistant's reasoning back with its tool call in a tool loop."""
    group: str | None = None
    """Cases with the same group are one prompt at several reasoning efforts."""
    quick: bool = False
    """Part of the `quick` profile (see `Suite.for_profile`); tag a group's cases all or none."""

    @property
    def effort(self) -> str:
        return self.request.get("reasoning_effort") or "medium"

    @property
    def max_tokens(self) -> int:
        return max_tokens_of(self.request)

    def follow_up(self, request: dict, reasoning: str | None, calls: list[ToolCall],
                  field: str = "reasoning") -> dict | None:
        """The next request of a tool loop: the assistant's calls and their results appended, its reasoning
        (unless `send_reasoning` is off) in the message field `field`, or inline in its content where `field`
        is `harmony.INLINE_REASONING` (see `reasoning_field`).

        A forcing `tool_choice` (required, or a named function) becomes `auto`, as agent SDKs reset
        it after a forced call. None when there is nothing to send back (no call, or a call this case has no result for).
        """
        if not calls or any(c.name not in self.tool_results for c in calls):
            return None
        assistant: dict = {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}} for c in calls],
        }
        if self.send_reasoning and reasoning and field == harmony.INLINE_REASONING:
            assistant["content"] = harmony.inline_reasoning(reasoning)
        elif self.send_reasoning and reasoning:
            assistant[field] = reasoning
        results = [{"role": "tool", "tool_call_id": c.id, "content": self.tool_results[c.name]} for c in calls]
        follow = {**request, "messages": [*request["messages"], assistant, *results]}
        if follow.get("tool_choice") not in (None, "auto", "none"):
            follow["tool_choice"] = "auto"  # as agent SDKs do after a forced call, so the loop can end
        return follow


class Suite(BaseModel):
    """A named, versioned list of cases."""

    name: str
    version: int
    description: str = ""
    families: list[str]
    cases: list[Case]
    sha256: str
    """Hash of suite.yaml and cases.jsonl: golden records name the suite content they were built from."""

    def for_profile(self, profile: str) -> Suite:
        """The cases a profile runs: `quick` those tagged `quick` (all of them in a suite that tags none), `full`
        all. The suite keeps its identity (name, sha256), so its golden file still applies."""
        if profile != "quick" or not any(c.quick for c in self.cases):
            return self
        return self.model_copy(update={"cases": [c for c in self.cases if c.quick]})


def _load_meta(path: Path) -> dict:
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: cannot read suite metadata ({exc.__class__.__name__})") from None
    if not isinstance(meta, dict) or "name" not in meta or "version" not in meta:
        raise SuiteError(f"{path}: suite.yaml needs at least `name` and `version`")
    unknown = set(meta.get("families") or []) - set(FAMILIES)
    if unknown:
        raise SuiteError(f"{path}: unknown families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    return meta


def _load_cases(path: Path) -> list[Case]:
    cases, seen = [], set()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            case = Case.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "case"
            raise SuiteError(f"{path}:{number}: {where}: {first['msg']}") from None
        if not isinstance(case.request.get("messages"), list) or not case.request["messages"]:
            raise SuiteError(f"{path}:{number}: request.messages must be a non-empty list")
        if case.id in seen:
            raise SuiteError(f"{path}:{number}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise SuiteError(f"{path}: no cases")
    return cases


def load_suite(name_or_path: str | Path) -> Suite:
    """Load a shipped suite by name, or a suite directory by path."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        folder = suites_dir() / str(name_or_path)
    if not (folder / "suite.yaml").is_file():
        raise SuiteError(f"unknown suite {str(name_or_path)!r}; available: {', '.join(available())}")
    meta = _load_meta(folder / "suite.yaml")
    cases = _load_cases(folder / "cases.jsonl")
    digest = hashlib.sha256((folder / "suite.yaml").read_bytes() + (folder / "cases.jsonl").read_bytes())
    return Suite(name=meta["name"], version=int(meta["version"]), description=meta.get("description", ""),
                 families=list(meta.get("families") or FAMILIES), cases=cases, sha256=digest.hexdigest())


def available() -> list[str]:
    """Names of the shipped suites."""
    return sorted(p.parent.name for p in suites_dir().glob("*/suite.yaml"))
