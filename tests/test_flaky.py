"""Random 5xx are flakiness, not findings: the built-in provider with random 500s and 429s (`--surface
random-5xx`) gives the clean run's verdicts; requests that drew errors on every attempt are sent again
after the rest of the suite, journaled under their own key and replayed by `--resume`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from verifier import journal
from verifier.config import RetryPolicy
from verifier.exchange import RESEND_SUFFIX
from verifier.runner import RunConfig, execute

SUITE = "harmony"
RATE, SEED = 0.3, 3
"""A high rate with two attempts, so that some requests draw an error on every attempt (at the default
5 attempts and rate 0.2 that is 1 in 3,000 requests); the seed (requests are sent one at a time, so the
draws repeat) is one where no re-send draws errors again: that happens by chance too, and then gives
`parsing.http_status` an error (no evidence), never a fail (seeds 2 and 4 at this rate)."""
FEW_ATTEMPTS = RetryPolicy(attempts=2, base_s=0.0, cap_s=0.0, max_retry_after_s=0.0)


def _verdicts(result) -> dict:
    """Every check's verdict and its outcomes' verdicts by case, API variant and turn."""
    return {c.id: (c.verdict.value, sorted((o.verdict.value, o.case_id or "", o.variant or "", o.turn or 0)
                                           for o in c.outcomes)) for c in result.checks}


def _run(out: Path, **config):
    return execute(RunConfig(suites=[SUITE], out=out, concurrency=1, **config))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    result, _ = _run(tmp_path_factory.mktemp("clean"))
    assert result.verdict == "pass"
    return result


@pytest.fixture(scope="module")
def flaky(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("flaky"), surfaces=[f"random-5xx:{RATE}:{SEED}"], retry=FEW_ATTEMPTS)


def test_random_500s_and_429s_give_the_clean_verdicts(clean, flaky):
    result, run_dir = flaky
    entries = journal.read(run_dir / journal.FILE)
    firsts = [ex.observation.failure if ex.observation else ex.failure
              for ex in entries if not ex.key.endswith(RESEND_SUFFIX) and (ex.failed("http_status")
                                                                            or ex.failed("unavailable"))]
    resent = [ex for ex in entries if ex.key.endswith(RESEND_SUFFIX)]
    drawn = Counter(status for failure in firsts for status in failure.history)
    print(f"\nrandom-5xx {RATE}: {len(entries)} exchanges, {len(resent)} sent again; statuses on their "
          f"first sends: {dict(drawn)}")
    assert any(f.kind == "http_status" for f in firsts), "some request must have drawn 500 on every attempt"
    assert {429, 500} <= set(drawn), "500s and 429s both"
    assert len(resent) == len(firsts) and all(ex.earlier and ex.observation.ok for ex in resent)
    assert _verdicts(result) == _verdicts(clean)
    assert result.verdict == "pass"


def test_resume_replays_the_re_sends(clean, flaky):
    _, run_dir = flaky
    before = journal.read(run_dir / journal.FILE)
    resumed, _ = execute(RunConfig(retry=FEW_ATTEMPTS), resume=run_dir)
    after = journal.read(run_dir / journal.FILE)
    written = Counter(ex.key for ex in after if not ex.failed("unavailable"))
    assert _verdicts(resumed) == _verdicts(clean)
    assert [key for key, n in written.items() if n > 1] == [], "a journaled exchange was sent again"
    assert {ex.key for ex in before if ex.key.endswith(RESEND_SUFFIX)} <= set(written)
