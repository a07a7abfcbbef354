"""Numerical drift: does the provider compute the reference's distribution on golden tokens?

Evidence comes, in order of preference, from teacher forcing (golden prompt + golden completion
scored at prefill price), from greedy decoding with `top_logprobs` (compared along the prefix it
shares with golden), or from sampling (how often temperature-1 samples reproduce golden).

Statistics per scored position (all against the golden top-K):
- truncated KL(golden || provider), with a floor for tokens the provider left out;
- relative log-odds error: for golden ranks 2..K, the provider's log-odds against the golden top
  token minus golden's, as sqrt(sum of squared errors / sum of squared golden log-odds) at the
  position. Rounding noise grows with logit magnitude, so relative to the log-odds it is about
  constant from case to case; a quantised or mis-wired model adds error rounding cannot explain;
- the decision statistic is the running *median* of that error over the scored positions: honest
  bf16 engines have rare large outliers (an MoE routing flip changes one position's logits a lot)
  but a stable median, while a faulty engine moves the whole distribution;
- KL(golden || provider) and the golden token's log-probability error are reported, not decided on:
  KL barely moves on a peaked distribution and varies wildly between cases;
- top-1 agreement where the golden margin is wide.
A run fails as soon as the running median crosses its boundary, or a confident top-1 flips.
Boundaries come from calibration on honest engines (`verifier.calibration`), never from guesses.
"""

from __future__ import annotations

import heapq
import math
import statistics

from pydantic import BaseModel, Field

from verifier import stats
from verifier.calibration import Calibration
from verifier.checks.base import Outcome, SuiteView, Verdict, check
from verifier.golden import GoldenTurn
from verifier.providers import PositionScore
from verifier.verdict import MAX_FIGURE_POSITIONS, Detection, DriftFigure, DriftSequence


class TurnDrift(BaseModel):
    """Drift statistics of some scored positions (one, a turn, a run), summed so that they pool by addition."""

    key: str
    positions: int = 0
    kl_sum: float = 0.0
    kl_max: float = 0.0
    logodds_sq: float = 0.0
    """Sum of squared log-odds errors."""
    logodds_ref_sq: float = 0.0
    """Sum of squared golden log-odds over the same tokens (the scale the errors are relative to)."""
    logodds_n: int = 0
    delta_sq: float = 0.0
    """Sum of squared errors of the golden token's log-probability."""
    delta_n: int = 0
    confident_flips: int = 0
    """Positions with golden margin >= the calibrated flip margin where the provider's top-1 differs."""
    margin_decrease_max: float = 0.0
    """Largest shrinking of the top-1/top-2 gap (where the provider reported both tokens)."""
    relative: list[float] = Field(default_factory=list)
    """Relative log-odds error of each position that had tokens in common with golden."""


def pool(key: str, chunks: list[TurnDrift]) -> TurnDrift:
    """The drift statistics of several chunks (positions, turns) as one: sums, maxima, and the
    per-position errors in order. One pass, so pooling a run of n positions costs O(n)."""
    return TurnDrift(
        key=key, positions=sum(c.positions for c in chunks), kl_sum=sum(c.kl_sum for c in chunks),
        kl_max=max([0.0, *(c.kl_max for c in chunks)]), logodds_sq=sum(c.logodds_sq for c in chunks),
        logodds_ref_sq=sum(c.logodds_ref_sq for c in chunks), logodds_n=sum(c.logodds_n for c in chunks),
        delta_sq=sum(c.delta_sq for c in chunks), delta_n=sum(c.delta_n for c in chunks),
        confident_flips=sum(c.confident_flips for c in chunks),
        margin_decrease_max=max([0.0, *(c.margin_decrease_max for c in chunks)]),
        relative=[value for c in chunks for value in c.relative])


def position_drift(key: str, ref, got: PositionScore, flip_margin: float) -> TurnDrift:
    """Drift at one golden position."""
    provider = dict(got.top)
    if got.token_logprob is not None:
        provider.setdefault(ref.token, got.token_logprob)
    kl = stats.truncated_kl(dict(zip(ref.top_ids, ref.top_logprobs)), provider)
    pairs = stats.logodds_errors(ref.top_ids, ref.top_logprobs, provider, with_reference=True)
    error_sq, reference_sq = sum(e * e for e, _ in pairs), sum(g * g for _, g in pairs)
    out = TurnDrift(key=key, positions=1, kl_sum=kl, kl_max=kl, logodds_sq=error_sq, logodds_ref_sq=reference_sq,
                    logodds_n=len(pairs), relative=[relative(error_sq, reference_sq)] if reference_sq > 0 else [])
    if got.token_logprob is not None:
        out.delta_sq, out.delta_n = (got.token_logprob - ref.logprob) ** 2, 1
    best = max(provider, key=provider.get) if provider else None
    if best is not None and best != ref.top_ids[0] and ref.margin >= flip_margin:
        out.confident_flips = 1
    first, second = ref.top_ids[0], ref.top_ids[1]
    if first in provider and second in provider:
        out.margin_decrease_max = max(0.0, ref.margin - (provider[first] - provider[second]))
    return out


def position_drifts(key: str, golden: GoldenTurn, positions: list[PositionScore], flip_margin: float) -> list[TurnDrift]:
    return [position_drift(key, ref, got, flip_margin) for ref, got in zip(golden.scores, positions)]


def turn_drift(key: str, golden: GoldenTurn, positions: list[PositionScore], flip_margin: float) -> TurnDrift:
    """Pool the drift statistics of the positions scored for one golden turn."""
    return pool(key, position_drifts(key, golden, positions, flip_margin))


class Running(BaseModel):
    """Statistics of all positions scored so far."""

    positions: int = 0
    mean_kl: float = 0.0
    max_kl: float = 0.0
    logodds_rms: float = 0.0
    logodds_relative: float = 0.0
    """sqrt(sum of squared log-odds errors / sum of squared golden log-odds), pooled over positions."""
    median_relative: float = 0.0
    """Median of the per-position relative log-odds errors: the decision statistic."""
    delta_rms: float = 0.0
    confident_flips: int = 0

    @classmethod
    def of(cls, total: TurnDrift) -> Running:
        return cls(positions=total.positions, mean_kl=total.kl_sum / total.positions if total.positions else 0.0,
                   max_kl=total.kl_max,
                   logodds_rms=math.sqrt(total.logodds_sq / total.logodds_n) if total.logodds_n else 0.0,
                   logodds_relative=relative(total.logodds_sq, total.logodds_ref_sq),
                   median_relative=statistics.median(total.relative) if total.relative else 0.0,
                   delta_rms=math.sqrt(total.delta_sq / total.delta_n) if total.delta_n else 0.0,
                   confident_flips=total.confident_flips)


def relative(error_sq: float, reference_sq: float) -> float:
    return math.sqrt(error_sq / reference_sq) if reference_sq > 0 else 0.0


def running(chunks: list[TurnDrift]) -> Running:
    return Running.of(pool("all", chunks))


class Decision(BaseModel):
    verdict: Verdict | None
    """FAIL or PASS once decided, None while undecided."""
    reason: str
    at_positions: int
    """Scored positions when the decision was taken."""
    stats: Running


class RunningMedian:
    """The median of a growing list of numbers, updated in O(log n) per number."""

    def __init__(self) -> None:
        self.low: list[float] = []  # max-heap (negated) of the lower half
        self.high: list[float] = []  # min-heap of the upper half

    def add(self, value: float) -> None:
        if self.low and value > -self.low[0]:
            heapq.heappush(self.high, value)
        else:
            heapq.heappush(self.low, -value)
        if len(self.low) > len(self.high) + 1:
            heapq.heappush(self.high, -heapq.heappop(self.low))
        elif len(self.high) > len(self.low):
            heapq.heappush(self.low, -heapq.heappop(self.high))

    @property
    def value(self) -> float:
        if not self.low:
            return 0.0
        if len(self.low) > len(self.high):
            return -self.low[0]
        return (-self.low[0] + self.high[0]) / 2


def decide(chunks: list[TurnDrift], calibration: Calibration, final: bool) -> Decision:
    """The sequential test, looking after each chunk (a turn in a run, a position in calibration).

    `final`: no more chunks will come, so a run that crossed nothing passes.
    """
    n = flips = 0
    median = RunningMedian()
    for chunk in chunks:  # kept lean: calibration calls this millions of times
        n, flips = n + chunk.positions, flips + chunk.confident_flips
        for value in chunk.relative:
            median.add(value)
        limit = calibration.logodds_boundary.at(n)
        if flips or (limit is not None and median.value > limit):
            return _failure(chunks, n, calibration)
    now = running(chunks)
    enough = calibration.pass_after_positions is not None and now.positions >= calibration.pass_after_positions
    if final or enough:
        return Decision(verdict=Verdict.PASS, at_positions=now.positions, stats=now,
                        reason=f"within honest noise after {now.positions} positions (median relative log-odds "
                               f"error {now.median_relative:.4f}, mean KL {now.mean_kl:.1e})")
    return Decision(verdict=None, reason="undecided", at_positions=now.positions, stats=now)


def _failure(chunks: list[TurnDrift], positions: int, calibration: Calibration) -> Decision:
    """The failing decision at `positions`, with the reasons spelled out."""
    taken, count = [], 0
    for chunk in chunks:
        if count >= positions:
            break
        taken.append(chunk)
        count += chunk.positions
    now = running(taken)
    reasons = []
    if now.confident_flips:
        reasons.append(f"{now.confident_flips} top-1 disagreements where golden is decisive "
                       f"(margin >= {calibration.flip_margin:.2f} nats)")
    limit = calibration.logodds_boundary.at(now.positions)
    if limit is not None and now.median_relative > limit:
        reasons.append(f"median relative log-odds error {now.median_relative:.4f} > {limit:.4f} "
                       f"(mean KL {now.mean_kl:.1e})")
    return Decision(verdict=Verdict.FAIL, reason="; ".join(reasons), at_positions=now.positions, stats=now)


def _summary(decision: Decision, calibration: Calibration, method: str) -> dict:
    return {"method": method, **decision.stats.model_dump(), "decided_at_positions": decision.at_positions,
            "calibration": calibration.source}


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
        detection=_detection(cal), truncated=truncated)


def _detection(cal: Calibration) -> dict[str, Detection]:
    """The calibration's detection figures that have the expected shape (older files may not)."""
    out = {}
    for name, figures in sorted(cal.detection.items()):
        try:
            out[name] = Detection.model_validate(figures)
        except ValueError:
            continue
    return out


def _verdict(view: SuiteView, variant: str, turns: list[TurnDrift], method: str, errors: list[str],
             cal: Calibration | None = None, sequences: list[DriftSequence] | None = None) -> list[Outcome]:
    cal = cal or view.calibration
    if cal is None:
        return [Outcome(verdict=Verdict.SKIP, variant=variant, message=UNCALIBRATED)]
    if not turns:
        reason = errors[0] if errors else "nothing was scored"
        return [Outcome(verdict=Verdict.ERROR, variant=variant, message=f"{method} produced no scores: {reason}")]
    decision = decide(turns, cal, final=True)
    observed = _summary(decision, cal, method)
    expected = {"logodds_boundary": cal.logodds_boundary.model_dump(), "flip_margin": cal.flip_margin}
    word = "drift beyond honest noise" if decision.verdict is Verdict.FAIL else "no drift beyond honest noise"
    return [Outcome(verdict=decision.verdict, variant=variant, observed=observed, expected=expected,
                    figure=figure(method, sequences, cal, decision) if sequences is not None else None,
                    message=f"{word} ({method}, {decision.at_positions} positions): {decision.reason}")]


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
    if all(ex.unsupported for ex in scored):
        return [Outcome(verdict=Verdict.SKIP, variant="score",
                        message=f"the provider offers no teacher forcing ({scored[0].error}); see the fallbacks")]
    flip = view.calibration.flip_margin if view.calibration else float("inf")
    turns, sequences = [], []
    for ex in scored:
        if ex.score is None:
            continue
        key, golden = f"{ex.case_id}#{ex.turn}", view.golden.record(ex.case_id).turns[ex.turn - 1]
        drifts = position_drifts(key, golden, ex.score.positions, flip)
        turns.append(pool(key, drifts))
        sequences.append(sequence(key, golden, ex.score.positions, drifts))
    return _verdict(view, "score", turns, "teacher forcing", [ex.error for ex in scored if ex.error],
                    sequences=sequences)


def greedy_positions(golden: GoldenTurn, logprobs: list, flip_margin: float
                     ) -> tuple[GoldenTurn, list[PositionScore], str | None]:
    """Align chat `top_logprobs` with golden completion tokens along their common prefix.

    Returns the golden turn from the position where the provider's logprobs begin (a provider may
    leave out the leading header tokens), the positions scored against it, and, if the provider's
    greedy path left golden's, why: at a golden near-tie that is honest (tolerated), at a decisive
    position it is evidence of drift.
    """
    from verifier import harmony

    out: list[PositionScore] = []
    texts = [harmony.token_text(t) for t in golden.completion_token_ids]
    start = next((i for i, t in enumerate(texts) if logprobs and t == logprobs[0].token), None)
    if start is None:
        return golden, out, None
    aligned = golden.model_copy(update={"scores": golden.scores[start:]})
    for offset, item in enumerate(logprobs):
        i = start + offset
        if i >= len(golden.scores):
            break
        ref = golden.scores[i]
        candidates = {harmony.token_text(t): t for t in reversed(ref.top_ids)}
        top = {candidates[t.token]: t.logprob for t in item.top if t.token in candidates}
        if item.token != texts[i]:
            if ref.margin >= flip_margin:
                return aligned, out, f"greedy path left golden at a decisive position (margin {ref.margin:.2f} nats)"
            return aligned, out, None
        out.append(PositionScore(token_logprob=item.logprob, top=top))
    return aligned, out, None


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
    answered = [ex.observation for ex in greedy if ex.observation is not None and ex.observation.ok]
    if answered and not any(obs.logprobs for obs in answered):
        return [Outcome(verdict=Verdict.SKIP, variant="greedy-logprobs", message="the provider returns no logprobs")]
    turns, errors, departures, sequences = [], [], [], []
    for ex in greedy:
        obs = ex.observation
        if obs is None or not obs.ok or not obs.logprobs:
            errors.append(obs.error if obs is not None and obs.error else "no logprobs in the response")
            continue
        golden = view.golden.record(ex.case_id).turns[0]
        golden, positions, departure = greedy_positions(golden, obs.logprobs, cal.flip_margin)
        if departure:
            departures.append(f"{ex.case_id}: {departure}")
        drifts = position_drifts(ex.case_id, golden, positions, cal.flip_margin)
        turns.append(pool(ex.case_id, drifts))
        sequences.append(sequence(ex.case_id, golden, positions, drifts))
    if departures:
        return [Outcome(verdict=Verdict.FAIL, variant="greedy-logprobs", observed=departures,
                        message=f"drift beyond honest noise (greedy logprobs): {departures[0]}")]
    return _verdict(view, "greedy-logprobs", turns, "greedy logprobs", errors, cal, sequences)


@check(
    "drift.sampling", "drift",
    title="without logprobs: how often temperature-1 samples reproduce the golden completion matches "
          "the reference's probability of it (exact Poisson-binomial test, α = 1%)",
    why="even an endpoint without logprobs shows its distribution through samples",
    source="providers that return no logprobs at all",
    compares="statistics: two-sided test of the count of golden-identical samples; weak where golden "
             "is nearly certain", apis=("chat",), scope="suite",
)
def sampling(view: SuiteView):
    samples = [ex for ex in view.exchanges if ex.variant == "sampling"]
    if not samples:
        return []
    probabilities, hits, errors = [], 0, []
    for ex in samples:
        obs = ex.observation
        if obs is None or not obs.ok:
            errors.append(obs.error if obs is not None else "no response")
            continue
        golden = view.golden.record(ex.case_id).turns[0]
        probabilities.append(math.exp(sum(s.logprob for s in golden.scores)))
        hits += _reproduces(golden, obs)
    if not probabilities:
        return [Outcome(verdict=Verdict.ERROR, variant="sampling", message=f"no samples: {errors[:1]}")]
    alpha = view.calibration.alpha if view.calibration else 0.01
    p = stats.poisson_binomial_two_sided(hits, probabilities)
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
