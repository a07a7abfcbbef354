"""`gpt-oss-verify score RUN_DIR` end to end: the built-in provider answers without log-probabilities, the
reference scores its answers offline, and the run's result gains `drift.reference_scored`.

Honest answers (bf16, an engine other than the fp32 reference) pass; a wrong RoPE base fails, on its greedy answers
and on its samples; a swapped checkpoint fails on its greedy answers; scoring resumes where a killed scoring
stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import one_line_exit_2, run_cli
from verifier.rescore import FILE

QUICK = ["--quirk", "no-logprobs", "--profile", "quick", "--suite", "harmony", "--suite", "tools"]


def _run(out: Path, *args: str) -> Path:
    proc = run_cli("run", "--out", str(out), *args)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    run_dir, = out.iterdir()
    return run_dir


def _score(run_dir: Path) -> tuple[int, dict]:
    proc = run_cli("score", str(run_dir))
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads((run_dir / "result.json").read_text())
    check, = (c for c in result["checks"] if c["id"] == "drift.reference_scored")
    return proc.returncode, check


def test_honest_answers_pass_and_scoring_resumes(tmp_path):
    run_dir = _run(tmp_path / "honest", *QUICK)
    assert "drift.reference_scored" not in (run_dir / "result.json").read_text()  # judged only when scored
    code, check = _score(run_dir)
    assert code == 0 and check["verdict"] == "pass", check["summary"]
    greedy = [o for o in check["outcomes"] if o["variant"] != "sampling"]
    assert len(greedy) >= 8 and all(o["observed"]["largest_margin"] < 0.5 for o in greedy)
    assert "drift.reference_scored" in (run_dir / "report.html").read_text()
    lines = (run_dir / FILE).read_text().splitlines()
    (run_dir / FILE).write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])  # killed mid-write after 3 answers
    code, again = _score(run_dir)
    assert code == 0 and again["outcomes"] == check["outcomes"]
    assert len((run_dir / FILE).read_text().splitlines()) == len(lines)  # each answer scored once


def test_wrong_rope_base_fails_on_its_greedy_answers(tmp_path):
    run_dir = _run(tmp_path / "rope", *QUICK, "--fault", "rope-theta")
    code, check = _score(run_dir)
    assert code == 1 and check["verdict"] == "fail"
    failed = [o for o in check["outcomes"] if o["verdict"] == "fail"]
    assert len(failed) >= len(check["outcomes"]) // 2, check["summary"]


def test_a_swapped_checkpoint_fails_on_its_greedy_answers(tmp_path):
    """The shipped checkpoint's parent writes text close to it: its greedy tokens trailed the reference's top-1 by
    at most 1.104 nats on these answers, inside the widest gap an honest engine closed (1.106), and passed. Honest
    engines' own greedy answers trail it by at most 0.115, so the calibrated margin (twice that) sees it."""
    run_dir = _run(tmp_path / "swapped", *QUICK, "--fault", "swapped-checkpoint")
    code, check = _score(run_dir)
    assert code == 1 and check["verdict"] == "fail", check["summary"]
    failed = [o for o in check["outcomes"] if o["verdict"] == "fail"]
    assert all(o["observed"]["largest_margin"] > 0.2 for o in failed) and "honest engines" in failed[0]["message"]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "verdict"), [(None, "pass"), ("rope-theta", "fail")])
def test_samples_of_a_host_without_logprobs(tmp_path, fault, verdict):
    """The drift suite's temperature-1 samples (the sampling fallback's requests), scored by the reference."""
    run_dir = _run(tmp_path, "--quirk", "no-logprobs", "--suite", "drift", *(["--fault", fault] if fault else []))
    code, check = _score(run_dir)
    sampled, = (o for o in check["outcomes"] if o["variant"] == "sampling")
    assert sampled["verdict"] == verdict, sampled["message"]
    assert sampled["observed"]["positions"] > 1000


def test_bad_run_directories_are_refused_in_one_line(tmp_path):
    assert "not a run directory (no run.json)" in one_line_exit_2(run_cli("score", str(tmp_path)))
    (tmp_path / "run.json").write_text("{}")
    assert "has no result.json" in one_line_exit_2(run_cli("score", str(tmp_path)))
    (tmp_path / "result.json").write_text("{}")
    assert "is not a result.json" in one_line_exit_2(run_cli("score", str(tmp_path)))
