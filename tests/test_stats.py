"""Statistics: boundaries of every function the checks rely on (drift statistics, Page's trend test)."""

from __future__ import annotations

import math

import pytest

from verifier import trend
from verifier.checks.common import min_margin
from verifier.drift import statistics as stats
from verifier.drift.align import greedy_positions
from verifier.golden import GoldenTurn, TokenScore
from verifier.observation import TokenLogprob, TopLogprob
from verifier.scores import PositionScore


def test_kl_of_identical_distributions_is_zero():
    top = {1: math.log(0.7), 2: math.log(0.2), 3: math.log(0.1)}
    assert stats.truncated_kl(top, dict(top)) == pytest.approx(0.0, abs=1e-12)


def test_kl_is_invariant_to_shared_renormalisation():
    golden = {1: math.log(0.5), 2: math.log(0.3)}
    shifted = {k: v - 2.0 for k, v in golden.items()}
    assert stats.truncated_kl(golden, shifted) == pytest.approx(0.0, abs=1e-12)


def test_kl_grows_with_disagreement_and_matches_closed_form():
    p = {1: math.log(0.9), 2: math.log(0.1)}
    q = {1: math.log(0.6), 2: math.log(0.4)}
    expected = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    assert stats.truncated_kl(p, q) == pytest.approx(expected)


def test_missing_provider_tokens_get_the_floor():
    golden = {1: math.log(0.5), 2: math.log(0.5)}
    provider = {1: 0.0}
    kl = stats.truncated_kl(golden, provider)
    assert kl == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / math.exp(stats.LOGPROB_FLOOR)), rel=1e-6)
    assert math.isfinite(kl)


def test_floor_never_exceeds_the_lowest_reported_value():
    # token 2 is missing; the provider reported -50 for another token, so the fill is -50, not -30
    golden = {1: math.log(0.5), 2: math.log(0.5)}
    provider = {1: -40.0, 3: -50.0}
    q1 = 1 / (1 + math.exp(-10.0))
    expected = 0.5 * math.log(0.5 / q1) + 0.5 * math.log(0.5 / (1 - q1))
    assert stats.truncated_kl(golden, provider) == pytest.approx(expected)


def test_empty_golden_top_gives_zero():
    assert stats.truncated_kl({}, {1: -1.0}) == 0.0


def test_midranks_share_ties():
    assert trend.midranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_page_test_perfect_order_has_the_exact_minimum_p():
    blocks = [[1, 2, 3]] * 5
    statistic, p = trend.page_trend_test(blocks)
    assert statistic == 5 * (1 * 1 + 2 * 2 + 3 * 3)
    assert p == pytest.approx(6.0 ** -5)


def test_page_test_all_ties_is_uninformative():
    _, p = trend.page_trend_test([[4, 4, 4]] * 8)
    assert p == pytest.approx(1.0)


def test_page_test_reversed_order_is_not_significant():
    _, p = trend.page_trend_test([[3, 2, 1]] * 6)
    assert p == pytest.approx(1.0)


def test_page_test_mixed_evidence_is_in_between():
    _, p = trend.page_trend_test([[1, 2, 3], [1, 2, 3], [2, 1, 3], [3, 2, 1]])
    assert 0.01 < p < 0.9


def test_mean_of_empty_is_nan():
    assert math.isnan(trend.mean([])) and trend.mean([1.0, 2.0, 6.0]) == 3.0


def test_logodds_errors_ignore_normalisation_and_need_the_top_token():
    golden_ids, golden_lp = [7, 8, 9], [-0.01, -5.0, -9.0]
    shifted = {7: -1.01, 8: -6.0, 9: -10.0}  # same log-odds, renormalised differently
    assert stats.logodds_errors(golden_ids, golden_lp, shifted) == pytest.approx([0.0, 0.0])
    assert stats.logodds_errors(golden_ids, golden_lp, {7: -0.01, 8: -4.0}) == pytest.approx([1.0])
    assert stats.logodds_errors(golden_ids, golden_lp, {8: -1.0}) == []


def test_poisson_binomial_matches_the_binomial_and_sums_to_one():
    pmf = stats.poisson_binomial_pmf([0.3] * 5)
    assert sum(pmf) == pytest.approx(1.0)
    assert pmf[2] == pytest.approx(math.comb(5, 2) * 0.3**2 * 0.7**3)


def test_poisson_binomial_two_sided_p():
    probabilities = [0.9] * 20
    assert stats.poisson_binomial_two_sided(18, probabilities) > 0.5  # the most likely outcome
    assert stats.poisson_binomial_two_sided(5, probabilities) < 1e-6
    assert stats.poisson_binomial_two_sided(20, [1.0] * 20) == pytest.approx(1.0)
    assert stats.poisson_binomial_two_sided(19, [1.0] * 20) == pytest.approx(0.0)


# -- golden positions whose greedy token is not their teacher-forced top-1 ------------------------


def _score(token: int, top: list[tuple[int, float]]):
    return TokenScore(token=token, logprob=dict(top).get(token, -20.0), top_ids=[t for t, _ in top],
                      top_logprobs=[v for _, v in top])


def _greedy_turn(scores):
    return GoldenTurn(request={}, prompt_token_ids=[1], completion_token_ids=[s.token for s in scores], scores=scores,
                      messages=[], finish_reason="length", reasoning_tokens=0)


def _reported(token: int, top: dict[int, float]):
    return TokenLogprob(token=f"t{token}", logprob=top[token], token_id=token,
                        top=[TopLogprob(token=f"t{t}", logprob=v, token_id=t) for t, v in top.items()])


def test_off_top1_is_golden_below_its_own_top1_ties_and_old_files_aside():
    assert _score(7, [(5, -0.2), (7, -2.5), (9, -3.0)]).off_top1
    assert not _score(5, [(5, -0.2), (7, -2.5)]).off_top1
    assert not _score(7, [(5, -1.0), (7, -1.0)]).off_top1  # an exact tie: top-K and argmax break it differently
    assert not _score(7, [(5, -1.0000001), (7, -1.0000004)]).off_top1  # equal at the stored rounding


def test_an_engine_on_goldens_greedy_path_is_no_flip_where_golden_is_below_its_top1():
    ref = _score(7, [(5, -0.2), (7, -2.5), (9, -3.0)])  # margin 2.3, golden's greedy token 7 is rank 2
    honest = {7: -0.3, 5: -1.5, 9: -3.0}  # KV-cached decoding as golden's: 7 on top
    assert stats.position_drift("k", ref, PositionScore(token_logprob=-0.3, top=honest), 1.0).confident_flips == 0
    faulty = {9: -0.1, 5: -2.0, 7: -2.6}  # a third token on top where golden is decisive: still a flip
    assert stats.position_drift("k", ref, PositionScore(token_logprob=-2.6, top=faulty), 1.0).confident_flips == 1
    decisive = _score(5, [(5, -0.2), (7, -2.5)])
    assert stats.position_drift("k", decisive, PositionScore(token_logprob=-2.0, top={7: -0.1, 5: -2.0}),
                                1.0).confident_flips == 1


def test_leaving_golden_where_it_is_below_its_top1_is_tolerated_but_not_where_it_is_decisive():
    off = _greedy_turn([_score(3, [(3, -0.01), (4, -5.0)]), _score(7, [(5, -0.2), (7, -2.5), (9, -3.0)])])
    takes_top1 = [_reported(3, {3: -0.01, 4: -5.0}), _reported(5, {5: -0.2, 7: -2.5})]
    assert greedy_positions(off, takes_top1, flip_margin=1.0)[2] is None
    decisive = _greedy_turn([_score(3, [(3, -0.01), (4, -5.0)]), _score(5, [(5, -0.2), (7, -2.5)])])
    leaves = [_reported(3, {3: -0.01, 4: -5.0}), _reported(7, {7: -0.2, 5: -2.5})]
    assert "decisive position" in greedy_positions(decisive, leaves, flip_margin=1.0)[2]
    third = [_reported(3, {3: -0.01, 4: -5.0}), _reported(9, {9: -0.1, 5: -2.0})]  # neither top-1 nor golden's
    assert "decisive position" in greedy_positions(off, third, flip_margin=1.0)[2]


def test_golden_text_is_not_stable_past_a_position_below_its_top1():
    turn = _greedy_turn([_score(3, [(3, -0.01), (4, -5.0)]), _score(7, [(5, -0.2), (7, -2.5), (9, -3.0)])])
    assert min_margin(turn, 1) == pytest.approx(4.99) and min_margin(turn) == 0.0


def test_samples_go_to_the_cases_golden_makes_likely():
    from verifier.drift.statistics import SAMPLING_MIN_PROBABILITY, sample_allocation

    assert sample_allocation([0.0, 0.5, 0.02, SAMPLING_MIN_PROBABILITY / 2], 10) == [0, 5, 5, 0]
    assert sample_allocation([0.03, 0.5, 0.02], 10) == [3, 4, 3]  # the remainder to the likeliest
    assert sample_allocation([0.001, 0.0], 32) == [0, 0]  # nothing likely enough: nothing to sample
    assert sum(sample_allocation([0.2] * 14, 224)) == 224
