"""Statistics: boundaries of every function the checks rely on (drift statistics, Page's trend test)."""

from __future__ import annotations

import math

import pytest

from verifier import trend
from verifier.drift import statistics as stats


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
