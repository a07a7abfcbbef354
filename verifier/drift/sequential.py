"""The drift decision: one sequential test, looked at after every chunk of scored positions.

The decision statistic is the running *median* of the per-position relative log-odds error: honest
bf16 engines have rare large outliers (an MoE routing flip changes one position's logits a lot) but
a stable median, while a faulty engine moves the whole distribution. A run fails as soon as the
median crosses the calibrated boundary at the positions scored so far, or a top-1 flips where
golden is decisive (margin >= the calibrated flip margin). It passes at the end, or early once it
has scored `pass_after_positions` (enough to have caught every fault calibration must detect).

`SequentialTest` is that rule. The runner feeds it turn by turn to stop scoring once it decides,
the drift checks feed it the same turns for the verdict, and calibration feeds it positions to
measure detection power; `decide` runs it over a list at once.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel, Field

from verifier.drift.statistics import Running, TurnDrift, running
from verifier.verdict import Verdict


class Boundary(BaseModel):
    """A running statistic's upper boundary as a step function of the positions scored."""

    positions: list[int]
    values: list[float]

    def at(self, n: int) -> float | None:
        """The boundary at n positions: that of the largest grid point <= n (None below the first)."""
        i = bisect.bisect_right(self.positions, n)
        return self.values[i - 1] if i else None


class Thresholds(Protocol):
    """What the test decides with; a `Calibration` (or its greedy part) provides them."""

    @property
    def logodds_boundary(self) -> Boundary: ...

    @property
    def flip_margin(self) -> float: ...

    @property
    def pass_after_positions(self) -> int | None: ...


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


class Reach(BaseModel):
    """Which calibrated faults a run that scored this many positions would have flagged in 99% of runs
    (`Calibration.reach`): a pass says nothing about the others."""

    positions: int
    flagged: list[str] = Field(default_factory=list)
    """Faults that 99% of the calibration's simulated runs flag within `positions`."""
    missed: dict[str, int | None] = Field(default_factory=dict)
    """The others, with the positions 99% of runs need (None: not reached over every golden position)."""

    def sentence(self) -> str:
        """One clause for a verdict message ('' without calibrated faults)."""
        if not self.missed:
            return f"; a run this long flags {', '.join(self.flagged)} in 99% of runs" if self.flagged else ""
        missed = ", ".join(f"{f} ({n} needed)" if n is not None else f"{f} (under 99% even over every golden position)"
                           for f, n in self.missed.items())
        caught = f"flags {', '.join(self.flagged)} in 99% of runs but " if self.flagged else ""
        return f"; at {self.positions} positions this test {caught}could miss {missed}"


class DriftSummary(BaseModel):
    """What a drift check records as `observed`: the statistics when the test decided."""

    method: str
    """`teacher forcing` or `greedy logprobs`."""
    positions: int = 0
    mean_kl: float = 0.0
    max_kl: float = 0.0
    logodds_rms: float = 0.0
    logodds_relative: float = 0.0
    median_relative: float
    """Median relative log-odds error: the decision statistic."""
    delta_rms: float = 0.0
    confident_flips: int = 0
    decided_at_positions: int | None = None
    """Scored positions when the test decided (None in older results: then `positions`)."""
    calibration: str | None = None
    """The calibration's `source`."""
    reach: Reach | None = None
    """On a pass, the calibrated faults this run could and could not have detected (None on a fail, and in older
    results)."""


class DriftLimits(BaseModel):
    """What a drift check records as `expected`: the calibrated limits it decided with."""

    logodds_boundary: Boundary
    flip_margin: float


class Decision(BaseModel):
    verdict: Verdict | None
    """FAIL or PASS once decided, None while undecided."""
    reason: str
    at_positions: int
    """Scored positions when the decision was taken."""
    stats: Running

    def summary(self, method: str, calibration: str) -> DriftSummary:
        return DriftSummary(method=method, **self.stats.model_dump(), decided_at_positions=self.at_positions,
                            calibration=calibration)


class SequentialTest:
    """The drift decision over chunks (turns of a run, or positions in calibration) fed one at a time.

    Once it has failed, later chunks change nothing: the failure stands at the positions it was seen.
    """

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.chunks: list[TurnDrift] = []
        self.positions = 0
        self.flips = 0
        self.median = RunningMedian()
        self.failure: Decision | None = None

    def add(self, chunk: TurnDrift) -> None:
        self.extend([chunk])

    def extend(self, chunks: Iterable[TurnDrift]) -> None:
        """Look after each chunk."""
        if self.failure is not None:
            return
        boundary = self.thresholds.logodds_boundary
        for chunk in chunks:  # kept lean: calibration runs this millions of times
            self.chunks.append(chunk)
            self.positions += chunk.positions
            self.flips += chunk.confident_flips
            for value in chunk.relative:
                self.median.add(value)
            limit = boundary.at(self.positions)
            if self.flips or (limit is not None and self.median.value > limit):
                self.failure = self._failure()
                return

    @property
    def enough(self) -> bool:
        """Scored enough positions to pass early (`pass_after_positions`)."""
        after = self.thresholds.pass_after_positions
        return bool(self.chunks) and after is not None and self.positions >= after

    @property
    def decided(self) -> bool:
        """Failed, or passed early: no more chunks are needed."""
        return self.failure is not None or self.enough

    def decision(self, final: bool) -> Decision:
        """The decision so far. `final`: no more chunks will come, so a run that crossed nothing passes."""
        if self.failure is not None:
            return self.failure
        now = running(self.chunks)
        if final or self.enough:
            return Decision(verdict=Verdict.PASS, at_positions=now.positions, stats=now,
                            reason=f"within honest noise after {now.positions} positions (median relative log-odds "
                                   f"error {now.median_relative:.4f}, mean KL {now.mean_kl:.1e})")
        return Decision(verdict=None, reason="undecided", at_positions=now.positions, stats=now)

    def _failure(self) -> Decision:
        """The failing decision at the positions scored so far, with the reasons spelled out."""
        now = running(self.chunks)
        reasons = []
        if now.confident_flips:
            reasons.append(f"{now.confident_flips} top-1 disagreements where golden is decisive "
                           f"(margin >= {self.thresholds.flip_margin:.2f} nats)")
        limit = self.thresholds.logodds_boundary.at(now.positions)
        if limit is not None and now.median_relative > limit:
            reasons.append(f"median relative log-odds error {now.median_relative:.4f} > {limit:.4f} "
                           f"(mean KL {now.mean_kl:.1e})")
        return Decision(verdict=Verdict.FAIL, reason="; ".join(reasons), at_positions=now.positions, stats=now)


def decide(chunks: Iterable[TurnDrift], thresholds: Thresholds, final: bool) -> Decision:
    """The sequential test over `chunks`, looking after each one."""
    test = SequentialTest(thresholds)
    test.extend(chunks)
    return test.decision(final)
