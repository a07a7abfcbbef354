"""Candidate per-position drift statistics (`verifier.drift.candidates`): synthetic drift with known answers."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from verifier.drift import calibration as cal
from verifier.drift import candidates
from verifier.drift.statistics import TurnDrift


def _position(relative: float | None, kl: float = 0.0, flips: int = 0) -> TurnDrift:
    if relative is None:
        return TurnDrift(key="t", positions=1, kl_sum=kl, kl_max=kl, confident_flips=flips)
    return TurnDrift(key="t", positions=1, kl_sum=kl, kl_max=kl, logodds_sq=2 * (2 * relative) ** 2,
                     logodds_ref_sq=8.0, logodds_n=2, confident_flips=flips, relative=[relative])


def _engine(scales: list[list[float]], seed: int, loudness: float = 1.0) -> cal.Drift:
    """An engine whose error at each position is the position's honest scale times a draw around `loudness`."""
    rng = random.Random(seed)
    return [[_position(s * loudness * rng.uniform(0.7, 1.3)) for s in turn] for turn in scales]


def _scales(seed: int = 0, turns: int = 30, positions: int = 40) -> list[list[float]]:
    """Per position an honest scale that varies 100-fold from position to position (near-ties, large logits)."""
    rng = random.Random(seed)
    return [[math.exp(rng.uniform(math.log(0.001), math.log(0.1))) for _ in range(positions)] for _ in range(turns)]


def test_plain_candidates_read_one_number_per_position_and_drop_flips():
    drift = [[_position(0.01, kl=1e-6, flips=1), _position(None, kl=2e-6)]]
    relative = candidates.plain(drift, candidates.PLAIN["relative-logodds"])
    assert [p.relative for p in relative[0]] == [[0.01], []]
    assert all(p.confident_flips == 0 for p in relative[0])
    assert candidates.plain(drift, candidates.PLAIN["rms-logodds"])[0][0].relative == [pytest.approx(0.02)]
    assert [p.relative for p in candidates.plain(drift, candidates.PLAIN["truncated-kl"])[0]] == [[1e-6], [2e-6]]
    assert drift[0][0].confident_flips == 1  # the input is left as it was


def test_the_honest_scale_is_the_engines_rms_floored_at_a_low_quantile():
    a = [[_position(0.03), _position(None), _position(1e-9)] + [_position(0.01)] * 20]
    b = [[_position(0.04), _position(None), _position(1e-9)] + [_position(0.01)] * 20]
    scale = candidates.honest_scale([a, b])[0]
    assert scale[0] == pytest.approx(math.sqrt((0.03**2 + 0.04**2) / 2))
    assert scale[1] == scale[2] == pytest.approx(0.01)  # no value, or nearly none: raised to the floor
    assert scale[3] == pytest.approx(0.01)


def test_an_engine_standardised_for_calibration_is_scaled_by_the_others_alone():
    scales = _scales()
    honest = {"a": _engine(scales, 1), "b": _engine(scales, 2), "c": _engine(scales, 3)}
    fitted, others = candidates.transform("standardised", honest, {"fault": _engine(scales, 4, 3.0)})
    by_others = candidates.honest_scale([honest["b"], honest["c"]])
    assert fitted["a"][5][7].relative == [pytest.approx(honest["a"][5][7].relative[0] / by_others[5][7])]
    everyone = candidates.honest_scale(list(honest.values()))
    assert others["fault"][5][7].relative == [pytest.approx(_engine(scales, 4, 3.0)[5][7].relative[0] / everyone[5][7])]


def test_standardising_needs_two_engines_and_a_known_name():
    one = {"a": _engine(_scales(), 1), "a-date+1d": _engine(_scales(), 2)}  # one engine at two dates
    with pytest.raises(ValueError, match="two honest engines"):
        candidates.transform("standardised", one, {})
    with pytest.raises(ValueError, match="unknown candidate"):
        candidates.transform("median-of-everything", one, {})


def test_standardising_takes_out_the_case_to_case_scale_of_honest_noise():
    """Where honest noise differs 100-fold from case to case, a fault three times as loud as honest engines
    everywhere has per-turn medians spread as widely as the cases under the plain statistic, and all near 3
    standardised: a run's first turns then say as much as its last."""
    rng = random.Random(5)
    scales = [[math.exp(rng.uniform(math.log(0.001), math.log(0.1)))] * 20 for _ in range(20)]
    honest = {name: _engine(scales, seed) for name, seed in (("a", 1), ("b", 2), ("c", 3))}
    fault = _engine(scales, 4, 3.0)
    plain = candidates.plain(fault, candidates.PLAIN["relative-logodds"])
    _, standardised = candidates.transform("standardised", honest, {"fault": fault})

    def turn_medians(drift: cal.Drift) -> list[float]:
        return [statistics.median(p.relative[0] for p in turn) for turn in drift]

    assert max(turn_medians(plain)) / min(turn_medians(plain)) > 20
    standardised_medians = turn_medians(standardised["fault"])
    assert all(2.0 < m < 4.0 for m in standardised_medians), standardised_medians
    assert max(standardised_medians) / min(standardised_medians) < 2


def test_leave_one_engine_out_decides_on_what_prepare_makes_of_the_data():
    scales = _scales(turns=12, positions=20)
    honest = {"a": _engine(scales, 1), "b": _engine(scales, 2), "c": _engine(scales, 3)}
    assert all(one.false_positives == 0 for one in cal.leave_one_engine_out(honest, 50, simulations=50).values())

    def louder_when_left_out(seen, unseen):
        return seen, {name: [[_position(p.relative[0] * 5) for p in turn] for turn in data]
                      for name, data in unseen.items()}

    held = cal.leave_one_engine_out(honest, 50, simulations=50, prepare=louder_when_left_out)
    assert all(one.false_positives == 50 for one in held.values())
