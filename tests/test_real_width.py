"""gpt-oss-20b's exact widths (hidden 2880, 64/8 heads of 64, 32 experts top-4, vocabulary 201088, YaRN,
sinks, sliding window 128) at 2 layers, random seeded weights written on the fly in both published
layouts, sharded with an index: the real loaders, MXFP4 dequantisation, the memory plan and `golden
build` in bf16 on CPU, against transformers' own loading and forward; and the greedy-vs-teacher-forced
disagreement of a bf16 golden, recorded and allowed for by the drift rules.

About 3 minutes and 8 GB peak on 2 cores: one case, a few dozen tokens, one model in memory at a time."""

from __future__ import annotations

import gc

import pytest
import torch
from conftest import run_cli

from verifier import golden as store
from verifier import harmony
from verifier.drift.align import greedy_positions
from verifier.drift.statistics import position_drifts
from verifier.observation import TokenLogprob, TopLogprob
from verifier.reference import checkpoints as ck
from verifier.reference import memory
from verifier.reference.build import build, limited
from verifier.reference.engine import Engine
from verifier.reference.synthetic import real_width_config
from verifier.suites import load_suite

pytestmark = pytest.mark.real_width

SUITE, CASE, MAX_TOKENS = "harmony", "system-instructions", 32
NAME = "gpt-oss-20b-2l"
GOLDEN_ROUNDING = 5e-7
"""Golden stores log-probabilities rounded to 1e-6."""


@pytest.fixture(scope="module")
def repo(real_width_repo):
    """One repository folder as published: the HF MXFP4 layout at the root, OpenAI's in original/."""
    assert real_width_repo.name == NAME
    return real_width_repo


def _honest_greedy(engine: Engine, turn) -> list[TokenLogprob]:
    """What an honest greedy chat endpoint reports along golden's path: the reference's own KV-cached
    decoding with its top-20, as ids."""
    gen = engine.generate(turn.prompt_token_ids, len(turn.completion_token_ids), harmony.ASSISTANT_STOPS, k=20)
    assert gen.tokens == turn.completion_token_ids  # it reproduces golden
    return [TokenLogprob(token=harmony.token_text(s.token), logprob=s.logprob, token_id=s.token,
                         top=[TopLogprob(token=harmony.token_text(i), logprob=v, token_id=i)
                              for i, v in zip(s.top.ids, s.top.logprobs)]) for s in gen.scored]


@pytest.fixture(scope="module")
def built(repo, tmp_path_factory):
    """The bf16 golden of one case, capped at MAX_TOKENS: in process from the HF layout (with the same
    engine's greedy top-20 along it), and through `golden build` from the original/ layout. The engine
    is released before anything else loads."""
    root = tmp_path_factory.mktemp("real-width-golden")
    suite = limited([load_suite(SUITE)], case_ids=[CASE], max_tokens=MAX_TOKENS)[0]
    engine = Engine(repo, "bf16")
    lines: list[str] = []
    golden = store.load(store.save(build(engine, suite, progress=lines.append, max_tokens=MAX_TOKENS),
                                   root / "hf.json"))
    honest = [_honest_greedy(engine, t) for r in golden.records for t in r.turns]
    del engine
    gc.collect()
    proc = run_cli("golden", "build", "--checkpoint", str(repo / "original"), "--dtype", "bf16", "--suite", SUITE,
                   "--case", CASE, "--max-tokens", str(MAX_TOKENS), "--out", str(root / "original"))
    assert proc.returncode == 0, proc.stderr
    original = store.load(store.golden_path(root / "original", NAME, "bf16", SUITE))
    return {"hf": golden, "original": original, "lines": lines, "stderr": proc.stderr, "honest": honest}


def test_both_layouts_are_sharded_with_an_index_and_read_alike(repo):
    hf, original = ck.resolve(repo), ck.resolve(repo / "original")
    assert (hf.layout, original.layout, hf.name, original.name) == ("hf", "original", NAME, NAME)
    for ckpt in (hf, original):
        assert (ckpt.path / ck.INDEX).is_file() and len(ckpt.files) > 1, ckpt.files
    config = hf.config()
    expected = real_width_config(2)
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "num_local_experts",
                "num_experts_per_tok", "vocab_size", "sliding_window", "layer_types", "rope_parameters"):
        assert getattr(config, key) == getattr(original.config(), key) == getattr(expected, key), key
    assert (config.hidden_size, config.num_local_experts, config.vocab_size, config.sliding_window) == (
        2880, 32, 201088, 128)
    a = ck.read(hf)
    b = ck.read(original)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the memory plan's arithmetic against the tensors themselves: parameters, and MXFP4 weight bytes
    params, experts = memory.count_params(config)
    dequantised = ck.expected_shapes(config, quantized=False)
    assert params == sum(torch.Size(s).numel() for s in dequantised.values())
    assert experts == sum(torch.Size(s).numel() for k, s in dequantised.items() if k.endswith(ck.PROJECTIONS))
    assert memory.estimate(config, "mxfp4", 1).weights_bytes == sum(t.numel() * t.element_size() for t in a.values())
    assert memory.estimate(config, "bf16", 1).weights_bytes == 2 * params


def test_golden_build_from_either_layout_gives_identical_records_within_its_limits(built):
    hf, original = built["hf"], built["original"]
    assert original.content_sha256 == hf.content_sha256
    assert [r.model_dump() for r in original.records] == [r.model_dump() for r in hf.records]
    assert [r.case_id for r in hf.records] == [CASE]
    assert original.provenance.max_tokens == hf.provenance.max_tokens == MAX_TOKENS
    turns = [t for r in hf.records for t in r.turns]
    assert all(len(t.completion_token_ids) <= MAX_TOKENS and t.request["max_tokens"] == MAX_TOKENS for t in turns)
    assert all(len(t.scores) == len(t.completion_token_ids) for t in turns)
    # progress: a line per turn and a summary, in process and on the CLI's stderr
    for text in ("\n".join(built["lines"]), built["stderr"]):
        assert f"{SUITE} 1/1 {CASE} turn 1: " in text and "tokens/s" in text, text
        assert f"{SUITE}: 1 cases, {len(turns)} turns" in text, text
    assert "loaded " in built["stderr"]


def test_golden_scores_match_transformers_own_mxfp4_loading_and_forward(repo, built):
    """An independent forward: transformers reads the sharded HF layout and dequantises the experts
    itself (its Mxfp4 integration, `dequantize=True`), then one full teacher-forced pass."""
    from transformers import GptOssForCausalLM, Mxfp4Config

    model = GptOssForCausalLM.from_pretrained(str(repo), dtype=torch.bfloat16, local_files_only=True,
                                              attn_implementation="eager",
                                              quantization_config=Mxfp4Config(dequantize=True)).eval()
    worst, off_top1 = 0.0, 0
    for turn in (t for r in built["hf"].records for t in r.turns):
        ids = turn.prompt_token_ids + turn.completion_token_ids
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0, len(turn.prompt_token_ids) - 1 : -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, ref in zip(logprobs, turn.scores):
            worst = max(worst, abs(row[ref.token].item() - ref.logprob),
                        *(abs(row[i].item() - v) for i, v in zip(ref.top_ids, ref.top_logprobs)))
            assert row[ref.top_ids[-1]].item() >= torch.topk(row, 20).values[-1].item() - 1e-5
            off_top1 += row[ref.token].item() < row.max().item()  # exact ties with the top-1 are not counted
        assert turn.off_top1_positions == [i for i, s in enumerate(turn.scores) if s.off_top1]
    del model
    gc.collect()
    assert worst <= GOLDEN_ROUNDING + 1e-6, worst
    # the greedy-vs-teacher-forced disagreement, seen by the independent forward as golden recorded it
    assert off_top1 == sum(len(t.off_top1_positions) for r in built["hf"].records for t in r.turns)


def test_an_honest_greedy_engine_is_not_flagged_where_golden_is_not_its_own_top1(built):
    """bf16 golden's greedy token is not always its teacher-forced top-1. An engine that reproduces
    golden's greedy path (here the reference itself) reports golden's token as its top-1 there: no
    confident flip and no departure, even with the flip margin below every such position's margin,
    where comparing with the teacher-forced top-1 alone would flag every one of them."""
    turns = [t for r in built["hf"].records for t in r.turns]
    off = [(turn, i) for turn in turns for i in turn.off_top1_positions]
    if not off:  # bf16 rounding is the CPU's: AMX-BF16 (Sapphire Rapids) kept greedy on the teacher-forced top-1 here
        pytest.skip("this CPU's bf16 greedy path never leaves the teacher-forced top-1 on this case: nothing to show")
    flip_margin = min(turn.scores[i].margin for turn, i in off)
    flips = departures = teacher_forced_top1_flags = 0
    for turn, reported in zip(turns, built["honest"]):
        aligned, positions, departure = greedy_positions(turn, reported, flip_margin)
        assert len(positions) == len(turn.scores)
        departures += departure is not None
        flips += sum(d.confident_flips for d in position_drifts("t", aligned, positions, flip_margin))
        teacher_forced_top1_flags += sum(max(p.top, key=p.top.get) != s.top_ids[0] and s.margin >= flip_margin
                                         for s, p in zip(aligned.scores, positions))
    assert (flips, departures) == (0, 0)
    assert teacher_forced_top1_flags == len(off)
    # an engine that takes the teacher-forced top-1 at the first such position leaves golden honestly
    turn, i = off[0]
    reported = list(built["honest"][turns.index(turn)][: i + 1])
    top1 = turn.scores[i].top_ids[0]
    reported[i] = reported[i].model_copy(update={"token": harmony.token_text(top1), "token_id": top1})
    assert greedy_positions(turn, reported, flip_margin)[2] is None
