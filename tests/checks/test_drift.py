"""drift.*: teacher-forced scores, greedy logprobs along the prefix shared with golden (leaving it at a
near-tie tolerated, at a decisive position not), and temperature-1 samples."""

from __future__ import annotations

import math

from verifier.checks import REGISTRY
from verifier.drift.provider_tokens import TokenScores
from verifier.verdict import Detection

from .builders import (
    BETWEEN,
    BOUNDARY,
    DECISIVE,
    FLIP_MARGIN,
    NEAR_TIE,
    REASONING,
    calibration,
    case,
    completion,
    exchange,
    failed,
    failure,
    golden_turn,
    greedy_logprobs,
    observation,
    record,
    request,
    run,
    scored,
    shows,
    suite_view,
    tie_in,
)
from .builders import Verdict as V

DONE = completion()
"""The golden completion of these tests: 34 tokens, enough for the boundary (from 16 positions)."""


def _golden(margins=None, logprob=-0.01):
    return golden_turn(request(), DONE, margins, logprob=logprob)


def _view(golden, exchanges, cal=None):
    return suite_view([case("c")], [record("c", golden)], exchanges, cal)


def test_the_golden_completion_reaches_the_boundary():
    assert len(DONE.tokens) >= 16 and NEAR_TIE < BETWEEN < FLIP_MARGIN < DECISIVE


# -- drift.teacher_forced -------------------------------------------------------------------------


def _forced(golden, score=None, cal=None, **extra):
    ex = exchange(None, variant="score", score=score, **extra)
    return run("drift.teacher_forced", _view(golden, [ex], cal if cal is not None else calibration()))


@shows("drift.teacher_forced", V.PASS)
def test_golden_distribution_passes():
    golden = _golden()
    outcomes = _forced(golden, scored(golden))
    assert outcomes[0].observed["positions"] == len(DONE.tokens)
    assert outcomes[0].figure is not None
    return outcomes


@shows("drift.teacher_forced", V.PASS)
def test_a_pass_names_the_calibrated_faults_a_run_this_short_could_miss():
    golden = _golden()
    detection = {"coarse": Detection(power_all_positions=1.0, positions_for_99pct_power=16, median_positions_to_flag=16),
                 "subtle": Detection(power_all_positions=1.0, positions_for_99pct_power=512, median_positions_to_flag=200),
                 "unseen": Detection(power_all_positions=0.1, positions_for_99pct_power=None, median_positions_to_flag=None)}
    outcomes = _forced(golden, scored(golden), cal=calibration().model_copy(update={"detection": detection}))
    n = len(DONE.tokens)
    assert outcomes[0].observed["reach"] == {"positions": n, "flagged": ["coarse"], "missed": {"subtle": 512, "unseen": None}}
    assert outcomes[0].message.endswith(f"at {n} positions this test flags coarse in 99% of runs but could miss "
                                        "subtle (512 needed), unseen (under 99% even over every golden position)")
    return outcomes


@shows("drift.teacher_forced", V.FAIL)
def test_log_odds_scaled_beyond_the_boundary_fail():
    golden = _golden()
    outcomes = _forced(golden, scored(golden, scale=1 + 5 * BOUNDARY))
    assert outcomes[0].observed["decided_at_positions"] == len(DONE.tokens)  # looked at after each turn
    assert "median relative log-odds error 0.5000 > 0.1000" in outcomes[0].message
    return outcomes


@shows("drift.teacher_forced", V.PASS)
def test_log_odds_scaled_within_the_boundary_pass():
    golden = _golden()
    return _forced(golden, scored(golden, scale=1 + BOUNDARY / 2))


@shows("drift.teacher_forced", V.FAIL)
def test_a_top_1_flip_where_golden_is_decisive_fails():
    golden = _golden()
    position = DONE.content["final"][0]
    outcomes = _forced(golden, scored(golden, flips=(position,)))
    assert "1 top-1 disagreements where golden is decisive" in outcomes[0].message
    return outcomes


@shows("drift.teacher_forced", V.PASS)
def test_a_top_1_flip_at_a_golden_near_tie_is_honest():
    golden = _golden(tie_in(DONE, "final"))
    return _forced(golden, scored(golden, flips=(DONE.content["final"][0],)))


@shows("drift.teacher_forced", V.PASS)
def test_a_flip_at_a_margin_below_the_calibrated_flip_margin_is_honest():
    golden = _golden(tie_in(DONE, "final", BETWEEN))
    return _forced(golden, scored(golden, flips=(DONE.content["final"][0],)))


@shows("drift.teacher_forced", V.SKIP)
def test_without_calibration_there_are_no_thresholds():
    golden = _golden()
    view = _view(golden, [exchange(None, variant="score", score=scored(golden))])
    return run("drift.teacher_forced", view)


@shows("drift.teacher_forced", V.SKIP)
def test_a_provider_without_teacher_forcing_is_skipped():
    return _forced(_golden(), failure=failure("no prompt_logprobs", "unsupported"))


@shows("drift.teacher_forced", V.ERROR)
def test_scoring_that_failed_is_no_evidence():
    outcomes = _forced(_golden(), failure=failure("HTTP 500", "http_status", 500))
    assert outcomes[0].message == "teacher forcing produced no scores: HTTP 500"
    return outcomes


@shows("drift.teacher_forced", V.PASS)
def test_turns_that_gave_no_scores_are_named_beside_the_verdict():
    """A turn the host could not score (a misaligned string prompt, a 500) never vanishes from a verdict."""
    golden = _golden()
    good = exchange(None, variant="score", score=scored(golden))
    bad = exchange(None, variant="score", turn=2, failure=failure("tokenised differently at position 7", "protocol"))
    outcomes = run("drift.teacher_forced", _view(golden, [good, bad], calibration()))
    assert outcomes[0].message.endswith("; 1 requests gave no scores (first: tokenised differently at position 7)")
    return outcomes


# -- drift.greedy_logprobs ------------------------------------------------------------------------


def _greedy(golden, logprobs, cal=None):
    ex = exchange(observation(logprobs=logprobs), variant="greedy-logprobs")
    return run("drift.greedy_logprobs", _view(golden, [ex], cal if cal is not None else calibration()))


@shows("drift.greedy_logprobs", V.PASS)
def test_the_golden_path_with_golden_logprobs_passes():
    golden = _golden()
    outcomes = _greedy(golden, greedy_logprobs(golden))
    assert outcomes[0].observed["positions"] == len(DONE.tokens)
    return outcomes


@shows("drift.greedy_logprobs", V.PASS)
def test_logprobs_that_leave_out_the_leading_header_are_aligned():
    golden = _golden()
    outcomes = _greedy(golden, greedy_logprobs(golden, skip=3))
    assert outcomes[0].observed["positions"] == len(DONE.tokens) - 3
    return outcomes


@shows("drift.greedy_logprobs", V.FAIL)
def test_greedy_logprobs_scaled_beyond_the_boundary_fail():
    golden = _golden()
    return _greedy(golden, greedy_logprobs(golden, scale=1 + 5 * BOUNDARY))


@shows("drift.greedy_logprobs", V.FAIL)
def test_leaving_golden_at_a_decisive_position_fails():
    golden = _golden()
    outcomes = _greedy(golden, greedy_logprobs(golden, depart_at=DONE.content["final"][0]))
    assert f"left golden at a decisive position (margin {DECISIVE:.2f} nats)" in outcomes[0].message
    return outcomes


@shows("drift.greedy_logprobs", V.PASS)
def test_leaving_golden_at_a_near_tie_is_tolerated():
    position = DONE.content["final"][0]
    golden = _golden(tie_in(DONE, "final"))
    outcomes = _greedy(golden, greedy_logprobs(golden, depart_at=position))
    assert outcomes[0].observed["positions"] == position  # scored up to the departure
    return outcomes


@shows("drift.greedy_logprobs", V.PASS)
def test_leaving_golden_below_the_greedy_flip_margin_is_tolerated():
    position = DONE.content["analysis"][5]
    golden = _golden({position: BETWEEN})
    return _greedy(golden, greedy_logprobs(golden, depart_at=position))


@shows("drift.greedy_logprobs", V.FAIL)
def test_the_same_departure_fails_under_a_smaller_greedy_flip_margin():
    position = DONE.content["analysis"][5]
    golden = _golden({position: BETWEEN})
    return _greedy(golden, greedy_logprobs(golden, depart_at=position), calibration(flip_margin=1.0))


@shows("drift.greedy_logprobs", V.SKIP)
def test_a_calibration_without_a_greedy_part_is_skipped():
    golden = _golden()
    return _greedy(golden, greedy_logprobs(golden), calibration(greedy=False))


@shows("drift.greedy_logprobs", V.SKIP)
def test_a_provider_that_returns_no_logprobs_is_skipped():
    return _greedy(_golden(), None)


# -- drift.sampling -------------------------------------------------------------------------------

HALF = math.log(0.5) / len(DONE.tokens)
"""Golden token log-probability at which the whole golden completion has probability 1/2."""


def _sampled(hits: int, misses: int, cal=None, failures: int = 0):
    golden = _golden(logprob=HALF)
    samples = [observation() for _ in range(hits)] + [observation(content="Lyon") for _ in range(misses)]
    samples += [failed(None, "timed out") for _ in range(failures)]
    return run("drift.sampling", _view(golden, [exchange(obs, variant="sampling") for obs in samples], cal))


@shows("drift.sampling", V.PASS)
def test_half_of_the_samples_reproducing_a_half_likely_golden_passes():
    outcomes = _sampled(5, 5, failures=1)
    assert outcomes[0].observed == {"samples": 10, "golden_identical": 5, "expected": 5.0, "p_value": 1.0}
    return outcomes


@shows("drift.sampling", V.FAIL)
def test_no_sample_reproducing_a_half_likely_golden_fails():
    return _sampled(0, 10)


@shows("drift.sampling", V.FAIL)
def test_every_sample_reproducing_a_half_likely_golden_fails():
    return _sampled(10, 0)


@shows("drift.sampling", V.PASS)
def test_the_calibrated_alpha_decides():
    return _sampled(0, 10, calibration(alpha=0.001))


def test_reasoning_other_than_golden_is_not_a_reproduction():
    golden = _golden(logprob=HALF)
    samples = [exchange(observation(reasoning=REASONING + " Done."), variant="sampling") for _ in range(10)]
    assert run("drift.sampling", _view(golden, samples))[0].observed["golden_identical"] == 0


@shows("drift.sampling", V.ERROR)
def test_no_usable_sample_is_no_evidence():
    return _sampled(0, 0, failures=3)


# -- drift.reference_scored -------------------------------------------------------------------------


def _answer(margins: list[float], key: str = "g") -> TokenScores:
    """A greedy answer as the reference scored it: the margin of each of its tokens below the reference's top-1."""
    return TokenScores(key=key, label=key, sampled=False, date="2025-01-01", margin=margins,
                       tokens=[f"t{i}" for i in range(len(margins))])


def _samples(mid_rank: float, n: int = 400) -> TokenScores:
    """Samples whose tokens all sit at `mid_rank` of the reference's distribution (1/2 on average when honest)."""
    return TokenScores(key="s", label="s", sampled=True, mid_rank=[mid_rank] * n, cube_sum=[0.5] * n)


def _reference_scored(*scores: TokenScores):
    exchanges = {s.key: exchange(observation(), key=s.key) for s in scores}
    return REGISTRY["drift.reference_scored"].fn(list(scores), exchanges, calibration())


@shows("drift.reference_scored", V.PASS)
def test_reference_scored_passes_tokens_the_reference_would_choose():
    """Greedy tokens at the top-1 or a near-tie below it; samples that rank as the reference's own would (the
    two halves alternate about 1/2)."""
    honest = _samples(0.5)
    honest.mid_rank = [0.3, 0.7] * 200
    return _reference_scored(_answer([0.0, NEAR_TIE, 0.0]), honest)


@shows("drift.reference_scored", V.FAIL)
def test_reference_scored_fails_a_token_chosen_against_a_decisive_margin():
    outcomes = _reference_scored(_answer([0.0, NEAR_TIE]), _answer([0.0, DECISIVE], key="d"))
    assert [o.verdict for o in outcomes] == [V.PASS, V.FAIL]
    return outcomes


@shows("drift.reference_scored", V.FAIL)
def test_reference_scored_fails_samples_the_reference_ranks_low():
    outcome, = _reference_scored(_samples(0.6))
    assert outcome.variant == "sampling" and outcome.observed["z"] > 3
    return outcome
