"""The HTML report: one self-contained file (no external scripts, fonts or images; plots are inline
SVG), rendered from a `RunResult` alone.

Provider text is untrusted. Every value goes through Jinja's autoescape; on top of that every value
printed passes `visible()` (control and bidirectional-override characters shown as visible marks, so
they can neither hide text nor reorder the page), evidence is cut to excerpts, long words wrap, and a
Content-Security-Policy forbids scripts, plugins, frames and remote loads (defense in depth).
Undefined template names are an error (StrictUndefined).
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import zip_longest
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

import verifier.report.svg as svg
from verifier.golden import Provenance
from verifier.report.safe import visible
from verifier.result import ExchangeEvidence, HarmonyView, RunResult
from verifier.suites import FAMILIES
from verifier.verdict import DriftFigure, EffortFigure, Verdict

TEMPLATES = Path(__file__).parent / "templates"
EXCERPT = 4000
INLINE_EVIDENCE = 12
"""Failing outcomes per check whose exchange evidence is shown in place (the rest link to it)."""

def excerpt(value, limit: int = EXCERPT) -> str:
    """A bounded, printable rendering of any evidence value (escaping is the template's job)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def _special(token: str) -> bool:
    return token.startswith("<|") and token.endswith("|>")


def message_pairs(provider: HarmonyView | None, golden: HarmonyView | None) -> list[tuple]:
    """Provider and golden messages side by side: (provider, golden, differs) per position."""
    ours = provider.messages if provider else []
    ref = golden.messages if golden else []
    out = []
    for a, b in zip_longest(ours, ref):
        differs = a is None or b is None or (a.channel, a.recipient, a.constrain, a.end) != (
            b.channel, b.recipient, b.constrain, b.end)
        out.append((a, b, differs and provider is not None and golden is not None))
    return out


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=visible)
    env.filters["excerpt"] = excerpt
    env.filters["special"] = _special
    env.filters["golden_line"] = golden_line
    env.globals["message_pairs"] = message_pairs
    return env


def _count(checks, verdict: Verdict) -> int:
    return sum(1 for c in checks if c.verdict == verdict)


def _family_figures(checks) -> list[tuple[str, Markup]]:
    """(caption, svg) for every outcome of these checks that carries plot data."""
    out = []
    for check in checks:
        for o in check.outcomes:
            if isinstance(o.figure, DriftFigure):
                where = f"{check.id}, {o.variant or ''}".rstrip(", ")
                out.append((f"{where}: {o.verdict.value}", svg.drift_statistic(o.figure)))
                out.append((f"{where}: KL and Δℓ", svg.drift_kl(o.figure)))
                if (budget := svg.detection_budget(o.figure)) is not None:
                    out.append((f"{where}: detection budget (calibration)", budget))
            elif isinstance(o.figure, EffortFigure):
                out.append((f"{check.id}, {o.variant or ''}: {o.verdict.value}",
                            svg.effort_lengths(o.figure, o.variant or "")))
    return out


def _used(result: RunResult) -> dict[str, bool]:
    """Which capabilities the run used, from the API variants and evidence kinds it exercised."""
    apis, score = set(result.apis), result.provider.score_mode or ""
    completions = bool(apis & {"completions", "completions-stream"})
    return {
        "chat": bool(apis & {"chat", "greedy-logprobs", "sampling"}), "chat_stream": "chat-stream" in apis,
        "responses": "responses" in apis, "responses_stream": "responses-stream" in apis,
        "completions": completions or "score" in apis, "completions_stream": "completions-stream" in apis,
        "token_id_prompts": completions or score in ("prompt_logprobs", "echo_logprobs"),
        "prompt_logprobs": score == "prompt_logprobs", "echo_logprobs": score.startswith("echo"),
        "chat_logprobs": "greedy-logprobs" in apis, "chat_top_logprobs": "greedy-logprobs" in apis,
        "prompt_ids_sources": result.provider.prompt_ids_mode is not None and "prompt-ids" in apis,
    }


def capability_rows(result: RunResult) -> list[tuple[str, str, str, str]]:
    """(capability, offered, used, note) for the run table: what the endpoint offered and what the run used."""
    if result.capabilities is None:
        return []
    used = _used(result)
    return [(label, shown, "—" if name not in used else "used" if used[name] else "not used", note)
            for name, label, shown, note in result.capabilities.rows()]


def render_html(result: RunResult) -> str:
    families = [(f, [c for c in result.checks if c.family == f]) for f in FAMILIES]
    families = [(f, cs) for f, cs in families if cs]
    evidence: dict[str, tuple[int, ExchangeEvidence]] = {}
    appendix: dict[str, list[tuple[int, ExchangeEvidence]]] = defaultdict(list)
    for i, e in enumerate(result.evidence):
        evidence.setdefault(e.key, (i, e))  # repeated samples share a key: outcomes point to the first
        appendix[e.suite].append((i, e))
    failing: dict[str, list[str]] = defaultdict(list)
    for check in result.checks:
        for o in check.outcomes:
            if o.exchange and o.verdict in (Verdict.FAIL, Verdict.ERROR) and check.id not in failing[o.exchange]:
                failing[o.exchange].append(check.id)
    summary = [{"family": f, "verdict": _family_verdict(cs), "checks": cs,
                "counts": {v.value: _count(cs, v) for v in Verdict}} for f, cs in families]
    return _environment().get_template("report.html.j2").render(
        result=result, families=families, summary=summary, evidence=evidence, failing=dict(failing),
        figures={f: _family_figures(cs) for f, cs in families}, inline_evidence=INLINE_EVIDENCE,
        counts={v.value: _count(result.checks, v) for v in Verdict},
        appendix=[(suite, rows, sum(1 for _, e in rows if e.key in failing)) for suite, rows in appendix.items()],
        goldens=sorted({golden_line(s.golden) for s in result.suites}), provenance=provenance,
        capabilities=capability_rows(result))


def golden_line(golden: Provenance) -> str:
    """Golden checkpoint, dtype, backend and device in a few words."""
    return f"{golden.checkpoint} {golden.dtype} ({golden.backend} on {golden.device})"


def provenance(golden: Provenance) -> str:
    """Golden provenance in one line."""
    libs = ", ".join(f"{k} {v}" for k, v in sorted(golden.libraries.items()))
    return (f"{golden.checkpoint} (sha256 {golden.checkpoint_sha256[:12]}), {golden.backend} {golden.dtype} on "
            f"{golden.device}, date {golden.date}, top-{golden.top_k}, built {golden.created}"
            + (f"; {libs}" if libs else ""))


def _family_verdict(checks) -> str:
    for v in (Verdict.FAIL, Verdict.ERROR, Verdict.PASS):
        if any(c.verdict == v for c in checks):
            return v.value
    return Verdict.SKIP.value
