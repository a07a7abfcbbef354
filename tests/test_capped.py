"""Capped logprobs and string-prompt teacher forcing: recorded-shape answers parsed and aligned back to
golden token ids (httpx.MockTransport, no server), the top-k statistics and calibration picked for the
k a run got; end to end on the built-in provider's `string-completions` and `capped-logprobs` surfaces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest
from checks.builders import (
    calibration,
    case,
    completion,
    exchange,
    golden_turn,
    record,
    request,
    run,
    scored,
    suite_view,
)
from conftest import run_cli

from verifier import harmony
from verifier.drift import calibration as cal
from verifier.drift.align import greedy_positions
from verifier.drift.sequential import Boundary
from verifier.drift.statistics import position_drifts, remainder_logodds, truncate, turn_drift
from verifier.errors import ProviderError, ProviderHTTPError, ProviderProtocolError, ScoringUnsupported
from verifier.golden import GoldenTurn, TokenScore
from verifier.golden import load as load_golden
from verifier.observation import TokenLogprob, TopLogprob
from verifier.paths import golden_dir
from verifier.providers import Provider, RetryPolicy, _chat, logprobs_cap
from verifier.providers.messages import named_cap
from verifier.providers.probe import find_cap
from verifier.scores import PositionScore

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
FAST = RetryPolicy(attempts=2, base_s=0.001, cap_s=0.002, max_retry_after_s=0.01, cooldown_s=60)


@pytest.fixture(scope="module")
def turn() -> GoldenTurn:
    return load_golden(GOLDEN / "drift.json").records[0].turns[0]


def _tokens(turn: GoldenTurn) -> list[int]:
    return turn.prompt_token_ids + turn.completion_token_ids


def _candidates(turn: GoldenTurn) -> dict[int, list[int]]:
    start = len(turn.prompt_token_ids)
    return {start + i: s.top_ids for i, s in enumerate(turn.scores)}


def _legacy(turn: GoldenTurn, k: int, texts: list[str] | None = None) -> dict:
    """OpenAI-legacy echo logprobs of golden's prompt and completion as a string-only host sends them:
    token texts, the first logprob null, top-k dicts text -> logprob plus the chosen token."""
    tokens = _tokens(turn)
    texts = texts or [harmony.token_text(t) for t in tokens]
    start = len(turn.prompt_token_ids)
    values, tops = [None], [None]
    for i in range(1, len(texts)):
        if not start <= i < start + len(turn.scores):
            values.append(-0.5)
            tops.append({texts[i]: -0.5})
            continue
        s = turn.scores[i - start]
        top = {harmony.token_text(t): lp for t, lp in list(zip(s.top_ids, s.top_logprobs))[:k]}
        values.append(s.logprob)
        tops.append(top | {texts[i]: s.logprob})
    offsets = [sum(len(t) for t in texts[:i]) for i in range(len(texts))]
    return {"tokens": texts, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def _string_host(turn: GoldenTurn, cap: int, texts: list[str] | None = None, seen: list | None = None):
    """A host whose completions take string prompts only, with echo + logprobs <= cap."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        if not isinstance(body.get("prompt"), str):
            return httpx.Response(400, json={"error": {"message": "prompt must be a string", "param": "prompt"}})
        if "prompt_logprobs" in body:
            return httpx.Response(400, json={"error": {"message": "prompt_logprobs is not supported"}})
        if body.get("logprobs", 0) > cap:
            return httpx.Response(400, json={"error": {"message": f"logprobs must be at most {cap}"}})
        assert body["prompt"] == harmony.decode(_tokens(turn)) and body["echo"] is True
        return httpx.Response(200, json={"choices": [{"text": body["prompt"], "logprobs": _legacy(turn, body["logprobs"],
                                                                                                  texts)}]})

    return Provider("http://test/v1", "m", transport=httpx.MockTransport(handler))


def test_string_prompt_teacher_forcing_aligns_echoed_tokens_to_golden_ids_at_the_cap(turn):
    seen: list[dict] = []
    provider = _string_host(turn, 5, seen=seen)
    result = provider.score(_tokens(turn), len(turn.prompt_token_ids), 20, _candidates(turn))
    assert result.mode == provider.score_mode == "echo_logprobs_text" and result.top_k == 5 == provider.score_k
    assert [type(b["prompt"]).__name__ for b in seen] == ["list", "list", "str", "str"]  # ids refused; then 20 -> 5
    assert len(result.positions) == len(turn.scores)
    for got, ref in zip(result.positions, turn.scores):
        assert got.token_logprob == ref.logprob
        assert got.top == dict(list(zip(ref.top_ids, ref.top_logprobs))[:5]) | {ref.token: ref.logprob}
    drift = turn_drift("t", turn, result.positions, float("inf"), 5)
    assert drift.logodds_sq == 0 and drift.confident_flips == 0
    seen.clear()
    provider.score(_tokens(turn), len(turn.prompt_token_ids), 20, _candidates(turn))
    assert len(seen) == 1 and seen[0]["logprobs"] == 5  # mode and cap remembered


def test_a_host_that_tokenises_the_string_otherwise_is_reported_with_the_first_differing_position(turn):
    texts = [harmony.token_text(t) for t in _tokens(turn)]
    at = len(turn.prompt_token_ids) + 5
    while texts[at] in harmony.SPECIAL_TEXTS or len(texts[at]) < 2:
        at += 1
    split = texts[:at] + [texts[at][:1], texts[at][1:]] + texts[at + 1:]  # one token in two: boundaries differ
    with pytest.raises(ProviderProtocolError, match=f"differently from golden at position {at}"):
        _string_host(turn, 5, split).score(_tokens(turn), len(turn.prompt_token_ids), 5, _candidates(turn))


def test_a_host_that_reads_control_tokens_as_text_offers_no_string_teacher_forcing(turn):
    texts = [harmony.token_text(t) for t in _tokens(turn)]
    plain = ["<|", "start", "|>"] + texts[1:]  # `<|start|>` tokenised as text
    with pytest.raises(ScoringUnsupported, match="does not read control tokens"):
        _string_host(turn, 5, plain).score(_tokens(turn), len(turn.prompt_token_ids), 5, _candidates(turn))


def test_a_server_error_is_not_taken_for_an_unsupported_shape(turn):
    provider = Provider("http://test/v1", "m", transport=httpx.MockTransport(
        lambda request: httpx.Response(500, json={"error": {"message": "boom"}})), retry=FAST)
    with pytest.raises(ProviderError) as caught:
        provider.score(_tokens(turn), len(turn.prompt_token_ids), 5, _candidates(turn))
    assert not isinstance(caught.value, ScoringUnsupported) and provider.score_mode is None


@pytest.mark.parametrize("message,asked,cap", [
    ("logprobs must be at most 5", 20, 5), ("top_logprobs must be less than or equal to 10", 20, 10),
    ('{"error": {"message": "Invalid logprobs: maximum is 5"}}', 20, 5), ("logprobs too large", 20, 5),
    ("logprobs are not supported", 20, None), ("max_tokens must be at most 5", 20, None),
    ("logprobs must be at most 5", 5, None)])
def test_logprobs_caps_are_read_from_error_messages(message, asked, cap):
    assert logprobs_cap(message, asked) == cap


CAP_MESSAGES = [
    ("Requested sample logprobs of 30, which is greater than max allowed: 7", 7),  # vLLM, chat / completions
    ("Requested prompt logprobs of 30, which is greater than max allowed: 7", 7),  # vLLM, prompt_logprobs
    ("Invalid 'top_logprobs': integer above maximum value. Expected a value <= 7, but got 30 instead.", 7),  # OpenAI
    ("'top_logprobs' must be less than or equal to 7", 7),
    ("logprobs must be at most 7", 7),
    ("top_logprobs must be ≤ 7", 7),
    ("logprobs: max allowed is 7", 7),
    ("Invalid logprobs: maximum is 7", 7),
    ("logprobs has a maximum value of 7", 7),
    ("top_logprobs must be between 0 and 7", 7),
    ("logprobs must be in range [0, 7]", 7),
    ("logprobs should be no more than 7", 7),
    ("logprobs must not exceed 7", 7),
    ("Number of logprobs requested (30) exceeds maximum allowed value (7)", 7),
    ("logprobs 30 exceeds the limit of 7", 7),
    ("You may request up to 7 top_logprobs", 7),
    ('{"error": {"message": "top_logprobs must be less than or equal to 7", "type": "invalid_request_error"}}', 7),
    ("max_tokens up to 4096; top_logprobs at most 7", 7),  # two caps named: the one about logprobs
    ("logprobs are not supported", None),
    ("top_logprobs must be greater than 0", None),
    ("This model's maximum context length is 4096 tokens", None),
]
"""Refusals naming a cap as hosts phrase them (7: a cap the probe would not reach by trying 20, 5, 1)."""


@pytest.mark.parametrize("message,cap", CAP_MESSAGES)
def test_one_cap_reading_for_the_probe_and_the_run(message, cap):
    """`named_cap` reads the cap; the run's re-asking (`logprobs_cap`) and the probe (`find_cap`) read it alike:
    the probe's next try is the named cap, not the next of the common caps."""
    assert named_cap(message) == cap
    assert logprobs_cap(message, 30) == cap
    if cap is None:
        return
    tried = []

    def send(k: int) -> int:
        tried.append(k)
        if k > cap:
            raise ProviderHTTPError(400, message, "http://host.test/v1/chat/completions")
        return k

    assert find_cap(send, lambda k: k)[0] == cap and tried == [20, cap]


def _chat_entry(token: int, logprob: float, top: list[tuple[int, float]], text: str | None = None) -> dict:
    """A llama.cpp chat logprob entry: ids, and control tokens with text "" (no --special)."""
    def shown(t: int) -> str:
        return "" if harmony.token_text(t) in harmony.SPECIAL_TEXTS else harmony.token_text(t)

    return {"id": token, "token": shown(token) if text is None else text, "logprob": logprob,
            "top_logprobs": [{"id": t, "token": shown(t), "logprob": lp} for t, lp in top]}


def _entries(turn: GoldenTurn, k: int, lo: int = 0, hi: int | None = None) -> list[dict]:
    return [_chat_entry(s.token, s.logprob, list(zip(s.top_ids, s.top_logprobs))[:k]) for s in turn.scores[lo:hi]]


def test_llama_cpp_empty_control_tokens_with_ids_are_no_departure(turn):
    obs = _chat.parse_response({"choices": [{"message": {"content": "x"}, "logprobs": {"content": _entries(turn, 5)}}]},
                               "")
    assert obs.logprobs[-1].token == "" and obs.logprobs[-1].token_id == turn.completion_token_ids[-1]
    aligned, positions, departure = greedy_positions(turn, obs.logprobs, 0.0)
    assert departure is None and len(positions) == len(turn.scores) == len(aligned.scores)
    assert turn_drift("t", aligned, positions, 0.0, 5).logodds_sq == 0


def test_empty_control_token_text_without_ids_reads_as_golden_control_token(turn):
    items = [TokenLogprob(token="" if harmony.token_text(s.token) in harmony.SPECIAL_TEXTS else harmony.token_text(s.token),
                          logprob=s.logprob, top=[TopLogprob(token=harmony.token_text(t), logprob=lp)
                                                  for t, lp in zip(s.top_ids[:5], s.top_logprobs[:5])])
             for s in turn.scores]
    assert any(item.token == "" for item in items)
    _, positions, departure = greedy_positions(turn, items, 0.0)
    assert departure is None and len(positions) == len(turn.scores)
    wrong = [*items[:3], items[3].model_copy(update={"token": "zzz-not-golden"}), *items[4:]]
    assert len(greedy_positions(turn, wrong, float("inf"))[1]) == 3


def test_separate_reasoning_logprobs_are_aligned_to_their_golden_channel(turn):
    """A host that reports reasoning tokens' logprobs in `reasoning_logprobs` and the answer's in `logprobs`,
    leaving out the control tokens between the channels: each part meets its own golden positions."""
    spans = harmony.content_spans(turn.completion_token_ids)
    assert len(spans) >= 2, "the first drift case has an analysis and a final message"
    (a0, a1), (f0, f1) = (spans[0].start, spans[0].end), (spans[-1].start, spans[-1].end)
    choice = {"message": {"content": "x", "reasoning_content": "y"},
              "logprobs": {"content": _entries(turn, 5, f0, f1)},
              "reasoning_logprobs": {"content": _entries(turn, 5, a0, a1)}}
    obs = _chat.parse_response({"choices": [choice]}, "")
    assert len(obs.reasoning_logprobs) == a1 - a0 and len(obs.logprobs) == f1 - f0
    aligned, positions, departure = greedy_positions(turn, obs.logprobs, 0.0, obs.reasoning_logprobs)
    assert departure is None and len(positions) == (a1 - a0) + (f1 - f0)
    assert aligned.scores == turn.scores[a0:a1] + turn.scores[f0:f1]
    assert turn_drift("t", aligned, positions, 0.0).logodds_sq == 0


def test_integer_chat_logprobs_answered_in_the_legacy_shape_are_understood(turn):
    legacy = _legacy(turn, 3)
    start = len(turn.prompt_token_ids)
    data = {key: values[start:] for key, values in legacy.items()} | {"token_ids": turn.completion_token_ids}
    obs = _chat.parse_response({"choices": [{"message": {"content": "x"}, "logprobs": data}]}, "")
    assert [item.token_id for item in obs.logprobs] == turn.completion_token_ids
    assert len(obs.logprobs[0].top) >= 3
    assert greedy_positions(turn, obs.logprobs, 0.0)[2] is None


def test_truncation_keeps_the_k_most_probable_and_the_chosen_token():
    score = PositionScore(token_logprob=-3.0, top={1: -0.1, 2: -2.0, 3: -3.0, 4: -4.0})
    assert truncate(score, 2).top == {1: -0.1, 2: -2.0} and truncate(score, 2).token_logprob == -3.0
    assert truncate(score, 5) is score


def test_top1_relative_error_is_that_of_the_chosen_tokens_remainder_log_odds(turn):
    """With the chosen token only, the log-odds of the rest against it carry the drift: a provider whose
    top token has 1.5x golden's remainder shows log(1.5)/|golden log-odds| there."""
    # the least confident position whose remainder is small enough for the first-order figure (under 2%)
    ref = max((s for s in turn.scores if s.top_logprobs[0] > -0.02), key=lambda s: -s.top_logprobs[0])
    p = ref.top_logprobs[0] * 1.5  # remainder 1.5x as large (first order)
    got = PositionScore(token_logprob=p, top={ref.top_ids[0]: p})
    drift = position_drifts("t", turn.model_copy(update={"scores": [ref]}), [got], float("inf"), 1)[0]
    golden = remainder_logodds(ref.top_logprobs[0])
    assert drift.relative == [pytest.approx(abs(remainder_logodds(p) - golden) / abs(golden))]
    assert drift.relative[0] == pytest.approx(0.405 / abs(golden), rel=0.01)


@pytest.mark.parametrize("golden_p, counted", [(0.5, False), (0.7, False), (0.75, True), (0.99, True),
                                                (1 - 2e-4, True), (1 - 5e-5, False), (0.2, True)])
def test_top1_counts_positions_golden_resolves_away_from_a_coin_toss(golden_p, counted):
    """Top-1 positions count where 1 - p is at least 1e-4 (an honest float32 normalisation over the vocabulary
    leaves about 1e-5 of it uncertain) and the remainder log-odds are at least 1 from zero (a relative error
    near a coin toss divides by nearly nothing); there a provider 10% off golden's remainder shows."""
    lp = math.log(golden_p)
    ref = TokenScore(token=1, logprob=lp, top_ids=[1, 2], top_logprobs=[lp, math.log(min(1 - golden_p, golden_p))])
    off = math.log(1 / (1 + 1.1 * (1 - golden_p) / golden_p))  # remainder (1 - p) / p 1.1x golden's
    turn = GoldenTurn.model_construct(scores=[ref])
    drift = position_drifts("t", turn, [PositionScore(token_logprob=off, top={1: off})], float("inf"), 1)[0]
    assert bool(drift.relative) is counted
    if counted:
        assert drift.relative[0] == pytest.approx(math.log(1.1) / abs(remainder_logodds(lp)), rel=1e-3)


def test_the_calibration_for_the_k_a_run_got():
    shipped = cal.load(GOLDEN)
    assert shipped is not None and sorted(shipped.by_k) == sorted(cal.TRUNCATIONS)
    assert shipped.for_k(20) is shipped and shipped.for_k(21) is shipped and shipped.truncation is None
    assert shipped.for_k(5).top_k == 5 and shipped.for_k(7).top_k == 5 and shipped.for_k(5).truncation == 5
    assert shipped.for_k(1).top_k == 1 == shipped.for_k(0).top_k == shipped.for_k(4).top_k
    for k, sub in shipped.by_k.items():
        assert sub.flip_margin == shipped.flip_margin, "a flip shows at any k"
        assert sub.widening >= shipped.widening >= cal.MIN_WIDENING
        assert {"int4-experts", "no-sinks", "swapped-checkpoint"} <= set(sub.detection), k
    assert shipped.greedy is not None and sorted(shipped.greedy.by_k) == sorted(cal.TRUNCATIONS)


# -- end to end on the built-in provider's surfaces ---------------------------------------------------


def _run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    proc = run_cli("run", "--suite", "drift", "--out", str(tmp_path), *args)
    report = next((line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("report: ")), None)
    assert report, proc.stdout + proc.stderr
    return proc.returncode, json.loads((Path(report).parent / "result.json").read_text())


def _check(result: dict, check_id: str) -> dict:
    return next(c for c in result["checks"] if c["id"] == check_id)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [None, "int4-experts"])
def test_string_completions_teacher_forcing(tmp_path, fault):
    """Completions take strings only, echo + logprobs <= 5: drift is teacher-forced through the string
    prompt at top-5, honest passes and int4 experts fail."""
    code, result = _run(tmp_path, "--surface", "string-completions", *(["--fault", fault] if fault else []))
    check = _check(result, "drift.teacher_forced")
    assert result["provider"]["score_mode"] == "echo_logprobs_text"
    assert check["verdict"] == ("pass" if fault is None else "fail"), check
    assert "top-5" in json.dumps(check)
    assert code == (0 if fault is None else 1)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [None, "swapped-checkpoint"])
def test_capped_logprobs_teacher_forcing(tmp_path, fault):
    """Token-id prompts and prompt_logprobs, but every logprobs parameter capped at 5."""
    code, result = _run(tmp_path, "--surface", "capped-logprobs", *(["--fault", fault] if fault else []))
    check = _check(result, "drift.teacher_forced")
    assert check["verdict"] == ("pass" if fault is None else "fail"), check
    assert code == (0 if fault is None else 1)


# -- the drift checks pick the calibration for the k the run got --------------------------------------


def _capped_view(top_k: int | None, scale: float):
    golden = golden_turn(request(), completion())
    full = calibration(boundary=0.1)
    tight = full.model_copy(update={"top_k": 5, "logodds_boundary": Boundary(positions=[16], values=[0.01])})
    score = scored(golden, scale).model_copy(update={"top_k": top_k})
    ex = exchange(None, variant="score", score=score)
    return suite_view([case("c")], [record("c", golden)], [ex], full.model_copy(update={"by_k": {5: tight}}))


@pytest.mark.parametrize("top_k,verdict", [(None, "pass"), (20, "pass"), (5, "fail"), (10, "fail")])
def test_teacher_forcing_decides_with_the_calibration_for_the_reported_k(top_k, verdict):
    """Log-odds 5% off: within the top-20 boundary (0.1), beyond the top-5 one (0.01); a host that
    reported 5 (or 10: truncated to the calibrated 5) is held to the top-5 boundary."""
    outcome = run("drift.teacher_forced", _capped_view(top_k, 1.05))[0]
    assert outcome.verdict.value == verdict, outcome.message
    assert ("top-5" in outcome.observed["method"]) == (top_k in (5, 10))
