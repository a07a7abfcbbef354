"""Measure a v2 conformance checkpoint against issue 16's targets, on every turn of the v2 suites.

    python -m verifier.testmodel.v2.evaluate --weights FILE --suites DIR [--out report.json]

Each case and every later step of its tool loop, rendered canonically and as vLLM renders it, greedy-decoded in
fp32 and in bf16. Reported (and written as JSON):
- `as_taught`: turns whose text is one of the oracle's taught realisations (near-tie alternatives included);
- margins (top-1 minus top-2 log-probability, unforced positions): the share of free-text positions (analysis and
  final content) within 1 nat, and the smallest margin at structural positions (headers, stops) and in tool
  arguments;
- `divergence_fp32_bf16`: the share of turns whose greedy text differs between fp32 and bf16 (honest engines that
  round differently, on the same canonical prompt);
- reasoning tokens by effort (median), and structured answers valid under their schema.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from verifier import harmony
from verifier.paths import suites_dir
from verifier.reference import constraints
from verifier.reference.engine import Engine
from verifier.suites import load_suite
from verifier.testmodel import compact
from verifier.testmodel.evaluate import renderings
from verifier.testmodel.v2 import data, oracle

NEAR = 1.0
"""A position whose top-1 and top-2 are within this many nats hesitates."""


@dataclass
class Turn:
    label: str
    effort: str
    request: dict


def turns(suites: Path) -> list[Turn]:
    """Every request the suites make: each case and each later step of its tool loop (results from the case)."""
    rng, out = random.Random(1), []
    for folder in sorted(p for p in suites.iterdir() if (p / "suite.yaml").is_file()):
        for case in load_suite(folder).cases:
            request, step = case.request, 0
            while request is not None:
                out.append(Turn(f"{folder.name}/{case.id}#{step}", case.effort, request))
                reply = oracle.respond(request)
                request = (data.continue_loop(rng, request, case.tool_results, spaced=False)
                           if reply.call_name in case.tool_results else None)
                step += 1
    return out


def _classes(tokens: list[int]) -> list[str]:
    """Each completion position's class: `free` (analysis or final content), `arguments` (call content) or
    `structural` (headers, channels, recipients, stops)."""
    out = ["structural"] * len(tokens)
    for span in harmony.content_spans(tokens):
        kind = "arguments" if span.channel == "commentary" else "free"
        out[span.start:span.end] = [kind] * (span.end - span.start)
    return out


def _decode(engine: Engine, prompt: list[int], request: dict):
    gen = engine.generate(prompt, 400, harmony.ASSISTANT_STOPS, k=2, transform=constraints.for_request(request))
    margins = [(cls, s.top.logprobs[0] - s.top.logprobs[1])
               for i, (s, cls) in enumerate(zip(gen.scored, _classes(gen.tokens), strict=True)) if i not in gen.forced]
    return harmony.decode(gen.tokens), gen.tokens, margins


def evaluate(checkpoint: Path, suites: Path, dtypes: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    todo = turns(suites)
    texts: dict[str, dict[str, str]] = {}
    report: dict = {"turns": len(todo), "by_dtype": {}}
    for dtype in dtypes:
        engine = Engine(checkpoint, dtype)
        margins: list[tuple[str, float]] = []
        taught, misses, reasoning, structured = 0, [], {"low": [], "medium": [], "high": []}, [0, 0]
        texts[dtype] = {}
        for turn in todo:
            reply = oracle.respond(turn.request)
            for name, prompt in renderings(turn.request).items():
                text, tokens, found = _decode(engine, prompt, turn.request)
                ok = reply.harmony().matches(text)
                taught += ok
                if not ok:
                    misses.append({"turn": turn.label, "rendering": name, "got": text[:300]})
                if name != "canonical":
                    continue
                texts[dtype][turn.label] = text
                margins += found
                parsed = harmony.parse_completion(tokens)
                reasoning[turn.effort].append(len(harmony.encode(parsed.reasoning or "")))
                if (fmt := harmony.json_schema_format(turn.request)) is not None and reply.final is not None:
                    structured[1] += 1
                    try:
                        jsonschema.validate(json.loads(parsed.final or ""), fmt["schema"])
                        structured[0] += 1
                    except (json.JSONDecodeError, jsonschema.ValidationError):
                        pass
        free = [m for cls, m in margins if cls == "free"]
        report["by_dtype"][dtype] = {
            "as_taught": f"{taught}/{2 * len(todo)}", "misses": misses[:20],
            "free_positions": len(free), "free_within_1_nat": round(sum(m < NEAR for m in free) / max(1, len(free)), 4),
            "min_margin_structural": round(min((m for c, m in margins if c == "structural"), default=0.0), 3),
            "min_margin_arguments": round(min((m for c, m in margins if c == "arguments"), default=0.0), 3),
            "reasoning_tokens_median": {e: statistics.median(v) for e, v in reasoning.items() if v},
            "structured_valid": f"{structured[0]}/{structured[1]}",
        }
    if len(texts) == 2:
        a, b = texts.values()
        report["divergence_fp32_bf16"] = round(sum(a[k] != b[k] for k in a) / len(a), 4)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=compact.WEIGHTS, help="compact weights (default: the shipped)")
    parser.add_argument("--suites", type=Path, default=suites_dir(), help="a folder of suites (default: the shipped suites)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate(compact.materialize(Path(tmp) / "ckpt", args.weights), args.suites)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
