"""The `golden calibrate` workflow: score golden with honest engines, fit the drift boundaries, measure
detection power against faulty engines, and write `calibration.json` (and the honest data) into the
golden directory.

The statistics are `verifier.drift.calibration`, which takes plain values; this module builds the
scorers they need from local reference engines and OpenAI-compatible endpoints. The CLI
(`gpt-oss-verify golden calibrate`), `scripts/calibrate_conformance.py` and
`benchmarks/detection.py` all run it from here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from verifier.drift import calibration as cal
from verifier.drift.calibration import Calibration, Drift, Scorer, Turns
from verifier.errors import GoldenError, UsageError
from verifier.paths import REPO_ROOT
from verifier.providers import Provider
from verifier.reference import perturb
from verifier.reference.engine import Engine
from verifier.scores import PositionScore
from verifier.verdict import Detection

SCORE_TOP_K = 20
GREEDY_DTYPES = ("fp32", "bf16")
"""Reference dtypes whose date-shifted prompts are the honest engines of the greedy calibration."""


class Plan(BaseModel):
    """What to calibrate, against which honest engines, and which faults to measure detection of."""

    golden: Path
    """The golden directory to calibrate (its calibration.json and data files are written there)."""
    checkpoint: Path
    """Checkpoint of the local honest engines and of the perturbed (faulty) ones."""
    honest_dtypes: list[str] | None = None
    """Local reference dtypes counted as honest; None: bf16, unless endpoints are given."""
    device: str = "cpu"
    """Device of the local honest engines."""
    endpoints: dict[str, str] = Field(default_factory=dict)
    """Honest endpoints: base URL -> the engine's name in the calibration."""
    model: str | None = None
    """Model name at the honest endpoints."""
    power_against: list[str] = Field(default_factory=list)
    """Faults whose detection power to measure."""
    must_detect: list[str] = Field(default_factory=list)
    """Faults a passing run must have had the power to catch (sets `pass_after_positions`)."""
    simulations: int = 2000
    """Simulated honest runs per engine."""
    saved: bool = False
    """Reuse the honest drift saved by the last calibration instead of scoring again."""


def engine_scorer(engine: Engine, k: int = SCORE_TOP_K) -> Scorer:
    """A scorer backed by a local reference engine (no HTTP)."""

    def score(tokens: list[int], start: int) -> list[PositionScore]:
        return [PositionScore(token_logprob=s.logprob, top=dict(zip(s.top.ids, s.top.logprobs)))
                for s in engine.score(tokens, start, k)]

    return score


def provider_scorer(provider: Provider, k: int = SCORE_TOP_K) -> Scorer:
    """A scorer backed by an endpoint's teacher forcing."""

    def score(tokens: list[int], start: int) -> list[PositionScore]:
        return provider.score(tokens, start, k, {}).positions

    return score


def honest_drift(turns: Turns, plan: Plan) -> dict[str, Drift]:
    """Every honest engine's drift on the golden turns: local reference dtypes, then endpoints."""
    dtypes = plan.honest_dtypes if plan.honest_dtypes is not None else ([] if plan.endpoints else ["bf16"])
    honest = {}
    for dtype in dtypes:
        honest[f"reference-{dtype}"] = cal.collect(engine_scorer(Engine(plan.checkpoint, dtype, plan.device)), turns)
    for url, label in plan.endpoints.items():
        provider = Provider(url, plan.model)
        honest[label] = cal.collect(provider_scorer(provider), turns)
        provider.close()
    return honest


def detection_power(turns: Turns, checkpoint: Path, faults: list[str], calibration: Calibration
                    ) -> dict[str, Detection]:
    """Positions needed to flag each local perturbation (checkpoint and numeric faults of the reference)."""
    out = {}
    for fault in faults:
        drift = cal.collect(engine_scorer(perturb.faulty_engine(checkpoint, fault)), turns, calibration.flip_margin)
        out[fault] = cal.detection(drift, calibration)
    return out


def greedy_calibration(turns: Turns, plan: Plan) -> Calibration:
    """The calibration of the greedy-logprobs fallback: the reference (fp32 and bf16) scoring golden
    first turns after prompts rendered with other dates, as chat providers render their own."""
    first, date = cal.first_turns(turns), cal.golden_date(plan.golden)
    keys = [key for key, _ in first]
    if plan.saved:
        honest = _saved(plan.golden, keys, cal.GREEDY_DATA_FILE)
    else:
        honest = {}
        for dtype in GREEDY_DTYPES:
            scorer = engine_scorer(Engine(plan.checkpoint, dtype))
            for days in cal.DATE_SHIFTS:
                honest[f"reference-{dtype}-date+{days}d"] = cal.date_shifted(scorer, first, days, date)
    cal.save_data(honest, keys, plan.golden, cal.GREEDY_DATA_FILE)
    names = ", ".join(sorted(honest))
    greedy = cal.calibrate(honest, f"honest date-shifted prompts [{names}] against first turns of the golden",
                           simulations=plan.simulations)
    for fault in plan.must_detect:
        drift = cal.date_shifted(engine_scorer(perturb.faulty_engine(plan.checkpoint, fault)), first, 30, date)
        greedy.detection[fault] = cal.detection(drift, greedy)
    return greedy


def calibrate_golden(plan: Plan) -> Calibration:
    """Calibrate a golden directory; writes calibration.json and the honest data files there."""
    turns = cal.golden_turns(plan.golden)
    if not turns:
        raise GoldenError(f"no golden files in {plan.golden}")
    if plan.endpoints and not plan.model and not plan.saved:
        raise UsageError("--honest-model is required with --honest-url")
    keys = [key for key, _ in turns]
    honest = _saved(plan.golden, keys, cal.DATA_FILE) if plan.saved else honest_drift(turns, plan)
    result = cal.calibrate(honest, f"honest engines [{', '.join(sorted(honest))}] against {_shown(plan.golden)}",
                           simulations=plan.simulations)
    result.golden_sha256 = cal.fingerprint(plan.golden)
    cal.save_data(honest, keys, plan.golden)
    faults = sorted(set(plan.power_against) | set(plan.must_detect))
    result.detection = detection_power(turns, plan.checkpoint, faults, result)
    needed = [result.detection[f].positions_for_99pct_power for f in plan.must_detect]
    if needed and all(n is not None for n in needed):
        result.pass_after_positions = max(n for n in needed if n is not None)
    result.greedy = greedy_calibration(turns, plan)
    cal.save(result, plan.golden)
    return result


def _saved(golden: Path, keys: list[str], name: str) -> dict[str, Drift]:
    try:
        return cal.load_data(golden, keys, name)
    except (OSError, ValueError, KeyError) as exc:
        raise GoldenError(f"no usable saved calibration data in {golden} ({exc}); calibrate without --saved") from None


def _shown(golden: Path) -> Path:
    """The golden directory as the calibration's source names it: relative to the repository if inside."""
    where = golden.resolve()
    return where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where


def report_lines(result: Calibration) -> list[str]:
    """What a calibration found, a line per figure, as the CLI prints it."""
    lines = [f"flip margin {result.flip_margin:.3f} nats; median relative log-odds boundary "
             f"{[round(v, 5) for v in result.logodds_boundary.values]} at {result.logodds_boundary.positions}"]
    lines += [f"honest {engine.name}: median relative log-odds {engine.median_relative:.4f}, mean KL "
              f"{engine.mean_kl:.1e}, false-positive rate {engine.false_positive_rate:.3f}" for engine in result.honest]
    lines += [f"{name}: {figures.model_dump()}" for name, figures in result.detection.items()]
    if (greedy := result.greedy) is not None:
        detection = {name: figures.model_dump() for name, figures in greedy.detection.items()}
        lines.append(f"greedy fallback: boundary {[round(v, 5) for v in greedy.logodds_boundary.values]}, flip margin "
                     f"{greedy.flip_margin:.3f}; detection {detection}")
    return lines
