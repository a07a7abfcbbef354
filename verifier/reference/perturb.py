"""Perturbed checkpoints: what a provider that is not computing the reference might serve.

Each perturbation writes a modified copy of a HF gpt-oss checkpoint directory: quantised experts,
attention sinks removed, RoPE/YaRN changed, sliding window off, or another checkpoint altogether.
They feed the drift fault zoo (`gpt-oss-verify run --fault int4-experts`, …), the calibration and
detection benchmarks, and vLLM serving the same perturbations.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from verifier.errors import UsageError
from verifier.paths import cache_dir, made_once

SINK_OFF = -1.0e4
"""A sink logit this low contributes exp(-1e4) = 0 to every softmax: the sink is gone."""


def quantise_groups(weight: torch.Tensor, bits: int, group: int, dim: int) -> torch.Tensor:
    """Symmetric round-to-nearest quantisation in groups of `group` along `dim`, dequantised back."""
    w = weight.float().movedim(dim, -1)
    shape = w.shape
    w = w.reshape(*shape[:-1], shape[-1] // group, group)
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / qmax
    q = torch.clamp(torch.round(w / scale), -qmax - 1, qmax)
    return (q * scale).reshape(shape).movedim(-1, dim).to(weight.dtype)


def _experts(bits: int, group: int) -> Callable[[dict], None]:
    def apply(state: dict) -> None:
        for key in list(state):
            if key.endswith("mlp.experts.gate_up_proj") or key.endswith("mlp.experts.down_proj"):
                state[key] = quantise_groups(state[key], bits, group, dim=1)  # [experts, in, out]

    return apply


def _no_sinks(state: dict) -> None:
    for key in list(state):
        if key.endswith("self_attn.sinks"):
            state[key] = torch.full_like(state[key], SINK_OFF)


def _rope_theta(config: dict) -> None:
    config["rope_parameters"] = {**config["rope_parameters"], "rope_theta": 10000.0}


def _no_yarn(config: dict) -> None:
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": config["rope_parameters"]["rope_theta"]}


def _full_attention(config: dict) -> None:
    config["layer_types"] = ["full_attention"] * len(config["layer_types"])


WEIGHT_PERTURBATIONS: dict[str, tuple[str, Callable[[dict], None]]] = {
    "int4-experts": ("MoE expert weights quantised to int4, groups of 32 along the input dimension", _experts(4, 32)),
    "int8-experts": ("MoE expert weights quantised to int8, groups of 64 along the input dimension", _experts(8, 64)),
    "no-sinks": ("attention sinks removed (sink logits at -1e4)", _no_sinks),
}
CONFIG_PERTURBATIONS: dict[str, tuple[str, Callable[[dict], None]]] = {
    "rope-theta": ("RoPE base 10000 instead of 150000", _rope_theta),
    "no-yarn": ("YaRN scaling off (plain RoPE)", _no_yarn),
    "sliding-window-off": ("every layer attends to the full context", _full_attention),
}
SWAP = {"swapped-checkpoint": "another checkpoint of the same world that answers almost every request the same (its parent)"}
PERTURBATIONS = {**{k: v[0] for k, v in WEIGHT_PERTURBATIONS.items()},
                 **{k: v[0] for k, v in CONFIG_PERTURBATIONS.items()}, **SWAP}


def perturb(checkpoint: Path, kind: str, out: Path) -> Path:
    """Write `checkpoint` with perturbation `kind` applied to `out`."""
    from safetensors.torch import load_file, save_file

    checkpoint, out = Path(checkpoint), Path(out)
    if kind not in PERTURBATIONS:
        raise UsageError(f"unknown perturbation {kind!r}; known: {', '.join(PERTURBATIONS)}")
    if kind in SWAP:
        from verifier.testmodel.compact import ALTERNATE, materialize

        return materialize(out, ALTERNATE)
    out.mkdir(parents=True, exist_ok=True)
    for item in checkpoint.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors") and item.name != "config.json":
            shutil.copyfile(item, out / item.name)
    config = json.loads((checkpoint / "config.json").read_text())
    if kind in CONFIG_PERTURBATIONS:
        CONFIG_PERTURBATIONS[kind][1](config)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for path in sorted(checkpoint.glob("*.safetensors")):
        if kind in WEIGHT_PERTURBATIONS:
            state = load_file(str(path))
            WEIGHT_PERTURBATIONS[kind][1](state)
            save_file(state, str(out / path.name), metadata={"format": "pt", "perturbation": kind})
        else:
            shutil.copyfile(path, out / path.name)
    (out / "perturbation.json").write_text(json.dumps({"kind": kind, "description": PERTURBATIONS[kind],
                                                       "source": str(checkpoint)}))
    return out


def cached(checkpoint: Path, kind: str) -> Path:
    """The perturbed copy of `checkpoint` in the cache, written on first use."""
    tag = hashlib.sha256(f"{Path(checkpoint).resolve()}:{kind}".encode()).hexdigest()[:12]
    out = cache_dir() / "perturbed" / f"{kind}-{tag}"
    return made_once(out, (out / "config.json").is_file, lambda folder: perturb(checkpoint, kind, folder))


def faulty_engine(checkpoint: Path, fault: str, dtype: str = "bf16"):
    """A reference engine with one drift fault: a numeric fault of the engine itself, else the cached
    perturbed checkpoint of that name."""
    from verifier.reference.engine import NUMERIC_FAULTS, Engine

    if fault in NUMERIC_FAULTS:
        return Engine(checkpoint, dtype, numeric_faults=frozenset({fault}))
    return Engine(cached(checkpoint, fault), dtype)
