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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verifier.calibrate import Plan, detection_power, honest_drift  # noqa: E402
from verifier.drift import calibration as cal  # noqa: E402
from verifier.harness import vllm_cpu  # noqa: E402
from verifier.paths import golden_dir  # noqa: E402
from verifier.testmodel.compact import default_checkpoint  # noqa: E402

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
FAULTS = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint", "no-yarn", "sliding-window-off",
          "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature"]
VLLM_LABEL = f"vllm-cpu-{vllm_cpu.VERSION}-bf16"


def honest_scores(turns, checkpoint: Path, with_vllm: bool, vllm_url: str | None) -> dict[str, list]:
    """The reference in bf16, and vLLM-CPU in bf16 when asked (at `vllm_url`, or started here)."""
    plan = Plan(golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"], model="gpt-oss-conformance")
    if vllm_url:
        return honest_drift(turns, plan.model_copy(update={"endpoints": {vllm_url: VLLM_LABEL}}))
    if with_vllm:
        with vllm_cpu.serve(checkpoint) as server:
            return honest_drift(turns, plan.model_copy(update={"endpoints": {server.url: VLLM_LABEL},
                                                               "model": server.model}))
    return honest_drift(turns, plan)


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
        results["honest"][name] = cal.detection(data, calibration).model_dump()
    held_out = cal.held_out_false_positives(honest, [key for key, _ in turns], args.runs)
    results["honest_fpr_out_of_sample"] = held_out.model_dump()
    for fault in FAULTS:
        results["faults"][fault] = detection_power(turns, checkpoint, [fault], calibration)[fault].model_dump()
        print(f"{fault:28} {results['faults'][fault]}", flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({"honest": results["honest"], "fpr": results["honest_fpr_out_of_sample"]}, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
