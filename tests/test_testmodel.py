"""The conformance checkpoint: compact storage, materialisation, and the protocol it was trained on."""

from __future__ import annotations

import json
import time

import pytest
import torch

from verifier import harmony
from verifier.golden import load
from verifier.paths import golden_dir, suites_dir
from verifier.reference.build import checkpoint_sha256
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


def test_model_speaks_the_protocol_with_wide_margins():
    golden = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "tools.json")
    kinds = set()
    for record in golden.records:
        for turn in record.turns:
            assert turn.messages[0].channel == "analysis"
            assert turn.finish_reason in ("tool_calls", "stop")
            if turn.finish_reason == "tool_calls":
                call = turn.tool_calls[0]
                assert call.channel == "commentary" and call.content_type == "<|constrain|>json"
                json.loads(call.text)
            kinds.add(turn.finish_reason)
            free = [s.margin for i, s in enumerate(turn.scores) if i not in turn.forced_positions]
            assert min(free) > 3.0, record.case_id
    assert kinds == {"tool_calls", "stop"}


def test_reasoning_grows_with_effort():
    golden = load(golden_dir() / "gpt-oss-conformance" / "fp32" / "effort.json")
    by_group: dict[str, dict[str, int]] = {}
    suite_cases = {json.loads(line)["id"]: json.loads(line) for line in
                   (suites_dir() / "effort" / "cases.jsonl").read_text().splitlines()}
    for record in golden.records:
        case = suite_cases[record.case_id]
        by_group.setdefault(case["group"], {})[case["request"]["reasoning_effort"]] = record.turns[0].reasoning_tokens
    for group, levels in by_group.items():
        assert levels["low"] < levels["medium"] < levels["high"], group
