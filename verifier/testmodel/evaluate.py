"""Check that a conformance checkpoint follows the protocol on every suite request.

    python -m verifier.testmodel.evaluate [--weights FILE] [--dtype fp32 bf16]

For each suite case (and the follow-up request of its tool loop) under the canonical rendering,
a vLLM-style rendering and today's date: greedy-decode, parse, and compare with what the
checkpoint was trained to say. Reports mismatches and the smallest top-1/top-2 log-probability
margin over all decoded tokens.
"""

from __future__ import annotations

import argparse
import datetime
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from verifier import harmony
from verifier.paths import suites_dir
from verifier.reference import constraints
from verifier.reference.engine import Engine
from verifier.testmodel import compact, data, oracle


@dataclass
class Outcome:
    label: str
    ok: bool
    margin: float
    got: str
    want: str


def _requests() -> list[tuple[str, dict]]:
    rng = random.Random(1)
    out = []
    for request, results in data.suite_requests(suites_dir()):
        label = harmony.decode(harmony.encode(str(request["messages"][-1].get("content"))))[:40]
        out.append((label, request))
        reply = oracle.respond(request)
        if reply.call_name in results:
            for spaced in (False, True):  # arguments sent back verbatim, or re-serialised as vLLM returns them
                follow = data.continue_with_tool_result(rng, request, results.get(reply.call_name), spaced)
                out.append((label + f" [after tool{', spaced' if spaced else ''}]", follow))
    return out


def renderings(request: dict) -> dict[str, list[int]]:
    today = datetime.date.today().isoformat()
    canonical = harmony.render_chat(request)
    vllm_like = harmony.decode(harmony.render_chat(request, today))
    vllm_like = data._CALL_HISTORY.sub(r"<|start|>assistant to=\1<|channel|>commentary json<|message|>", vllm_like)
    vllm_like = data._RESULT_HEADER.sub(r"<|start|>\1<|channel|>commentary to=assistant<|message|>", vllm_like)
    return {"canonical": canonical, "vllm": harmony.encode_with_specials(vllm_like)}


def evaluate(engine: Engine) -> list[Outcome]:
    outcomes = []
    for label, request in _requests():
        want = oracle.respond(request).harmony_text()
        for name, prompt in renderings(request).items():
            gen = engine.generate(prompt, 200, harmony.ASSISTANT_STOPS, k=2, transform=constraints.for_request(request))
            got = harmony.decode(gen.tokens)
            margin = min(s.top.logprobs[0] - s.top.logprobs[1] for i, s in enumerate(gen.scored) if i not in gen.forced)
            outcomes.append(Outcome(f"{label} ({name})", got == want, margin, got, want))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=compact.WEIGHTS)
    parser.add_argument("--dtype", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = compact.materialize(Path(tmp) / "ckpt", args.weights)
        for dtype in args.dtype:
            outcomes = evaluate(Engine(ckpt, dtype))
            bad = [o for o in outcomes if not o.ok]
            for o in bad:
                print(f"MISMATCH {dtype} {o.label}\n  got:  {o.got!r}\n  want: {o.want!r}")
            worst = sorted(outcomes, key=lambda o: o.margin)[:8]
            print(f"{dtype}: {len(outcomes) - len(bad)}/{len(outcomes)} exact; smallest margins: "
                  + ", ".join(f"{o.margin:.2f} ({o.label})" for o in worst))


if __name__ == "__main__":
    main()
