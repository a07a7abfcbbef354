"""The conformance checkpoint: stored compactly in the repo, materialised as a standard HF directory.

The repo holds `weights/conformance.safetensors`: every tensor of the model except that the
embedding and unembedding keep only the rows of the token ids training used (`used_token_ids`);
all other rows of the full 201088-row matrices are zero. `materialize` scatters them back and
writes `config.json`, `generation_config.json`, `model.safetensors` (bf16, like the published
gpt-oss checkpoints' non-expert weights) and an offline-built `tokenizer.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from verifier import harmony
from verifier.errors import CheckpointError
from verifier.paths import cache_dir, made_once
from verifier.testmodel.tokenizer import TOKENIZER_VERSION, build_tokenizer_json

NAME = "gpt-oss-conformance"
WEIGHTS = Path(__file__).parent / "weights" / "conformance.safetensors"
ALTERNATE = Path(__file__).parent / "weights" / "alternate.safetensors"
"""The shipped checkpoint's parent: same answers on every suite request, another distribution."""
EOS_TOKEN_IDS = [harmony.RETURN, harmony.END_OF_TEXT, harmony.CALL]


def config_kwargs() -> dict:
    """The architecture: gpt-oss's, scaled down (2 layers, hidden 64, 8 experts, head_dim 64)."""
    return dict(
        num_hidden_layers=2, hidden_size=64, intermediate_size=64, head_dim=64,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
        sliding_window=128, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=131072, tie_word_embeddings=False,
        eos_token_id=EOS_TOKEN_IDS, pad_token_id=harmony.END_OF_TEXT, bos_token_id=harmony.START_OF_TEXT,
    )


def compact_config(vocab_size: int):
    from transformers import GptOssConfig

    return GptOssConfig(**{**config_kwargs(), "vocab_size": vocab_size, "pad_token_id": 0,
                           "bos_token_id": 0, "eos_token_id": 0})


def full_config():
    from transformers import GptOssConfig

    return GptOssConfig(**config_kwargs(), vocab_size=harmony.VOCAB_SIZE)


class CompactModel(torch.nn.Module):
    """A gpt-oss over the compact vocabulary; `forward` returns its logits."""

    def __init__(self, config):
        super().__init__()
        from transformers import GptOssForCausalLM

        config._attn_implementation = "eager"
        self.inner = GptOssForCausalLM(config)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.inner.model(input_ids=inputs, attention_mask=mask).last_hidden_state
        return self.inner.lm_head(hidden)


def save_compact(model: CompactModel, used: list[int], out: Path, meta: dict) -> Path:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.inner.state_dict().items()}
    tensors["used_token_ids"] = torch.tensor(used, dtype=torch.int64)
    path = out / WEIGHTS.name
    save_file(tensors, str(path), metadata={"training": json.dumps(meta)})
    return path


def load_compact(path: Path = WEIGHTS) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict]:
    """(compact state dict, used token ids, training metadata)."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"conformance weights not found at {path}")
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = json.loads((fh.metadata() or {}).get("training", "{}"))
    return tensors, tensors.pop("used_token_ids"), meta


def full_state_dict(compact: dict[str, torch.Tensor], used: torch.Tensor) -> dict[str, torch.Tensor]:
    """The full-vocabulary state dict: compact rows scattered into zero matrices."""
    out = dict(compact)
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        rows = compact[key]
        full = torch.zeros(harmony.VOCAB_SIZE, rows.shape[1], dtype=rows.dtype)
        full[used] = rows
        out[key] = full
    return out


def weights_digest(path: Path = WEIGHTS) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def materialize(out: Path, weights: Path = WEIGHTS) -> Path:
    """Write a standard Hugging Face checkpoint directory for the conformance model to `out`."""
    name = NAME if weights == WEIGHTS else f"{NAME}-{weights.stem}"
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    compact, used, meta = load_compact(weights)
    out.mkdir(parents=True, exist_ok=True)
    config = full_config()
    config.architectures = ["GptOssForCausalLM"]
    config.dtype = "bfloat16"
    config.save_pretrained(out)
    GenerationConfig(bos_token_id=harmony.START_OF_TEXT, eos_token_id=EOS_TOKEN_IDS,
                     pad_token_id=harmony.END_OF_TEXT, do_sample=True).save_pretrained(out)
    state = full_state_dict(compact, used)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    build_tokenizer_json(out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>",
        "eos_token": "<|return|>", "pad_token": "<|endoftext|>", "model_max_length": 131072,
    }, indent=2))
    (out / "conformance.json").write_text(json.dumps({
        "name": name, "compact_weights_sha256": weights_digest(weights), "training": meta,
    }, indent=2))
    return out


def default_checkpoint() -> Path:
    """The materialised conformance checkpoint in the cache (materialised on first use)."""
    digest = weights_digest()[:12]
    out = cache_dir() / "checkpoints" / f"{NAME}-{digest}-t{TOKENIZER_VERSION}"
    return made_once(out, lambda: (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file(),
                     materialize)
