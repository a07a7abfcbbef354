"""Per-position drift statistics against the golden top-K, and how they pool over a run.

At each scored position:
- truncated KL(golden || provider) over the golden top-K, with a floor for tokens the provider left out;
- relative log-odds error: for golden ranks 2..K, the provider's log-odds against the golden top
  token minus golden's, as sqrt(sum of squared errors / sum of squared golden log-odds) at the
  position. Rounding noise grows with logit magnitude, so relative to the log-odds it is about
  constant from case to case; a quantised or mis-wired model adds error rounding cannot explain;
- the golden token's log-probability error, and whether a confident golden top-1 flipped (to a
  token that is not golden's own either: see `confident_flip`).
A provider that caps its top list at k reports less: `truncate` shows what it reports, and with top-1
(the chosen token only) the relative error is that of the chosen token's log-odds against all other
tokens together (`remainder_logodds`), the one log-odds its log-probability alone determines.
`TurnDrift` holds them as sums, so positions pool into turns and turns into runs by addition.
Also here: the exact Poisson-binomial test of `drift.sampling`.

Every function is pure and has unit tests of its boundaries (tests/test_stats.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field

from verifier.golden import GoldenTurn, TokenScore
from verifier.scores import PositionScore

LOGPROB_FLOOR = -30.0
"""Log-probability assumed for a token the provider left out of its top-K. A provider that omits a
token from its top-K tells us only that it is below the K-th; flooring keeps KL finite."""
CHOSEN_RESOLUTION = 1e-4
"""Top-1 positions count toward the relative error only where golden's top token leaves at least this
much probability to the others. Nearer to certainty an honest report no longer resolves the rest: golden
stores log-probabilities rounded to 1e-6, and an engine that normalises in float32 over the 201k-token
vocabulary (llama.cpp sums the exponentials one by one, then reports log(p)) has 1 - p uncertain by about
1e-5. Measured on the v2 conformance golden (top-1, teacher forcing, every turn): at 1e-6 llama.cpp on a bf16
GGUF sits 3.3x above the reference in bf16 (0.0187 against 0.0057), at 3e-5 1.45x, at 1e-4 0.92x (0.0075
against 0.0081, 2032 of 5718 positions qualify), and the faults keep their distance: int4 experts 3.7x the
reference's median (3.3x at 1e-6), removed sinks 1.11x (1.12x), FP8 KV 1.59x (1.37x). The choice depends on
golden alone, so no provider can steer it."""
CHOSEN_MIN_LOGODDS = 1.0
"""Top-1 positions count only where golden's remainder log-odds are at least this far from zero (its top token
at most 0.27 or at least 0.73 likely): a relative error divides by them, and near a coin toss it is noise
divided by nearly nothing. Measured on the v2 golden (with CHOSEN_RESOLUTION): the 99th percentile of a
turn's median over its first 8 top-1 positions falls from 0.62 to 0.011 for the reference in bf16, so a run's
first looks mean something; 1463 positions qualify; the reference's median 0.0053, llama.cpp's 0.0063, int4
experts 3.6x the reference's, removed sinks 1.15x, FP8 KV 1.52x."""


def truncated_kl(golden_top: dict[int, float], provider_top: dict[int, float], floor: float = LOGPROB_FLOOR) -> float:
    """KL(golden || provider) restricted to the golden top-K tokens, renormalised on both sides.

    Tokens the provider did not report are given `min(floor, its lowest reported logprob)`.
    """
    if not golden_top:
        return 0.0
    lowest = min(provider_top.values(), default=floor)
    fill = min(floor, lowest)
    ids = list(golden_top)
    p = _renormalise([golden_top[i] for i in ids])
    q = _renormalise([provider_top.get(i, fill) for i in ids])
    return max(0.0, sum(math.exp(lp) * (lp - lq) for lp, lq in zip(p, q)))


def _renormalise(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    total = top + math.log(sum(math.exp(v - top) for v in logprobs))
    return [v - total for v in logprobs]


def logodds_errors(golden_ids: Sequence[int], golden_logprobs: Sequence[float], provider: dict[int, float],
                   with_reference: bool = False) -> list:
    """Provider minus golden log-odds against the golden top token, for golden ranks 2..K the provider reported.

    Log-odds (log p_j - log p_top) do not depend on how the provider normalised, and unlike KL they
    stay informative when the top token holds nearly all the probability. With `with_reference`,
    (error, golden log-odds) pairs.
    """
    top = golden_ids[0]
    if top not in provider:
        return []
    out = []
    for j, lp in zip(golden_ids[1:], golden_logprobs[1:]):
        if j in provider:
            golden = lp - golden_logprobs[0]
            error = (provider[j] - provider[top]) - golden
            out.append((error, golden) if with_reference else error)
    return out


def remainder_logodds(logprob: float) -> float:
    """log((1 - p) / p): the log-odds of all other tokens together against a token of log-probability
    `logprob`. A reported 0 reads as just below the resolution of float32 log-probabilities."""
    lp = min(logprob, -CHOSEN_RESOLUTION / 10)
    return math.log(-math.expm1(lp)) - lp


def truncate(score: PositionScore, k: int) -> PositionScore:
    """What a provider that reports its top-k shows of a longer top list: the k most probable tokens,
    and the chosen token's log-probability."""
    if len(score.top) <= k:
        return score
    kept = sorted(score.top.items(), key=lambda item: item[1], reverse=True)[:k]
    return PositionScore(token_logprob=score.token_logprob, top=dict(kept))


def relative(error_sq: float, reference_sq: float) -> float:
    """sqrt(sum of squared log-odds errors / sum of squared golden log-odds); 0 where there is no reference."""
    return math.sqrt(error_sq / reference_sq) if reference_sq > 0 else 0.0


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


def _chosen_only_pairs(ref: TokenScore, provider: dict[int, float]) -> list[tuple[float, float]]:
    """Top-1: the (error, golden) remainder log-odds of golden's top token, where golden resolves them and they
    are away from a coin toss (`CHOSEN_RESOLUTION`, `CHOSEN_MIN_LOGODDS`)."""
    top, golden_lp = ref.top_ids[0], ref.top_logprobs[0]
    if top not in provider or golden_lp > -CHOSEN_RESOLUTION:
        return []
    golden = remainder_logodds(golden_lp)
    if abs(golden) < CHOSEN_MIN_LOGODDS:
        return []
    return [(remainder_logodds(provider[top]) - golden, golden)]


def confident_flip(ref: TokenScore, provider: dict[int, float], flip_margin: float) -> bool:
    """The provider's top-1 is neither golden's teacher-forced top-1 nor golden's own token, where golden
    is decisive (margin >= `flip_margin`). Golden's own token counts because where it is not the
    teacher-forced top-1 (`TokenScore.off_top1`: the reference's KV-cached greedy decoding chose
    otherwise than its teacher-forced pass) an honest engine on golden's greedy path reports it as its
    top-1, as the reference did."""
    best = max(provider, key=provider.get) if provider else None
    return best is not None and not ref.honest_departure(lambda t: t == best, flip_margin)


def position_drift(key: str, ref: TokenScore, got: PositionScore, flip_margin: float, k: int | None = None
                   ) -> TurnDrift:
    """Drift at one golden position; `k`: the provider reports its top-k (None: all it was asked for,
    as calibration's full top list)."""
    if k is not None:
        got = truncate(got, k)
    provider = dict(got.top)
    if got.token_logprob is not None:
        provider.setdefault(ref.token, got.token_logprob)
    kl = truncated_kl(dict(zip(ref.top_ids, ref.top_logprobs)), provider)
    if k is not None and k <= 1:
        pairs = _chosen_only_pairs(ref, provider)
    else:
        pairs = logodds_errors(ref.top_ids, ref.top_logprobs, provider, with_reference=True)
    error_sq, reference_sq = sum(e * e for e, _ in pairs), sum(g * g for _, g in pairs)
    out = TurnDrift(key=key, positions=1, kl_sum=kl, kl_max=kl, logodds_sq=error_sq, logodds_ref_sq=reference_sq,
                    logodds_n=len(pairs), relative=[relative(error_sq, reference_sq)] if reference_sq > 0 else [])
    if got.token_logprob is not None:
        out.delta_sq, out.delta_n = (got.token_logprob - ref.logprob) ** 2, 1
    if confident_flip(ref, provider, flip_margin):
        out.confident_flips = 1
    first, second = ref.top_ids[0], ref.top_ids[1]
    if first in provider and second in provider:
        out.margin_decrease_max = max(0.0, ref.margin - (provider[first] - provider[second]))
    return out


def position_drifts(key: str, golden: GoldenTurn, positions: list[PositionScore], flip_margin: float,
                    k: int | None = None) -> list[TurnDrift]:
    """Drift at each golden position of a turn that the provider scored, in order."""
    return [position_drift(key, ref, got, flip_margin, k) for ref, got in zip(golden.scores, positions)]


def turn_drift(key: str, golden: GoldenTurn, positions: list[PositionScore], flip_margin: float,
               k: int | None = None) -> TurnDrift:
    """Pool the drift statistics of the positions scored for one golden turn."""
    return pool(key, position_drifts(key, golden, positions, flip_margin, k))


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


def running(chunks: list[TurnDrift]) -> Running:
    """The statistics of all the chunks together."""
    return Running.of(pool("all", chunks))


def poisson_binomial_pmf(probabilities: Sequence[float]) -> list[float]:
    """P(sum of independent Bernoulli(p_i) = k) for k = 0..n, exactly."""
    pmf = [1.0]
    for p in probabilities:
        nxt = [0.0] * (len(pmf) + 1)
        for k, mass in enumerate(pmf):
            nxt[k] += mass * (1 - p)
            nxt[k + 1] += mass * p
        pmf = nxt
    return pmf


def poisson_binomial_two_sided(observed: int, probabilities: Sequence[float]) -> float:
    """Two-sided p-value of `observed` successes: the probability of outcomes no more likely than it."""
    pmf = poisson_binomial_pmf(probabilities)
    if not 0 <= observed < len(pmf):
        return 0.0
    cutoff = pmf[observed] * (1 + 1e-9)
    return min(1.0, sum(m for m in pmf if m <= cutoff))


def completion_probability(turn: GoldenTurn) -> float:
    """The probability the reference gives golden's whole completion of a turn (its scored tokens' product):
    the chance one temperature-1 sample reproduces it."""
    return math.exp(sum(s.logprob for s in turn.scores))


SAMPLING_MIN_PROBABILITY = 0.01
"""A case is sampled only if the reference reproduces its golden completion with at least this probability:
below it a sample almost never matches whichever engine drew it, so it costs a request and tells nothing.
On the v2 conformance drift suite 3 of 14 cases qualify (0.021-0.139); on a real gpt-oss, whose reasoning
runs to hundreds of tokens, none may, and the sampling check then says it cannot test the suite."""


def sample_allocation(probabilities: Sequence[float], budget: int) -> list[int]:
    """Samples per case: `budget` split evenly over the cases golden reproduces with probability at least
    SAMPLING_MIN_PROBABILITY (the remainder to the likeliest), none elsewhere. Golden alone decides it."""
    eligible = [i for i, p in enumerate(probabilities) if p >= SAMPLING_MIN_PROBABILITY]
    counts = [0] * len(probabilities)
    if not eligible:
        return counts
    for i in eligible:
        counts[i] = budget // len(eligible)
    for i in sorted(eligible, key=lambda i: -probabilities[i])[:budget % len(eligible)]:
        counts[i] += 1
    return counts
