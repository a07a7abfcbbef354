"""The HTML report: one self-contained file (no external scripts, fonts or images), every provider
string escaped by Jinja's autoescape, undefined template names an error (StrictUndefined)."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from verifier.result import RunResult
from verifier.suites import FAMILIES

TEMPLATES = Path(__file__).parent / "templates"
EXCERPT = 4000


def excerpt(value, limit: int = EXCERPT) -> str:
    """A bounded, printable rendering of any evidence value (escaping is the template's job)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["excerpt"] = excerpt
    return env


def render_html(result: RunResult) -> str:
    families = [(f, [c for c in result.checks if c.family == f]) for f in FAMILIES]
    return _environment().get_template("report.html.j2").render(
        result=result, families=[(f, cs) for f, cs in families if cs])
