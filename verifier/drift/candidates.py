"""Candidate per-position drift statistics, compared side by side on the same data (`benchmarks/detection.py`).

The shipped statistic is the per-position relative log-odds error (`statistics.position_drift`), pooled by a running
median. A candidate replaces that one number per position and keeps everything else: the same running median, the
same sequential boundary fitted to the same honest engines (`calibration.calibrate`, widened as shipped), the same
simulated runs. So the figures differ only by what each position contributes. Confident top-1 flips are left out
of every candidate's decision (they would flag a coarse fault under any statistic), so power is the statistic's own.

Candidates:
- `relative-logodds` (shipped): sqrt(sum of squared log-odds errors / sum of squared golden log-odds) over golden
  ranks 2..K;
- `rms-logodds`: the same errors unscaled, sqrt(sum of squared errors / their count) (nats);
- `truncated-kl`: KL(golden || provider) over golden's top-K (`truncated_kl`), every position;
- `standardised`: the relative error divided by the honest engines' own relative error at that golden position
  (their root mean square, floored at the `SCALE_FLOOR_QUANTILE` of all such scales): golden positions where
  honest engines disagree much (near-ties, large logits) weigh less. The scale is what a calibration already
  saved beside the golden (`calibration-data.json.gz`). An honest engine's own error must not set its own scale,
  so each engine the boundary is fitted to is standardised by the other calibration engines alone
  (cross-fitted); a provider, by all of them. A scale from fewer engines is noisier, so the calibration engines'
  ratios spread a little wider than a provider's would: the boundary errs loose (less power, fewer false
  positives). With two calibration engines each is scaled by one; it needs three engines to be read at all in
  leave-one-engine-out (`MIN_ENGINES`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from verifier.drift.calibration import Drift, engine_of
from verifier.drift.statistics import TurnDrift

SCALE_FLOOR_QUANTILE = 0.1
"""Per-position honest scales below this quantile of all of them are raised to it: where every honest engine
happened to agree almost exactly, a scale near zero would turn any difference into a huge z."""

MIN_ENGINES = 3
"""Honest engines (`engine_of`) the standardised candidate is compared with: left out one at a time, two remain,
each scaled by the other."""

PerPosition = Callable[[TurnDrift], float | None]


def _relative(p: TurnDrift) -> float | None:
    return p.relative[0] if p.relative else None


def _rms(p: TurnDrift) -> float | None:
    return math.sqrt(p.logodds_sq / p.logodds_n) if p.logodds_n else None


def _kl(p: TurnDrift) -> float | None:
    return p.kl_sum if p.positions else None


PLAIN: dict[str, PerPosition] = {"relative-logodds": _relative, "rms-logodds": _rms, "truncated-kl": _kl}
STANDARDISED = "standardised"
NAMES = [*PLAIN, STANDARDISED]


def names(honest: dict[str, Drift]) -> list[str]:
    """The candidates that can be compared on these honest engines (`MIN_ENGINES` for the standardised one)."""
    return NAMES if len({engine_of(n) for n in honest}) >= MIN_ENGINES else list(PLAIN)


def as_values(drift: Drift, values: list[list[float | None]]) -> Drift:
    """`drift` with each position's decision value replaced (None: the position adds none) and its top-1 flips
    dropped, so `calibration.calibrate`, `detection` and `leave_one_engine_out` read the candidate."""
    return [[p.model_copy(update={"relative": [] if v is None else [v], "confident_flips": 0})
             for p, v in zip(turn, row, strict=True)] for turn, row in zip(drift, values, strict=True)]


def plain(drift: Drift, value: PerPosition) -> Drift:
    """`drift` decided by `value` of each position."""
    return as_values(drift, [[value(p) for p in turn] for turn in drift])


def honest_scale(honest: list[Drift]) -> list[list[float]]:
    """Per golden position, the root mean square of the honest engines' relative errors there (engines without a
    value there left out; positions none has a value at get the floor), floored at `SCALE_FLOOR_QUANTILE`."""
    rows = []
    for turns in zip(*honest, strict=True):
        row = []
        for positions in zip(*turns, strict=True):
            seen = [p.relative[0] for p in positions if p.relative]
            row.append(math.sqrt(sum(v * v for v in seen) / len(seen)) if seen else 0.0)
        rows.append(row)
    positive = sorted(v for row in rows for v in row if v > 0)
    floor = positive[int(SCALE_FLOOR_QUANTILE * (len(positive) - 1))] if positive else 1.0
    return [[max(v, floor) for v in row] for row in rows]


def standardised(drift: Drift, scale: list[list[float]]) -> Drift:
    """`drift` decided by its relative error over `scale` at each position."""
    return as_values(drift, [[p.relative[0] / s if p.relative else None for p, s in zip(turn, row, strict=True)]
                             for turn, row in zip(drift, scale, strict=True)])


def transform(name: str, honest: dict[str, Drift], others: dict[str, Drift]) -> tuple[dict[str, Drift], dict[str, Drift]]:
    """Candidate `name` of honest calibration engines (cross-fitted where the candidate standardises) and of other
    engines (faults, engines left out of the calibration: standardised by all of `honest`)."""
    if name in PLAIN:
        return ({n: plain(d, PLAIN[name]) for n, d in honest.items()},
                {n: plain(d, PLAIN[name]) for n, d in others.items()})
    if name != STANDARDISED:
        raise ValueError(f"unknown candidate statistic {name!r}; known: {', '.join(NAMES)}")
    if len({engine_of(n) for n in honest}) < 2:
        raise ValueError("the standardised statistic needs two honest engines or more (each is scaled by the others)")
    fitted = {n: standardised(d, honest_scale([o for m, o in honest.items() if engine_of(m) != engine_of(n)]))
              for n, d in honest.items()}
    scale = honest_scale(list(honest.values()))
    return fitted, {n: standardised(d, scale) for n, d in others.items()}
