"""gpt-oss checkpoints in the two published layouts, read into one transformers `GptOssForCausalLM`.

**Hugging Face layout** (the repository root of openai/gpt-oss-20b and -120b): `config.json` with
`model_type: gpt_oss` and `quantization_config: {quant_method: mxfp4, modules_to_not_convert: [..]}`,
safetensors shards (with `model.safetensors.index.json`). Everything is bf16 except the MoE expert
weights, stored MXFP4 (see `verifier.reference.mxfp4`):

    model.layers.N.mlp.experts.gate_up_proj_blocks  [E, 2I, H/32, 16] uint8   (rows: gate/up interleaved)
    model.layers.N.mlp.experts.gate_up_proj_scales  [E, 2I, H/32]     uint8
    model.layers.N.mlp.experts.gate_up_proj_bias    [E, 2I]
    model.layers.N.mlp.experts.down_proj_blocks     [E, H, I/32, 16]  uint8
    model.layers.N.mlp.experts.down_proj_scales     [E, H, I/32]      uint8
    model.layers.N.mlp.experts.down_proj_bias       [E, H]

Blocks run along the input dimension; dequantised they are `[E, out, in]`, and transformers' expert
parameters are the transpose, `gate_up_proj [E, H, 2I]` and `down_proj [E, I, H]`. Output column
`2j` of gate_up is the gate of unit j and `2j + 1` its linear ("up") half, in both layouts. A
checkpoint without `quantization_config` (the conformance checkpoint) holds those bf16 parameters
directly.

**OpenAI's `original/` layout** (the `original/` folder of the same repositories, read by
gpt_oss.torch): `config.json` with `num_experts`, `experts_per_token`, `rope_scaling_factor`,
`rope_ntk_alpha`, `rope_ntk_beta`, `initial_context_length`, … and tensors

    embedding.weight, unembedding.weight, norm.scale
    block.N.attn.norm.scale, block.N.attn.qkv.weight/bias ([q; k; v] rows), block.N.attn.sinks,
    block.N.attn.out.weight/bias, block.N.mlp.norm.scale, block.N.mlp.gate.weight/bias,
    block.N.mlp.mlp1_weight.blocks/.scales, block.N.mlp.mlp1_bias,
    block.N.mlp.mlp2_weight.blocks/.scales, block.N.mlp.mlp2_bias

Its MXFP4 blocks are byte-for-byte the HF ones (same shapes, same interleave); `qkv` splits into
q/k/v by rows; the attention is the same grouped-query attention with sinks, every even layer
sliding, YaRN with `factor = rope_scaling_factor`, `beta_fast = rope_ntk_beta`, `beta_slow =
rope_ntk_alpha`, `original_max_position_embeddings = initial_context_length` (no truncation).

Both layouts may be sharded: where a directory has `model.safetensors.index.json` (as the published
ones do), its shards are exactly those the index names, each required (a missing one is refused in one
line), and every tensor must be in the shard the index says.

`read` gives the HF-named state dict of either layout (MXFP4 still packed), checked against the
config's shapes; `load_model` builds the model from it for a backend:

* `transformers`: experts dequantised exactly (`mxfp4.dequantize`) to the requested dtype.
* `mxfp4-triton`: experts stay MXFP4 on the GPU and run through transformers' Mxfp4 integration
  (OpenAI's Triton `matmul_ogs` kernels from the `kernels` package); bf16 activations. Refused, with
  its cause, where those cannot run: no CUDA, a GPU older than Hopper, no triton or kernels.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from verifier.errors import CheckpointError, UsageError
from verifier.paths import cache_dir
from verifier.reference import memory, mxfp4

HF = "hf"
ORIGINAL = "original"
BACKENDS = {
    "transformers": "transformers GptOss, MoE experts dequantised exactly to the requested dtype",
    "mxfp4-triton": "transformers GptOss with MXFP4 experts kept quantised (Triton matmul_ogs kernels), bf16 "
                    "activations; CUDA, compute capability >= 9.0 (Hopper)",
}
MXFP4_KERNELS = "kernels-community/gpt-oss-triton-kernels"
MIN_CAPABILITY = (9, 0)
MODULES_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]
"""`modules_to_not_convert` of the published checkpoints: everything but the experts stays bf16."""
ORIGINAL_CONFIG_KEYS = ("num_hidden_layers", "num_experts", "experts_per_token", "vocab_size", "hidden_size",
                        "intermediate_size", "swiglu_limit", "head_dim", "num_attention_heads",
                        "num_key_value_heads", "sliding_window", "initial_context_length", "rope_theta",
                        "rope_scaling_factor", "rope_ntk_alpha", "rope_ntk_beta")
PROJECTIONS = ("gate_up_proj", "down_proj")


@dataclass
class Checkpoint:
    """A resolved checkpoint directory."""

    path: Path
    """The directory holding the config and weights (`original/` itself for that layout)."""
    layout: str
    """`hf` or `original`."""
    raw_config: dict
    files: list[Path] = field(default_factory=list)

    @property
    def quantized(self) -> bool:
        """MoE experts stored MXFP4 (always so in the original layout)."""
        if self.layout == ORIGINAL:
            return True
        return (self.raw_config.get("quantization_config") or {}).get("quant_method") == "mxfp4"

    @property
    def name(self) -> str:
        """The directory name, or its parent's for an `original/` folder."""
        resolved = self.path.resolve()
        return resolved.parent.name if self.layout == ORIGINAL and resolved.name == "original" else resolved.name

    def config(self):
        """The transformers `GptOssConfig` of the model (without quantization_config)."""
        return hf_config(self.raw_config) if self.layout == HF else config_from_original(self.raw_config)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return data


def resolve(path: Path) -> Checkpoint:
    """Which layout `path` is in: its own `config.json`, else an `original/` folder inside it."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory")
    for where in (path, path / "original"):
        if not (where / "config.json").is_file():
            continue
        raw = _read_json(where / "config.json")
        if raw.get("model_type") == "gpt_oss" or "GptOssForCausalLM" in (raw.get("architectures") or []):
            layout = HF
        elif "num_experts" in raw and "experts_per_token" in raw:
            layout = ORIGINAL
        else:
            raise CheckpointError(f"{where} is neither the Hugging Face gpt-oss layout (config.json with model_type "
                                  "gpt_oss) nor OpenAI's original/ layout (config.json with num_experts)")
        return Checkpoint(where, layout, raw, weight_files(where))
    raise CheckpointError(f"{path} is not a checkpoint directory (no config.json, nor original/config.json)")


INDEX = "model.safetensors.index.json"


def weight_files(where: Path) -> list[Path]:
    """The weight files of a checkpoint directory: the shards its `model.safetensors.index.json` names
    (as published checkpoints ship, every one required), else every `.safetensors` file there."""
    if not (where / INDEX).is_file():
        files = sorted(where.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{where} has no .safetensors weight files")
        return files
    weight_map = _read_json(where / INDEX).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{where / INDEX} has no weight_map of tensor names to shard files")
    shards = sorted(set(weight_map.values()))
    missing = [name for name in shards if Path(name).name != name or not (where / name).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{where}: shard {missing[0]}{more} named by {INDEX} is missing")
    return [where / name for name in shards]


def _check_index(where: Path, index: dict[str, Path]) -> None:
    """Where an index exists, every tensor is in the shard it names and every shard tensor is indexed."""
    if not (where / INDEX).is_file():
        return
    weight_map = _read_json(where / INDEX)["weight_map"]
    wrong = [f"{k} is in {index[k].name if k in index else 'no shard'}, the index says {v}"
             for k, v in weight_map.items() if k not in index or index[k].name != v]
    wrong += [f"{k} in {p.name} is not in the index" for k, p in index.items() if k not in weight_map]
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise CheckpointError(f"{where / INDEX} disagrees with its shards: {wrong[0]}{more}")


def hf_config(raw: dict):
    from transformers import GptOssConfig

    raw = {k: v for k, v in raw.items() if k != "quantization_config"}
    try:
        return GptOssConfig(**raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"config.json is not a valid gpt-oss config ({exc})") from None


def config_from_original(raw: dict):
    """The transformers config equivalent to an original/ config.json."""
    from transformers import GptOssConfig

    missing = [k for k in ORIGINAL_CONFIG_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"original config.json lacks {', '.join(missing)}")
    layers = int(raw["num_hidden_layers"])
    return GptOssConfig(
        num_hidden_layers=layers, num_local_experts=int(raw["num_experts"]),
        num_experts_per_tok=int(raw["experts_per_token"]), vocab_size=int(raw["vocab_size"]),
        hidden_size=int(raw["hidden_size"]), intermediate_size=int(raw["intermediate_size"]),
        swiglu_limit=float(raw["swiglu_limit"]), head_dim=int(raw["head_dim"]),
        num_attention_heads=int(raw["num_attention_heads"]), num_key_value_heads=int(raw["num_key_value_heads"]),
        sliding_window=int(raw["sliding_window"]), attention_bias=True, tie_word_embeddings=False,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
        rope_parameters={"rope_type": "yarn", "rope_theta": float(raw["rope_theta"]),
                         "factor": float(raw["rope_scaling_factor"]), "beta_fast": float(raw["rope_ntk_beta"]),
                         "beta_slow": float(raw["rope_ntk_alpha"]), "truncate": False,
                         "original_max_position_embeddings": int(raw["initial_context_length"])},
        rms_norm_eps=1e-5, max_position_embeddings=131072,
        **({"pad_token_id": 199999, "eos_token_id": 200002, "bos_token_id": 199998}  # as the published HF configs
           if int(raw["vocab_size"]) > 200002 else {"pad_token_id": None, "eos_token_id": None, "bos_token_id": None}),
    )


def original_config(config) -> dict:
    """The original/ config.json of a transformers config (for writing that layout)."""
    rope = config.rope_parameters
    return {
        "num_hidden_layers": config.num_hidden_layers, "num_experts": config.num_local_experts,
        "experts_per_token": config.num_experts_per_tok, "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
        "swiglu_limit": config.swiglu_limit, "head_dim": config.head_dim,
        "num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads,
        "sliding_window": config.sliding_window, "initial_context_length": rope["original_max_position_embeddings"],
        "rope_theta": rope["rope_theta"], "rope_scaling_factor": rope["factor"], "rope_ntk_alpha": rope["beta_slow"],
        "rope_ntk_beta": rope["beta_fast"],
    }


# -- names and shapes -----------------------------------------------------------------------------


def expected_shapes(config, quantized: bool) -> dict[str, tuple[int, ...]]:
    """Every HF tensor name of the model with its shape (experts packed MXFP4 when `quantized`)."""
    e, h, i = config.num_local_experts, config.hidden_size, config.intermediate_size
    q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    out = {"model.embed_tokens.weight": (config.vocab_size, h), "lm_head.weight": (config.vocab_size, h),
           "model.norm.weight": (h,)}
    for n in range(config.num_hidden_layers):
        p = f"model.layers.{n}."
        out |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                p + "self_attn.q_proj.weight": (q, h), p + "self_attn.q_proj.bias": (q,),
                p + "self_attn.k_proj.weight": (kv, h), p + "self_attn.k_proj.bias": (kv,),
                p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.v_proj.bias": (kv,),
                p + "self_attn.o_proj.weight": (h, q), p + "self_attn.o_proj.bias": (h,),
                p + "self_attn.sinks": (config.num_attention_heads,),
                p + "mlp.router.weight": (e, h), p + "mlp.router.bias": (e,),
                p + "mlp.experts.gate_up_proj_bias": (e, 2 * i), p + "mlp.experts.down_proj_bias": (e, h)}
        if quantized:
            out |= {p + "mlp.experts.gate_up_proj_blocks": (e, 2 * i, h // mxfp4.BLOCK, mxfp4.BYTES_PER_BLOCK),
                    p + "mlp.experts.gate_up_proj_scales": (e, 2 * i, h // mxfp4.BLOCK),
                    p + "mlp.experts.down_proj_blocks": (e, h, i // mxfp4.BLOCK, mxfp4.BYTES_PER_BLOCK),
                    p + "mlp.experts.down_proj_scales": (e, h, i // mxfp4.BLOCK)}
        else:
            out |= {p + "mlp.experts.gate_up_proj": (e, h, 2 * i), p + "mlp.experts.down_proj": (e, i, h)}
    return out


_NAMES = [  # (original/ name, HF name); {n} a layer, {k} weight or bias, {q} blocks or scales
    ("embedding.weight", "model.embed_tokens.weight"),
    ("unembedding.weight", "lm_head.weight"),
    ("norm.scale", "model.norm.weight"),
    ("block.{n}.attn.norm.scale", "model.layers.{n}.input_layernorm.weight"),
    ("block.{n}.attn.sinks", "model.layers.{n}.self_attn.sinks"),
    ("block.{n}.attn.out.{k}", "model.layers.{n}.self_attn.o_proj.{k}"),
    ("block.{n}.mlp.norm.scale", "model.layers.{n}.post_attention_layernorm.weight"),
    ("block.{n}.mlp.gate.{k}", "model.layers.{n}.mlp.router.{k}"),
    ("block.{n}.mlp.mlp1_weight.{q}", "model.layers.{n}.mlp.experts.gate_up_proj_{q}"),
    ("block.{n}.mlp.mlp1_bias", "model.layers.{n}.mlp.experts.gate_up_proj_bias"),
    ("block.{n}.mlp.mlp2_weight.{q}", "model.layers.{n}.mlp.experts.down_proj_{q}"),
    ("block.{n}.mlp.mlp2_bias", "model.layers.{n}.mlp.experts.down_proj_bias"),
]
_QKV = re.compile(r"block\.(\d+)\.attn\.qkv\.(weight|bias)")


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)").replace(r"\{k\}", "(?P<k>weight|bias)")
                      .replace(r"\{q\}", "(?P<q>blocks|scales)"))


_FORWARD = [(_pattern(o), h) for o, h in _NAMES]
_BACKWARD = [(_pattern(h), o) for o, h in _NAMES]


def _rename(name: str, table) -> str | None:
    for pattern, target in table:
        if (m := pattern.fullmatch(name)) is not None:
            return target.format(**m.groupdict())
    return None


def hf_name(original: str) -> str | None:
    """The HF name of an original/ tensor (None for `qkv`, which splits, and for unknown names)."""
    return _rename(original, _FORWARD)


def to_original_name(name: str) -> str:
    """The original/ name of an HF tensor (q/k/v excepted: they are rows of one `qkv`)."""
    if (out := _rename(name, _BACKWARD)) is None:
        raise KeyError(name)
    return out


# -- reading --------------------------------------------------------------------------------------


def _tensor_index(files: list[Path]) -> dict[str, Path]:
    from safetensors import safe_open

    index: dict[str, Path] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():
                    if key in index:
                        raise CheckpointError(f"tensor {key} is in both {index[key].name} and {path.name}")
                    index[key] = path
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    return index


def _read_tensors(index: dict[str, Path], device: str) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name in index:
        by_file.setdefault(index[name], []).append(name)
    out = {}
    for path, keys in by_file.items():
        with safe_open(str(path), framework="pt", device=device) as fh:
            for key in keys:
                out[key] = fh.get_tensor(key)
    return out


def _check(shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], where: Path) -> None:
    """Every expected tensor present with its shape, nothing else: else a one-line CheckpointError."""
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [f"{k} is {shapes[k]}, expected {expected[k]}" for k in expected if k in shapes and shapes[k] != expected[k]]
    for problems, what in ((missing, " lacks "), (unexpected, " has an unexpected tensor "), (wrong, ": ")):
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CheckpointError(f"{where}{what}{problems[0]}{more}")


def _check_dtypes(state: dict[str, torch.Tensor], where: Path) -> None:
    for key, tensor in state.items():
        packed = key.endswith(("_blocks", "_scales"))
        if packed and tensor.dtype != torch.uint8:
            raise CheckpointError(f"{where}: {key} is {tensor.dtype}; MXFP4 blocks and scales are uint8")
        if not packed and not tensor.is_floating_point():
            raise CheckpointError(f"{where}: {key} is {tensor.dtype}, expected a floating-point tensor")


def read(ckpt: Checkpoint, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under HF names, MXFP4 experts still packed, checked against its config."""
    config = ckpt.config()
    index = _tensor_index(ckpt.files)
    _check_index(ckpt.path, index)
    if ckpt.layout == HF:
        state = _read_tensors(index, device)
    else:
        unknown = [k for k in index if hf_name(k) is None and not _QKV.fullmatch(k)]
        if unknown:
            raise CheckpointError(f"{ckpt.path} has tensors the original layout does not name: {unknown[0]}"
                                  + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))
        raw = _read_tensors(index, device)
        state = {}
        q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
        for key, tensor in raw.items():
            if (m := _QKV.fullmatch(key)) is None:
                state[hf_name(key)] = tensor
                continue
            if tensor.shape[0] != q + 2 * kv:
                raise CheckpointError(f"{ckpt.path}: {key} has {tensor.shape[0]} rows, expected q+k+v = {q + 2 * kv}")
            layer, kind = m.groups()
            for proj, part in zip(("q", "k", "v"), torch.split(tensor, [q, kv, kv], dim=0)):
                state[f"model.layers.{layer}.self_attn.{proj}_proj.{kind}"] = part.contiguous()
    _check({k: tuple(v.shape) for k, v in state.items()}, expected_shapes(config, ckpt.quantized), ckpt.path)
    _check_dtypes(state, ckpt.path)
    return state


def _largest_safe_scale(dtype: torch.dtype) -> int:
    """The largest E8M0 scale at which no FP4 value (at most 6) overflows `dtype`: 252 for bf16 and fp32.
    Below it the finiteness of a dequantised tensor need not be checked element by element."""
    return math.floor(math.log2(torch.finfo(dtype).max / mxfp4.FP4_MAX)) + mxfp4.SCALE_BIAS


def dequantize_experts(state: dict[str, torch.Tensor], dtype: torch.dtype, where: Path | str = "checkpoint") -> None:
    """Replace every `*_blocks`/`*_scales` pair by the transformers parameter, exactly, in place:
    `[E, out, in]` dequantised, then transposed to `[E, in, out]`."""
    for key in [k for k in state if k.endswith("_blocks")]:
        base = key.removesuffix("_blocks")
        blocks, scales = state.pop(key), state.pop(base + "_scales")
        if bool((scales == mxfp4.SCALE_NAN).any()):
            raise CheckpointError(f"{where}: {base}_scales holds E8M0 255, which is NaN")
        weight = mxfp4.dequantize(blocks, scales, dtype)
        if int(scales.max()) > _largest_safe_scale(dtype) and not bool(torch.isfinite(weight).all()):
            raise CheckpointError(f"{where}: {base} overflows {dtype} once dequantised (scale too large)")
        state[base] = weight.transpose(1, 2).contiguous()
        del blocks, scales, weight


# -- building the model ---------------------------------------------------------------------------


def check_mxfp4_triton(device: str) -> None:
    """Raise a one-line UsageError unless the MXFP4 Triton kernels can run on `device` here."""
    import importlib.util

    if not str(device).startswith("cuda"):
        raise UsageError(f"backend mxfp4-triton runs on a CUDA GPU (--device cuda), not {device}")
    if not torch.cuda.is_available():
        raise UsageError(f"backend mxfp4-triton needs a CUDA GPU; torch {torch.__version__} sees none")
    capability = torch.cuda.get_device_capability(torch.device(device))
    if capability < MIN_CAPABILITY:
        raise UsageError(f"backend mxfp4-triton needs compute capability >= {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} "
                         f"(Hopper); {torch.cuda.get_device_name(torch.device(device))} is "
                         f"{capability[0]}.{capability[1]}")
    for module, package in (("triton", "triton>=3.4"), ("kernels", "kernels"), ("accelerate", "accelerate")):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"backend mxfp4-triton needs the {package} package (pip install '{package}')")
    try:
        from transformers.integrations.hub_kernels import get_kernel

        get_kernel(MXFP4_KERNELS, version=1)
    except Exception as exc:  # the kernels package raises hub, import and build errors alike
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UsageError(f"backend mxfp4-triton: the Triton MXFP4 kernels ({MXFP4_KERNELS}) could not be loaded: "
                         f"{first}; fetch them once online (or set KERNELS_CACHE to a copy, HF_HUB_OFFLINE=1)") from None


def _from_state(config, state: dict, dtype: torch.dtype, device: str, **kwargs):
    """The model over `state` (HF names), sharing its tensors: read them onto `device` to load there."""
    from transformers import GptOssForCausalLM

    model = GptOssForCausalLM.from_pretrained(None, config=config, state_dict=state, dtype=dtype,
                                              attn_implementation="eager", **kwargs)
    return model.to(device).eval()


def load_model(path: Path, dtype: torch.dtype, device: str = "cpu", backend: str = "transformers"):
    """A transformers GptOss model, in eval mode, from a checkpoint in either layout (never a hub)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    ckpt = resolve(path)
    if backend == "mxfp4-triton":
        if not ckpt.quantized:
            raise CheckpointError(f"{ckpt.path} holds bf16 experts; backend mxfp4-triton needs an MXFP4 checkpoint")
        check_mxfp4_triton(device)
        memory.check_fits(ckpt.config(), "mxfp4", device)
        return _load_mxfp4_triton(ckpt, device)
    memory.check_fits(ckpt.config(), "fp32" if dtype == torch.float32 else "bf16", device)
    if not ckpt.quantized:  # a plain HF checkpoint, loaded as it always was
        _check_hf_plain(ckpt)
        model = AutoModelForCausalLM.from_pretrained(str(ckpt.path), dtype=dtype, local_files_only=True,
                                                     attn_implementation="eager")
        return model.to(device).eval()
    state = read(ckpt, device)
    dequantize_experts(state, dtype, ckpt.path)
    return _from_state(ckpt.config(), state, dtype, device)


def _check_hf_plain(ckpt: Checkpoint) -> None:
    """Names and shapes of an unquantised HF checkpoint, from the safetensors headers alone."""
    from safetensors import safe_open

    shapes, where = {}, {}
    for path in ckpt.files:
        try:
            with safe_open(str(path), framework="pt") as fh:
                shapes |= {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
                where |= dict.fromkeys(fh.keys(), path)
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    _check_index(ckpt.path, where)
    _check(shapes, expected_shapes(ckpt.config(), quantized=False), ckpt.path)


def _load_mxfp4_triton(ckpt: Checkpoint, device: str):
    from transformers import GptOssForCausalLM, Mxfp4Config
    from transformers.integrations.mxfp4 import Mxfp4GptOssExperts

    quant = Mxfp4Config(modules_to_not_convert=MODULES_NOT_CONVERTED, dequantize=False)
    if ckpt.layout == HF:
        model = GptOssForCausalLM.from_pretrained(str(ckpt.path), dtype=torch.bfloat16, local_files_only=True,
                                                  attn_implementation="eager", device_map={"": device},
                                                  quantization_config=quant).eval()
    else:
        config = ckpt.config()
        config.quantization_config = quant.to_dict()
        model = _from_state(config, read(ckpt, "cpu"), torch.bfloat16, device, quantization_config=quant,
                            device_map={"": device})
    experts = [m for m in model.modules() if m.__class__.__name__.endswith("Experts")]
    if not experts or not all(isinstance(m, Mxfp4GptOssExperts) for m in experts):
        raise UsageError("backend mxfp4-triton: transformers fell back to dequantised experts (see its warning)")
    return model


# -- writing (synthetic checkpoints, tests, benchmarks) -------------------------------------------


def quantize_experts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An HF state dict with bf16 experts `[E, in, out]` turned into packed MXFP4 (blocks along `in`)."""
    out = {}
    for key, tensor in state.items():
        if key.endswith(tuple(f"mlp.experts.{p}" for p in PROJECTIONS)):
            blocks, scales = mxfp4.quantize(tensor.transpose(1, 2))
            out[key + "_blocks"], out[key + "_scales"] = blocks, scales
        else:
            out[key] = tensor
    return out


def _save_shards(tensors: dict[str, torch.Tensor], out: Path, shard_bytes: int, prefix: str) -> list[str]:
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor.contiguous()
        size += nbytes
    names = ([f"{prefix}.safetensors"] if len(shards) == 1 else
             [f"{prefix}-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map = {}
    for name, shard in zip(names, shards):
        save_file(shard, str(out / name), metadata={"format": "pt"})
        weight_map |= {k: name for k in shard}
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        (out / f"{prefix}.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    return names


def write_hf_mxfp4(out: Path, config, packed: dict[str, torch.Tensor], shard_bytes: int = 4_800_000_000) -> Path:
    """Write the HF layout: `packed` is an HF state dict with MXFP4 experts (`quantize_experts`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    raw = config.to_dict()
    raw |= {"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
            "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": MODULES_NOT_CONVERTED}}
    (out / "config.json").write_text(json.dumps(raw, indent=2))
    _save_shards(packed, out, shard_bytes, "model")
    return out


def write_original(out: Path, config, packed: dict[str, torch.Tensor], shard_bytes: int = 4_800_000_000) -> Path:
    """Write OpenAI's original/ layout to `out` (the `original` folder itself)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(original_config(config), indent=2))
    tensors: dict[str, torch.Tensor] = {}
    for n in range(config.num_hidden_layers):
        p = f"model.layers.{n}.self_attn."
        for kind in ("weight", "bias"):
            tensors[f"block.{n}.attn.qkv.{kind}"] = torch.cat([packed[f"{p}{x}_proj.{kind}"] for x in "qkv"])
    for key, tensor in packed.items():
        if not re.search(r"self_attn\.[qkv]_proj\.", key):
            tensors[to_original_name(key)] = tensor
    _save_shards(tensors, out, shard_bytes, "model")
    return out


def synthetic_packed(config, seed: int = 0, scale_exponent: int = -6) -> dict[str, torch.Tensor]:
    """Random weights in real tensor names and shapes, experts drawn directly as MXFP4 (random codes,
    scales around 2 ** scale_exponent), everything else bf16: a 20b-shaped checkpoint without ever
    holding 20b parameters in bf16."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in expected_shapes(config, quantized=True).items():
        if key.endswith("_blocks"):
            out[key] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        elif key.endswith("_scales"):
            out[key] = torch.randint(mxfp4.SCALE_BIAS + scale_exponent - 1, mxfp4.SCALE_BIAS + scale_exponent + 1,
                                     shape, dtype=torch.uint8, generator=g)
        elif key.endswith("norm.weight"):
            out[key] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            std = 1.0 if key.endswith("sinks") else 0.02
            out[key] = (torch.randn(shape, generator=g) * std).to(torch.bfloat16)
    return out


def checkpoint_sha256(checkpoint: Path) -> str:
    """sha256 over config.json, the shard index where there is one, and the weight files the loader reads
    (per-file digests cached by size and mtime), of the directory that holds them (`original/` for OpenAI's
    layout)."""
    ckpt = resolve(checkpoint)
    checkpoint = ckpt.path
    digest = hashlib.sha256((checkpoint / "config.json").read_bytes())
    if (checkpoint / INDEX).is_file():
        digest.update((checkpoint / INDEX).read_bytes())
    cache_file = cache_dir() / "checkpoint-hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    for path in sorted(ckpt.files):
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in cache:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    h.update(chunk)
            cache[key] = h.hexdigest()
        digest.update(f"{path.name}:{cache[key]}".encode())
    cache_file.write_text(json.dumps(cache))
    return digest.hexdigest()
