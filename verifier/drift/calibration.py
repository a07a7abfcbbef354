"""Drift thresholds calibrated on honest engines: `<golden dir>/calibration.json`.

Honest engines (the reference in another dtype, vLLM, any endpoint you trust) score every golden
turn. Their per-position drift is resampled into many simulated runs (turns drawn with replacement,
so the case mix varies as it does between suites), and the boundary of the running median relative
log-odds error at n scored positions is set so that, over all looks of a run, each honest engine's
runs cross it at most `alpha` of the time. That boundary is then widened: honest engines differ from one
another (their accumulation order, kernels, bf16 paths), and a boundary fitted to the engines at hand
flags the next honest one when it is louder than all of them. Measured on the shipped data: calibrated on
vLLM-CPU alone, the reference in bf16 (1.12x vLLM's median error) is flagged in 178 of 200 runs. The
widening is the larger of
- the engines' step up (`step_up`): the most any engine's median exceeds the loudest of the others, so an
  unseen engine may sit as far above the loudest seen as one seen engine sat above the rest. A quieter
  engine (fp32, fp16) does not widen it, as it would a ratio of the largest to the smallest median;
- a declared least widening (`MIN_WIDENING`, `GREEDY_MIN_WIDENING`): an honest engine may be that much louder
  than the loudest engine seen, even when the calibration saw one engine, or engines that happen to agree.
The flip margin is the largest change of a golden top-1/top-2 gap any honest engine showed: no
honest engine can flip a top-1 whose golden margin is wider.

Hosts cap their top lists (5 is common; some report the chosen token only), and the statistics of a
shorter list are not those of a longer one. So the honest engines' top-20 lists are also truncated to
each k of `TRUNCATIONS` (exactly what a top-k host reports: its k most probable tokens and the chosen
one) and calibrated again: `Calibration.by_k`, which `Calibration.for_k` picks from for the k a run got.

This module takes plain values (per-position drift, scorers as functions); the workflow that builds
scorers from engines and endpoints and writes the files is `verifier.calibrate`.
"""

from __future__ import annotations

import bisect
import datetime
import gzip
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from verifier import harmony
from verifier.drift.sequential import Boundary, Reach, RunningMedian, decide
from verifier.drift.statistics import TurnDrift, pool, position_drifts, running
from verifier.errors import GoldenError
from verifier.golden import GoldenTurn
from verifier.golden import load as load_golden
from verifier.scores import PositionScore
from verifier.verdict import Detection, Verdict

GRID = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
FILE = "calibration.json"
DATE_SHIFTED = "-date+"
"""Marks an honest greedy engine that saw prompts of another date (`reference-bf16-date+30d`): a chat host renders
its own date, so the greedy fallback is calibrated on such engines; a rule that knows the date leaves them out."""
DATA_FILE = "calibration-data.json.gz"
GREEDY_DATA_FILE = "calibration-greedy-data.json.gz"
FULL_K = 20
"""Top-list length of the main calibration: what the honest engines reported (no truncation)."""
TRUNCATIONS = (5, 1)
"""The capped top-list lengths calibrated besides FULL_K (`Calibration.by_k`)."""
_FIELDS = ("kl_sum", "logodds_sq", "logodds_ref_sq", "logodds_n", "delta_sq", "delta_n", "margin_decrease_max",
           "relative")
DEFAULT_ALPHA = 0.01
"""Family-wise false-positive rate per run: what calibration allows each honest engine, and the level
of the sampling test when a golden has no calibration."""
MIN_WIDENING = 1.2
"""The least factor a teacher-forcing calibration widens its boundary by (`calibrate`): an honest engine the
calibration never saw may be this much louder than the loudest one it saw. Measured on the data of 2026-12-01
(two engines), leaving an engine out: the reference bf16 (1.12x vLLM-CPU's median error), calibrated on vLLM-CPU
alone, is flagged in 178 of 200 runs unwidened, 9 of 200 widened 1.1x and none from 1.15x (top-20; 10 and 0 at
top-5; none from 1.1x at top-1, with the top-1 statistic of then). Every step costs power against subtle faults:
with those two engines FP8 KV needed 256 positions at their 1.115, 281 at 1.2 and 512 at 1.25 (top-20); the
calibration of 2026-12-02 (three engines) needs 398 at 1.2."""
PRECISION_STEP = 2.0
"""Engines more than this much quieter than the loudest honest engine are read as computing at a higher precision
(f32 activations beside bf16 ones: llama.cpp on a bf16 GGUF sits 3.3x below the bf16 engines at top-20); how far
they sit below says nothing of how far another engine of the loudest ones' precision may sit above, so `step_up`
leaves them out. The reading is by loudness, not declared: where the loudest engine alone is more than this above
every other one, nothing is left to step from and the step is 1.0 (the declared least widening applies). In the
shipped greedy top-1 calibration llama-server sits 2.09x above the reference's date-shifted bf16, so that
calibration is widened by the least (1.5), not by 2.09."""
GREEDY_MIN_WIDENING = 1.5
"""The same for the greedy-logprobs fallback, whose honest engines differ more (a chat host renders its own
date; llama-server's greedy logprobs sit 1.39x above the reference's date-shifted ones at top-20). Left out,
llama-server is flagged in 4 of 200 runs at the reference engines' own step up (1.46) and none from 1.5x."""
DATE_SHIFTS = (1, 30, 365)
"""Days by which the honest date-shifted prompts of the greedy calibration move golden's date."""

Scorer = Callable[[list[int], int], list[PositionScore]]
"""`score(tokens, start)`: one PositionScore per token of tokens[start:] (teacher forcing)."""
Turns = list[tuple[str, GoldenTurn]]
"""Golden turns with their keys, `<suite>/<case>#<turn>`."""
Drift = list[list[TurnDrift]]
"""Per turn, the per-position drift of one engine."""
ByK = dict[int, Drift]
"""One engine's drift with its top list as reported (FULL_K) and truncated to each of TRUNCATIONS."""


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


GREEDY_ANSWER_WIDENING = 2.0
"""How far beyond the largest margin an honest engine's own greedy answer took a token may go before it is a departure
(`GreedyAnswers.margin`). Declared, as `MIN_WIDENING` is, and checked by leaving each engine out
(`benchmarks/detection.py`, `no_logprobs.greedy_margin_rules`, on answers after golden's own prompts): there the
three honest engines' largest margins are 0.115 (reference bf16), 0.075 (vLLM-CPU bf16) and 0 (llama.cpp, which
computes in f32), and calibrated on the other two, 1.5x flags the reference in bf16, 2x flags none. The shipped
calibration adds each engine's answers a month on (vLLM-CPU 0.096), against which 1.5x would hold the reference in
bf16 too: one more engine's spread, not a reason to narrow a margin set from three engines."""
MIN_ANSWER_ENGINES = 2
"""Distinct honest engines whose greedy answers `GreedyAnswers.margin` needs: one engine cannot say how far another
may stray."""


class AnswerMargins(BaseModel):
    """One honest engine's greedy answers to golden's free first turns, scored by the reference."""

    name: str
    answers: int
    positions: int
    largest_margin: float
    """The most the reference's top-1 log-probability exceeded that of a token the engine chose (nats)."""


class GreedyAnswers(BaseModel):
    """What honest engines' own greedy answers look like to the reference (`verifier.calibrate.answer_margins`).

    A greedy engine takes the reference's top-1 unless its rounding reorders a near-tie, so a token it chose never
    trails the reference's top-1 by much: by at most `largest_margin` on the engines measured. The teacher-forced
    flip margin bounds the same thing from the other side (the widest top-1/top-2 gap rounding closed anywhere), and
    is far looser: 1.106 nats on the conformance checkpoint against 0.115 here."""

    source: str
    """When and on what the answers were measured."""
    widening: float = GREEDY_ANSWER_WIDENING
    engines: list[AnswerMargins] = Field(default_factory=list)

    @property
    def margin(self) -> float | None:
        """`widening` x the largest margin of any engine's answers; None with fewer than `MIN_ANSWER_ENGINES`
        engines that scored any position."""
        measured = [e for e in self.engines if e.positions > 0]
        if len({engine_of(e.name) for e in measured}) < MIN_ANSWER_ENGINES:
            return None
        return self.widening * max(e.largest_margin for e in measured)


class Calibration(BaseModel):
    """Everything the drift checks decide with, and where it came from."""

    version: int = 1
    source: str
    """What this calibration is: honest engines and golden it was measured against."""
    golden_sha256: dict[str, str] = Field(default_factory=dict)
    """sha256 of each golden file the honest engines were scored against: a calibration is only valid
    for that golden (`load` refuses it once a golden file changes)."""
    alpha: float = DEFAULT_ALPHA
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
    """The honest engines' step up (`step_up`): the most one engine's median relative log-odds error
    exceeds the loudest of the others within `PRECISION_STEP` (1.0 with a single honest engine, which then
    cannot speak for others, or where the loudest is more than `PRECISION_STEP` above all the rest). Files
    written before `widening` existed hold the ratio of the largest to the smallest median here."""
    widening: float = 1.0
    """The factor the bootstrap boundary was widened by: the larger of `engine_spread` and the declared least
    widening (`MIN_WIDENING`, `GREEDY_MIN_WIDENING`, or for a truncation the full calibration's widening)."""
    simulations: int = 0
    greedy: Calibration | None = None
    """For `drift.greedy_logprobs`: a chat request is rendered by the provider with its own date, not
    golden's, so the honest difference is larger. Measured with the reference scoring golden
    completions after prompts rendered with other dates (`date_shifted`), and with honest chat
    endpoints' greedy logprobs aligned with golden (`aligned_by_k`)."""
    greedy_answers: GreedyAnswers | None = None
    """For `drift.reference_scored`: honest engines' own greedy answers to golden's free first turns, scored by
    the reference as a host's answers are; sets the margin a greedy token may take (`GreedyAnswers.margin`)."""
    detection: dict[str, Detection] = Field(default_factory=dict)
    """Per perturbation measured at calibration: power over all golden positions and the positions
    needed for 99% power. `pass_after_positions` is the largest of those, when every one is reached."""
    top_k: int = FULL_K
    """The provider top-list length these figures hold for (1: the chosen token's log-probability only)."""
    by_k: dict[int, Calibration] = Field(default_factory=dict)
    """The same calibration for providers that report a shorter top list, by its length: the honest
    engines' lists truncated to k; the flip margin is this one's (a flip shows at any k)."""

    @model_validator(mode="before")
    @classmethod
    def _widening_of_older_files(cls, data):
        """A calibration written before `widening` existed was widened by its `engine_spread` (then the ratio of
        the largest to the smallest honest median)."""
        if isinstance(data, dict) and "widening" not in data and "engine_spread" in data:
            data = {**data, "widening": data["engine_spread"]}
        return data

    def reach(self, positions: int) -> Reach:
        """The calibrated faults a run that scored `positions` positions flags in 99% of runs, and the others."""
        needed = {fault: d.positions_for_99pct_power for fault, d in sorted(self.detection.items())}
        return Reach(positions=positions, flagged=[f for f, n in needed.items() if n is not None and n <= positions],
                     missed={f: n for f, n in needed.items() if n is None or n > positions})

    @property
    def truncation(self) -> int | None:
        """The top-list length to truncate a provider's lists to before these figures apply (None: as reported)."""
        return None if self.top_k >= FULL_K else self.top_k

    def for_k(self, k: int) -> Calibration:
        """The calibration for a provider that reports `k` top entries per position: that of the largest
        calibrated length <= k (k is then truncated to it); the shortest for k < 1."""
        options = {self.top_k: self, **self.by_k}
        fitting = [length for length in options if length <= k]
        return options[max(fitting)] if fitting else options[min(options)]


# -- the files of a golden directory ----------------------------------------------------------------


def golden_files(golden_dir: Path) -> list[Path]:
    """The golden files of a golden directory (every `*.json` but the calibration)."""
    return [p for p in sorted(Path(golden_dir).glob("*.json")) if p.name != FILE]


def golden_turns(golden_dir: Path) -> Turns:
    """Every turn of every golden file in a golden directory: (key, GoldenTurn)."""
    out = []
    for path in golden_files(golden_dir):
        for record in load_golden(path).records:
            out += [(f"{path.stem}/{record.case_id}#{i}", turn) for i, turn in enumerate(record.turns, 1)]
    return out


def first_turns(turns: Turns) -> Turns:
    """The first turn of each case: what greedy chat decoding can be compared against."""
    return [(key, turn) for key, turn in turns if key.endswith("#1")]


def golden_date(golden_dir: Path) -> str:
    """The conversation date the golden files were rendered with."""
    return load_golden(golden_files(golden_dir)[0]).provenance.date


def fingerprint(golden_dir: Path) -> dict[str, str]:
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


def data_file(name: str, k: int) -> str:
    """The data file of the honest drift at top-list length k (`name` itself for FULL_K)."""
    return name if k == FULL_K else name.replace(".json.gz", f"-k{k}.json.gz")


def save_data(honest: dict[str, Drift], keys: list[str], golden_dir: Path, name: str = DATA_FILE) -> Path:
    """The honest engines' per-position drift, so the boundaries can be audited and recomputed."""
    rows = {name: [[[getattr(p, f) for f in _FIELDS] for p in turn] for turn in turns] for name, turns in honest.items()}
    path = Path(golden_dir) / name
    path.write_bytes(gzip.compress(json.dumps({"fields": _FIELDS, "turns": keys, "engines": rows}).encode(), mtime=0))
    return path


def load_data(golden_dir: Path, keys: list[str] | None = None, name: str = DATA_FILE) -> dict[str, Drift]:
    """Honest per-position drift saved by `save_data`, as TurnDrift lists; with `keys`, the golden turns
    it must have been saved for (ValueError otherwise)."""
    raw = json.loads(gzip.decompress((Path(golden_dir) / name).read_bytes()))
    if keys is not None and raw["turns"] != keys:
        raise ValueError("the saved data was measured on other golden turns")
    fields, out = raw["fields"], {}
    for engine, turns in raw["engines"].items():
        out[engine] = [[TurnDrift(key=key, positions=1, kl_max=row[0], **dict(zip(fields, row))) for row in turn]
                       for key, turn in zip(raw["turns"], turns)]
    return out


# -- collecting drift -------------------------------------------------------------------------------


def _by_k(key: str, turn: GoldenTurn, positions: list[PositionScore], flip_margin: float, out: ByK) -> None:
    """Append one turn's drift at the full top list and at each truncation to `out`."""
    out.setdefault(FULL_K, []).append(position_drifts(key, turn, positions, flip_margin))
    for k in TRUNCATIONS:
        out.setdefault(k, []).append(position_drifts(key, turn, positions, flip_margin, k))


def collect_by_k(score: Scorer, turns: Turns, flip_margin: float = float("inf")) -> ByK:
    """Drift of a scorer on golden prompts and completions, per turn, per position, at each top-list
    length (one scoring: the shorter lists are truncations of the full one)."""
    out: ByK = {}
    for key, turn in turns:
        tokens = turn.prompt_token_ids + turn.completion_token_ids
        _by_k(key, turn, score(tokens, len(turn.prompt_token_ids)), flip_margin, out)
    return out


def collect(score: Scorer, turns: Turns, flip_margin: float = float("inf")) -> Drift:
    """Drift of a scorer on golden prompts and completions, per turn, per position (full top list)."""
    return collect_by_k(score, turns, flip_margin)[FULL_K]


def shifted_date(date: str, days: int) -> str:
    """An ISO date moved by `days`."""
    return (datetime.date.fromisoformat(date) + datetime.timedelta(days=days)).isoformat()


def shifted_prompt(turn: GoldenTurn, days: int, golden_date: str) -> list[int]:
    """The turn's prompt with `golden_date` moved by `days`: golden's own prompt at 0."""
    if not days:
        return turn.prompt_token_ids
    return harmony.render_chat(turn.request, shifted_date(golden_date, days))


def date_shifted_by_k(score: Scorer, turns: Turns, days: int, golden_date: str) -> ByK:
    """Drift of a scorer on golden completions after each turn's request rendered with golden's date
    moved by `days`: what an honest chat provider, which renders today's date, shows; at each top-list
    length."""
    out: ByK = {}
    for key, turn in turns:
        prompt = shifted_prompt(turn, days, golden_date)
        _by_k(key, turn, score(prompt + turn.completion_token_ids, len(prompt)), float("inf"), out)
    return out


def date_shifted(score: Scorer, turns: Turns, days: int, golden_date: str) -> Drift:
    """`date_shifted_by_k` at the full top list."""
    return date_shifted_by_k(score, turns, days, golden_date)[FULL_K]


def aligned_by_k(aligned: list[tuple[str, GoldenTurn, list[PositionScore]]]) -> ByK:
    """Drift of positions already aligned with golden turns (key, the golden turn at the positions scored,
    the positions: greedy chat logprobs through `drift.align.greedy_positions`), at each top-list length."""
    out: ByK = {}
    for key, turn, positions in aligned:
        _by_k(key, turn, positions, float("inf"), out)
    return out


# -- the boundary -----------------------------------------------------------------------------------


def _runs(turns: Drift, simulations: int, rng: random.Random) -> Iterator[list[TurnDrift]]:
    """Simulated runs of one engine, looked at after every position: turns drawn with replacement (a
    bootstrap over the case mix, so that boundaries allow for cases the calibration has not seen)."""
    for _ in range(simulations):
        order = [turns[rng.randrange(len(turns))] for _ in range(len(turns))]
        yield [position for turn in order for position in turn]


def _trajectory(positions: list[TurnDrift]) -> list[tuple[int, float]]:
    """(positions scored, running median relative log-odds error) after each position."""
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


def step_up(medians: dict[str, float]) -> float:
    """The most an honest engine's median exceeds the loudest of the other engines (`engine_of`: date-shifted
    runs of one engine are that engine, at its loudest), among the engines within `PRECISION_STEP` of the
    loudest; 1.0 with fewer than two such engines or none louder."""
    loudest: dict[str, float] = {}
    for name, median in medians.items():
        loudest[engine_of(name)] = max(median, loudest.get(engine_of(name), 0.0))
    top = max(loudest.values(), default=0.0)
    peers = {engine: value for engine, value in loudest.items() if value > 0 and value * PRECISION_STEP >= top}
    steps = [value / max(v for e, v in peers.items() if e != engine) for engine, value in peers.items()
             if len(peers) > 1]
    return max([1.0, *steps])


def calibrate(honest: dict[str, Drift], source: str, alpha: float = DEFAULT_ALPHA, simulations: int = 1000,
              seed: int = 0, min_widening: float = MIN_WIDENING) -> Calibration:
    """The boundary from honest engines' drift: per engine, per turn, the per-position `TurnDrift`s.
    `min_widening`: widen by at least this factor (`MIN_WIDENING`; `GREEDY_MIN_WIDENING` for the greedy
    fallback; the full calibration's widening for a truncation, measured on fewer honest engines than it)."""
    rng = random.Random(seed)
    total = min(sum(p.positions for turn in turns for p in turn) for turns in honest.values())
    grid = [g for g in GRID if g <= total]
    per_engine = {name: [_interval_maxima(_trajectory(run), grid) for run in _runs(turns, simulations, rng)]
                  for name, turns in sorted(honest.items())}
    boundary = _boundary(per_engine, grid, alpha)
    stats = {name: running([p for turn in turns for p in turn]) for name, turns in sorted(honest.items())}
    spread = step_up({name: s.median_relative for name, s in stats.items()})
    widening = max(spread, min_widening)
    boundary = Boundary(positions=boundary.positions, values=[v * widening for v in boundary.values])
    summaries = [EngineSummary(
        name=name, turns=len(honest[name]), positions=s.positions, mean_kl=s.mean_kl, logodds_rms=s.logodds_rms,
        logodds_relative=s.logodds_relative, median_relative=s.median_relative,
        margin_decrease_max=max(p.margin_decrease_max for turn in honest[name] for p in turn),
        false_positive_rate=_crossing_rate(per_engine[name], boundary.values)) for name, s in stats.items()]
    return Calibration(source=source, alpha=alpha, flip_margin=max(s.margin_decrease_max for s in summaries),
                       logodds_boundary=boundary, engine_spread=spread, widening=widening, honest=summaries,
                       simulations=simulations)


# -- detection power --------------------------------------------------------------------------------


def truncated(full: Calibration, honest: dict[str, Drift], k: int, source: str, simulations: int) -> Calibration:
    """The calibration at top-list length k from honest drift truncated to k: the boundary fitted to it
    (widened by at least `full`'s widening), `full`'s flip margin and alpha."""
    out = calibrate(honest, source, full.alpha, simulations, min_widening=full.widening)
    return out.model_copy(update={"flip_margin": full.flip_margin, "top_k": k})


def detection(turns: Drift, calibration: Calibration, simulations: int = 1000, seed: int = 1) -> Detection:
    """How many scored positions the sequential test needs to flag a provider whose drift, per turn and
    position, is `turns` (collected with the calibrated flip margin): turns in random order, a look
    after every position. Returns power over all positions and the positions needed for 99% power."""
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
    return Detection(power_all_positions=power, positions_for_99pct_power=needed,
                     median_positions_to_flag=hits[len(hits) // 2] if hits else None)


class HeldOut(BaseModel):
    """Honest false positives out of sample: boundaries calibrated on some cases, runs over the others."""

    honest_runs: int
    false_positives: int
    fpr: float
    flagged_at_positions: list[int]
    """Positions at which the flagged runs were flagged, ascending."""


def held_out_false_positives(honest: dict[str, Drift], keys: list[str], runs: int, splits: int = 3, seed: int = 7,
                             simulations: int = 1000, min_widening: float = MIN_WIDENING) -> HeldOut:
    """Calibrate on half the cases, simulate honest runs on the other half, both ways round, for
    `splits` random halvings. A run is a random subset (at least two turns) of the held-out turns in
    random order, looked at after every turn as `drift.teacher_forced` does. `keys` name the turns
    of `honest` (`<suite>/<case>#<turn>`). `min_widening` as `calibrate`'s (a truncation's halves widened
    by at least the full calibration's widening, as `truncated` widens it)."""
    cases = sorted({key.split("#")[0] for key in keys})
    rng = random.Random(seed)
    flagged: list[int | None] = []
    for _ in range(splits):
        rng.shuffle(cases)
        halves = [set(cases[: len(cases) // 2]), set(cases[len(cases) // 2 :])]
        for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
            calib = calibrate({name: _of_cases(data, keys, train) for name, data in honest.items()}, "half",
                              simulations=simulations, min_widening=min_widening)
            for data in honest.values():
                flagged += _honest_runs(_of_cases(data, keys, test), calib, runs, rng)
    return _held_out(flagged)


def engine_of(name: str) -> str:
    """The implementation an honest engine's name stands for: its date-shifted runs are the same engine."""
    return name.split(DATE_SHIFTED)[0]


def shifted_name(name: str, days: int) -> str:
    """An honest engine's name for its run on prompts of golden's date moved by `days` (`name` itself at 0)."""
    return f"{name}{DATE_SHIFTED}{days}d" if days else name


def kept_answers(measured: list[AnswerMargins], earlier: GreedyAnswers | None) -> list[AnswerMargins]:
    """The engines of `earlier` greedy answers that `measured` did not measure again (by `engine_of`: an engine's
    date-shifted twins are replaced with it)."""
    again = {engine_of(m.name) for m in measured}
    return [e for e in (earlier.engines if earlier else []) if engine_of(e.name) not in again]


Prepare = Callable[[dict[str, Drift], dict[str, Drift]], tuple[dict[str, Drift], dict[str, Drift]]]
"""`prepare(calibration engines, engines left out)`: both as the decision should read them (a candidate statistic,
`verifier.drift.candidates.transform`); the identity by default."""


def leave_one_engine_out(honest: dict[str, Drift], runs: int, seed: int = 7, simulations: int = 1000,
                         min_widening: float = MIN_WIDENING, prepare: Prepare | None = None) -> dict[str, HeldOut]:
    """Per honest engine (`engine_of`): calibrate on the others alone, as `calibrate` does (their step up or
    `MIN_WIDENING` widens the boundary), and simulate `runs` runs of the engine left out over all its turns, as
    `held_out_false_positives` does: the false-positive rate of an engine the calibration never saw.
    Empty with fewer than two engines. `prepare`: see `Prepare`."""
    engines = sorted({engine_of(name) for name in honest})
    if len(engines) < 2:
        return {}
    rng, out = random.Random(seed), {}
    for engine in engines:
        seen = {name: data for name, data in honest.items() if engine_of(name) != engine}
        unseen = {name: data for name, data in sorted(honest.items()) if engine_of(name) == engine}
        if prepare is not None:
            seen, unseen = prepare(seen, unseen)
        calib = calibrate(seen, f"without {engine}", simulations=simulations, min_widening=min_widening)
        flagged = [at for data in unseen.values() for at in _honest_runs(data, calib, runs, rng)]
        out[engine] = _held_out(flagged)
    return out


def single_engine_out_of_sample(honest: dict[str, Drift], keys: list[str], runs: int, **kwargs) -> dict[str, HeldOut]:
    """Per honest engine (`engine_of`): `held_out_false_positives` with that engine's data alone, as a
    user who calibrates on one engine would."""
    return {engine: held_out_false_positives({n: d for n, d in honest.items() if engine_of(n) == engine}, keys, runs,
                                             **kwargs)
            for engine in sorted({engine_of(name) for name in honest})}


def _honest_runs(turns: Drift, calib: Calibration, runs: int, rng: random.Random) -> list[int | None]:
    """Per simulated run (a random subset of at least two of `turns` in random order), the positions at
    which it was flagged, None if it passed."""
    pooled = [pool("turn", turn) for turn in turns]
    out = []
    for _ in range(runs):
        order = list(pooled)
        rng.shuffle(order)
        decision = decide(order[: rng.randint(2, len(order))], calib, final=True)
        out.append(decision.at_positions if decision.verdict is Verdict.FAIL else None)
    return out


def _held_out(flagged: list[int | None]) -> HeldOut:
    at = sorted(n for n in flagged if n is not None)
    return HeldOut(honest_runs=len(flagged), false_positives=len(at), fpr=len(at) / len(flagged) if flagged else 0.0,
                   flagged_at_positions=at)


def _of_cases(data: Drift, keys: list[str], cases: set[str]) -> Drift:
    return [turn for key, turn in zip(keys, data) if key.split("#")[0] in cases]
