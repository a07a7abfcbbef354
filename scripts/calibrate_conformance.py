"""Reproduce verifier/data/golden/gpt-oss-conformance/fp32/calibration.json (and its data files).

    python scripts/calibrate_conformance.py [--saved]

Honest engines: the transformers reference in bf16 and vLLM-CPU 0.32.0 in bf16 (started here through
verifier.harness.vllm_cpu). Detection power is measured against the drift fault zoo; a passing run
may stop once it could have caught int4 experts, removed sinks, a wrong RoPE base and a swapped
checkpoint (about four minutes on 2 cores, plus vLLM's start). The same workflow as
`gpt-oss-verify golden calibrate` (verifier.calibrate).
"""

from __future__ import annotations

import sys
import time

from verifier.calibrate import Plan, calibrate_golden, report_lines
from verifier.drift.calibration import FILE
from verifier.harness import vllm_cpu
from verifier.paths import golden_dir
from verifier.testmodel.compact import default_checkpoint

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
MUST_DETECT = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint"]
ALSO = ["no-yarn", "sliding-window-off", "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature"]


def main(saved: bool = False) -> None:
    """`saved` (`--saved`): reuse the honest drift saved by the last calibration instead of starting vLLM;
    top-list truncations the saved data lacks are measured on the local honest reference (bf16)."""
    checkpoint = default_checkpoint()
    began = time.monotonic()
    if saved:
        result = calibrate_golden(Plan(golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"], saved=True,
                                       power_against=ALSO, must_detect=MUST_DETECT))
    else:
        with vllm_cpu.serve(checkpoint) as server:
            plan = Plan(golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"],
                        endpoints={server.url: f"vllm-cpu-{vllm_cpu.VERSION}-bf16"}, model=server.model,
                        power_against=ALSO, must_detect=MUST_DETECT)
            result = calibrate_golden(plan)
    for line in report_lines(result):
        print(line)
    print(f"calibration: {GOLDEN / FILE} ({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main(saved="--saved" in sys.argv[1:])
