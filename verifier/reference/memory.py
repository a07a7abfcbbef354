"""The memory plan of a golden build at real scale, with its arithmetic.

gpt-oss-120b (36 layers, hidden H = 2880, 128 experts of intermediate I = 2880 with top-4 routing,
64 query and 8 KV heads of 64, vocabulary 201088):

* experts: 36 x 128 x (H x 2I + I x H) = 114.65e9 weights; in MXFP4 each costs 4 bits plus its share
  of one E8M0 byte per 32, 4.25 bits: **60.9 GB**. Their biases (36 x 128 x 3I) stay bf16: 0.08 GB.
* attention (q, k, v, o with biases, sinks): 36 x 26.5e6 = 0.96e9; embedding and unembedding
  2 x 201088 x 2880 = 1.16e9; router and norms 0.01e9: 2.13e9 bf16 parameters, **4.3 GB**.
* total 116.83e9 parameters; **65.2 GB** with MXFP4 experts, 233.7 GB dequantised to bf16.

So 120b fits one 80 GB GPU only with the experts kept MXFP4 (backend `mxfp4-triton`), leaving about
14 GB for everything else; dequantised (backend `transformers`, bf16) it needs 234 GB: several GPUs
or host memory. gpt-oss-20b (24 layers, 32 experts): 20.91e9 parameters, 13.8 GB with MXFP4 experts,
41.8 GB in bf16: one 80 GB GPU either way.

Per sequence of T tokens at batch B, activations on top of the weights:

* KV cache, bf16: the full-attention half of the layers keeps every token, 18 x 2 x 8 x 64 x 2 B =
  36.9 kB per token for 120b; the sliding half keeps at most 128 tokens (transformers' sliding cache
  layers). 8192 tokens: 0.30 GB.
* eager attention materialises one layer's scores `[B, 64, T, T + 1]` a few times over (scores,
  scores with the sink column, softmax): about 3 x 64 x T^2 x 2 B, 1.6 GB at T = 2048, 26 GB at T = 8192,
  the term that bounds T on one GPU.
* logits: a full `[T, 201088]` fp32 row costs 0.80 MB, 6.6 GB at T = 8192 (twice that with the
  log-softmax). The engine never forms them: it keeps the final hidden states (`[T, H]`, 5.9 kB per
  token in bf16) and runs `lm_head`, log-softmax and top-K over `SCORE_CHUNK` = 256 positions at a time,
  2 x 256 x 201088 x 4 B = 0.41 GB whatever T is.
* the MoE: transformers' dequantised experts gather each expert's tokens (`[tokens, 2I]` per
  expert); the Triton path routes them in one `matmul_ogs`, `[T x top-k, 2I]` bf16.

`estimate` computes these for a config; `check_fits` refuses, before loading anything, a plan whose
weights exceed the device's memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from verifier.reference import mxfp4

GB = 1e9
SCORE_CHUNK = 256
BYTES = {"fp32": 4, "bf16": 2, "mxfp4": 2}
"""Bytes per non-expert parameter and per activation value, by golden dtype label."""

GPT_OSS_20B = {"num_hidden_layers": 24, "num_experts": 32, "experts_per_token": 4, "vocab_size": 201088,
               "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0, "head_dim": 64,
               "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
               "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
               "rope_ntk_alpha": 1, "rope_ntk_beta": 32}
"""original/config.json of openai/gpt-oss-20b."""
GPT_OSS_120B = {**GPT_OSS_20B, "num_hidden_layers": 36, "num_experts": 128}
"""original/config.json of openai/gpt-oss-120b."""


@dataclass
class MemoryPlan:
    params: int
    expert_params: int
    weights_bytes: int
    kv_bytes: int
    attention_bytes: int
    logits_bytes: int
    hidden_bytes: int
    total_bytes: int

    def summary(self) -> str:
        return ", ".join(f"{k.removesuffix('_bytes')} {v / GB:.1f} GB" for k, v in asdict(self).items()
                         if k.endswith("_bytes"))


def count_params(config) -> tuple[int, int]:
    """(all parameters, MoE expert weight parameters) of a transformers GptOssConfig."""
    e, h, i, v = config.num_local_experts, config.hidden_size, config.intermediate_size, config.vocab_size
    q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    experts = e * (h * 2 * i + i * h)
    per_layer = (experts + e * (2 * i + h)  # expert weights and biases
                 + (h * q + q) + 2 * (h * kv + kv) + (q * h + h) + config.num_attention_heads  # attention, sinks
                 + e * h + e + 2 * h)  # router, two norms
    layers = config.num_hidden_layers
    return layers * per_layer + 2 * v * h + h, layers * experts


def estimate(config, dtype: str, tokens: int, batch: int = 1, chunk: int = SCORE_CHUNK,
             full_logits: bool = False) -> MemoryPlan:
    """Device memory of a forward pass over `batch` sequences of `tokens` tokens, by golden dtype
    label (`fp32`, `bf16`: experts dequantised; `mxfp4`: experts packed, everything else bf16)."""
    params, experts = count_params(config)
    width = BYTES[dtype]
    if dtype == "mxfp4":
        expert_bytes = config.num_hidden_layers * config.num_local_experts * (
            mxfp4.packed_bytes(2 * config.intermediate_size, config.hidden_size)
            + mxfp4.packed_bytes(config.hidden_size, config.intermediate_size))
        weights = expert_bytes + (params - experts) * width
    else:
        weights = params * width
    kv_row = 2 * config.num_key_value_heads * config.head_dim * width
    types = list(getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers)
    kv = sum(kv_row * (min(tokens, config.sliding_window) if t == "sliding_attention" else tokens) for t in types)
    attention = 3 * batch * config.num_attention_heads * tokens * (tokens + 1) * width
    rows = tokens if full_logits else min(tokens, chunk)
    logits = 2 * batch * rows * config.vocab_size * 4
    hidden = batch * tokens * config.hidden_size * width * 4  # residual, normed, attention out, MoE out
    total = weights + batch * kv + attention + logits + hidden
    return MemoryPlan(params, experts, weights, batch * kv, attention, logits, hidden, total)


def check_fits(config, dtype: str, device: str, tokens: int = 4096) -> None:
    """Refuse (UsageError, one line) to load weights that cannot fit `device`'s memory."""
    import torch

    from verifier.errors import UsageError

    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return
    capacity = torch.cuda.get_device_properties(torch.device(device)).total_memory
    plan = estimate(config, dtype, tokens)
    if plan.weights_bytes > capacity:
        hint = "; keep the experts MXFP4 with --backend mxfp4-triton" if dtype != "mxfp4" else ""
        raise UsageError(f"{plan.params / 1e9:.1f}B parameters in {dtype} need {plan.weights_bytes / GB:.1f} GB of "
                         f"weights; {device} has {capacity / GB:.1f} GB{hint}")
