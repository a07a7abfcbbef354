"""Drift thresholds calibrated on honest engines: `<golden dir>/calibration.json`.

Honest engines (the reference in another dtype, vLLM, any endpoint you trust) score every golden
turn. Their per-position drift is resampled into many simulated runs (turns drawn with replacement,
so the case mix varies as it does between suites), and the boundary of the running median relative
log-odds error at n scored positions is set so that, over all looks of a run, each honest engine's
runs cross it at most `alpha` of the time. That boundary is then widened by the engines' spread (the
ratio of the largest to the smallest honest median): honest engines differ from one another (their
accumulation order, kernels, bf16 paths), so an honest engine not in the calibration may sit as far
above the noisiest one seen as that one sits above the quietest. Without it a boundary fitted to the
engines at hand flags the next honest one; measured here, calibrating on half the cases and testing
on the other half gave 2.2% false positives without the widening and none with it.
The flip margin is the largest change of a golden top-1/top-2 gap any honest engine showed: no
honest engine can flip a top-1 whose golden margin is wider.
"""

from __future__ import annotations

import bisect
import json
import random
from pathlib import Path

from pydantic import BaseModel, Field

from verifier.errors import GoldenError

GRID = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
FILE = "calibration.json"
DATA_FILE = "calibration-data.json.gz"
GREEDY_DATA_FILE = "calibration-greedy-data.json.gz"
_FIELDS = ("kl_sum", "logodds_sq", "logodds_ref_sq", "logodds_n", "delta_sq", "delta_n", "margin_decrease_max",
           "relative")


class Boundary(BaseModel):
    """A running statistic's upper boundary as a step function of the positions scored."""

    positions: list[int]
    values: list[float]

    def at(self, n: int) -> float | None:
        """The boundary at n positions: that of the largest grid point <= n (None below the first)."""
        i = bisect.bisect_right(self.positions, n)
        return self.values[i - 1] if i else None


class EngineSummary(BaseModel):
    name: str
    turns: int
    positions: int
    mean_kl: float
    logodds_rms: float
    logodds_relative: float
    median_relative: float
    margin_decrease_max: float
    false_positive_rate: float = 0.0
    """Share of this engine's simulated runs that the final boundaries flag (in sample)."""


class Calibration(BaseModel):
    """Everything the drift checks decide with, and where it came from."""

    version: int = 1
    source: str
    """What this calibration is: honest engines and golden it was measured against."""
    golden_sha256: dict[str, str] = Field(default_factory=dict)
    """sha256 of each golden file the honest engines were scored against: a calibration is only valid
    for that golden (`load` refuses it once a golden file changes)."""
    alpha: float = 0.01
    """Family-wise false-positive rate per run that the boundary allows, for every honest engine."""
    flip_margin: float
    """The largest shrinking of a golden top-1/top-2 gap any honest engine showed (nats): a top-1 with a
    wider golden margin cannot flip honestly, so a flip there is drift, and golden text is stable there."""
    logodds_boundary: Boundary
    """Boundary of the running median relative log-odds error."""
    pass_after_positions: int | None = None
    """Positions after which a run that crossed nothing may stop and pass (None: score everything)."""
    honest: list[EngineSummary] = Field(default_factory=list)
    engine_spread: float = 1.0
    """Largest over smallest honest median relative log-odds error: the factor the bootstrap boundary
    was widened by (1.0 with a single honest engine, which then cannot speak for others)."""
    simulations: int = 0
    greedy: Calibration | None = None
    """For `drift.greedy_logprobs`: a chat request is rendered by the provider with its own date, not
    golden's, so the honest difference is larger. Measured with the reference scoring golden
    completions after prompts rendered with other dates (`date_shifted`)."""
    detection: dict = Field(default_factory=dict)
    """Per perturbation measured at calibration: power over all golden positions and the positions
    needed for 99% power. `pass_after_positions` is the largest of those, when every one is reached."""


DATE_SHIFTS = (1, 30, 365)
"""Days by which the honest date-shifted prompts of the greedy calibration move golden's date."""


def first_turns(turns: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The first turn of each case: what greedy chat decoding can be compared against."""
    return [(key, turn) for key, turn in turns if key.endswith("#1")]


def date_shifted(score, turns: list[tuple[str, object]], days: int, golden_date: str) -> list[list]:
    """Drift of a scorer on golden completions after each turn's request rendered with golden's date
    moved by `days`: what an honest chat provider, which renders today's date, shows."""
    import datetime

    from verifier import harmony
    from verifier.checks.drift import position_drifts

    date = (datetime.date.fromisoformat(golden_date) + datetime.timedelta(days=days)).isoformat()
    out = []
    for key, turn in turns:
        prompt = harmony.render_chat(turn.request, date)
        out.append(position_drifts(key, turn, score(prompt + turn.completion_token_ids, len(prompt)), float("inf")))
    return out


def golden_date(golden_dir: Path) -> str:
    """The conversation date the golden files were rendered with."""
    from verifier.golden import load as load_golden

    return load_golden(golden_files(golden_dir)[0]).provenance.date


def golden_files(golden_dir: Path) -> list[Path]:
    """The golden files of a golden directory (every `*.json` but the calibration)."""
    return [p for p in sorted(Path(golden_dir).glob("*.json")) if p.name != FILE]


def fingerprint(golden_dir: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in golden_files(golden_dir)}


def load(golden_dir: Path) -> Calibration | None:
    """The calibration of a golden directory; None if it has none. A calibration measured on other
    golden files than those present is an error, not a silent mismatch."""
    path = Path(golden_dir) / FILE
    if not path.is_file():
        return None
    try:
        result = Calibration.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as exc:
        raise GoldenError(f"{path}: not a calibration file ({exc.__class__.__name__})") from None
    now = fingerprint(golden_dir)
    changed = sorted(name for name, digest in result.golden_sha256.items() if now.get(name) != digest)
    if changed:
        raise GoldenError(f"{path} was measured on other golden files ({', '.join(changed)} changed); "
                          "run `gpt-oss-verify golden calibrate` again")
    return result


def save(calibration: Calibration, golden_dir: Path) -> Path:
    path = Path(golden_dir) / FILE
    path.write_text(calibration.model_dump_json(indent=2))
    return path


def save_data(honest: dict[str, list[list]], keys: list[str], golden_dir: Path, name: str = DATA_FILE) -> Path:
    """The honest engines' per-position drift, so the boundaries can be audited and recomputed."""
    import gzip

    rows = {name: [[[getattr(p, f) for f in _FIELDS] for p in turn] for turn in turns] for name, turns in honest.items()}
    path = Path(golden_dir) / name
    path.write_bytes(gzip.compress(json.dumps({"fields": _FIELDS, "turns": keys, "engines": rows}).encode(), mtime=0))
    return path


def load_data(golden_dir: Path, keys: list[str] | None = None, name: str = DATA_FILE) -> dict[str, list[list]]:
    """Honest per-position drift saved by `save_data`, as TurnDrift lists; with `keys`, the golden turns
    it must have been saved for (ValueError otherwise)."""
    import gzip

    from verifier.checks.drift import TurnDrift

    raw = json.loads(gzip.decompress((Path(golden_dir) / name).read_bytes()))
    if keys is not None and raw["turns"] != keys:
        raise ValueError("the saved data was measured on other golden turns")
    fields, out = raw["fields"], {}
    for name, turns in raw["engines"].items():
        out[name] = [[TurnDrift(key=key, positions=1, kl_max=row[0], **dict(zip(fields, row))) for row in turn]
                     for key, turn in zip(raw["turns"], turns)]
    return out


def _runs(turns: list[list], simulations: int, rng: random.Random):
    """Simulated runs of one engine, looked at after every position: turns drawn with replacement (a
    bootstrap over the case mix, so that boundaries allow for cases the calibration has not seen)."""
    for _ in range(simulations):
        order = [turns[rng.randrange(len(turns))] for _ in range(len(turns))]
        yield [position for turn in order for position in turn]


def _trajectory(positions: list) -> list[tuple[int, float]]:
    """(positions scored, running median relative log-odds error) after each position."""
    from verifier.checks.drift import RunningMedian

    out, n, median = [], 0, RunningMedian()
    for p in positions:
        n += p.positions
        for value in p.relative:
            median.add(value)
        out.append((n, median.value))
    return out


def _interval_maxima(trajectory: list[tuple[int, float]], grid: list[int]) -> list[float | None]:
    """Per grid interval [g_i, g_i+1), the largest value the trajectory reached in it (None if none)."""
    out: list[float | None] = [None] * len(grid)
    for n, value in trajectory:
        i = bisect.bisect_right(grid, n) - 1
        if i >= 0 and (out[i] is None or value > out[i]):
            out[i] = value
    return out


def _crossing_rate(maxima: list[list[float | None]], values: list[float]) -> float:
    crossed = sum(any(m[i] is not None and m[i] > values[i] for i in range(len(values))) for m in maxima)
    return crossed / len(maxima)


def _boundary(per_engine: dict[str, list[list[float | None]]], grid: list[int], alpha: float) -> Boundary:
    """The lowest boundary, quantile by quantile of the per-interval maxima pooled over engines, whose
    crossing rate over every look of every simulated run is <= alpha for each engine."""
    pooled = [m for maxima in per_engine.values() for m in maxima]
    for q in (0.99, 0.995, 0.998, 0.999, 1.0):
        values = []
        for i in range(len(grid)):
            seen = sorted(m[i] for m in pooled if m[i] is not None)
            values.append(seen[min(len(seen) - 1, int(q * len(seen)))])
        if all(_crossing_rate(maxima, values) <= alpha for maxima in per_engine.values()):
            break
    return Boundary(positions=grid, values=values)


def calibrate(honest: dict[str, list[list]], source: str, alpha: float = 0.01, simulations: int = 1000,
              seed: int = 0) -> Calibration:
    """The boundary from honest engines' drift: per engine, per turn, the per-position `TurnDrift`s."""
    from verifier.checks.drift import running

    rng = random.Random(seed)
    total = min(sum(p.positions for turn in turns for p in turn) for turns in honest.values())
    grid = [g for g in GRID if g <= total]
    per_engine = {name: [_interval_maxima(_trajectory(run), grid) for run in _runs(turns, simulations, rng)]
                  for name, turns in sorted(honest.items())}
    boundary = _boundary(per_engine, grid, alpha)
    stats = {name: running([p for turn in turns for p in turn]) for name, turns in sorted(honest.items())}
    medians = [s.median_relative for s in stats.values()]
    spread = max(medians) / min(medians) if min(medians) > 0 else 1.0
    boundary = Boundary(positions=boundary.positions, values=[v * spread for v in boundary.values])
    summaries = [EngineSummary(
        name=name, turns=len(honest[name]), positions=s.positions, mean_kl=s.mean_kl, logodds_rms=s.logodds_rms,
        logodds_relative=s.logodds_relative, median_relative=s.median_relative,
        margin_decrease_max=max(p.margin_decrease_max for turn in honest[name] for p in turn),
        false_positive_rate=_crossing_rate(per_engine[name], boundary.values)) for name, s in stats.items()]
    return Calibration(source=source, alpha=alpha, flip_margin=max(s.margin_decrease_max for s in summaries),
                       logodds_boundary=boundary, engine_spread=spread, honest=summaries,
                       simulations=simulations)


# -- collecting drift data ------------------------------------------------------------------------


def golden_turns(golden_dir: Path) -> list[tuple[str, object]]:
    """Every turn of every golden file in a golden directory: (key, GoldenTurn)."""
    from verifier.golden import load as load_golden

    out = []
    for path in golden_files(golden_dir):
        for record in load_golden(path).records:
            out += [(f"{path.stem}/{record.case_id}#{i}", turn) for i, turn in enumerate(record.turns, 1)]
    return out


def collect(score, turns: list[tuple[str, object]], flip_margin: float = float("inf")) -> list[list]:
    """Drift of a scorer, per turn, per position: `score(tokens, start)` returns one PositionScore per
    scored token."""
    from verifier.checks.drift import position_drifts

    out = []
    for key, turn in turns:
        tokens = turn.prompt_token_ids + turn.completion_token_ids
        out.append(position_drifts(key, turn, score(tokens, len(turn.prompt_token_ids)), flip_margin))
    return out


def engine_scorer(engine, k: int = 20):
    """A scorer backed by a local reference engine (no HTTP)."""
    from verifier.providers import PositionScore

    def score(tokens: list[int], start: int) -> list:
        return [PositionScore(token_logprob=s.logprob, top=dict(zip(s.top.ids, s.top.logprobs)))
                for s in engine.score(tokens, start, k)]

    return score


def provider_scorer(provider, k: int = 20):
    """A scorer backed by an endpoint's teacher forcing."""

    def score(tokens: list[int], start: int) -> list:
        return provider.score(tokens, start, k, {}).positions

    return score


def detection(turns: list[list], calibration: Calibration, simulations: int = 1000, seed: int = 1) -> dict:
    """How many scored positions the sequential test needs to flag a provider whose drift, per turn and
    position, is `turns` (collected with the calibrated flip margin): turns in random order, a look
    after every position. Returns power over all positions and the positions needed for 99% power."""
    from verifier.checks.drift import decide
    from verifier.verdict import Verdict

    rng = random.Random(seed)
    flagged_at = []
    for _ in range(simulations):
        order = list(turns)
        rng.shuffle(order)
        decision = decide([p for turn in order for p in turn], calibration, final=True)
        flagged_at.append(decision.at_positions if decision.verdict is Verdict.FAIL else None)
    hits = sorted(n for n in flagged_at if n is not None)
    power = len(hits) / simulations
    needed = hits[int(0.99 * simulations) - 1] if power >= 0.99 else None
    return {"power_all_positions": power, "positions_for_99pct_power": needed,
            "median_positions_to_flag": hits[len(hits) // 2] if hits else None}
