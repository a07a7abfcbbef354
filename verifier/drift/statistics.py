"""Per-position drift statistics against the golden top-K, and how they pool over a run.

At each scored position:
- truncated KL(golden || provider) over the golden top-K, with a floor for tokens the provider left out;
- relative log-odds error: for golden ranks 2..K, the provider's log-odds against the golden top
  token minus golden's, as sqrt(sum of squared errors / sum of squared golden log-odds) at the
  position. Rounding noise grows with logit magnitude, so relative to the log-odds it is about
  constant from case to case; a quantised or mis-wired model adds error rounding cannot explain;
- the golden token's log-probability error, and whether a confident golden top-1 flipped.
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


def position_drift(key: str, ref: TokenScore, got: PositionScore, flip_margin: float) -> TurnDrift:
    """Drift at one golden position."""
    provider = dict(got.top)
    if got.token_logprob is not None:
        provider.setdefault(ref.token, got.token_logprob)
    kl = truncated_kl(dict(zip(ref.top_ids, ref.top_logprobs)), provider)
    pairs = logodds_errors(ref.top_ids, ref.top_logprobs, provider, with_reference=True)
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
    """Drift at each golden position of a turn that the provider scored, in order."""
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
