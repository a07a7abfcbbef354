"""Verdicts and outcomes: the vocabulary every check, result and report shares."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    """The evidence could not be gathered (transport failure, unusable response): not a conformance fail."""
    SKIP = "skip"
    """The check does not apply, or the provider offers nothing to check it with."""


class Documented(BaseModel):
    """A model whose attribute docstrings become descriptions in the exported JSON Schema."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class DriftSequence(Documented):
    """Per-position drift along one golden turn (one sequence), in completion order."""

    key: str
    """The golden turn, `case#turn`."""
    kl: list[float]
    """Truncated KL(golden || provider) over golden's top-K at each scored position (nats)."""
    delta: list[float | None]
    """Δℓ: the provider's log-probability of the golden token minus golden's (None: not reported)."""
    relative: list[float | None]
    """Relative log-odds error at each position (None: no token in common with golden's top-K)."""


class Detection(Documented):
    """How fast the sequential test flags one fault, measured at calibration (`verifier.drift.calibration.detection`)."""

    power_all_positions: float
    """Share of simulated runs over every golden position that flag it."""
    positions_for_99pct_power: int | None
    """Scored positions after which 99% of runs have flagged it (None: never reached)."""
    median_positions_to_flag: int | None
    """Median scored positions at which it is flagged (None: mostly not flagged)."""


class DriftFigure(Documented):
    """What the drift plots of the report are drawn from: per-position series, the decision statistic
    with its calibrated boundary, and the calibration's detection budget."""

    kind: Literal["drift"] = "drift"
    """Discriminates the figure types."""
    method: str
    """`teacher forcing` or `greedy logprobs`."""
    sequences: list[DriftSequence] = Field(default_factory=list)
    """Scored golden turns in scoring order (cut to `MAX_FIGURE_POSITIONS` positions in all)."""
    running_median: list[float] = Field(default_factory=list)
    """Running median of the relative log-odds error after each scored position, in scoring order:
    the statistic the sequential test compares with the boundary."""
    boundary_positions: list[int] = Field(default_factory=list)
    """Grid of the calibrated boundary: it applies from each of these positions scored to the next."""
    boundary_values: list[float] = Field(default_factory=list)
    """Boundary of the running median at each grid position."""
    flip_margin: float | None = None
    """Golden top-1/top-2 margin (nats) above which a flipped top-1 is drift."""
    decided_at_positions: int = 0
    """Scored positions when the test decided."""
    pass_after_positions: int | None = None
    """Positions after which a run that crossed nothing may stop and pass (None: scores everything)."""
    detection: dict[str, Detection] = Field(default_factory=dict)
    """Per fault measured at calibration: positions needed to flag it."""
    truncated: bool = False
    """True when the series were cut to `MAX_FIGURE_POSITIONS`."""


class EffortGroup(Documented):
    """One prompt asked at every effort level: reasoning tokens per level, the provider's and golden's."""

    group: str
    """The suite's name for the prompt (its cases differ only in effort)."""
    provider: dict[str, int]
    """Effort level -> the provider's reasoning length (o200k tokens)."""
    golden: dict[str, int]
    """Effort level -> the reference's reasoning length (o200k tokens)."""


class EffortFigure(Documented):
    """Reasoning length by effort level, provider and golden, prompt by prompt."""

    kind: Literal["effort"] = "effort"
    """Discriminates the figure types."""
    levels: list[str]
    """Effort levels, lowest first."""
    groups: list[EffortGroup] = Field(default_factory=list)
    """Every prompt asked at the three levels, by name."""


MAX_FIGURE_POSITIONS = 2048
"""Positions kept in a drift figure's series (result.json stays small; the statistics use every one)."""

Figure = Annotated[DriftFigure | EffortFigure, Field(discriminator="kind")]


class Outcome(Documented):
    """One check applied to one piece of evidence."""

    verdict: Verdict
    """pass, fail, error (the evidence could not be gathered) or skip (does not apply)."""
    message: str
    """One line: what was found."""
    suite: str | None = None
    """Suite the evidence came from (None in results written before this field: their messages begin `[suite]`)."""
    case_id: str | None = None
    """Suite case the evidence came from (None for run-wide outcomes)."""
    variant: str | None = None
    """API variant (e.g. `chat`, `responses-stream`) or evidence kind (`score`, `prompt-ids`, `greedy-logprobs`,
    `sampling`) of the exchange judged."""
    turn: int | None = None
    """Turn of the tool loop, from 1."""
    expected: Any = None
    """What the reference (or the calibration) expects, in the check's own terms."""
    observed: Any = None
    """What the provider showed, in the check's own terms (strings cut to `verifier.result.MAX_TEXT`)."""
    exchange: str | None = None
    """Key of the exchange this outcome judged, in `RunResult.evidence` (None for run-wide outcomes)."""
    figure: Figure | None = None
    """Plot data for the report (drift series, reasoning lengths by effort), where the check has any."""

    @property
    def line(self) -> str:
        """The message as reports show it: `[suite] message`."""
        return f"[{self.suite}] {self.message}" if self.suite else self.message
