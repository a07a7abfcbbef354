"""Detection power of the drift checks: provider tokens needed to flag each fault, and honest FPR.

    python benchmarks/detection.py [--vllm] [--runs 200] [--out benchmarks/results/detection.json]

Every golden turn of the conformance checkpoint (all suites, fp32 golden) is teacher-forced through
honest engines (reference bf16; vLLM-CPU bf16 with --vllm) and through faulty ones (perturbed
checkpoints and numeric faults, in bf16 like a real deployment). Then:

- tokens needed: the sequential test of `drift.teacher_forced`, with the shipped calibration, looks
  after every scored position of simulated runs (golden turns in random order); the figure is the
  number of positions by which 99% of runs flag the fault (FPR <= 1% is the calibration's design);
- honest FPR, out of sample: calibrate on the turns of half the golden cases, then count how many of
  `--runs` simulated honest runs over the other half cross a boundary; the other way round; for three
  random halvings (so 2 x 3 x runs x engines honest runs).
Runs are resamples of turn order and case subsets over real engine scores: a deterministic engine
scoring the same tokens twice returns the same numbers, so order and cases are what varies.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verifier import calibration as cal  # noqa: E402
from verifier.checks.drift import decide  # noqa: E402
from verifier.paths import golden_dir  # noqa: E402
from verifier.reference import perturb  # noqa: E402
from verifier.reference.engine import Engine  # noqa: E402
from verifier.testmodel.compact import default_checkpoint  # noqa: E402
from verifier.verdict import Verdict  # noqa: E402

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
FAULTS = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint", "no-yarn", "sliding-window-off",
          "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature"]


def honest_scores(turns, checkpoint: Path, with_vllm: bool, vllm_url: str | None) -> dict[str, list]:
    from verifier.harness import vllm_cpu
    from verifier.providers import Provider

    honest = {"reference-bf16": cal.collect(cal.engine_scorer(Engine(checkpoint, "bf16")), turns)}
    if vllm_url:
        provider = Provider(vllm_url, "gpt-oss-conformance")
        honest[f"vllm-cpu-{vllm_cpu.VERSION}-bf16"] = cal.collect(cal.provider_scorer(provider), turns)
    elif with_vllm:
        with vllm_cpu.serve(checkpoint) as server:
            provider = Provider(server.url, server.model)
            honest[f"vllm-cpu-{vllm_cpu.VERSION}-bf16"] = cal.collect(cal.provider_scorer(provider), turns)
            provider.close()
    return honest


def out_of_sample_fpr(honest: dict[str, list], turns, runs: int, splits: int = 3, seed: int = 7) -> dict:
    """Calibrate on half the cases, simulate honest runs on the other half, both ways round, for
    `splits` random halvings. A run is a random subset (at least two turns) in random order, looked
    at after every turn as `drift.teacher_forced` does."""
    from verifier.checks.drift import pool

    cases = sorted({key.split("#")[0] for key, _ in turns})
    rng = random.Random(seed)
    flagged, total, at = 0, 0, []
    for _ in range(splits):
        rng.shuffle(cases)
        halves = [set(cases[: len(cases) // 2]), set(cases[len(cases) // 2 :])]
        for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
            pick = lambda data, keep: [t for (key, _), t in zip(turns, data) if key.split("#")[0] in keep]  # noqa: E731
            calib = cal.calibrate({name: pick(data, train) for name, data in honest.items()}, "half", simulations=1000)
            for data in honest.values():
                held_out = [pool("turn", turn) for turn in pick(data, test)]
                for _ in range(runs):
                    order = list(held_out)
                    rng.shuffle(order)
                    decision = decide(order[: rng.randint(2, len(order))], calib, final=True)
                    if decision.verdict is Verdict.FAIL:
                        flagged, at = flagged + 1, at + [decision.at_positions]
                    total += 1
    return {"honest_runs": total, "false_positives": flagged, "fpr": flagged / total,
            "flagged_at_positions": sorted(at)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm", action="store_true", help="also score with vLLM-CPU (honest), started here")
    parser.add_argument("--vllm-url", help="…or with a vLLM-CPU already serving the conformance checkpoint")
    parser.add_argument("--runs", type=int, default=200, help="honest runs per engine per half")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "detection.json")
    args = parser.parse_args()
    started = time.monotonic()
    checkpoint = default_checkpoint()
    turns = cal.golden_turns(GOLDEN)
    calibration = cal.load(GOLDEN)
    if calibration is None:
        sys.exit("no calibration.json next to the golden; run `gpt-oss-verify golden calibrate` first")
    honest = honest_scores(turns, checkpoint, args.vllm, args.vllm_url)
    results = {"golden": str(GOLDEN), "positions": sum(len(t.scores) for _, t in turns), "turns": len(turns),
               "calibration": calibration.source, "faults": {}, "honest": {}}
    for name, data in honest.items():
        results["honest"][name] = cal.detection(data, calibration)
    results["honest_fpr_out_of_sample"] = out_of_sample_fpr(honest, turns, args.runs)
    for fault in FAULTS:
        data = cal.collect(cal.engine_scorer(perturb.faulty_engine(checkpoint, fault)), turns, calibration.flip_margin)
        results["faults"][fault] = cal.detection(data, calibration)
        print(f"{fault:28} {results['faults'][fault]}", flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({"honest": results["honest"], "fpr": results["honest_fpr_out_of_sample"]}, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
