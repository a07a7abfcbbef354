"""The drift checks end to end: the fallbacks for providers without teacher forcing or without any
logprobs pass the honest built-in provider and fail a drifting one. (The teacher-forced check is held
to every drift fault by the fault matrix in test_run.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ENGINE_DATE, run_cli

from verifier.harness.local import pinned_clock
from verifier.paths import golden_dir


def _run(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[int, dict]:
    proc = run_cli("run", "--suite", "drift", "--out", str(tmp_path), *args, env=env)
    report = next((line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("report: ")), None)
    assert report, proc.stdout + proc.stderr
    return proc.returncode, json.loads((Path(report).parent / "result.json").read_text())


def _verdicts(result: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in result["checks"] if c["family"] == "drift"}


@pytest.mark.slow
@pytest.mark.parametrize("fault,expected", [(None, "pass"), ("swapped-checkpoint", "fail"), ("rope-theta", "fail")])
def test_greedy_logprobs_fallback(tmp_path, fault, expected):
    """Completions without prompt_logprobs or echo: drift falls back to greedy chat top_logprobs. Its honest
    noise includes the provider's own date in the prompt, which moves a hesitant model's log-odds, so on the
    v2 checkpoint its boundary is about 4x the teacher-forced one: it sees a wrong RoPE base and a swapped
    checkpoint within 16 positions (99% of simulated runs at calibration), int4 experts within 512, and not
    removed sinks. The drift suite's greedy answers of a swapped checkpoint share about 235 positions with
    golden, with a median relative log-odds error of 0.056 against a boundary of 0.024 there. (With the
    calibration of 2026-12-01, widened 4.2x instead of 1.5x, the boundary there was 0.068 and such a run passed,
    naming the swapped checkpoint as beyond its reach.) A pass that could have missed a calibrated fault says so.
    The built-in provider renders the date its clock says: pinned (ENGINE_DATE), the run is the same every day."""
    code, result = _run(tmp_path, "--variant", "no-prompt-logprobs", *(["--fault", fault] if fault else []),
                        env=pinned_clock(ENGINE_DATE))
    verdicts = _verdicts(result)
    greedy = next(c for c in result["checks"] if c["id"] == "drift.greedy_logprobs")
    if expected == "pass":
        reach = greedy["outcomes"][0]["observed"]["reach"]
        assert "rope-theta" in reach["flagged"] and reach["missed"].get("no-sinks", 0) is None, reach
    assert verdicts["drift.greedy_logprobs"] == expected, result["checks"]
    assert verdicts["drift.teacher_forced"] == "skip"
    assert code == (0 if expected == "pass" else 1)


@pytest.mark.slow
@pytest.mark.parametrize("fault,expected", [(None, "pass"), ("rope-theta", "fail")])
def test_sampling_fallback(tmp_path, fault, expected):
    """No logprobs anywhere: drift falls back to temperature-1 samples, 16 per drift case spent on the cases
    whose golden completion the reference writes with probability >= 1% (3 of 14 on v2, 0.021-0.139: about 16
    golden-identical samples expected). A wrong RoPE base makes golden's text all but impossible (below 0.001
    on each case); int4 experts change those probabilities by under 6%, which no affordable number of samples
    sees: sampling is the weakest evidence, and says so."""
    code, result = _run(tmp_path, "--variant", "no-logprobs", *(["--fault", fault] if fault else []))
    verdicts = _verdicts(result)
    assert verdicts["drift.sampling"] == expected, result["checks"]
    assert verdicts["drift.teacher_forced"] == "skip" and verdicts["drift.greedy_logprobs"] == "skip"


def test_greedy_logprobs_that_start_after_the_header_are_scored_against_the_right_golden_positions():
    """A provider may leave the leading header tokens out of chat logprobs: each reported position must
    still meet the golden position it belongs to (an exact copy of golden then has no drift at all)."""
    from verifier import golden as store
    from verifier import harmony
    from verifier.drift.align import greedy_positions
    from verifier.drift.statistics import turn_drift
    from verifier.observation import TokenLogprob, TopLogprob

    turn = store.load(golden_dir() / "gpt-oss-conformance/fp32/drift.json").records[0].turns[0]
    skip = 3
    echoed = [TokenLogprob(token=harmony.token_text(s.token), logprob=s.logprob,
                           top=[TopLogprob(token=harmony.token_text(t), logprob=lp)
                                for t, lp in zip(s.top_ids, s.top_logprobs)])
              for s in turn.scores[skip:]]
    aligned, positions, departure = greedy_positions(turn, echoed, float("inf"))
    assert departure is None and aligned.scores == turn.scores[skip:] and len(positions) == len(echoed)
    pooled = turn_drift("case", aligned, positions, float("inf"))
    assert pooled.positions == len(echoed) and pooled.logodds_sq == 0 and pooled.delta_sq == 0


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["rope-theta", pytest.param("swapped-checkpoint", marks=pytest.mark.exhaustive)])
def test_perturbed_checkpoints_behind_string_only_completions_fail_teacher_forcing(tmp_path, fault):
    """Completions take string prompts only and cap logprobs at 5: teacher forcing goes through the
    prompt as text at top-5, with the top-5 calibration, and still catches the perturbed checkpoints.
    (Honest and int4 experts on this surface: tests/test_capped.py.)"""
    code, result = _run(tmp_path, "--surface", "string-completions", "--fault", fault)
    assert result["provider"]["score_mode"] == "echo_logprobs_text"
    assert _verdicts(result)["drift.teacher_forced"] == "fail", result["checks"]
    assert code == 1


@pytest.mark.slow
@pytest.mark.parametrize("fault,expected", [(None, "pass"), ("rope-theta", "fail")])
def test_greedy_logprobs_at_a_top_logprobs_cap(tmp_path, fault, expected):
    """Chat `top_logprobs` capped at 5 (a 400 above it): the greedy fallback asks again at the cap (the
    refused shape is not evidence) and decides with the greedy calibration for top-5."""
    code, result = _run(tmp_path, "--surface", "capped-logprobs", "--drift-method", "greedy",
                        *(["--fault", fault] if fault else []))
    check = next(c for c in result["checks"] if c["id"] == "drift.greedy_logprobs")
    assert check["verdict"] == expected, check
    if expected == "pass":
        assert check["outcomes"][0]["observed"]["method"] == "greedy logprobs, top-5"
    assert code == (0 if expected == "pass" else 1)
