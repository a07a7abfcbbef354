"""The runner's early stop: teacher forcing scores golden turns only until the sequential test decides,
and the check's verdict is decided at the very position where the runner stopped.

A stub provider answers `score` from golden itself (honest) or with every non-top token pushed down
(drifting), so the number of scoring requests the runner makes is what is under test.
"""

from __future__ import annotations

import pytest

from verifier.checks import REGISTRY
from verifier.checks.base import SuiteView
from verifier.drift import calibration as cal
from verifier.journal import Journal
from verifier.paths import golden_dir
from verifier.runner import Runner, load_golden
from verifier.scores import PositionScore, ScoreResult
from verifier.suites import load_suite
from verifier.verdict import Verdict

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"


class StubProvider:
    """Answers teacher forcing from golden's own scores, optionally scaled away from them."""

    def __init__(self, golden, drift: float = 0.0):
        self.score_mode: str | None = None
        self.score_k: int | None = None
        self.prompt_ids_mode: str | None = None
        self.capabilities = None
        self.calls = 0
        self.drift = drift
        self.by_tokens = {tuple(t.prompt_token_ids + t.completion_token_ids): t
                          for record in golden.records for t in record.turns}

    def score(self, tokens, start, k, candidates) -> ScoreResult:
        self.calls += 1
        turn = self.by_tokens[tuple(tokens)]
        positions = []
        for s in turn.scores:
            top = {t: lp - (self.drift * i) for i, (t, lp) in enumerate(zip(s.top_ids, s.top_logprobs))}
            positions.append(PositionScore(token_logprob=top.get(s.token, s.logprob), top=top))
        return ScoreResult(mode="prompt_logprobs", positions=positions, top_k=k)


@pytest.fixture(scope="module")
def drift_suite():
    suite = load_suite("drift")
    return suite, load_golden(suite, GOLDEN), cal.load(GOLDEN)


def _run(tmp_path, suite, golden, calibration, drift: float):
    provider = StubProvider(golden, drift)
    runner = Runner(provider, Journal(tmp_path / "journal.jsonl"))
    exchanges = runner.teacher_forcing(suite, golden, calibration)
    outcome, = REGISTRY["drift.teacher_forced"].fn(SuiteView(suite=suite, golden=golden, exchanges=exchanges,
                                                             calibration=calibration))
    scored = sum(len(ex.score.positions) for ex in exchanges)
    return provider, exchanges, outcome, scored


def test_an_honest_provider_stops_once_it_has_the_power_to_pass(tmp_path, drift_suite):
    """The early stop at a calibration's `pass_after_positions`. The shipped v2 calibration has none (a
    must-detect fault, no-sinks, lacks 99% power there: tests/test_calibration.py), so the stop is set to
    the positions the calibration's detectable faults need, as a calibration without no-sinks would be."""
    suite, golden, shipped = drift_suite
    needed = [d.positions_for_99pct_power for d in shipped.detection.values() if d.positions_for_99pct_power]
    calibration = shipped.model_copy(update={"pass_after_positions": max(needed)})
    total_turns = sum(len(r.turns) for r in golden.records)
    provider, exchanges, outcome, scored = _run(tmp_path, suite, golden, calibration, 0.0)
    assert outcome.verdict is Verdict.PASS
    assert provider.calls == len(exchanges) < total_turns  # stopped early
    assert scored >= calibration.pass_after_positions  # ... but not before it could have caught the faults
    assert scored - len(exchanges[-1].score.positions) < calibration.pass_after_positions  # ... nor later
    assert outcome.observed["decided_at_positions"] == scored


def test_a_drifting_provider_stops_at_the_turn_that_fails(tmp_path, drift_suite):
    suite, golden, calibration = drift_suite
    provider, exchanges, outcome, scored = _run(tmp_path, suite, golden, calibration, 0.5)
    assert outcome.verdict is Verdict.FAIL
    assert provider.calls == len(exchanges)
    assert outcome.observed["decided_at_positions"] <= scored
    assert scored - len(exchanges[-1].score.positions) < outcome.observed["decided_at_positions"]


def test_without_an_early_pass_every_turn_is_scored(tmp_path, drift_suite):
    suite, golden, calibration = drift_suite
    total_turns = sum(len(r.turns) for r in golden.records)
    everything = calibration.model_copy(update={"pass_after_positions": None})
    provider, exchanges, outcome, _ = _run(tmp_path, suite, golden, everything, 0.0)
    assert outcome.verdict is Verdict.PASS and provider.calls == total_turns
