"""Reasoning effort: more effort, longer reasoning; and the level asked for is the level served."""

from __future__ import annotations

import math
from collections import defaultdict

from verifier import harmony
from verifier.checks.base import Outcome, SuiteView, Verdict, check
from verifier.checks.common import reasoning_length, thresholds
from verifier.exchange import Exchange
from verifier.trend import mean, page_trend_test
from verifier.verdict import EffortFigure, EffortGroup


def _first_turns(view: SuiteView) -> dict[str, list[Exchange]]:
    """First-turn exchanges with a usable observation, by variant."""
    out: dict[str, list[Exchange]] = defaultdict(list)
    for ex in view.exchanges:
        if ex.turn == 1 and ex.observation is not None and ex.observation.ok:
            out[ex.variant].append(ex)
    return out


def _level(view: SuiteView, case_id: str) -> tuple[str | None, str]:
    case = next(c for c in view.suite.cases if c.id == case_id)
    return case.group, case.effort


def _golden_lengths(view: SuiteView) -> dict[str, dict[str, int]]:
    """group -> effort -> golden reasoning length (o200k tokens)."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for case in view.suite.cases:
        record = view.golden.record(case.id)
        if case.group and record:
            out[case.group][case.effort] = reasoning_length(record.turns[0].reasoning)
    return out


@check(
    "effort.trend", "effort",
    title="reasoning length rises low < medium < high (Page's trend test, one-sided, "
          f"α = {thresholds().effort_trend_alpha.value:g})",
    why="if effort does not change the reasoning, the provider is not honouring it, whatever it claims",
    source="a 13-point AIME25 gap for one large cloud that ran everything at medium",
    compares="statistics", apis=("chat", "responses"), scope="suite",
)
def trend(view: SuiteView):
    alpha = thresholds().effort_trend_alpha.value
    golden = _golden_lengths(view)
    out = []
    for variant, exchanges in sorted(_first_turns(view).items()):
        by_group: dict[str, dict[str, int]] = defaultdict(dict)
        for ex in exchanges:
            group, effort = _level(view, ex.case_id)
            if group:
                by_group[group][effort] = reasoning_length(ex.observation.reasoning)
        blocks = [[levels[e] for e in harmony.EFFORTS] for levels in by_group.values() if len(levels) == 3]
        if len(blocks) < 3:
            out.append(Outcome(verdict=Verdict.SKIP, variant=variant, message="fewer than 3 complete prompt groups"))
            continue
        means = [mean([b[i] for b in blocks]) for i in range(3)]
        statistic, p = page_trend_test(blocks)
        observed = {"mean_reasoning_tokens": dict(zip(harmony.EFFORTS, [round(m, 1) for m in means])),
                    "page_L": statistic, "p_value": p, "prompts": len(blocks)}
        rising = means[0] < means[1] < means[2]
        verdict = Verdict.PASS if p < alpha and rising else Verdict.FAIL
        word = "rises" if verdict is Verdict.PASS else "does not rise"
        plot = EffortFigure(levels=list(harmony.EFFORTS), groups=[
            EffortGroup(group=group, provider=levels, golden=golden.get(group, {}))
            for group, levels in sorted(by_group.items())])
        out.append(Outcome(verdict=verdict, variant=variant, observed=observed, expected=f"p < {alpha}", figure=plot,
                           message=f"reasoning {word} with effort: means {observed['mean_reasoning_tokens']}, "
                                   f"Page p = {p:.2g} over {len(blocks)} prompts"))
    return out


@check(
    "effort.honoured", "effort",
    title="each request's reasoning length is nearest the reference's at the requested level",
    why="catches effort mapped to the wrong level (clamped, shifted, ignored) prompt by prompt",
    source="llama.cpp #15130, ollama #12589",
    compares="statistics: nearest golden level in log length", apis=("chat", "responses"), scope="suite",
)
def honoured(view: SuiteView):
    golden = _golden_lengths(view)
    out = []
    for variant, exchanges in sorted(_first_turns(view).items()):
        for ex in sorted(exchanges, key=lambda e: e.case_id):
            group, effort = _level(view, ex.case_id)
            if not group or len(golden.get(group, {})) < 2:
                continue
            length = reasoning_length(ex.observation.reasoning)
            distance = {lvl: abs(math.log1p(length) - math.log1p(g)) for lvl, g in golden[group].items()}
            nearest = min(distance, key=distance.get)
            ok = nearest == effort or distance[nearest] == distance.get(effort)
            out.append(Outcome(
                verdict=Verdict.PASS if ok else Verdict.FAIL, case_id=ex.case_id, variant=variant, turn=1,
                expected={"effort": effort, "golden_tokens": golden[group]}, observed=length,
                message=f"{length} reasoning tokens at {effort}: nearest the reference's {nearest} "
                        f"({golden[group][nearest]})"))
    return out
