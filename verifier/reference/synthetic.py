"""Real-width synthetic checkpoints: gpt-oss-20b's exact configuration with fewer layers.

`real_width_config(layers)` is openai/gpt-oss-20b's `original/config.json` (hidden 2880, 64 query and
8 KV heads of 64, 32 experts top-4, intermediate 2880, vocabulary 201088, YaRN factor 32, sinks,
sliding window 128 on every even layer) with `layers` layers. `write_real_width` writes random seeded
weights (`checkpoints.synthetic_packed`: experts drawn directly as MXFP4) as one repository holds them
when published: the Hugging Face MXFP4 layout at the root and OpenAI's layout in `original/`, both
sharded with a `model.safetensors.index.json` at `shard_bytes` per shard.

Sizes at 2 layers: 2.34e9 parameters (embedding and unembedding 1.16e9 each), 3.2 GB per layout on
disk with MXFP4 experts, 5.4 GB loaded in bf16 (experts dequantised). Used by `tests/test_real_width.py`
and the benchmarks; cheap enough to write on the fly (about 20 s on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

from verifier.reference import checkpoints as ck
from verifier.reference import memory

SHARD_BYTES = 1_000_000_000
"""Shard size of the real-width checkpoint: small enough that both layouts come in several shards
with an index (the published ones cut at about 4.8 GB, so a 2-layer checkpoint would fit in one)."""
LAYOUTS = (ck.HF, ck.ORIGINAL)


def real_width_config(layers: int = 2):
    """The transformers `GptOssConfig` of gpt-oss-20b with `layers` layers."""
    return ck.config_from_original({**memory.GPT_OSS_20B, "num_hidden_layers": int(layers)})


def write_real_width(out: Path, layouts: tuple[str, ...] = LAYOUTS, seed: int = 0, layers: int = 2,
                     shard_bytes: int = SHARD_BYTES) -> Path:
    """Write a real-width checkpoint to the repository folder `out`: the HF MXFP4 layout at its root
    and/or OpenAI's layout in `out/original`, the same weights in both. Returns `out`: the HF layout
    loads from `out`, the original one from `out / "original"` (or from `out` where only it was written)."""
    unknown = [x for x in layouts if x not in LAYOUTS]
    if unknown or not layouts:
        raise ValueError(f"layouts must be among {LAYOUTS}, not {layouts}")
    out = Path(out)
    config = real_width_config(layers)
    packed = ck.synthetic_packed(config, seed=seed)
    if ck.HF in layouts:
        ck.write_hf_mxfp4(out, config, packed, shard_bytes)
    if ck.ORIGINAL in layouts:
        ck.write_original(out / "original", config, packed, shard_bytes)
    return out
