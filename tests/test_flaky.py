"""Random 5xx are flakiness, not findings: the built-in provider with random 500s and 429s (`--surface
random-5xx`) gives the clean run's verdicts; requests that drew errors on every attempt are sent again
after the rest of the suite, in rounds while their failures look random, journaled under their own keys
and replayed by `--resume`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from verifier import journal
from verifier.checks import parsing
from verifier.checks.base import SuiteView
from verifier.config import RetryPolicy
from verifier.exchange import RESEND_SUFFIX, Exchange
from verifier.journal import Journal
from verifier.observation import RESEND_ROUNDS, Failure, Observation
from verifier.providers import Provider
from verifier.runner import RunConfig, Runner, execute
from verifier.suites import load_suite

SUITE = "harmony"
RATE, SEEDS = 0.3, (2, 3, 4)
"""A high rate with two attempts, so that some requests draw an error on every attempt (at the default
5 attempts and rate 0.2 that is 1 in 3,000 requests), and some re-sends draw errors again (seeds 2 and 4:
one re-send was too few); requests are sent one at a time, so the draws repeat."""
RESUMED_SEED = 2
"""A seed whose run re-sent some request twice."""
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
def flaky_runs(tmp_path_factory) -> dict:
    return {seed: _run(tmp_path_factory.mktemp(f"flaky{seed}"), surfaces=[f"random-5xx:{RATE}:{seed}"],
                       retry=FEW_ATTEMPTS) for seed in SEEDS}


def _first_failures(entries: list[Exchange]) -> list[Failure]:
    return [ex.observation.failure if ex.observation else ex.failure
            for ex in entries if not ex.earlier and (ex.failed("http_status") or ex.failed("unavailable"))]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_500s_and_429s_give_the_clean_verdicts(clean, flaky_runs, seed):
    result, run_dir = flaky_runs[seed]
    entries = journal.read(run_dir / journal.FILE)
    firsts = _first_failures(entries)
    resent = [ex for ex in entries if ex.earlier]
    drawn = Counter(status for failure in firsts for status in failure.history)
    print(f"\nrandom-5xx {RATE}:{seed}: {len(entries)} exchanges, {len(resent)} re-sends (at most "
          f"{max(len(ex.earlier) for ex in resent)} of one request); statuses on first sends: {dict(drawn)}")
    assert firsts and {429, 500} & set(drawn), "some request must have drawn an error on every attempt"
    assert all(ex.key.endswith(RESEND_SUFFIX * len(ex.earlier)) for ex in resent)
    assert _verdicts(result) == _verdicts(clean)
    assert result.verdict == "pass"


def test_the_seeds_draw_500s_429s_and_failed_re_sends(flaky_runs):
    """What the seeds exercise together: a 500 on every attempt, 429s, and a re-send that failed again."""
    entries = [ex for _, run_dir in flaky_runs.values() for ex in journal.read(run_dir / journal.FILE)]
    firsts = _first_failures(entries)
    assert any(f.kind == "http_status" for f in firsts)
    assert {429, 500} <= {status for f in firsts for status in f.history}
    assert any(len(ex.earlier) >= 2 for ex in entries)


def test_resume_replays_the_re_sends(clean, flaky_runs):
    _, run_dir = flaky_runs[RESUMED_SEED]
    before = journal.read(run_dir / journal.FILE)
    assert any(len(ex.earlier) >= 2 for ex in before), f"seed {RESUMED_SEED} no longer re-sends a request twice"
    resumed, _ = execute(RunConfig(retry=FEW_ATTEMPTS), resume=run_dir)
    after = journal.read(run_dir / journal.FILE)
    written = Counter(ex.key for ex in after if not ex.failed("unavailable"))
    assert _verdicts(resumed) == _verdicts(clean)
    assert [key for key, n in written.items() if n > 1] == [], "a journaled exchange was sent again"
    assert {ex.key for ex in before if ex.earlier and not ex.failed("unavailable")} <= set(written)


# -- the re-send rounds, against a scripted host -------------------------------------------------------

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}


def _answer(turn: int) -> dict:
    """A chat answer: a tool call on turn 1, the final answer after the tool's result."""
    message = ({"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]} if turn == 1
               else {"role": "assistant", "content": "Sunny."})
    return {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if turn == 1 else "stop"}]}


class ScriptedHost:
    """Answers each attempt with the next status scripted for its turn (200 once the script is spent)."""

    def __init__(self, script: dict[int, list[int]]):
        self.script = {turn: list(statuses) for turn, statuses in script.items()}
        self.attempts: Counter = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        turn = 2 if body["messages"][-1]["role"] == "tool" else 1
        self.attempts[turn] += 1
        queue = self.script.get(turn) or [200]
        status = queue.pop(0) if queue else 200
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "Internal Server Error" if status == 500
                                                          else "Rate limit reached", "code": status}})
        return httpx.Response(200, json=_answer(turn))


def _resend_pass(tmp_path: Path, host: ScriptedHost, first: Failure, variant: str = "chat") -> list[Exchange]:
    """The re-send pass over one failed first send of the tools suite's `weather-paris` turn 1."""
    suite = load_suite("tools")
    case = next(c for c in suite.cases if c.id == "weather-paris")
    provider = Provider("http://host/v1", "m", transport=httpx.MockTransport(host), retry=FEW_ATTEMPTS)
    runner = Runner(provider, Journal(tmp_path / journal.FILE))
    ex = Exchange(suite=suite.name, case_id=case.id, variant=variant, turn=1, request=case.request,
                  chat_request=case.request, key="first", started=1.0,
                  observation=Observation(api="chat", stream=False, status=first.status, failure=first))
    out = runner.resend_failures(suite, [ex], "2025-01-01")
    provider.close()
    return out


def _failure(*history: int) -> Failure:
    kind = "http_status" if history[-1] == 500 else "unavailable"
    return Failure(kind=kind, message=f"HTTP {history[-1]}", status=history[-1], history=list(history))


def _verdict(exchanges: list[Exchange]) -> list[str]:
    healthy = Exchange(suite="s", case_id="c", variant="chat", turn=1, request={}, chat_request={}, started=1e12,
                       observation=Observation(api="chat", stream=False, status=200))
    view = SuiteView(suite=None, golden=None, exchanges=[*exchanges, healthy])
    return [o.verdict.value for o in parsing.http_status(view) if o.case_id is not None]


def test_a_re_send_that_fails_at_random_is_sent_again_in_another_round(tmp_path):
    host = ScriptedHost({1: [429, 429, 500, 429]})  # two re-sends drawing errors, the third answered
    out = _resend_pass(tmp_path, host, _failure(500, 500), variant="sampling")
    assert [(ex.turn, len(ex.earlier), ex.observation.ok) for ex in out] == [(1, 3, True)]
    assert [send.failure.history for send in out[0].earlier] == [[500, 500], [429, 429], [500, 429]]
    keys = [ex.key for ex in journal.read(tmp_path / journal.FILE)]
    assert [k.count(RESEND_SUFFIX) for k in keys] == [1, 2, 3]
    assert len({k.split(RESEND_SUFFIX)[0] for k in keys}) == 1, "keys: the request's own, plus a suffix per re-send"


def test_the_same_500_is_re_sent_until_every_send_agrees_then_fails(tmp_path):
    """A server error that repeats can be chance (0.09 per send at a 30% rate and two attempts): it is the
    provider's answer only once all 1 + RESEND_ROUNDS sends gave it on every attempt."""
    host = ScriptedHost({1: [500] * (2 * RESEND_ROUNDS) + [200]})
    out = _resend_pass(tmp_path, host, _failure(500, 500), variant="sampling")
    assert host.attempts[1] == 2 * RESEND_ROUNDS and [len(ex.earlier) for ex in out] == [RESEND_ROUNDS]
    assert out[0].failed("http_status") and _verdict(out) == ["fail"]


def test_a_500_twice_that_then_clears_was_chance(tmp_path):
    host = ScriptedHost({1: [500, 500, 200]})
    out = _resend_pass(tmp_path, host, _failure(500, 500), variant="sampling")
    assert [(len(ex.earlier), ex.observation.ok) for ex in out] == [(2, True)]
    assert _verdict(out) == []


def test_the_same_4xx_on_two_sends_is_not_sent_a_third_time(tmp_path):
    host = ScriptedHost({1: [422, 200]})  # a 4xx is not retried: one attempt per send
    first = Failure(kind="http_status", message="HTTP 422", status=422, history=[422])
    out = _resend_pass(tmp_path, host, first, variant="sampling")
    assert host.attempts[1] == 1 and [len(ex.earlier) for ex in out] == [1] and out[0].failed("http_status")
    assert _verdict(out) == ["fail"]


def test_re_sends_are_bounded(tmp_path):
    host = ScriptedHost({1: [500, 429] * (RESEND_ROUNDS + 2)})  # random, and never answered
    out = _resend_pass(tmp_path, host, _failure(429, 429), variant="sampling")
    assert host.attempts[1] == 2 * RESEND_ROUNDS and len(out[0].earlier) == RESEND_ROUNDS
    assert _verdict(out) == ["error"]


def test_a_tool_loop_turn_that_fails_after_a_re_send_is_re_sent_too(tmp_path):
    host = ScriptedHost({1: [], 2: [500, 500, 429, 200]})  # turn 1 now answered; turn 2's first send fails
    out = _resend_pass(tmp_path, host, _failure(500, 429))
    assert [(ex.turn, len(ex.earlier), ex.observation.ok) for ex in out] == [(1, 1, True), (2, 1, True)]
    assert host.attempts == {1: 1, 2: 4}
    assert _verdict(out) == []
