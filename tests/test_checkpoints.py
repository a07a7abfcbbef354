"""gpt-oss checkpoints in both published layouts (Hugging Face MXFP4 and OpenAI's original/), written
synthetically with real tensor names and scaled-down shapes: loaders, exact dequantisation into the
model, the original architecture's semantics, golden build end to end, the mxfp4-triton refusal, and
chunked/batched scoring."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from conftest import one_line_exit_2, run_cli

from verifier.errors import CheckpointError, UsageError
from verifier.reference import checkpoints as ck
from verifier.reference import mxfp4
from verifier.reference.engine import Engine, load_model

# An original/config.json scaled down: 2 layers, hidden 64, 4 experts top-2, 4 query / 2 KV heads of
# 16, a sliding window of 8 so that a 24-token input exercises it, the published RoPE/YaRN numbers.
RAW = {"num_hidden_layers": 2, "num_experts": 4, "experts_per_token": 2, "vocab_size": 256, "hidden_size": 64,
       "intermediate_size": 64, "swiglu_limit": 7.0, "head_dim": 16, "num_attention_heads": 4,
       "num_key_value_heads": 2, "sliding_window": 8, "initial_context_length": 4096, "rope_theta": 150000,
       "rope_scaling_factor": 32.0, "rope_ntk_alpha": 1, "rope_ntk_beta": 32}
IDS = torch.tensor([[5, 17, 200, 3, 99, 42, 7, 7, 130, 255, 0, 64, 12, 88, 91, 150, 3, 18, 240, 77, 6, 31, 45, 2]])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The same random weights written in both layouts, and as a plain bf16 HF checkpoint of the
    dequantised experts."""
    root = tmp_path_factory.mktemp("synthetic")
    config = ck.config_from_original(RAW)
    packed = ck.synthetic_packed(config, seed=3)
    g = torch.Generator().manual_seed(4)
    for key in [k for k in packed if k.endswith("norm.weight")]:  # norms that are not all ones
        packed[key] = (1 + 0.2 * torch.randn(packed[key].shape, generator=g)).to(torch.bfloat16)
    hf = ck.write_hf_mxfp4(root / "gpt-oss-tiny", config, packed)
    original = ck.write_original(root / "gpt-oss-tiny" / "original", config, packed)
    plain = dict(packed)
    ck.dequantize_experts(plain, torch.bfloat16)
    (root / "plain").mkdir()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in plain.items()}, str(root / "plain" / "model.safetensors"))
    raw = config.to_dict() | {"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss"}
    (root / "plain" / "config.json").write_text(json.dumps(raw))
    return {"config": config, "packed": packed, "hf": hf, "original": original, "plain": root / "plain"}


def _logits(model, ids=IDS):
    with torch.inference_mode():
        return model(input_ids=ids).logits[0].float()


def test_layouts_are_recognised(synthetic):
    hf, original = ck.resolve(synthetic["hf"]), ck.resolve(synthetic["original"])
    assert (hf.layout, hf.quantized, original.layout, original.quantized) == ("hf", True, "original", True)
    assert original.name == "gpt-oss-tiny"  # an original/ folder is named after its repository
    assert ck.resolve(synthetic["plain"]).quantized is False
    names = set(ck.read(original))
    assert "model.layers.1.mlp.experts.gate_up_proj_blocks" in names and "model.layers.0.self_attn.q_proj.bias" in names


# config.json of openai/gpt-oss-120b (Hugging Face layout), as published
HF_120B = {"architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
           "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
           "initial_context_length": 4096, "initializer_range": 0.02, "intermediate_size": 2880,
           "layer_types": ["sliding_attention", "full_attention"] * 18, "max_position_embeddings": 131072,
           "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 36,
           "num_key_value_heads": 8, "num_local_experts": 128, "output_router_logits": False, "pad_token_id": 199999,
           "quantization_config": {"modules_to_not_convert": ck.MODULES_NOT_CONVERTED, "quant_method": "mxfp4"},
           "rms_norm_eps": 1e-05, "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                                                   "original_max_position_embeddings": 4096, "rope_type": "yarn",
                                                   "truncate": False},
           "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
           "tie_word_embeddings": False, "use_cache": True, "vocab_size": 201088}


def test_the_original_120b_config_converts_to_the_published_hf_config():
    from verifier.reference.memory import GPT_OSS_120B

    ours, published = ck.config_from_original(GPT_OSS_120B), ck.hf_config(HF_120B)
    for field in ("num_hidden_layers", "num_local_experts", "num_experts_per_tok", "hidden_size", "intermediate_size",
                  "head_dim", "num_attention_heads", "num_key_value_heads", "sliding_window", "layer_types",
                  "swiglu_limit", "rms_norm_eps", "vocab_size", "attention_bias", "tie_word_embeddings",
                  "max_position_embeddings", "pad_token_id", "eos_token_id"):
        assert getattr(ours, field) == getattr(published, field), field
    assert {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in ours.rope_parameters.items()} == {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in published.rope_parameters.items()}
    assert ck.expected_shapes(ours, True) == ck.expected_shapes(published, True)
    assert ck.expected_shapes(ours, True)["model.layers.35.mlp.experts.gate_up_proj_blocks"] == (128, 5760, 90, 16)


def test_the_original_layout_is_written_with_openai_names_and_shapes(synthetic):
    from safetensors import safe_open

    with safe_open(str(synthetic["original"] / "model.safetensors"), framework="pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    assert {k: v for k, v in shapes.items() if not k.startswith("block.1.")} == {
        "embedding.weight": (256, 64), "unembedding.weight": (256, 64), "norm.scale": (64,),
        "block.0.attn.norm.scale": (64,), "block.0.attn.qkv.weight": (128, 64), "block.0.attn.qkv.bias": (128,),
        "block.0.attn.sinks": (4,), "block.0.attn.out.weight": (64, 64), "block.0.attn.out.bias": (64,),
        "block.0.mlp.norm.scale": (64,), "block.0.mlp.gate.weight": (4, 64), "block.0.mlp.gate.bias": (4,),
        "block.0.mlp.mlp1_weight.blocks": (4, 128, 2, 16), "block.0.mlp.mlp1_weight.scales": (4, 128, 2),
        "block.0.mlp.mlp1_bias": (4, 128), "block.0.mlp.mlp2_weight.blocks": (4, 64, 2, 16),
        "block.0.mlp.mlp2_weight.scales": (4, 64, 2), "block.0.mlp.mlp2_bias": (4, 64),
    }
    assert json.loads((synthetic["original"] / "config.json").read_text()) == RAW


def test_both_layouts_and_the_dequantised_bf16_checkpoint_give_identical_logits(synthetic):
    logits = {name: _logits(load_model(synthetic[name], "bf16")) for name in ("hf", "original", "plain")}
    assert torch.equal(logits["hf"], logits["original"])
    assert torch.equal(logits["hf"], logits["plain"])
    assert torch.isfinite(logits["hf"]).all() and logits["hf"].std() > 0.01


def test_our_dequantisation_matches_transformers_mxfp4_loader(synthetic):
    """transformers' own Mxfp4 path (dequantize=True), reading the HF layout we wrote."""
    from transformers import GptOssForCausalLM, Mxfp4Config

    theirs = GptOssForCausalLM.from_pretrained(str(synthetic["hf"]), dtype=torch.bfloat16, local_files_only=True,
                                               attn_implementation="eager",
                                               quantization_config=Mxfp4Config(dequantize=True)).eval()
    ours = load_model(synthetic["hf"], "bf16")
    for name, param in ours.named_parameters():
        assert torch.equal(param, theirs.get_parameter(name)), name
    assert torch.equal(_logits(ours), _logits(theirs))


def _rms(x, scale):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * scale


def _original_forward(tensors: dict, raw: dict, ids: torch.Tensor) -> torch.Tensor:
    """OpenAI's reference forward (gpt_oss.torch semantics), written out from its description, in
    float32, on the original/ tensors: what the converted transformers model must compute."""
    f = {k: v.float() for k, v in tensors.items() if not k.endswith((".blocks", ".scales"))}
    hd, nq, nkv = raw["head_dim"], raw["num_attention_heads"], raw["num_key_value_heads"]
    tokens = ids.shape[1]
    # YaRN, as in the reference's RotaryEmbedding
    base, factor = raw["rope_theta"], raw["rope_scaling_factor"]
    freq = base ** (torch.arange(0, hd, 2, dtype=torch.float) / hd)
    half = hd / 2
    slow_dim = half * math.log(raw["initial_context_length"] / (raw["rope_ntk_beta"] * 2 * math.pi)) / math.log(base)
    fast_dim = half * math.log(raw["initial_context_length"] / (raw["rope_ntk_alpha"] * 2 * math.pi)) / math.log(base)
    keep = 1 - ((torch.arange(half) - slow_dim) / (fast_dim - slow_dim)).clamp(0, 1)  # 1: not interpolated
    inv_freq = (1 / (factor * freq)) * (1 - keep) + (1 / freq) * keep
    angles = torch.arange(tokens, dtype=torch.float)[:, None] * inv_freq[None]
    yarn_gain = 0.1 * math.log(factor) + 1
    cos, sin = angles.cos() * yarn_gain, angles.sin() * yarn_gain

    def rope(x):  # x [T, heads, hd]
        x1, x2 = x.chunk(2, dim=-1)
        c, s = cos[:, None, :], sin[:, None, :]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    x = f["embedding.weight"][ids[0]]
    for n in range(raw["num_hidden_layers"]):
        p = f"block.{n}."
        t = _rms(x, f[p + "attn.norm.scale"])
        qkv = t @ f[p + "attn.qkv.weight"].T + f[p + "attn.qkv.bias"]
        q = rope(qkv[:, : nq * hd].reshape(tokens, nq, hd))
        k = rope(qkv[:, nq * hd : (nq + nkv) * hd].reshape(tokens, nkv, hd))
        v = qkv[:, (nq + nkv) * hd :].reshape(tokens, nkv, hd)
        group = nq // nkv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
        mask = torch.triu(torch.full((tokens, tokens), -math.inf), diagonal=1)
        if n % 2 == 0:  # every even layer slides
            mask = mask + torch.tril(torch.full((tokens, tokens), -math.inf), diagonal=-raw["sliding_window"])
        scores = scores + mask
        sinks = f[p + "attn.sinks"].reshape(nq, 1, 1).expand(nq, tokens, 1)
        weights = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
        attn = torch.einsum("hqk,khd->qhd", weights, v).reshape(tokens, nq * hd)
        x = x + attn @ f[p + "attn.out.weight"].T + f[p + "attn.out.bias"]
        t = _rms(x, f[p + "mlp.norm.scale"])
        gate = t @ f[p + "mlp.gate.weight"].T + f[p + "mlp.gate.bias"]
        top = torch.topk(gate, raw["experts_per_token"], dim=-1, sorted=True)
        expert_weights = torch.softmax(top.values, dim=-1)
        w1 = mxfp4.dequantize(tensors[p + "mlp.mlp1_weight.blocks"], tensors[p + "mlp.mlp1_weight.scales"],
                              torch.float32)  # [E, 2I, H]
        w2 = mxfp4.dequantize(tensors[p + "mlp.mlp2_weight.blocks"], tensors[p + "mlp.mlp2_weight.scales"],
                              torch.float32)  # [E, H, I]
        h = torch.einsum("tjoh,th->tjo", w1[top.indices], t) + f[p + "mlp.mlp1_bias"][top.indices]
        glu = h[..., ::2].clamp(max=raw["swiglu_limit"])
        lin = h[..., 1::2].clamp(-raw["swiglu_limit"], raw["swiglu_limit"])
        h = glu * torch.sigmoid(1.702 * glu) * (lin + 1)
        out = torch.einsum("tjhi,tji->tjh", w2[top.indices], h) + f[p + "mlp.mlp2_bias"][top.indices]
        x = x + torch.einsum("tjh,tj->th", out, expert_weights)
    return _rms(x, f["norm.scale"]) @ f["unembedding.weight"].T


def test_the_converted_model_computes_the_original_architecture(synthetic):
    from safetensors.torch import load_file

    tensors = load_file(str(synthetic["original"] / "model.safetensors"))
    expected = _original_forward(tensors, RAW, IDS)
    got = _logits(load_model(synthetic["original"], "fp32"))
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=2e-4, rtol=1e-4), (got - expected).abs().max()
    # and the test would notice a wrong conversion: all layers full attention differs
    config = ck.config_from_original(RAW)
    config.layer_types = ["full_attention"] * 2
    assert not torch.allclose(_logits(ck._from_state(config, _plain_state(synthetic), torch.float32, "cpu")),
                              expected, atol=2e-4, rtol=1e-4)


def _plain_state(synthetic):
    state = dict(synthetic["packed"])
    ck.dequantize_experts(state, torch.float32)
    return state


# -- malformed checkpoints ------------------------------------------------------------------------


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rewrite(path, **changes):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    for key, value in changes.items():
        if value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    save_file(tensors, str(path))


def test_malformed_checkpoints_are_refused_with_a_cause(synthetic, tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        ck.resolve(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config.json, nor original/config.json"):
        ck.resolve(tmp_path / "empty")
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="neither the Hugging Face gpt-oss layout"):
        ck.resolve(tmp_path / "llama")

    bad = _copy(synthetic["hf"], tmp_path / "bad-shape")
    key = "model.layers.1.mlp.experts.down_proj_blocks"
    _rewrite(bad / "model.safetensors", **{key: torch.zeros(4, 64, 1, 16, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match=r"down_proj_blocks is \(4, 64, 1, 16\), expected \(4, 64, 2, 16\)"):
        load_model(bad, "bf16")

    missing = _copy(synthetic["hf"], tmp_path / "missing")
    _rewrite(missing / "model.safetensors", **{"model.layers.0.mlp.experts.gate_up_proj_scales": None})
    with pytest.raises(CheckpointError, match="lacks model.layers.0.mlp.experts.gate_up_proj_scales"):
        load_model(missing, "bf16")

    nan = _copy(synthetic["hf"], tmp_path / "nan")
    _rewrite(nan / "model.safetensors", **{"model.layers.0.mlp.experts.gate_up_proj_scales":
                                           torch.full((4, 128, 2), 255, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match="E8M0 255, which is NaN"):
        load_model(nan, "bf16")

    wrong_type = _copy(synthetic["original"].parent, tmp_path / "wrong-type")
    _rewrite(wrong_type / "original" / "model.safetensors",
             **{"block.0.mlp.mlp1_weight.scales": torch.zeros(4, 128, 2, dtype=torch.float32)})
    (wrong_type / "config.json").unlink()  # only the original/ folder is left
    for path in wrong_type.glob("*.safetensors"):
        path.unlink()
    with pytest.raises(CheckpointError, match="gate_up_proj_scales is torch.float32; MXFP4 blocks and scales are uint8"):
        load_model(wrong_type, "bf16")

    stray = _copy(synthetic["original"], tmp_path / "stray")
    _rewrite(stray / "model.safetensors", **{"block.0.mlp.extra": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="original layout does not name: block.0.mlp.extra"):
        load_model(stray, "bf16")

    short = tmp_path / "short"
    short.mkdir()
    (short / "config.json").write_text(json.dumps({k: v for k, v in RAW.items() if k != "rope_theta"}))
    shutil.copy(synthetic["original"] / "model.safetensors", short)
    with pytest.raises(CheckpointError, match="original config.json lacks rope_theta"):
        load_model(short, "bf16")


def test_cli_turns_a_bad_checkpoint_into_one_line_and_exit_2(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = run_cli("golden", "build", "--checkpoint", str(tmp_path), "--suite", "harmony", "--out",
                     str(tmp_path / "g"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "neither the Hugging Face gpt-oss layout" in result.stderr


# -- the mxfp4-triton backend on a machine without it ---------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no GPU")
def test_mxfp4_triton_is_refused_clearly_without_a_gpu(synthetic):
    with pytest.raises(UsageError, match="runs on a CUDA GPU .*not cpu"):
        Engine(synthetic["hf"], "mxfp4")
    with pytest.raises(UsageError, match="needs a CUDA GPU; torch .* sees none"):
        Engine(synthetic["hf"], "bf16", device="cuda", backend="mxfp4-triton")
    with pytest.raises(UsageError, match="computes in bf16"):
        Engine(synthetic["hf"], "fp32", backend="mxfp4-triton")
    with pytest.raises(CheckpointError, match="needs an MXFP4 checkpoint"):
        Engine(synthetic["plain"], "mxfp4", device="cuda")
    with pytest.raises(UsageError, match="unknown backend"):
        Engine(synthetic["hf"], "bf16", backend="vllm")


# -- golden build on MXFP4 checkpoints, end to end ------------------------------------------------


@pytest.fixture(scope="module")
def conformance_layouts(checkpoint, tmp_path_factory):
    """The conformance checkpoint with its experts quantised to MXFP4, in both layouts, and as a bf16
    HF checkpoint of the dequantised weights."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("conformance-mxfp4")
    config = ck.resolve(checkpoint).config()
    packed = ck.quantize_experts(load_file(str(checkpoint / "model.safetensors")))
    hf = ck.write_hf_mxfp4(root / "conformance-mxfp4", config, packed)
    original = ck.write_original(root / "conformance-mxfp4-original" / "original", config, packed)
    plain = root / "conformance-dequantised"
    plain.mkdir()
    shutil.copy(checkpoint / "config.json", plain / "config.json")
    state = dict(packed)
    ck.dequantize_experts(state, torch.bfloat16)
    save_file({k: v.contiguous() for k, v in state.items()}, str(plain / "model.safetensors"))
    return {"hf": hf, "original": original, "plain": plain}


def test_golden_build_on_mxfp4_checkpoints_equals_the_dequantised_bf16_checkpoint(conformance_layouts, tmp_path):
    from verifier import golden as store
    from verifier.reference.build import build
    from verifier.suites import load_suite

    suite = load_suite("tools")
    suite = suite.model_copy(update={"cases": suite.cases[:2]})
    built = {}
    for name, path in conformance_layouts.items():
        golden = build(Engine(path, "fp32"), suite)
        saved = store.load(store.save(golden, tmp_path / name / "tools.json"))  # the same golden format
        assert saved.provenance.backend == "transformers" and saved.provenance.dtype == "fp32"
        assert all(len(s.top_ids) == 20 for r in saved.records for t in r.turns for s in t.scores)
        built[name] = saved
    assert built["original"].provenance.checkpoint == "conformance-mxfp4-original"
    for name in ("original", "plain"):
        assert built[name].content_sha256 == built["hf"].content_sha256, name
    assert any(t.finish_reason == "tool_calls" for r in built["hf"].records for t in r.turns)


# -- scoring: top-K in chunks, batches ------------------------------------------------------------


def test_chunked_top_k_equals_full_logits(engine):
    tokens = [int(t) for t in torch.randint(0, 200000, (700,), generator=torch.Generator().manual_seed(5))]
    with torch.inference_mode():
        logprobs = torch.log_softmax(engine.model(input_ids=torch.tensor([tokens])).logits[0, :-1].float(), -1)
    values, ids = torch.topk(logprobs, 20, dim=-1)
    scored = engine._score(tokens, 1, 20)  # 699 positions: 3 chunks of 233
    assert engine.chunk == 256 and len(scored) == 699
    assert [s.top.ids for s in scored] == ids.tolist()
    assert [s.top.logprobs for s in scored] == values.tolist()  # bit for bit
    assert [s.logprob for s in scored] == logprobs.gather(1, torch.tensor(tokens[1:])[:, None])[:, 0].tolist()
    small = Engine.__new__(Engine)  # the same model, 7-position chunks: equal to float32 rounding
    small.__dict__.update(engine.__dict__, chunk=7)
    tiny = small._score(tokens[:60], 1, 20)
    assert [s.top.ids[:5] for s in tiny] == ids[:59, :5].tolist()
    assert max(abs(a - b) for s, row in zip(tiny, values[:59].tolist()) for a, b in zip(s.top.logprobs, row)) < 1e-5


def test_batched_scoring_equals_unbatched_to_float32_rounding(engine):
    from verifier import golden as store
    from verifier.paths import golden_dir

    golden = store.load(golden_dir() / "gpt-oss-conformance" / "fp32" / "tools.json")
    items = [(t.prompt_token_ids + t.completion_token_ids, len(t.prompt_token_ids))
             for r in golden.records for t in r.turns][:8]
    alone = [engine._score(tokens, start, 20) for tokens, start in items]
    batched = engine.score_batch(items, k=20, batch_size=5)
    assert [len(b) for b in batched] == [len(a) for a in alone]
    for a_turn, b_turn in zip(alone, batched):
        for a, b in zip(a_turn, b_turn):
            assert a.token == b.token and a.top.ids[0] == b.top.ids[0]
            assert abs(a.logprob - b.logprob) < 1e-4
            assert max(abs(x - y) for x, y in zip(a.top.logprobs, b.top.logprobs)) < 1e-4


# -- sharded checkpoints with an index, and `golden build` limits ---------------------------------


@pytest.fixture(scope="module")
def sharded(synthetic, tmp_path_factory):
    """The synthetic weights again, in both layouts cut into ~40 kB shards with an index, as published."""
    root = tmp_path_factory.mktemp("sharded")
    hf = ck.write_hf_mxfp4(root / "gpt-oss-tiny", synthetic["config"], synthetic["packed"], shard_bytes=40_000)
    original = ck.write_original(root / "gpt-oss-tiny" / "original", synthetic["config"], synthetic["packed"],
                                 shard_bytes=40_000)
    return {"hf": hf, "original": original}


def test_sharded_checkpoints_are_read_through_their_index(synthetic, sharded):
    for layout in ("hf", "original"):
        ckpt = ck.resolve(sharded[layout])
        weight_map = json.loads((ckpt.path / ck.INDEX).read_text())["weight_map"]
        assert len(ckpt.files) > 2 and {p.name for p in ckpt.files} == set(weight_map.values())
        whole, cut = ck.read(ck.resolve(synthetic[layout])), ck.read(ckpt)
        assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole)
    assert torch.equal(_logits(load_model(sharded["original"], "bf16")), _logits(load_model(synthetic["hf"], "bf16")))


def test_a_missing_or_misplaced_shard_is_refused_in_one_line(sharded, tmp_path):
    missing = _copy(sharded["hf"].parent, tmp_path / "missing") / "gpt-oss-tiny"
    shard = sorted(missing.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(CheckpointError, match=rf"shard {shard.name} named by model.safetensors.index.json is missing"):
        ck.resolve(missing)
    line = one_line_exit_2(run_cli("golden", "build", "--checkpoint", str(missing), "--suite", "harmony",
                                   "--out", str(tmp_path / "g"), timeout=120))
    assert shard.name in line

    moved = _copy(sharded["original"], tmp_path / "moved")
    index = json.loads((moved / ck.INDEX).read_text())
    first, second = sorted(set(index["weight_map"].values()))[:2]
    key = next(k for k, v in index["weight_map"].items() if v == first)
    index["weight_map"][key] = second
    (moved / ck.INDEX).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=rf"disagrees with its shards: {key} is in {first}, the index says {second}"):
        load_model(moved, "bf16")

    (moved / ck.INDEX).write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match="has no weight_map"):
        ck.resolve(moved)


def test_limited_suites_take_the_cases_named_then_the_first_n_and_cap_completions():
    from verifier.reference.build import capped, limited
    from verifier.suites import load_suite

    tools, harmony_suite = load_suite("tools"), load_suite("harmony")
    ids = [tools.cases[2].id, tools.cases[0].id]
    (only,) = limited([tools, harmony_suite], case_ids=ids, max_tokens=8)  # harmony has none of them: left out
    assert [c.id for c in only.cases] == [tools.cases[0].id, tools.cases[2].id]  # suite order
    assert all(c.request["max_tokens"] == 8 for c in only.cases)
    assert [len(s.cases) for s in limited([tools, harmony_suite], cases=2)] == [2, 2]
    assert capped({"max_completion_tokens": 100}, 8) == {"max_completion_tokens": 8}
    assert capped({"max_tokens": 4}, 8) == {"max_tokens": 4}
    assert capped({}, 8) == {"max_tokens": 8}
    with pytest.raises(UsageError, match="no suite chosen has a case 'nope'"):
        limited([tools], case_ids=["nope"])


def test_golden_build_reports_progress_and_records_its_limits(tmp_path):
    from verifier import golden as store

    proc = run_cli("golden", "build", "--suite", "tools", "--cases", "1", "--max-tokens", "6", "--out",
                   str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    golden = store.load(next(tmp_path.glob("*/fp32/tools.json")))
    assert golden.provenance.max_tokens == 6 and len(golden.records) == 1
    assert all(len(t.completion_token_ids) <= 6 for r in golden.records for t in r.turns)
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("loaded ") and "turn 1: " in lines[1] and "tokens/s" in lines[1], proc.stderr
    assert lines[-1].startswith("tools: 1 cases"), proc.stderr
    one_line_exit_2(run_cli("golden", "build", "--suite", "tools", "--case", "nope", "--out", str(tmp_path),
                            timeout=120))
