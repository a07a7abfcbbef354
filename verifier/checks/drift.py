"""Numerical drift: does the provider compute the reference's distribution on golden tokens?

Evidence comes, in order of preference, from teacher forcing (golden prompt + golden completion
scored at prefill price), from greedy decoding with `top_logprobs` (compared along the prefix it
shares with golden), or from sampling (how often temperature-1 samples reproduce golden).

The statistics and the decision are not here: per-position statistics are in
`verifier.drift.statistics`, the sequential test (the one place a drift verdict is decided, also used
by the runner's early stop) in `verifier.drift.sequential`, and its boundaries come from calibration
on honest engines (`verifier.drift.calibration`), never from guesses. These checks turn exchanges
into drift per turn, feed it to `SequentialTest`, and record its decision, a `DriftSummary` and plots.
"""

from __future__ import annotations

from verifier.checks.base import Outcome, SuiteView, Verdict, check
from verifier.drift.align import greedy_positions
from verifier.drift.calibration import DEFAULT_ALPHA, FULL_K, Calibration
from verifier.drift.provider_tokens import TokenScores, departure_margin, departures, sampled_test
from verifier.drift.sequential import Decision, DriftLimits, RunningMedian, SequentialTest
from verifier.drift.statistics import (
    TurnDrift,
    completion_probability,
    poisson_binomial_two_sided,
    pool,
    position_drifts,
)
from verifier.exchange import Exchange
from verifier.golden import GoldenTurn
from verifier.result import evidence_key
from verifier.scores import PositionScore, ScoreResult
from verifier.verdict import MAX_FIGURE_POSITIONS, DriftFigure, DriftSequence

UNCALIBRATED_GREEDY = ("this golden's calibration has no greedy-fallback part, so greedy logprobs have no "
                       "thresholds; run `gpt-oss-verify golden calibrate`")
UNCALIBRATED = "this golden has no calibration.json, so drift has no thresholds; run `gpt-oss-verify golden calibrate`"


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


def sequence(key: str, golden: GoldenTurn, positions: list[PositionScore], drifts: list[TurnDrift]) -> DriftSequence:
    """The per-position series of one scored golden turn, for the report's plots."""
    return DriftSequence(
        key=key, kl=[_significant(d.kl_sum) for d in drifts],
        delta=[_significant(got.token_logprob - ref.logprob) if got.token_logprob is not None else None
               for ref, got in zip(golden.scores, positions)],
        relative=[_significant(d.relative[0]) if d.relative else None for d in drifts])


def figure(method: str, sequences: list[DriftSequence], cal: Calibration, decision: Decision) -> DriftFigure:
    """Plot data: the series (at most MAX_FIGURE_POSITIONS positions), the running median they give,
    the calibrated boundary and the calibration's detection budget."""
    kept, budget, truncated = [], MAX_FIGURE_POSITIONS, False
    for s in sequences:
        if budget <= 0:
            truncated = True
            break
        if len(s.kl) > budget:
            s, truncated = DriftSequence(key=s.key, kl=s.kl[:budget], delta=s.delta[:budget],
                                         relative=s.relative[:budget]), True
        kept.append(s)
        budget -= len(s.kl)
    median, trajectory = RunningMedian(), []
    for s in kept:
        for value in s.relative:
            if value is not None:
                median.add(value)
            trajectory.append(_significant(median.value))
    return DriftFigure(
        method=method, sequences=kept, running_median=trajectory,
        boundary_positions=cal.logodds_boundary.positions, boundary_values=cal.logodds_boundary.values,
        flip_margin=cal.flip_margin, decided_at_positions=decision.at_positions,
        pass_after_positions=cal.pass_after_positions,
        detection=dict(sorted(cal.detection.items())), truncated=truncated)


def scored_k(scores: list[ScoreResult]) -> int:
    """The top-list length a run's teacher forcing got: the shortest any scored turn reported."""
    return min((s.top_k for s in scores if s.top_k is not None), default=FULL_K)


def greedy_k(exchanges: list[Exchange]) -> int:
    """The top-list length greedy chat logprobs got: what was asked, or less where the host reported less."""
    found = FULL_K
    for ex in exchanges:
        obs = ex.observation
        if obs is None or not obs.ok or not obs.logprobs:
            continue
        asked = ex.request.get("top_logprobs")
        asked = asked if isinstance(asked, int) and not isinstance(asked, bool) else ex.request.get("logprobs")
        asked = asked if isinstance(asked, int) and not isinstance(asked, bool) else 0
        reported = max((len(item.top) for item in [*obs.logprobs, *(obs.reasoning_logprobs or [])]), default=0)
        found = min(found, asked, reported)
    return found


def _method(name: str, cal: Calibration) -> str:
    return name if cal.truncation is None else f"{name}, top-{cal.top_k}"


def _verdict(view: SuiteView, variant: str, turns: list[TurnDrift], method: str, errors: list[str],
             cal: Calibration | None = None, sequences: list[DriftSequence] | None = None) -> list[Outcome]:
    cal = cal or view.calibration
    if cal is None:
        return [Outcome(verdict=Verdict.SKIP, variant=variant, message=UNCALIBRATED)]
    if not turns:
        reason = errors[0] if errors else "nothing was scored"
        return [Outcome(verdict=Verdict.ERROR, variant=variant, message=f"{method} produced no scores: {reason}")]
    test = SequentialTest(cal)
    test.extend(turns)
    decision = test.decision(final=True)
    failed = decision.verdict is Verdict.FAIL
    reach = cal.reach(decision.at_positions)
    observed = decision.summary(method, cal.source).model_copy(update={"reach": None if failed else reach}).model_dump()
    expected = DriftLimits(logodds_boundary=cal.logodds_boundary, flip_margin=cal.flip_margin).model_dump()
    word = "drift beyond honest noise" if failed else "no drift beyond honest noise"
    unscored = f"; {len(errors)} requests gave no scores (first: {errors[0]})" if errors else ""
    return [Outcome(verdict=decision.verdict, variant=variant, observed=observed, expected=expected,
                    figure=figure(method, sequences, cal, decision) if sequences is not None else None,
                    message=f"{word} ({method}, {decision.at_positions} positions): {decision.reason}{unscored}"
                            f"{'' if failed else reach.sentence()}")]


@check(
    "drift.teacher_forced", "drift",
    title="log-probabilities on golden tokens, teacher-forced, match the reference within calibrated noise",
    why="quantised experts, missing attention sinks, wrong RoPE or another model shift the distribution "
        "long before they change greedy text",
    source="K2-Vendor-Verifier; measured here: top-1 never moves for int4 experts, log-odds do",
    compares="statistics: sequential test on KL, log-odds error and confident top-1 flips, boundaries "
             "calibrated on honest engines",
    apis=("completions",), scope="suite",
)
def teacher_forced(view: SuiteView):
    scored = [ex for ex in view.exchanges if ex.variant == "score"]
    if not scored:
        return []
    if all(ex.failed("unsupported") for ex in scored):
        return [Outcome(verdict=Verdict.SKIP, variant="score",
                        message=f"the provider offers no teacher forcing ({scored[0].failure.message}); see the fallbacks")]
    cal = view.calibration.for_k(scored_k([ex.score for ex in scored if ex.score])) if view.calibration else None
    flip = cal.flip_margin if cal else float("inf")
    turns, sequences = [], []
    for ex in scored:
        if ex.score is None:
            continue
        key, golden = f"{ex.case_id}#{ex.turn}", view.golden.record(ex.case_id).turns[ex.turn - 1]
        drifts = position_drifts(key, golden, ex.score.positions, flip, cal.truncation if cal else None)
        turns.append(pool(key, drifts))
        sequences.append(sequence(key, golden, ex.score.positions, drifts))
    method = _method("teacher forcing", cal) if cal else "teacher forcing"
    return _verdict(view, "score", turns, method, [ex.failure.message for ex in scored if ex.failure], cal,
                    sequences=sequences)


@check(
    "drift.greedy_logprobs", "drift",
    title="without teacher forcing: greedy top_logprobs along the prefix shared with golden match the reference",
    why="chat-only providers with logprobs still reveal their distribution on the golden prefix",
    source="providers without /v1/completions prompt logprobs",
    compares="statistics as drift.teacher_forced, on the shared prefix; leaving golden at a decisive "
             "position is drift, at a near-tie it is tolerated",
    apis=("chat",), scope="suite",
)
def greedy_logprobs(view: SuiteView):
    greedy = [ex for ex in view.exchanges if ex.variant == "greedy-logprobs"]
    if not greedy:
        return []
    cal = view.calibration.greedy if view.calibration else None
    if cal is None:
        return [Outcome(verdict=Verdict.SKIP, variant="greedy-logprobs", message=UNCALIBRATED_GREEDY)]
    if all(ex.failed("unsupported") for ex in greedy):
        failure = greedy[0].failure or greedy[0].observation.failure
        return [Outcome(verdict=Verdict.SKIP, variant="greedy-logprobs",
                        message=f"the provider offers no chat logprobs ({failure.message}); see the fallbacks")]
    answered = [ex.observation for ex in greedy if ex.observation is not None and ex.observation.ok]
    if answered and not any(obs.logprobs for obs in answered):
        return [Outcome(verdict=Verdict.SKIP, variant="greedy-logprobs", message="the provider returns no logprobs")]
    cal = cal.for_k(greedy_k(greedy))
    turns, errors, departures, sequences = [], [], [], []
    for ex in greedy:
        obs = ex.observation
        if obs is None or not obs.ok or not obs.logprobs:
            errors.append(obs.failure.message if obs is not None and obs.failure else "no logprobs in the response")
            continue
        golden = view.golden.record(ex.case_id).turns[0]
        golden, positions, departure = greedy_positions(golden, obs.logprobs, cal.flip_margin, obs.reasoning_logprobs)
        if departure:
            departures.append(f"{ex.case_id}: {departure}")
        drifts = position_drifts(ex.case_id, golden, positions, cal.flip_margin, cal.truncation)
        turns.append(pool(ex.case_id, drifts))
        sequences.append(sequence(ex.case_id, golden, positions, drifts))
    if departures:
        return [Outcome(verdict=Verdict.FAIL, variant="greedy-logprobs", observed=departures,
                        message=f"drift beyond honest noise (greedy logprobs): {departures[0]}")]
    return _verdict(view, "greedy-logprobs", turns, _method("greedy logprobs", cal), errors, cal, sequences)


@check(
    "drift.sampling", "drift",
    title="without logprobs: how often temperature-1 samples reproduce the golden completion matches "
          f"the reference's probability of it (exact Poisson-binomial test at the calibration's α, {DEFAULT_ALPHA:.0%} without one)",
    why="even an endpoint without logprobs shows its distribution through samples",
    source="providers that return no logprobs at all",
    compares="statistics: two-sided test of the count of golden-identical samples; weak where golden "
             "is nearly certain. Requests set temperature 1 and top_p 1 only (hosts without logprobs often refuse "
             "unknown parameters); a host whose defaults truncate the distribution (llama-server: top_k 40, "
             "min_p 0.05) reproduces golden more often than the reference would, which can fail this check "
             "(too many golden-identical samples) unless it is served with --top-k 0 --min-p 0",
    apis=("chat",), scope="suite",
)
def sampling(view: SuiteView):
    samples = [ex for ex in view.exchanges if ex.variant == "sampling"]
    if not samples:
        return []
    probabilities, hits, errors = [], 0, []
    for ex in samples:
        obs = ex.observation
        if obs is None or not obs.ok:
            errors.append(obs.failure.message if obs is not None and obs.failure else "no response")
            continue
        golden = view.golden.record(ex.case_id).turns[0]
        probabilities.append(completion_probability(golden))
        hits += _reproduces(golden, obs)
    if not probabilities:
        return [Outcome(verdict=Verdict.ERROR, variant="sampling", message=f"no samples: {errors[:1]}")]
    alpha = view.calibration.alpha if view.calibration else DEFAULT_ALPHA
    p = poisson_binomial_two_sided(hits, probabilities)
    expected = sum(probabilities)
    observed = {"samples": len(probabilities), "golden_identical": hits, "expected": round(expected, 2), "p_value": p}
    verdict = Verdict.FAIL if p < alpha else Verdict.PASS
    word = "differs from" if verdict is Verdict.FAIL else "consistent with"
    return [Outcome(verdict=verdict, variant="sampling", observed=observed, expected=f"p >= {alpha}",
                    message=f"{hits} of {len(probabilities)} samples reproduce golden, {expected:.1f} expected: "
                            f"{word} the reference (p = {p:.2g})")]


def _reproduces(golden: GoldenTurn, obs) -> bool:
    if (obs.reasoning or "") != golden.reasoning:
        return False
    if golden.tool_calls:
        return [(c.name, c.arguments) for c in obs.tool_calls] == [
            (m.recipient.removeprefix("functions."), m.text) for m in golden.tool_calls]
    return (obs.content or "") == (golden.final or "")


@check(
    "drift.reference_scored", "drift",
    title="the provider's own tokens are ones the reference would choose (scored offline: `gpt-oss-verify score`)",
    why="a host with no log-probabilities still shows its model in every token it writes; the reference, scoring "
        "them on the provider's own prefix, sees a wrong model, quantised weights or a broken sampler",
    source="hosts without logprobs; Token-DiFR (2025): a provider's tokens scored under a trusted reference",
    compares="statistics, per position on the provider's own prefix: a greedy token ranked below the reference's "
             "top-1 by more than twice the most any honest engine's own greedy answers were (the calibration's "
             "greedy answers; without them, the widest gap an honest engine closed: its teacher-forced and greedy "
             "flip margins) fails at once, at each date the host may have rendered (its date and its neighbours); "
             "sampled tokens (temperature 1) pool into "
             "a z-test of where they rank in the reference's distribution (mid-distribution transform against "
             "1/2; two-sided, α of the calibration; needs no calibration). A host "
             "whose sampler truncates (llama-server's default top_k 40, min_p 0.05) writes likelier tokens than "
             "the reference samples and can fail the sampled test unless served with --top-k 0 --min-p 0",
    apis=("chat", "responses"), scope="offline",
)
def reference_scored(scores: list[TokenScores], exchanges: dict[str, Exchange], calibration: Calibration) -> list[Outcome]:
    """Each greedy answer's decisive departures, and the pooled test of the sampled ones (`exchanges` by key)."""
    margin = departure_margin(calibration)
    found = departures(scores, margin)
    out = [_greedy_answer(seq, exchanges[seq.key], [d for d in found if d.key == seq.key], margin)
           for seq in scores if not seq.sampled]
    test = sampled_test(scores)
    if test.positions:
        p = test.p_value()
        failed = p < calibration.alpha
        out.append(Outcome(
            verdict=Verdict.FAIL if failed else Verdict.PASS, suite="drift", variant="sampling",
            expected=f"p >= {calibration.alpha}",
            observed={"positions": test.positions, "shift": round(test.shift, 3), "z": round(test.z, 3), "p": p},
            message=(f"{test.positions} sampled tokens rank {test.shift:+.1f} from where the reference's own samples "
                     f"would (mid-distribution transform, z = {test.z:+.2f}): "
                     f"{'differs from' if failed else 'consistent with'} the reference (p = {p:.2g})")))
    return out


def _greedy_answer(seq: TokenScores, ex: Exchange, found: list, margin: float) -> Outcome:
    largest = max(seq.margin, default=0.0)
    observed = {"tokens": len(seq.margin), "largest_margin": round(largest, 4), "departures": len(found),
                "date": seq.date}
    where = {"suite": ex.suite, "case_id": ex.case_id, "variant": ex.variant, "turn": ex.turn,
             "exchange": evidence_key(ex.suite, ex.case_id, ex.variant, ex.turn)}
    if not found:
        return Outcome(verdict=Verdict.PASS, observed=observed, expected=f"margins <= {margin:.3f}", **where,
                       message=f"{len(seq.margin)} tokens, largest margin below the reference's top-1 {largest:.3f} nats")
    worst = max(found, key=lambda d: d.margin)
    return Outcome(verdict=Verdict.FAIL, observed=observed, expected=f"margins <= {margin:.3f}", **where,
                   message=f"{len(found)} of {len(seq.margin)} tokens chosen against the reference's top-1 by more "
                           f"than honest engines' greedy tokens may be ({margin:.3f} nats), at every date the host may "
                           f"have rendered: worst {worst.token!r} (token {worst.position + 1}) by {worst.margin:.3f} nats")
