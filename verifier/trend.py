"""Page's L test for an increasing trend (used by the effort checks), exact, with its helpers.

Pure functions with unit tests of their boundaries (tests/test_stats.py).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; NaN for no values."""
    return sum(values) / len(values) if values else float("nan")


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
