"""MXFP4 (OCP Microscaling, FP4 E2M1 elements with E8M0 block scales), as gpt-oss checkpoints store
their MoE expert weights.

A weight `[.., rows, cols]` is stored as two uint8 tensors:

* `blocks` `[.., rows, cols / 32, 16]`: each block of 32 consecutive values along `cols` (the input
  dimension of the projection) packed two per byte, **low nibble first**: byte `j` of a block holds
  element `2j` in bits 0-3 and element `2j + 1` in bits 4-7.
* `scales` `[.., rows, cols / 32]`: one E8M0 exponent per block, value `2 ** (s - 127)`. `s = 255` is
  NaN in the OCP Microscaling Formats specification (v1.0); `transformers` and OpenAI's reference
  compute `ldexp(x, 128)` for it instead (infinite or meaningless), so checkpoints holding it are
  refused by the loaders rather than interpreted.

An FP4 E2M1 nibble is `sign(1) exponent(2) mantissa(1)`, bias 1: codes 0-7 are +0, 0.5, 1, 1.5, 2, 3, 4,
6 and codes 8-15 the same magnitudes negated (code 8 is -0). A value is `fp4(code) * 2 ** (s - 127)`,
exact in float32 and bfloat16 for every scale a real checkpoint uses (|value| < 2 ** 128; larger
ones overflow to inf in either type, and the loaders refuse them).
"""

from __future__ import annotations

import math

import torch

BLOCK = 32
"""Elements per block (one shared scale)."""
BYTES_PER_BLOCK = BLOCK // 2
SCALE_BIAS = 127
SCALE_NAN = 255
FP4_VALUES = (+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0,
              -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
"""The 16 E2M1 codes, in code order."""
FP4_MAX = 6.0
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
"""Between consecutive magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6."""


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.bfloat16,
               rows_per_chunk: int = 1 << 22) -> torch.Tensor:
    """`[.., G, 16]` uint8 blocks and `[.., G]` uint8 scales to `[.., G * 32]` values of `dtype`.

    Exact: each byte is looked up as its two E2M1 values (low nibble first) and multiplied by its
    block's `2 ** (s - 127)`, both exact in float32 and bfloat16 (the same exponent range, so that
    product is the one rounding, a no-op below overflow); other dtypes compute in float32 and round
    once. A scale of 255 gives NaN for its whole block (OCP). Works in chunks of `rows_per_chunk`
    blocks so that the index tensors stay small on a GPU.
    """
    if blocks.dtype != torch.uint8 or scales.dtype != torch.uint8:
        raise ValueError(f"MXFP4 blocks and scales must be uint8, not {blocks.dtype} and {scales.dtype}")
    if blocks.shape[-1] != BYTES_PER_BLOCK or blocks.shape[:-1] != scales.shape:
        raise ValueError(f"MXFP4 blocks {tuple(blocks.shape)} do not match scales {tuple(scales.shape)} "
                         f"(expected blocks [.., G, {BYTES_PER_BLOCK}] and scales [.., G])")
    *prefix, groups, width = blocks.shape
    rows = math.prod(prefix) * groups
    flat_blocks = blocks.reshape(rows, width)
    flat_scales = scales.reshape(rows)
    work = dtype if dtype in (torch.float32, torch.bfloat16) else torch.float32
    lut = torch.tensor(FP4_VALUES, dtype=torch.float32, device=blocks.device)
    pairs = torch.stack([lut.repeat(16), lut.repeat_interleave(16)], dim=1).to(work)  # byte -> (low, high)
    powers = torch.ldexp(torch.ones(256, device=blocks.device), torch.arange(256, device=blocks.device) - SCALE_BIAS)
    powers[SCALE_NAN] = torch.nan
    powers = powers.to(work)
    out = torch.empty(rows, BLOCK, dtype=dtype, device=blocks.device)
    for r0 in range(0, rows, rows_per_chunk):
        blk = flat_blocks[r0 : r0 + rows_per_chunk]
        values = torch.nn.functional.embedding(blk.int(), pairs).reshape(blk.shape[0], BLOCK)
        out[r0 : r0 + rows_per_chunk] = values * powers[flat_scales[r0 : r0 + rows_per_chunk].int()][:, None]
    return out.reshape(*prefix, groups * BLOCK)


def _encode(magnitude_over_scale: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """FP4 codes (uint8 0..15) of values already divided by their block scale: round to nearest, ties
    to the even code, saturating at 6."""
    mag = magnitude_over_scale.clamp(max=FP4_MAX)
    mids = torch.tensor(_MIDPOINTS, dtype=mag.dtype, device=mag.device)
    idx = torch.bucketize(mag, mids)  # mids[i-1] < mag <= mids[i] -> i: ties go to the lower code
    tie_to_upper = (idx < len(_MIDPOINTS)) & (mag == mids[idx.clamp(max=len(_MIDPOINTS) - 1)]) & (idx % 2 == 1)
    idx = idx + tie_to_upper.long()
    return (idx + 8 * negative.long()).to(torch.uint8)


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(blocks, scales) of `weight` `[.., cols]`, blocks of 32 along the last dimension.

    The OCP conversion: each block's scale is `2 ** (floor(log2(amax)) - 2)` (E2M1's largest exponent
    is 2), elements are rounded to the nearest E2M1 value (ties to even) and saturate at ±6. An
    all-zero block gets scale 2 ** -127 (code 0). `dequantize(*quantize(w))` is the MXFP4 image of w.
    """
    w = weight.detach().float()
    if w.shape[-1] % BLOCK:
        raise ValueError(f"the last dimension ({w.shape[-1]}) must be a multiple of {BLOCK}")
    grouped = w.reshape(*w.shape[:-1], w.shape[-1] // BLOCK, BLOCK)
    amax = grouped.abs().amax(dim=-1)
    exponent = torch.where(amax > 0, torch.floor(torch.log2(amax.clamp(min=torch.finfo(torch.float32).tiny))) - 2,
                           torch.full_like(amax, -SCALE_BIAS))
    exponent = exponent.clamp(-SCALE_BIAS, SCALE_NAN - 1 - SCALE_BIAS)
    scaled = grouped / torch.ldexp(torch.ones_like(exponent), exponent.int()).unsqueeze(-1)
    codes = _encode(scaled.abs().contiguous(), torch.signbit(grouped))
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return packed.contiguous(), (exponent.int() + SCALE_BIAS).to(torch.uint8).contiguous()


def packed_bytes(rows: int, cols: int) -> int:
    """Bytes of an MXFP4 `[rows, cols]` matrix: 4 bits per value plus one byte per 32 values."""
    return rows * cols // 2 + rows * cols // BLOCK
