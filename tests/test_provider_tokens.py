"""Reference-scored provider output (`verifier.drift.provider_tokens`, `verifier.rescore`) without a server:
the statistics' boundaries and null distribution, the re-tokenisation of answers, and which answers are scored."""

from __future__ import annotations

import json
import math
import random
from statistics import NormalDist

import pytest

from verifier import calibrate, harmony
from verifier.drift import calibration as cal
from verifier.drift.provider_tokens import (
    TokenScores,
    departure_margin,
    departures,
    greedy_tokens_for_power,
    sampled_test,
    tokens_for_power,
)
from verifier.exchange import Exchange
from verifier.observation import Observation, ToolCall
from verifier.paths import golden_dir
from verifier.rescore import answer_of, answers, best_dates, provider_dates, sample_offset, sampling_mode, scoreable

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"


def _greedy(margins: list[float], key: str = "k") -> TokenScores:
    n = len(margins)
    return TokenScores(key=key, label=key, sampled=False, margin=margins, logprob=[-m for m in margins],
                       entropy=[0.0] * n, variance=[0.0] * n, tokens=[f"t{i}" for i in range(n)])


def test_a_departure_is_a_margin_wider_than_the_flip_margin():
    found = departures([_greedy([0.0, 0.5, 0.9444, 0.9445, 3.0])], flip_margin=0.9444)
    assert [(d.position, d.token) for d in found] == [(3, "t3"), (4, "t4")]
    sampled = _greedy([5.0]).model_copy(update={"sampled": True})
    assert departures([sampled], 0.9444) == []  # a sampled token may be anything


def _answers(*largest: float, names: tuple[str, ...] = ("a", "b", "c")) -> cal.GreedyAnswers:
    return cal.GreedyAnswers(source="test", engines=[cal.AnswerMargins(name=n, answers=10, positions=100,
                                                                       largest_margin=m) for n, m in zip(names, largest)])


def test_the_departure_margin_is_twice_the_largest_honest_greedy_answer_margin():
    """Honest engines' own greedy tokens trailed the reference's top-1 by at most their largest margin; twice that
    is the departure margin, wherever it is below the widest gap an honest engine closed (the flip margins), which
    stays the margin without greedy answers or with one engine's alone (it cannot say how far another strays)."""
    shipped = cal.load(GOLDEN)
    closed = departure_margin(shipped.model_copy(update={"greedy_answers": None}))
    assert closed >= shipped.flip_margin > 0.5

    def margin(answers: cal.GreedyAnswers) -> float:
        return departure_margin(shipped.model_copy(update={"greedy_answers": answers}))

    assert margin(_answers(0.1, 0.05, 0.0)) == pytest.approx(0.2)
    assert margin(_answers(0.1, 0.05).model_copy(update={"widening": 3.0})) == pytest.approx(0.3)
    assert margin(_answers(closed, 0.0)) == closed  # never above what honest engines closed
    assert margin(_answers(0.1)) == closed
    assert margin(_answers(0.1, 0.05, names=("reference-bf16", f"reference-bf16{cal.DATE_SHIFTED}1d"))) == closed


def _sample_sequence(rng: random.Random, distributions, draw_from=None) -> TokenScores:
    """Tokens drawn from `draw_from` (default: the reference itself), scored under the reference."""
    seq = TokenScores(key="s", label="s", sampled=True)
    for i, p in enumerate(distributions):
        q = draw_from[i] if draw_from else p
        token = rng.choices(range(len(q)), weights=q)[0]
        logp = [math.log(x) for x in p]
        entropy = -sum(x * lp for x, lp in zip(p, logp))
        seq.logprob.append(logp[token])
        seq.entropy.append(entropy)
        seq.variance.append(sum(x * lp * lp for x, lp in zip(p, logp)) - entropy ** 2)
        seq.mid_rank.append(sum(x for x in p if x > p[token]) + sum(x for x in p if x == p[token]) / 2)
        seq.cube_sum.append(sum(x ** 3 for x in p))
    return seq


def _distributions(rng: random.Random, n: int, width: int = 6) -> list[list[float]]:
    out = []
    for _ in range(n):
        logits = [rng.gauss(0, 2.0) for _ in range(width)]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        out.append([w / sum(weights) for w in weights])
    return out


def test_sampled_test_holds_its_level_on_reference_samples():
    """Tokens drawn from the reference itself: the two-sided test at 1% flags about 1% of 2000 runs (the
    mid-rank statistic has mean 1/2 and variance (1 - Σp³)/12 exactly)."""
    rng = random.Random(7)
    flagged = 0
    for _ in range(2000):
        distributions = _distributions(rng, 60)
        flagged += sampled_test([_sample_sequence(rng, distributions)], tolerance=0.0).p_value() < 0.01
    assert flagged / 2000 < 0.02, flagged


def test_sampled_test_flags_another_distribution():
    """Tokens drawn from a sharper distribution (temperature 0.7) than the reference's: flagged, and the
    predicted positions for 99% power are enough."""
    rng = random.Random(11)
    distributions = _distributions(rng, 1000)
    sharper = []
    for p in distributions:
        weights = [x ** (1 / 0.7) for x in p]
        sharper.append([w / sum(weights) for w in weights])
    def mid(p, token):
        return sum(x for x in p if x > p[token]) + sum(x for x in p if x == p[token]) / 2

    shift = sum(sum(q_i * (mid(p, i) - 0.5) for i, q_i in enumerate(q))
                for p, q in zip(distributions, sharper)) / len(distributions)
    variance = sum((1 - sum(x ** 3 for x in p)) / 12 for p in distributions) / len(distributions)
    needed = tokens_for_power(shift, variance, 0.01, tolerance=0.0)
    assert needed is not None and needed < 1000
    flagged = sum(sampled_test([_sample_sequence(rng, distributions[:needed], sharper[:needed])], tolerance=0.0)
                  .p_value() < 0.01 for _ in range(200))
    assert flagged / 200 > 0.9, flagged


def test_the_honest_tolerance_absorbs_a_small_shift_only():
    small = TokenScores(key="s", label="s", sampled=True, mid_rank=[0.52] * 2000, cube_sum=[0.4] * 2000)
    assert sampled_test([small], tolerance=0.0).p_value() < 0.01  # the exact null resolves it
    assert sampled_test([small]).z == 0.0  # 0.02 x 2000 = 40 over variance 100: inside 0.64 per unit
    large = small.model_copy(update={"mid_rank": [0.6] * 2000})
    assert sampled_test([large]).p_value() < 1e-6


def test_power_formulas_at_their_edges():
    assert tokens_for_power(0.0, 1.0, 0.01, tolerance=0.0) is None
    assert tokens_for_power(-0.1, 1.0, 0.01, tolerance=0.0) == tokens_for_power(0.1, 1.0, 0.01, tolerance=0.0)
    assert tokens_for_power(0.05, 1.0, 0.01, tolerance=0.0) > tokens_for_power(0.1, 1.0, 0.01, tolerance=0.0)


def test_power_counts_only_the_shift_beyond_the_honest_tolerance():
    """A shift the tolerance absorbs is never flagged, whatever the positions; the positions a larger one needs are
    those at which `sampled_test` (tolerance included) reaches the 99%-power z."""
    assert tokens_for_power(0.02, 1 / 12, 0.01) is None  # 0.02 < 0.64 / 12
    assert tokens_for_power(0.1, 1 / 12, 0.01) > tokens_for_power(0.1, 1 / 12, 0.01, tolerance=0.0)
    n = tokens_for_power(0.1, 1 / 12, 0.01)
    expected = TokenScores(key="e", label="e", sampled=True, mid_rank=[0.6] * n, cube_sum=[0.0] * n)
    short = expected.model_copy(update={"mid_rank": [0.6] * (n - 1), "cube_sum": [0.0] * (n - 1)})
    needed = NormalDist().inv_cdf(1 - 0.01 / 2) + NormalDist().inv_cdf(0.99)
    assert sampled_test([short]).z < needed <= sampled_test([expected]).z
    assert greedy_tokens_for_power(0.0) is None
    assert greedy_tokens_for_power(1.0) == 1
    rate = 0.02
    n = greedy_tokens_for_power(rate)
    assert (1 - rate) ** n <= 0.01 < (1 - rate) ** (n - 1)


def _golden_turns():
    for path in sorted(GOLDEN.glob("*.json")):
        if path.name == "calibration.json":
            continue
        for record in json.loads(path.read_text())["records"]:
            yield from record["turns"]


def test_answers_retokenise_as_the_model_wrote_them():
    """Every golden completion that ended on a stop token, rebuilt from its messages as a provider returns them
    (reasoning, answer, tool calls), is golden's own token sequence: headers in the model's form included."""
    checked = 0
    for turn in _golden_turns():
        if turn["finish_reason"] == "length":
            continue
        msgs = turn["messages"]
        reasoning = "".join(m["text"] for m in msgs if m["channel"] == "analysis") or None
        calls = [(m["recipient"].removeprefix("functions."), m["text"]) for m in msgs
                 if (m["recipient"] or "").startswith("functions.")]
        answer = "".join(m["text"] for m in msgs if m["channel"] == "final"
                         or (m["channel"] == "commentary" and not m["recipient"])) or None
        tokens, positions = harmony.generated_tokens(reasoning, answer, calls)
        assert tokens == turn["completion_token_ids"]
        bodies = []  # content and closing token of each message but the tool calls'
        if reasoning:
            bodies += harmony.encode(reasoning) + [harmony.END]
        if answer is not None:
            bodies += harmony.encode(answer) + [harmony.END if calls else harmony.RETURN]
        assert [tokens[i] for i in positions] == bodies
        checked += 1
    assert checked > 50


def _exchange(variant="chat", turn=1, **request) -> Exchange:
    chat = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0, **request}
    obs = Observation(api="chat", stream=False, status=200, content="Hello.", reasoning="Greet back.",
                      tool_calls=[ToolCall(id="c", name="f", arguments='{"a": 1}')], created=1_700_000_000)
    return Exchange(suite="harmony", case_id="c", variant=variant, turn=turn, request=chat, chat_request=chat,
                    observation=obs, key=f"{variant}{turn}{sorted(request.items())}")


@pytest.mark.parametrize(("request_", "expected"), [
    ({"temperature": 0}, False), ({"temperature": 1}, True), ({}, True), ({"temperature": 1, "top_p": 0.9}, None),
    ({"temperature": 0.7}, None)])
def test_sampling_mode(request_, expected):
    assert sampling_mode(request_) is expected


def test_what_is_scored():
    assert scoreable(_exchange()) is False
    assert scoreable(_exchange(variant="sampling", temperature=1)) is True
    sample = _exchange(variant="sampling")
    sample.request = {**sample.request, "temperature": 1.0, "top_p": 1.0}  # golden's greedy body stays chat_request
    assert scoreable(sample) is True
    assert scoreable(_exchange(variant="completions")) is None  # raw Harmony text
    assert scoreable(_exchange(turn=2)) is None  # the prompt holds the provider's own earlier turn
    assert scoreable(_exchange(response_format={"type": "json_object"})) is None  # a grammar chose the tokens
    assert scoreable(_exchange(tool_choice="required")) is None
    assert scoreable(_exchange(tool_choice="auto")) is False
    broken = _exchange()
    broken.observation.failure = {"kind": "protocol", "message": "x"}
    assert scoreable(broken) is None
    assert scoreable(_exchange(stop=["."])) is None  # a sampler parameter chose where it ended
    hidden = _exchange()
    hidden.observation.reasoning = None  # the answer's true prefix (its reasoning) is unknown
    assert scoreable(hidden) is None
    summarised = _exchange()
    summarised.observation.reasoning_fields = ["summary_text"]
    assert scoreable(summarised) is None
    leaked = _exchange()
    leaked.observation.content = "analysis...assistantfinal Hello."  # a parser defect, not the model's text
    assert scoreable(leaked) is None


def test_an_answer_is_scored_once_and_on_its_content():
    first, again = _exchange(), _exchange(variant="chat-stream")
    found = answers([first, again])
    assert [a.exchange.variant for a in found] == ["chat"] * 3  # once, at each date the host may have rendered
    assert [a.date for a in found] == ["2023-11-14", "2023-11-13", "2023-11-15"]  # created 2023-11-14 (UTC)
    draws = [_exchange(variant="sampling", temperature=1, seed=seed) for seed in (0, 1)]  # the same text twice
    assert len(answers(draws, offset=0)) == 2  # two draws, two pieces of evidence
    assert answers(draws) == []  # greedy and sampled answers are gathered apart
    answer = answer_of(first, False, "2023-11-14")
    prompt = harmony.render_chat(first.chat_request, "2023-11-14")
    assert answer.tokens[: len(prompt)] == prompt
    assert harmony.decode([answer.tokens[i] for i in answer.positions]) == "Greet back.<|end|>Hello.<|end|>"


def test_a_host_on_local_time_is_judged_at_its_own_date():
    """An answer that departs after the UTC date's prompt but not after the day before's is judged at the day
    before, and the samples follow the date the greedy answers preferred."""
    ex = _exchange()
    utc, before, _ = provider_dates(ex)
    at_utc = _greedy([0.0, 3.0], ex.key).model_copy(update={"date": utc})
    at_before = _greedy([0.0, 0.01], ex.key).model_copy(update={"date": before})
    chosen = best_dates([at_utc, at_before], margin=1.0)
    assert chosen[ex.key].date == before
    assert sample_offset(chosen, {ex.key: ex}) == 1
    steady = best_dates([at_before.model_copy(update={"date": utc}), at_before], margin=1.0)
    assert steady[ex.key].date == utc and sample_offset(steady, {ex.key: ex}) == 0  # a tie: the UTC date


def test_golden_answers_as_a_host_returns_them_are_golden_tokens():
    """The calibration's honest greedy answers are scored as a host's are: parsed into reasoning, answer and tool
    calls, written back and re-tokenised (`calibrate.as_hosted`). Golden's own answers to its free first turns
    come back token for token, so the writing back adds no margin of its own, and what is scored is what
    `verifier.rescore` scores of a host (content and closing tokens; tool arguments not)."""
    first = calibrate.free_first_turns(cal.golden_turns(GOLDEN))
    assert len(first) >= 60
    for key, turn in first:
        tokens, positions = calibrate.as_hosted(turn.completion_token_ids)
        assert tokens == turn.completion_token_ids, key
        spans = harmony.content_spans(tokens)
        scored = {i for span in spans if "to=functions" not in span.header for i in range(span.start, span.end + 1)}
        assert positions and set(positions) == scored & set(range(len(tokens))), key
