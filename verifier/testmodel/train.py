"""Train the conformance checkpoint (kept so it can be regenerated; CI never retrains).

    python -m verifier.testmodel.train --steps 2500 --out verifier/testmodel/weights

The model is a real gpt-oss architecture (transformers `GptOssForCausalLM`: alternating sliding and
full attention with sinks, top-k MoE, YaRN RoPE) with the full 201088-token vocabulary. Training
only ever sees the few hundred token ids that occur in the data, so it runs on a compact copy whose
embedding and unembedding hold just those rows; the other 200k rows of the full model are zero.
The loss is the exact full-vocabulary cross-entropy of that full model: the zero rows all have
logit 0 and enter the softmax as one extra term of mass `V - n_used`.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch

from verifier import harmony
from verifier.paths import suites_dir
from verifier.testmodel import data
from verifier.testmodel.compact import CompactModel, compact_config, load_compact, save_compact
from verifier.testmodel.v2 import data as data_v2


def _batches(examples: list[data.Example], batch: int, rng: random.Random):
    """Length-bucketed random batches, forever."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
    chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
    while True:
        rng.shuffle(chunks)
        yield from chunks


def _tensors(examples: list[data.Example], ids: list[int], remap: dict[int, int]):
    width = max(len(examples[i].tokens) for i in ids)
    inputs = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    targets = torch.full((len(ids), width), -100, dtype=torch.long)
    for row, i in enumerate(ids):
        ex = examples[i]
        toks = torch.tensor([remap[t] for t in ex.tokens])
        inputs[row, : len(toks)] = toks
        mask[row, : len(toks)] = 1
        # position p predicts token p+1; loss only where the next token is a completion token
        targets[row, ex.loss_from - 1 : len(toks) - 1] = toks[ex.loss_from :]
        for pos in ex.no_loss:  # forced by a decoding constraint: not the model's choice
            targets[row, pos - 1] = -100
    return inputs, mask, targets


def full_vocab_loss(logits: torch.Tensor, targets: torch.Tensor, n_zero_rows: int) -> torch.Tensor:
    """Cross-entropy of the full model whose `n_zero_rows` other unembedding rows are zero."""
    keep = targets != -100
    logits, targets = logits[keep].float(), targets[keep]
    zero_mass = torch.full((logits.shape[0], 1), math.log(n_zero_rows))
    lse = torch.logsumexp(torch.cat([logits, zero_mass], dim=-1), dim=-1)
    return (lse - logits.gather(1, targets[:, None]).squeeze(1)).mean()


def extra_tokens() -> set[int]:
    """Tokens the model must know though the sampled data may miss some: all date pieces."""
    out: set[int] = set()
    for year in range(2024, 2040):
        for month in range(1, 13):
            for day in range(1, 32):
                out.update(harmony.encode(f"Current date: {year}-{month:02d}-{day:02d}\n"))
    return out


def _initialise(model: CompactModel, used: list[int], init: Path) -> dict:
    """Start from saved compact weights: same rows for known tokens, fresh rows for new ones."""
    tensors, old_used, meta = load_compact(init)
    state = model.inner.state_dict()
    position = {t: i for i, t in enumerate(old_used.tolist())}
    for key, value in tensors.items():
        if key in ("model.embed_tokens.weight", "lm_head.weight"):
            for row, token in enumerate(used):
                if token in position:
                    state[key][row] = value[position[token]].float()
        else:
            state[key] = value.float()
    model.inner.load_state_dict(state)
    return meta


WORLDS = {"v1": data, "v2": data_v2}
"""The teachers: v2 (the shipped checkpoint's: issue 16's hesitant world) and v1 (the first checkpoint's, whose suites
are in git history; v2 reuses its world constants)."""


def train(steps: int, n_examples: int, seed: int, batch: int, lr: float, out: Path, init: Path | None = None,
          world: str = "v2", suites: Path | None = None, save_every: int = 0) -> None:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    teacher = WORLDS[world]
    examples = teacher.build_dataset(n_examples, seed, suites or suites_dir())
    used = sorted(set().union(*(e.tokens for e in examples)) | extra_tokens())
    if init is not None:
        used = sorted(set(used) | set(load_compact(init)[1].tolist()))
    remap = {t: i for i, t in enumerate(used)}
    print(f"{len(examples)} examples, {len(used)} token ids, mean length "
          f"{sum(len(e.tokens) for e in examples) / len(examples):.0f}", flush=True)
    model = CompactModel(compact_config(len(used)))
    history = [_initialise(model, used, init)] if init is not None else []
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    )
    n_zero = harmony.VOCAB_SIZE - len(used)
    batches = _batches(examples, batch, rng)
    start, running = time.time(), 0.0
    for step in range(1, steps + 1):
        inputs, mask, targets = _tensors(examples, next(batches), remap)
        loss = full_vocab_loss(model(inputs, mask), targets, n_zero)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if step % 50 == 0:
            print(f"step {step} loss {running / 50:.4f} {time.time() - start:.0f}s", flush=True)
            running = 0.0
        if step == steps or (save_every and step % save_every == 0):
            save_compact(model, used, out, {"seed": seed, "steps": steps, "saved_at_step": step,
                                            "examples": n_examples, "lr": lr, "batch": batch,
                                            "forced_share": teacher.FORCED_SHARE, "world": world, "init": history})
    print(f"saved to {out} after {time.time() - start:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--examples", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--init", type=Path, help="continue from these compact weights")
    parser.add_argument("--forced-share", type=float, help="share of requests with tools whose tool_choice forces a call")
    parser.add_argument("--world", choices=sorted(WORLDS), default="v2", help="the teacher (default v2, the shipped one)")
    parser.add_argument("--suites", type=Path, help="suites whose cases join the training data (default: the shipped)")
    parser.add_argument("--save-every", type=int, default=0, help="also save the weights every N steps")
    args = parser.parse_args()
    if args.forced_share is not None:
        WORLDS[args.world].FORCED_SHARE = args.forced_share
    train(args.steps, args.examples, args.seed, args.batch, args.lr, args.out, args.init, args.world, args.suites,
          args.save_every)


if __name__ == "__main__":
    main()
