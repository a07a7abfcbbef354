"""The conformance checkpoint: compact storage, materialisation, and the protocol it was trained on."""

from __future__ import annotations

import json
import statistics
import time

import pytest
import torch

from verifier import harmony
from verifier.calibrate import mean_kl
from verifier.drift.calibration import golden_files
from verifier.golden import load
from verifier.paths import golden_dir, suites_dir
from verifier.reference.checkpoints import checkpoint_sha256
from verifier.reference.engine import Engine
from verifier.testmodel import compact


def test_compact_weights_are_small():
    assert compact.WEIGHTS.stat().st_size < 2 * 1024 * 1024


def test_materialize_writes_a_standard_checkpoint_quickly(tmp_path, checkpoint):
    started = time.monotonic()
    out = compact.materialize(tmp_path / "ckpt")
    assert time.monotonic() - started < 60
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt_oss" and config["vocab_size"] == harmony.VOCAB_SIZE
    assert config["head_dim"] == 64 and config["layer_types"] == ["sliding_attention", "full_attention"]
    assert config["rope_parameters"]["rope_type"] == "yarn"
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json", "tokenizer_config.json"):
        assert (out / name).is_file()
    assert checkpoint_sha256(out) == checkpoint_sha256(checkpoint)


def test_unused_vocabulary_rows_are_zero():
    tensors, used, _ = compact.load_compact()
    state = compact.full_state_dict(tensors, used)
    unused = torch.ones(harmony.VOCAB_SIZE, dtype=torch.bool)
    unused[used] = False
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        assert state[key].shape[0] == harmony.VOCAB_SIZE
        assert torch.count_nonzero(state[key][unused]) == 0
        assert torch.count_nonzero(state[key][used]) > 0


def test_hf_tokenizer_matches_harmony(checkpoint):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    samples = [
        harmony.decode(harmony.render_chat({"messages": [{"role": "user", "content": "What's the weather in Paris?"}]})),
        "héllo wörld 12345 日本語 🎉\n\n  trailing  ", "<|channel|>analysis<|message|>x<|end|><|call|>",
    ]
    for text in samples:
        assert tok.encode(text).ids == harmony.encode_with_specials(text)


def test_tokenizer_ids_fit_the_vocabulary(checkpoint):
    """Every id the tokenizer can produce has a model row (llama.cpp's converter asserts it)."""
    data = json.loads((checkpoint / "tokenizer.json").read_text())
    ids = [entry["id"] for entry in data["added_tokens"]] + list(data["model"]["vocab"].values())
    assert max(ids) == harmony.VOCAB_SIZE - 1
    assert len(set(ids)) == harmony.VOCAB_SIZE


def test_shipped_golden_was_built_from_the_shipped_weights(checkpoint):
    digest = checkpoint_sha256(checkpoint)
    for path in sorted((golden_dir() / "gpt-oss-conformance").glob("*/*.json")):
        if path.name == "calibration.json":
            continue
        assert load(path).provenance.checkpoint_sha256 == digest, path


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_greedy_decoding_reproduces_golden_tokens(checkpoint, dtype):
    from verifier.reference import constraints
    from verifier.reference.engine import Engine

    engine = Engine(checkpoint, dtype)
    golden = load(golden_dir() / "gpt-oss-conformance" / dtype / "tools.json")
    for record in golden.records:
        for turn in record.turns:
            gen = engine.generate(turn.prompt_token_ids, 256, harmony.ASSISTANT_STOPS,
                                  transform=constraints.for_request(turn.request))
            assert gen.tokens == turn.completion_token_ids, record.case_id
            assert gen.forced == turn.forced_positions


def _golden_records(dtype: str = "fp32"):
    for path in golden_files(golden_dir() / "gpt-oss-conformance" / dtype):
        yield from load(path).records


def test_model_speaks_the_protocol_and_hesitates_only_in_free_text():
    """Issue 16's checkpoint: near-ties (top-1 minus top-2 under 1 nat) at 5% or more of the free-text positions
    (analysis and final content), none at headers, channels, recipients and stops (margins over 1 nat there)."""
    from verifier.testmodel.v2.evaluate import _classes

    margins: dict[str, list[float]] = {"free": [], "arguments": [], "structural": []}
    kinds = set()
    for record in _golden_records():
        for turn in record.turns:
            assert turn.messages[0].channel == "analysis", record.case_id
            kinds.add(turn.finish_reason)
            if turn.finish_reason == "tool_calls":
                call = turn.tool_calls[0]
                assert call.channel == "commentary" and call.content_type == "<|constrain|>json"
                json.loads(call.text)
            classes = _classes(turn.completion_token_ids)
            for i, score in enumerate(turn.scores):
                if i not in turn.forced_positions:
                    margins[classes[i]].append(score.margin)
    assert kinds == {"tool_calls", "stop"}
    near = sum(m < 1.0 for m in margins["free"]) / len(margins["free"])
    assert near >= 0.05, near
    assert min(margins["structural"]) > 1.0


def test_fp32_and_bf16_references_take_different_branches():
    """Honest engines that round differently leave each other's greedy text at near-ties: the golden of the two
    reference dtypes differs in a share of cases (issue 16: 10-40% of turns; measured 47% in evaluation.json)."""
    fp32 = {r.case_id: [t.completion_token_ids for t in r.turns] for r in _golden_records("fp32")}
    bf16 = {r.case_id: [t.completion_token_ids for t in r.turns] for r in _golden_records("bf16")}
    assert fp32.keys() == bf16.keys()
    differ = sum(fp32[case] != bf16[case] for case in fp32) / len(fp32)
    assert 0.1 <= differ <= 0.8, differ


def test_reasoning_grows_with_effort():
    """Reasoning length by effort, median over the effort suite: high at least 4x low, and within every task
    group low < medium < high."""
    golden = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "effort.json")
    by_group: dict[str, dict[str, int]] = {}
    suite_cases = {json.loads(line)["id"]: json.loads(line) for line in
                   (suites_dir() / "effort" / "cases.jsonl").read_text().splitlines()}
    for record in golden.records:
        case = suite_cases[record.case_id]
        by_group.setdefault(case["group"], {})[case["request"]["reasoning_effort"]] = record.turns[0].reasoning_tokens
    for group, levels in by_group.items():
        assert levels["low"] < levels["medium"] < levels["high"], group
    median = {level: statistics.median(g[level] for g in by_group.values()) for level in ("low", "high")}
    assert median["high"] >= 4 * median["low"], median


def test_full_distributions_agree_with_scores_and_give_the_kl_of_a_perturbation(checkpoint, engine):
    """`Engine.distributions` (what `mean_kl` reads) is the distribution `score` reports from, chunk by chunk; KL of
    an engine against itself is 0 and of the bf16 reference against fp32 small but positive."""
    tokens = harmony.render_chat({"messages": [{"role": "user", "content": "Name a colour."}]}, "2026-01-01")
    positions = list(range(5, len(tokens)))
    small = Engine(checkpoint, "fp32")
    small.chunk = 7  # several blocks, the last one short
    blocks = list(small.distributions(tokens, positions))
    assert [len(b) for b in blocks][:-1] == [7] * (len(blocks) - 1) and sum(len(b) for b in blocks) == len(positions)
    rows = torch.cat(blocks)
    scored = engine.score(tokens, 5, k=3)
    # the same numbers up to fp32 rounding (blocks of 7 rows against one of all: other kernel shapes)
    assert [float(rows[i, tokens[p]]) for i, p in enumerate(positions)] == \
        pytest.approx([s.logprob for s in scored], abs=1e-4)
    assert mean_kl(engine, engine, [(tokens, positions)]) == pytest.approx(0.0, abs=1e-9)
    assert 0 < mean_kl(Engine(checkpoint, "bf16"), engine, [(tokens, positions)]) < 0.01
    with pytest.raises(ValueError, match="token before it"):
        next(engine.distributions(tokens, [0]))
