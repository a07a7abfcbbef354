"""Statistics for the checks: divergences between distributions, trend tests, bootstrap intervals.

Every function is pure and has unit tests of its boundaries (tests/test_stats.py).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

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


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def rms(values: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else float("nan")


def bootstrap_ci(groups: Sequence[Sequence[float]], statistic=mean, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over all values, resampling whole groups.

    Groups are cases: tokens within a case are correlated, so cases are the unit of resampling.
    """
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        sample = [v for _ in groups for v in groups[rng.randrange(len(groups))]]
        stats.append(statistic(sample))
    stats.sort()
    lo = stats[int((1 - level) / 2 * (resamples - 1))]
    hi = stats[int((1 + level) / 2 * (resamples - 1))]
    return lo, hi


def midranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def page_trend_test(blocks: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Page's L test for an increasing trend across ordered treatments, exact.

    `blocks[b][j]` is the measurement of block b (a prompt) under treatment j (effort level, in
    the hypothesised increasing order). Returns (L, one-sided p-value): the probability under the
    null (within each block every ordering equally likely, ties kept as midranks) of an L at least
    as large as observed. The null distribution is the exact convolution of the per-block
    distributions.
    """
    if not blocks:
        return 0.0, 1.0
    weights = range(1, len(blocks[0]) + 1)
    dist: Counter = Counter({0: 1})
    observed = 0
    for block in blocks:
        ranks = [int(round(2 * r)) for r in midranks(block)]  # doubled: midranks are halves
        observed += sum(w * r for w, r in zip(weights, ranks))
        per_block = Counter(sum(w * r for w, r in zip(weights, perm)) for perm in itertools.permutations(ranks))
        total = sum(per_block.values())
        nxt: Counter = Counter()
        for a, pa in dist.items():
            for b, pb in per_block.items():
                nxt[a + b] += pa * pb / total
        dist = nxt
    p = sum(prob for value, prob in dist.items() if value >= observed)
    return observed / 2, min(1.0, p)


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
