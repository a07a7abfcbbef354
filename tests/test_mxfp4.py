"""MXFP4 dequantisation bit for bit against a hand-computed table; quantisation; the memory plan."""

from __future__ import annotations

import math

import pytest
import torch

from verifier.reference import memory, mxfp4

# One block of 16 bytes: byte i holds code i in its low nibble and code 15 - i in its high nibble, so
# the 32 values are, low nibble first: fp4(0), fp4(15), fp4(1), fp4(14), ... written out by hand.
ALL_CODES = bytes((15 - i) << 4 | i for i in range(16))
ALL_CODES_VALUES = [
    +0.0, -6.0, +0.5, -4.0, +1.0, -3.0, +1.5, -2.0, +2.0, -1.5, +3.0, -1.0, +4.0, -0.5, +6.0, -0.0,
    -0.0, +6.0, -0.5, +4.0, -1.0, +3.0, -1.5, +2.0, -2.0, +1.5, -3.0, +1.0, -4.0, +0.5, -6.0, +0.0,
]
# (16 bytes, E8M0 scale, the 32 expected values): scales 127 +- k, the extremes, negative zero.
TABLE = [
    (ALL_CODES, 127, ALL_CODES_VALUES),                                   # 2^0
    (ALL_CODES, 130, [v * 8 for v in ALL_CODES_VALUES]),                  # 2^3: -6 -> -48
    (ALL_CODES, 125, [v / 4 for v in ALL_CODES_VALUES]),                  # 2^-2: 0.5 -> 0.125
    (bytes([0x7F] * 16), 120, [-6 / 128, 6 / 128] * 16),                  # low 15 = -6, high 7 = +6; 2^-7
    (bytes([0x21] + [0x00] * 15), 128, [1.0, 2.0] + [0.0] * 30),          # 0.5 * 2, 1.0 * 2
    (bytes([0x88] * 16), 140, [-0.0] * 32),                               # code 8 is -0, at any scale
    (bytes([0x31] + [0x00] * 15), 0, [2.0 ** -128, 1.5 * 2.0 ** -127] + [0.0] * 30),  # smallest scale
    (bytes([0x32] + [0x00] * 15), 254, [2.0 ** 127, 1.5 * 2.0 ** 127] + [0.0] * 30),  # largest finite
]


def _one(raw: bytes, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(list(raw), dtype=torch.uint8).reshape(1, 1, 16), torch.tensor([[scale]], dtype=torch.uint8)


@pytest.mark.parametrize("raw,scale,values", TABLE)
@pytest.mark.parametrize("dtype,view", [(torch.float32, torch.int32), (torch.bfloat16, torch.int16)])
def test_dequantize_matches_the_hand_computed_table_bit_for_bit(raw, scale, values, dtype, view):
    blocks, scales = _one(raw, scale)
    out = mxfp4.dequantize(blocks, scales, dtype)
    expected = torch.tensor(values, dtype=torch.float64).to(dtype).reshape(1, 32)
    assert out.shape == (1, 32) and out.dtype == dtype
    assert torch.equal(out.view(view), expected.view(view))  # bits: -0.0 is not +0.0


def test_negative_zero_keeps_its_sign():
    out = mxfp4.dequantize(*_one(bytes([0x88] * 16), 127), torch.float32)
    assert bool(torch.signbit(out).all()) and bool((out == 0).all())


def test_e8m0_255_is_nan_for_the_whole_block_and_large_scales_overflow():
    assert bool(torch.isnan(mxfp4.dequantize(*_one(ALL_CODES, 255), torch.float32)).all())
    # 2.0 * 2^127 = 2^128 is past float32's and bfloat16's range: inf, as transformers computes it too
    for dtype in (torch.float32, torch.bfloat16):
        out = mxfp4.dequantize(*_one(bytes([0x44] + [0] * 15), 254), dtype)
        assert out[0, 0] == math.inf and out[0, 1] == math.inf


def test_dequantize_agrees_with_transformers_bit_for_bit_and_layout():
    """transformers' Mxfp4 dequantisation of the same bytes, with its transpose to [E, in, out]."""
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 10, 4, 16), dtype=torch.uint8, generator=g)
    scales = torch.randint(100, 140, (3, 10, 4), dtype=torch.uint8, generator=g)
    ours = mxfp4.dequantize(blocks, scales, torch.bfloat16)
    theirs = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16)
    assert ours.shape == (3, 10, 128) and theirs.shape == (3, 128, 10)
    assert torch.equal(ours.transpose(1, 2).view(torch.int16), theirs.view(torch.int16))


def test_dequantize_refuses_malformed_inputs():
    with pytest.raises(ValueError, match="uint8"):
        mxfp4.dequantize(torch.zeros(1, 16), torch.zeros(1, dtype=torch.uint8))
    with pytest.raises(ValueError, match="do not match"):
        mxfp4.dequantize(torch.zeros(2, 16, dtype=torch.uint8), torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="do not match"):
        mxfp4.dequantize(torch.zeros(2, 15, dtype=torch.uint8), torch.zeros(2, dtype=torch.uint8))


def test_dequantize_in_chunks_equals_at_once():
    g = torch.Generator().manual_seed(1)
    blocks = torch.randint(0, 256, (2, 6, 3, 16), dtype=torch.uint8, generator=g)
    scales = torch.randint(110, 130, (2, 6, 3), dtype=torch.uint8, generator=g)
    assert torch.equal(mxfp4.dequantize(blocks, scales, rows_per_chunk=5), mxfp4.dequantize(blocks, scales))


def test_quantize_rounds_to_nearest_ties_to_even_and_saturates():
    # amax 7 -> scale 2^(floor(log2 7) - 2) = 1; 7 saturates at 6; ties go to the even code
    row = torch.tensor([7.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -5.5, 0.1, -0.0] + [0.0] * 20)
    blocks, scales = mxfp4.quantize(row)
    assert scales.tolist() == [127]
    assert mxfp4.dequantize(blocks, scales, torch.float32).tolist() == pytest.approx(
        [6.0, 0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -0.0, -6.0, 0.0, -0.0] + [0.0] * 20)
    # a scaled copy lands on the same codes with a scale 2^10 larger
    blocks2, scales2 = mxfp4.quantize(row * 1024)
    assert torch.equal(blocks2, blocks) and scales2.tolist() == [137]
    zero_blocks, zero_scales = mxfp4.quantize(torch.zeros(32))
    assert zero_scales.tolist() == [0] and not bool(zero_blocks.any())


def test_quantize_round_trip_is_a_fixed_point():
    w = torch.randn(4, 5, 96, generator=torch.Generator().manual_seed(2))
    blocks, scales = mxfp4.quantize(w)
    assert blocks.shape == (4, 5, 3, 16) and scales.shape == (4, 5, 3)
    back = mxfp4.dequantize(blocks, scales, torch.float32)
    again = mxfp4.quantize(back)
    assert torch.equal(again[0], blocks) and torch.equal(again[1], scales)
    # error bounded by half the widest grid gap at each block's scale (amax/4 .. amax/8 per step)
    amax = w.reshape(4, 5, 3, 32).abs().amax(-1, keepdim=True)
    assert bool(((w.reshape(4, 5, 3, 32) - back.reshape(4, 5, 3, 32)).abs() <= amax / 4 + 1e-6).all())


# -- the memory plan, on the published configs ----------------------------------------------------


@pytest.mark.parametrize("raw,params,mxfp4_gb,bf16_gb", [
    (memory.GPT_OSS_20B, 20.91e9, 13.8, 41.8),
    (memory.GPT_OSS_120B, 116.83e9, 65.2, 233.7),
])
def test_memory_plan_of_the_real_configs(raw, params, mxfp4_gb, bf16_gb):
    from verifier.reference.checkpoints import config_from_original

    config = config_from_original(raw)
    total, experts = memory.count_params(config)
    assert total == pytest.approx(params, rel=5e-4)
    assert experts / total > 0.91
    assert memory.estimate(config, "mxfp4", 4096).weights_bytes / 1e9 == pytest.approx(mxfp4_gb, abs=0.05)
    assert memory.estimate(config, "bf16", 4096).weights_bytes / 1e9 == pytest.approx(bf16_gb, abs=0.05)


def test_120b_fits_one_80gb_gpu_only_with_mxfp4_experts_and_chunked_logits():
    from verifier.reference.checkpoints import config_from_original

    config = config_from_original(memory.GPT_OSS_120B)
    gpu = 80e9
    plan = memory.estimate(config, "mxfp4", 2048)
    assert plan.total_bytes < gpu
    assert memory.estimate(config, "bf16", 2048).weights_bytes > gpu
    # top-K in chunks: the logits term does not grow with the sequence, full logits do
    assert memory.estimate(config, "mxfp4", 8192).logits_bytes == plan.logits_bytes < 0.5e9
    assert memory.estimate(config, "mxfp4", 8192, full_logits=True).logits_bytes > 13e9
    # KV cache: the sliding half of the layers holds at most 128 tokens
    per_token = 18 * 2 * 8 * 64 * 2
    assert memory.estimate(config, "mxfp4", 8192).kv_bytes == per_token * 8192 + per_token * 128
