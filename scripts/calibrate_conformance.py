"""Reproduce golden/gpt-oss-conformance/fp32/calibration.json (and its data file).

    python scripts/calibrate_conformance.py

Honest engines: the transformers reference in bf16 and vLLM-CPU 0.32.0 in bf16 (started here through
verifier.harness.vllm_cpu). Detection power is measured against the drift fault zoo; a passing run
may stop once it could have caught int4 experts, removed sinks, a wrong RoPE base and a swapped
checkpoint (about four minutes on 2 cores, plus vLLM's start).
"""

from __future__ import annotations

import subprocess
import sys

from verifier.harness import vllm_cpu
from verifier.testmodel.compact import default_checkpoint

MUST_DETECT = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint"]
ALSO = ["no-yarn", "sliding-window-off", "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature"]


def main() -> None:
    with vllm_cpu.serve(default_checkpoint()) as server:
        args = [sys.executable, "-m", "verifier.cli", "golden", "calibrate", "--honest-dtype", "bf16",
                "--honest-url", server.url, "--honest-label", f"vllm-cpu-{vllm_cpu.VERSION}-bf16",
                "--honest-model", server.model]
        args += [a for f in MUST_DETECT for a in ("--must-detect", f)]
        args += [a for f in ALSO for a in ("--power-against", f)]
        subprocess.run(args, check=True)


if __name__ == "__main__":
    main()
