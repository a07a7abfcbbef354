"""effort.*: reasoning length rises with effort (Page's trend test), and each request is nearest the
reference's length at the level it asked for."""

from __future__ import annotations

from verifier import harmony
from verifier.checks import REGISTRY
from verifier.checks.common import thresholds

from .builders import Verdict as V
from .builders import (
    case,
    completion,
    exchange,
    golden_turn,
    observation,
    record,
    request,
    run,
    shows,
    suite_view,
)

GOLDEN_LENGTH = {"low": 8, "medium": 64, "high": 256}
"""Golden reasoning length (words, about one token each) by effort."""


def _reasoning(words: int) -> str:
    return " ".join(["step"] * words)


def _view(lengths: dict[str, int], groups: int = 4):
    """Cases `g<i>-<effort>` of `groups` prompt groups, golden at GOLDEN_LENGTH, the provider's reasoning at
    `lengths` (effort -> words) in every group, sent on chat."""
    cases, records, exchanges = [], [], []
    for g in range(groups):
        for effort in harmony.EFFORTS:
            body = request(f"Question {g}?", reasoning_effort=effort)
            cid = f"g{g}-{effort}"
            cases.append(case(cid, body, group=f"g{g}"))
            records.append(record(cid, golden_turn(body, completion(_reasoning(GOLDEN_LENGTH[effort] + g)))))
            obs = observation(reasoning=_reasoning(lengths[effort] + g))
            exchanges.append(exchange(obs, body, case_id=cid))
    return suite_view(cases, records, exchanges)


# -- effort.trend ---------------------------------------------------------------------------------


def test_the_title_states_the_alpha_the_check_uses():
    assert f"α = {thresholds().effort_trend_alpha.value:g}" in REGISTRY["effort.trend"].title


@shows("effort.trend", V.PASS)
def test_reasoning_that_rises_with_effort_passes():
    outcomes = run("effort.trend", _view(GOLDEN_LENGTH))
    assert outcomes[0].observed["p_value"] < thresholds().effort_trend_alpha.value
    assert outcomes[0].expected == f"p < {thresholds().effort_trend_alpha.value}"
    return outcomes


@shows("effort.trend", V.FAIL)
def test_one_length_at_every_effort_fails():
    return run("effort.trend", _view({"low": 64, "medium": 64, "high": 64}))


@shows("effort.trend", V.FAIL)
def test_a_significant_trend_that_is_not_monotone_fails():
    """Medium above high in every group: Page's L is still large, the means do not rise."""
    outcomes = run("effort.trend", _view({"low": 8, "medium": 300, "high": 256}, groups=14))
    assert outcomes[0].observed["p_value"] < thresholds().effort_trend_alpha.value
    return outcomes


@shows("effort.trend", V.SKIP)
def test_fewer_than_three_groups_are_skipped():
    return run("effort.trend", _view(GOLDEN_LENGTH, groups=2))


# -- effort.honoured ------------------------------------------------------------------------------


@shows("effort.honoured", V.PASS)
def test_lengths_nearest_the_requested_level_pass():
    outcomes = run("effort.honoured", _view({"low": 10, "medium": 50, "high": 300}, groups=1))
    assert len(outcomes) == 3
    return outcomes


@shows("effort.honoured", V.FAIL)
def test_everything_served_at_medium_fails_at_low_and_high():
    outcomes = run("effort.honoured", _view({"low": 64, "medium": 64, "high": 64}, groups=1))
    assert [o.verdict for o in outcomes] == [V.FAIL, V.FAIL, V.PASS]  # g0-high, g0-low, g0-medium
    return outcomes
