"""Detection power of reference-scored provider output (`drift.reference_scored`): drift with no log-probabilities.

    python benchmarks/provider_tokens.py [--samples 4] [--faults a,b] [--out benchmarks/results/provider_tokens.json]

Engines (no servers: the same engines the built-in provider serves): the honest reference in bf16 and faulty
ones (perturbed checkpoints, bf16). Each answers every golden first turn whose tokens are its own free choice
(no response format, no forced tool choice) greedily, and each drift-suite first turn `--samples` times at
temperature 1. The fp32 reference (golden's engine) scores every answer's content tokens on the answer's own
prefix, as `gpt-oss-verify score` does; then per engine:

- greedy: positions scored, decisive departures (margin above `departure_margin`) and the rate of
  them per position, and the positions after which a provider departing at that rate has departed once with
  99% probability (`greedy_tokens_for_power`); honest FPR: the share of honest answers with a departure;
- sampled: positions, the mean shift of the rank statistic (u - 1/2) per position and its mean variance, the
  positions for 99% power of the two-sided z-test at the calibration's α (`tokens_for_power`), and the
  measured z of all the engine's samples pooled; beside it the log-likelihood statistic's z (not decided on);
  honest FPR: the share of disjoint runs of honest samples (`--run-samples`
  answers each) the test flags;
- mean_kl: KL(engine || reference) per sampled position, averaged (nats), the information a fault leaves
  in each token: read the positions needed against it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verifier import harmony  # noqa: E402
from verifier.calibrate import ANSWER_SLACK, free_first_turns, hosted_answer, mean_kl, scored_answers  # noqa: E402
from verifier.drift import calibration as cal  # noqa: E402
from verifier.drift.calibration import AnswerMargins, GreedyAnswers  # noqa: E402
from verifier.drift.provider_tokens import (  # noqa: E402
    departure_margin,
    departures,
    greedy_tokens_for_power,
    likelihood_test,
    sampled_test,
    tokens_for_power,
)
from verifier.golden import GoldenTurn  # noqa: E402
from verifier.harness import llama_cpp, vllm_cpu  # noqa: E402
from verifier.harness.local import LocalServer  # noqa: E402
from verifier.paths import golden_dir  # noqa: E402
from verifier.reference import perturb  # noqa: E402
from verifier.reference.engine import Engine  # noqa: E402
from verifier.testmodel.compact import default_checkpoint  # noqa: E402

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
FAULTS = ["swapped-checkpoint", "int4-experts", "rope-theta", "no-sinks"]


class Greedy(BaseModel):
    answers: int
    positions: int
    departures: int
    answers_with_departure: int
    departure_rate: float
    tokens_for_99pct_power: int | None
    largest_margin: float
    answer_margins: list[list[float]] = Field(default_factory=list)
    """Per answer, its positive reference margins (nats, largest first): what `margin_rules` reads."""


class Sampled(BaseModel):
    answers: int
    positions: int
    shift_per_token: float
    variance_per_token: float
    z_all_samples: float
    likelihood_z_all_samples: float
    """The log-likelihood statistic's z on the same samples (`likelihood_test`), for comparison."""
    tokens_for_99pct_power: int | None
    runs: int = 0
    runs_flagged: int = 0


class EngineFigures(BaseModel):
    greedy: Greedy
    sampled: Sampled
    mean_kl: float | None = None
    """KL(engine || reference) per sampled position, averaged (nats)."""


class Results(BaseModel):
    golden: str
    departure_margin: float
    alpha: float
    samples_per_case: int
    engines: dict[str, EngineFigures] = Field(default_factory=dict)
    honest_fpr: dict[str, float] = Field(default_factory=dict)
    """Honest engines: share of answers (greedy) and of sample runs (sampled) flagged."""
    seconds: float = 0.0


def sampled_first_turns(turns) -> list[tuple[str, GoldenTurn]]:
    """The drift suite's first turns: what the sampled test draws temperature-1 answers of."""
    return [(key, t) for key, t in cal.first_turns(turns) if key.startswith("drift/")]


def honest_fpr(honest: EngineFigures) -> dict[str, float]:
    """An honest engine's share of answers (greedy) and of sample runs (sampled) flagged."""
    return {"greedy_answers": honest.greedy.answers_with_departure / max(honest.greedy.answers, 1),
            "sampled_runs": honest.sampled.runs_flagged / max(honest.sampled.runs, 1)}


def answer(engine: Engine | ServerEngine, turn: GoldenTurn, temperature: float, seed: int
           ) -> tuple[list[int], list[int]]:
    """An engine's answer to a golden first turn, as `verifier.rescore` sees a host's (`calibrate.hosted_answer`: parsed,
    written back, re-tokenised): the tokens after golden's prompt and the positions it scores. Answers stop at golden's
    length + `ANSWER_SLACK`, as a run's greedy-logprobs and sampling requests ask; a host's chat answers may run to
    the request's `max_tokens` (the calibration's budget, `calibrate.answer_budget`), but honest greedy answers after
    golden's prompt end within golden's length (2542 positions at either budget), so the cap only bounds the
    faults' rambling (a wrong RoPE base would otherwise write up to 8192 tokens an answer)."""
    limit = len(turn.completion_token_ids) + ANSWER_SLACK
    gen = engine.generate(turn.prompt_token_ids, limit, harmony.ASSISTANT_STOPS, temperature=temperature, seed=seed)
    return hosted_answer(turn.prompt_token_ids, gen.tokens)


@dataclass
class Generated:
    tokens: list[int] = field(default_factory=list)


class ServerEngine:
    """An honest server answering golden's token-id prompts as `answer` asks a local engine (`llama_cpp.generate`,
    `vllm_cpu.generate`: greedy, or temperature 1 with every truncation off)."""

    def __init__(self, server: LocalServer, kind: str):
        generators = {"llama.cpp": llama_cpp.generate, "vllm": vllm_cpu.generate}
        if kind not in generators:
            raise ValueError(f"unknown server kind {kind!r}; known: {', '.join(generators)}")
        self.server, self.generator = server, generators[kind]

    def generate(self, prompt: list[int], max_tokens: int, stop: tuple[int, ...], temperature: float = 0.0,
                 seed: int | None = None) -> Generated:
        return Generated(tokens=self.generator(self.server, prompt, max_tokens, stop, temperature, seed))


def figures(engine: Engine | ServerEngine, reference: Engine, greedy_turns, sampled_turns, samples: int, margin: float,
            alpha: float, run_samples: int) -> EngineFigures:
    greedy_items = [(key, *answer(engine, t, 0.0, 0)) for key, t in greedy_turns]
    sample_items = [(f"{key}/{i}", *answer(engine, t, 1.0, 1000 + i)) for key, t in sampled_turns for i in range(samples)]
    g = scored_answers(reference, greedy_items, False)
    s = scored_answers(reference, sample_items, True)
    found = departures(g, margin)
    positions = sum(len(x.margin) for x in g)
    rate = len(found) / positions if positions else 0.0
    test = sampled_test(s)
    shift, variance = test.shift / max(test.positions, 1), test.variance / max(test.positions, 1)
    order = list(range(len(s)))
    random.Random(0).shuffle(order)
    runs = [[s[i] for i in order[j : j + run_samples]] for j in range(0, len(order) - run_samples + 1, run_samples)]
    return EngineFigures(
        greedy=Greedy(answers=len(g), positions=positions, departures=len(found),
                      answers_with_departure=len({d.key for d in found}), departure_rate=rate,
                      tokens_for_99pct_power=greedy_tokens_for_power(rate),
                      largest_margin=max((m for x in g for m in x.margin), default=0.0),
                      answer_margins=[sorted((m for m in x.margin if m > 0), reverse=True) for x in g]),
        sampled=Sampled(answers=len(s), positions=test.positions, shift_per_token=shift, variance_per_token=variance,
                        z_all_samples=test.z, likelihood_z_all_samples=likelihood_test(s).z,
                        tokens_for_99pct_power=tokens_for_power(shift, variance, alpha),
                        runs=len(runs), runs_flagged=sum(sampled_test(r).p_value() < alpha for r in runs)),
        mean_kl=mean_kl(engine, reference, [(tokens, positions) for _, tokens, positions in sample_items])
        if isinstance(engine, Engine) else None)


MARGIN_WIDENINGS = (1.25, 1.5, 2.0, 3.0)
"""Widenings of the honest engines' largest greedy margin tried as a departure rule (`margin_rules`)."""


class LeftOut(BaseModel):
    threshold: float
    """The widening times the largest margin of the other honest engines' own greedy answers."""
    answers: int
    answers_flagged: int
    """Answers of the engine left out with a token beyond the threshold."""


class MarginFault(BaseModel):
    positions: int
    above: int
    """Greedy positions whose token the reference ranked below its top-1 by more than the threshold."""
    answers_flagged: int
    tokens_for_99pct_power: int | None
    """Greedy positions after which one position beyond the threshold has come with 99% probability."""


class MarginRule(BaseModel):
    """A greedy token whose reference margin exceeds `widening` times the largest margin any honest engine's own greedy
    answer took fails the run (Token-DiFR's idea; `GreedyAnswers.margin`). At `GREEDY_ANSWER_WIDENING` this is the
    shipped rule, wherever it is below the teacher-forced flip margin (`departure_margin`); other widenings are
    shown beside it. Each honest engine is left out in turn: the threshold from the others alone."""

    widening: float
    threshold: float
    """Over every honest engine: what a fault is judged against."""
    leave_one_engine_out: dict[str, LeftOut]
    faults: dict[str, MarginFault]


def margin_rules(honest: dict[str, Greedy], faults: dict[str, Greedy], closed: float,
                 widenings: tuple[float, ...] = MARGIN_WIDENINGS) -> list[MarginRule]:
    """Each widening of the honest engines' largest own-greedy margin as a departure rule: the honest engines left out
    one at a time (the threshold from the others alone) and the faults against all of them."""
    return [margin_rule(honest, faults, w, closed) for w in widenings]


def shipped_margin(honest: dict[str, Greedy], widening: float, closed: float) -> float:
    """The departure margin a calibration would set from these honest engines' greedy answers (`GreedyAnswers`),
    never above `closed`, the widest gap honest engines closed (`departure_margin` without greedy answers)."""
    engines = [AnswerMargins(name=n, answers=g.answers, positions=g.positions, largest_margin=g.largest_margin)
               for n, g in honest.items()]
    margin = GreedyAnswers(source="", widening=widening, engines=engines).margin
    return closed if margin is None else min(closed, margin)


def margin_rule(honest: dict[str, Greedy], faults: dict[str, Greedy], widening: float, closed: float) -> MarginRule:
    def flagged(g: Greedy, threshold: float) -> int:
        return sum(bool(row) and row[0] > threshold for row in g.answer_margins)

    left_out = {}
    for name, g in honest.items():
        threshold = shipped_margin({n: o for n, o in honest.items() if n != name}, widening, closed)
        left_out[name] = LeftOut(threshold=threshold, answers=g.answers, answers_flagged=flagged(g, threshold))
    threshold = shipped_margin(honest, widening, closed)
    found = {}
    for name, g in faults.items():
        above = sum(m > threshold for row in g.answer_margins for m in row)
        found[name] = MarginFault(positions=g.positions, above=above, answers_flagged=flagged(g, threshold),
                                  tokens_for_99pct_power=greedy_tokens_for_power(above / g.positions
                                                                                 if g.positions else 0.0))
    return MarginRule(widening=widening, threshold=threshold, leave_one_engine_out=left_out, faults=found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4, help="temperature-1 answers per drift first turn")
    parser.add_argument("--run-samples", type=int, default=8, help="samples per simulated honest run")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "provider_tokens.json")
    args = parser.parse_args()
    started = time.monotonic()
    checkpoint, calibration = default_checkpoint(), cal.load(GOLDEN)
    turns = cal.golden_turns(GOLDEN)
    greedy_turns = free_first_turns(turns)
    sampled_turns = sampled_first_turns(turns)
    reference = Engine(checkpoint, "fp32")
    results = Results(golden=str(GOLDEN), departure_margin=departure_margin(calibration), alpha=calibration.alpha,
                      samples_per_case=args.samples)
    engines = {"reference-bf16": lambda: Engine(checkpoint, "bf16")}
    engines |= {fault: (lambda f=fault: perturb.faulty_engine(checkpoint, f)) for fault in args.faults.split(",")}
    for name, make in engines.items():
        found = figures(make(), reference, greedy_turns, sampled_turns, args.samples, results.departure_margin,
                        calibration.alpha, args.run_samples)
        results.engines[name] = found
        print(f"{name:20} greedy {found.greedy.departures}/{found.greedy.positions} "
              f"(99%: {found.greedy.tokens_for_99pct_power}) sampled shift {found.sampled.shift_per_token:+.4f} "
              f"z {found.sampled.z_all_samples:+.1f} (99%: {found.sampled.tokens_for_99pct_power}) "
              f"kl {found.mean_kl:.4f}", flush=True)
    results.honest_fpr = honest_fpr(results.engines["reference-bf16"])
    results.seconds = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(results.model_dump_json(indent=2))
    print(f"{results.seconds} s; written to {args.out}; honest: {statistics.fmean(results.honest_fpr.values()):.3f}")


if __name__ == "__main__":
    main()
