"""Golden build speed: scored tokens per second of `gpt-oss-verify golden build` against plain
transformers (`model.generate` for the greedy completion, one `model(...)` forward with full logits,
log-softmax and top-K for the scores), on the same loaded model at the same dtype, in one run.

    python benchmarks/golden_speed.py                        # conformance checkpoint, CPU, under 2 minutes
    python benchmarks/golden_speed.py --device cuda --synthetic-20b [--backend mxfp4-triton]
    python benchmarks/golden_speed.py --device cuda --checkpoint /models/gpt-oss-20b --compare-backends

Both sides do the same work: for every turn the golden build decoded (same prompts, same number of
new tokens), greedy decoding then teacher-forced top-20 log-probabilities of every completion token.
The ratio is plain seconds / golden seconds (above 1: the golden path is faster). Each side runs
`--repeats` times, alternating, and the fastest run of each counts.

`--synthetic-20b` writes a gpt-oss-20b-shaped checkpoint (24 layers, 32 experts, hidden 2880, vocabulary
201088) in the Hugging Face MXFP4 layout with random weights (13.8 GB on disk) and runs the same
comparison end to end on it; its completions are capped by `--max-tokens` (random weights never stop).
`--compare-backends` scores the golden turns with the backend `transformers` (bf16, dequantised) and
`mxfp4-triton` and reports how far the two disagree, per position: the spread honest engines show,
which the drift calibration must tolerate. On a CPU it compares fp32 with bf16 instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from verifier import harmony  # noqa: E402
from verifier.reference import checkpoints as ck  # noqa: E402
from verifier.reference import memory  # noqa: E402
from verifier.reference.build import build  # noqa: E402
from verifier.reference.engine import Engine  # noqa: E402
from verifier.suites import load_suite  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "golden_speed.json"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def golden_run(engine: Engine, suite, batch_size: int) -> tuple[float, list]:
    engine._memo.clear()
    _sync(engine.device)
    t0 = time.perf_counter()
    golden = build(engine, suite, batch_size=batch_size)
    _sync(engine.device)
    return time.perf_counter() - t0, [t for r in golden.records for t in r.turns]


@torch.inference_mode()
def plain_run(model, turns, device: str, k: int = 20) -> tuple[float, float]:
    """(generate seconds, scoring seconds) of plain transformers doing the golden turns' work."""
    gen = score = 0.0
    for turn in turns:
        prompt = torch.tensor([turn.prompt_token_ids], device=device)
        n = len(turn.completion_token_ids)
        _sync(device)
        t0 = time.perf_counter()
        model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
                       do_sample=False, pad_token_id=harmony.END_OF_TEXT, eos_token_id=None)
        _sync(device)
        t1 = time.perf_counter()
        ids = torch.tensor([turn.prompt_token_ids + turn.completion_token_ids], device=device)
        logits = model(input_ids=ids).logits[0, len(turn.prompt_token_ids) - 1 : -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values, top = torch.topk(logprobs, k, dim=-1)
        _ = (values.tolist(), top.tolist(), logprobs.gather(1, ids[0, len(turn.prompt_token_ids):, None]).tolist())
        _sync(device)
        gen += t1 - t0
        score += time.perf_counter() - t1
    return gen, score


def timed_phases(engine: Engine):
    """Wrap the engine's generate and score to time each phase of a golden build."""
    spent = {"generate": 0.0, "score": 0.0}
    for name in spent:
        original = getattr(engine, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            t0 = time.perf_counter()
            result = _original(*args, **kwargs)
            _sync(engine.device)
            spent[_name] += time.perf_counter() - t0
            return result

        setattr(engine, name, wrapped)
    return spent


def speed(engine: Engine, suite, repeats: int, batch_size: int) -> dict:
    spent = timed_phases(engine)
    best_golden = best_plain = None
    for _ in range(repeats):
        spent.update(generate=0.0, score=0.0)
        seconds, turns = golden_run(engine, suite, 1)
        phases = dict(spent)
        if best_golden is None or seconds < best_golden[0]:
            best_golden = (seconds, phases)
        gen, score = plain_run(engine.model, turns, engine.device)
        if best_plain is None or gen + score < sum(best_plain):
            best_plain = (gen, score)
    tokens = sum(len(t.completion_token_ids) for t in turns)
    batched_seconds = min(golden_run(engine, suite, batch_size)[0] for _ in range(repeats)) if batch_size > 1 else None
    golden_s, phases = best_golden
    plain_s = sum(best_plain)
    return {
        "turns": len(turns), "scored_tokens": tokens, "prompt_tokens": sum(len(t.prompt_token_ids) for t in turns),
        "golden": {"seconds": round(golden_s, 3), "tokens_per_s": round(tokens / golden_s, 2),
                   "generate_s": round(phases["generate"], 3), "score_s": round(phases["score"], 3)},
        "plain": {"seconds": round(plain_s, 3), "tokens_per_s": round(tokens / plain_s, 2),
                  "generate_s": round(best_plain[0], 3), "score_s": round(best_plain[1], 3)},
        "ratio_golden_over_plain_tokens_per_s": round(plain_s / golden_s, 3),
        "ratio_generate": round(best_plain[0] / phases["generate"], 3),
        "ratio_score": round(best_plain[1] / phases["score"], 3),
        **({"golden_batched_scoring": {"batch_size": batch_size, "seconds": round(batched_seconds, 3),
                                       "tokens_per_s": round(tokens / batched_seconds, 2)}}
           if batched_seconds else {}),
    }


def disagreement(a: Engine, b: Engine, turns, k: int = 20) -> dict:
    """How two honest backends differ scoring the same golden turns, per completion position."""
    delta, top1, kl, relative = [], 0, [], []
    n = 0
    for turn in turns:
        tokens, start = turn.prompt_token_ids + turn.completion_token_ids, len(turn.prompt_token_ids)
        for x, y in zip(a.score(tokens, start, k), b.score(tokens, start, k)):
            n += 1
            delta.append(abs(x.logprob - y.logprob))
            top1 += x.top.ids[0] == y.top.ids[0]
            ys = dict(zip(y.top.ids, y.top.logprobs))
            shared = [(p, ys[i]) for i, p in zip(x.top.ids, x.top.logprobs) if i in ys]
            kl.append(sum(torch.exp(torch.tensor(p)).item() * (p - q) for p, q in shared))
            if len(x.top.ids) > 1 and x.top.ids[1] in ys and x.top.ids[0] in ys:
                margin = x.top.logprobs[0] - x.top.logprobs[1]
                other = ys[x.top.ids[0]] - ys[x.top.ids[1]]
                if margin > 1e-6:
                    relative.append(abs(other - margin) / margin)
    return {"positions": n, "top1_agreement": round(top1 / max(n, 1), 5),
            "golden_token_logprob_abs_diff": {"median": statistics.median(delta), "p99": sorted(delta)[int(0.99 * (n - 1))],
                                              "max": max(delta)},
            "truncated_kl_mean": statistics.fmean(kl),
            "relative_top2_logodds_error_median": statistics.median(relative) if relative else None}


def synthetic_20b(root: Path) -> Path:
    config = ck.config_from_original(memory.GPT_OSS_20B)
    out = root / "gpt-oss-20b-synthetic"
    if not (out / "config.json").is_file():
        t0 = time.perf_counter()
        ck.write_hf_mxfp4(out, config, ck.synthetic_packed(config, seed=0))
        print(f"wrote {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def capped(suite, cases: int, max_tokens: int | None):
    chosen = suite.cases[:cases]
    if max_tokens:
        chosen = [c.model_copy(update={"request": {**c.request, "max_tokens": max_tokens}}) for c in chosen]
    return suite.model_copy(update={"cases": chosen})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: the conformance checkpoint")
    parser.add_argument("--synthetic-20b", action="store_true", help="a random 20b-shaped MXFP4 checkpoint")
    parser.add_argument("--workdir", type=Path, help="where --synthetic-20b writes its checkpoint")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="fp32 or bf16 (default: fp32 on cpu, bf16 on cuda)")
    parser.add_argument("--backend", default="transformers", choices=sorted(ck.BACKENDS))
    parser.add_argument("--suite", default="harmony")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=None, help="cap each turn's completion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="also time scoring in batches of this size")
    parser.add_argument("--compare-backends", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from verifier.testmodel.compact import default_checkpoint

    t_start = time.perf_counter()
    dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    if args.synthetic_20b:
        checkpoint = synthetic_20b(args.workdir or Path(tempfile.mkdtemp(prefix="golden-speed-")))
        max_tokens = args.max_tokens or 64
    else:
        checkpoint, max_tokens = args.checkpoint or default_checkpoint(), args.max_tokens
    suite = capped(load_suite(args.suite), args.cases, max_tokens)
    t0 = time.perf_counter()
    engine = Engine(checkpoint, dtype, args.device, backend=args.backend)
    load_s = time.perf_counter() - t0
    result = {
        "checkpoint": ck.resolve(checkpoint).name, "device": args.device, "dtype": engine.dtype,
        "backend": engine.backend, "suite": args.suite, "cases": len(suite.cases), "load_s": round(load_s, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
        "libraries": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        **speed(engine, suite, args.repeats, args.batch_size),
    }
    if args.device.startswith("cuda"):
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "libraries")}, indent=1), flush=True)
    if args.compare_backends:
        _, turns = golden_run(engine, suite, 1)
        if args.device.startswith("cuda"):
            other = Engine(checkpoint, "mxfp4" if engine.backend == "transformers" else "bf16", args.device)
        else:
            other = Engine(checkpoint, "bf16" if dtype == "fp32" else "fp32", args.device)
        result["disagreement"] = {"a": f"{engine.backend}/{engine.dtype}", "b": f"{other.backend}/{other.dtype}",
                                  **disagreement(engine, other, turns)}
        print(json.dumps(result["disagreement"], indent=1))
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"golden {result['golden']['tokens_per_s']} tok/s, plain {result['plain']['tokens_per_s']} tok/s: "
          f"ratio {result['ratio_golden_over_plain_tokens_per_s']} -> {args.out}")


if __name__ == "__main__":
    main()
