"""`golden build --tp 2`: the reference sharded over 2 processes (gloo, CPU) under torchrun writes the
golden the single process writes, within the rounding of its sharded reductions.

Tolerance: row-parallel `o_proj` and the expert-parallel MoE each add 2 partial sums (an all-reduce)
where one process accumulates a single full-width matmul, and the gathered `lm_head` columns come from
smaller matmuls: the same products, summed in another order. In fp32 (unit roundoff 6e-8) that moves
hidden states by ~1e-7 relative; log-probabilities of logits of magnitude ~10-30 over a 201088-token
vocabulary then move by ~1e-5 (measured: 1.2e-5 on the conformance checkpoint), so fp32 is held to
`FP32_TOLERANCE` = 1e-4. bf16 (unit roundoff 4e-3) rounds every partial sum and the logits themselves
(spacing 0.03-0.06 at the random checkpoint's logit magnitudes); on the real-width checkpoint, whose
random weights give a nearly flat next-token distribution, top-20 log-probabilities moved by up to
0.25 (measured), so that check is held to `BF16_TOLERANCE` = 0.5: loose, it catches a broken shard
(wrong heads, an expert bias added twice: whole nats), not rounding. Greedy decoding may part only at
a near-tie (the other token within the tolerance); scores are compared up to that position. Top-K ids
must agree except where candidates are within the tolerance of each other.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import one_line_exit_2, run_cli

from verifier.reference import checkpoints as ck
from verifier.reference import memory, parallel
from verifier.reference.synthetic import real_width_config

pytestmark = pytest.mark.tensor_parallel

FP32_TOLERANCE = 1e-4
BF16_TOLERANCE = 0.5
LIMITS = ["--suite", "harmony", "--suite", "tools", "--cases", "2", "--max-tokens", "16"]


def golden_build(out: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("golden", "build", "--out", str(out), "--quiet", *args)


def goldens(root: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}


def _close_ids(a: dict, b: dict, tolerance: float) -> bool:
    """The top-K ids agree wherever their log-probabilities are further apart than `tolerance`."""
    if a["top_ids"] == b["top_ids"]:
        return True
    ranked = dict(zip(b["top_ids"], b["top_logprobs"]))
    return all(i in ranked and abs(ranked[i] - p) <= tolerance for i, p in zip(a["top_ids"], a["top_logprobs"])
               if abs(p - a["top_logprobs"][-1]) > tolerance)


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _tied(score: dict, other: int, tolerance: float) -> bool:
    """Where the two greedy decodings part, the other's token was within `tolerance` of this one's
    (teacher-forced log-probabilities of the same prefix): a near-tie the rounding may break either way."""
    ranked = dict(zip(score["top_ids"], score["top_logprobs"]))
    return other in ranked and abs(ranked[other] - score["logprob"]) <= tolerance


def differences(single: dict, sharded: dict, tolerance: float) -> tuple[float, list[str]]:
    """(largest log-probability difference, what disagrees beyond `tolerance`) of two golden files:
    scores compared up to where greedy decoding parts (if it does, only at a near-tie)."""
    largest, wrong = 0.0, []
    for ra, rb in zip(single["records"], sharded["records"], strict=True):
        for n, (ta, tb) in enumerate(zip(ra["turns"], rb["turns"], strict=True)):
            where = f"{ra['case_id']} turn {n + 1}"
            common = _common_prefix(ta["completion_token_ids"], tb["completion_token_ids"])
            if common < len(ta["completion_token_ids"]) or common < len(tb["completion_token_ids"]):
                if not _tied(ta["scores"][common], tb["scores"][common]["token"], tolerance):
                    wrong.append(f"{where}: greedy tokens differ at {common} where the two were not tied")
                    continue
            for i, (sa, sb) in enumerate(zip(ta["scores"][: common + 1], tb["scores"][: common + 1])):
                pairs = [(sa["logprob"], sb["logprob"])]
                shared = dict(zip(sb["top_ids"], sb["top_logprobs"]))
                pairs += [(p, shared[t]) for t, p in zip(sa["top_ids"], sa["top_logprobs"]) if t in shared]
                gap = max(abs(x - y) for x, y in pairs)
                largest = max(largest, gap)
                if gap > tolerance or not _close_ids(sa, sb, tolerance):
                    wrong.append(f"{where} position {i}: {gap:.2g} apart, top ids {sa['top_ids'][:4]} vs "
                                 f"{sb['top_ids'][:4]}")
    return largest, wrong


def assert_same_golden(single_root: Path, sharded_root: Path, tolerance: float) -> None:
    single, sharded = goldens(single_root), goldens(sharded_root)
    assert single and single.keys() == sharded.keys()
    for name in single:
        provenance = sharded[name]["provenance"]
        assert "tensor parallel: 2 cpu processes" in provenance["backend"] and provenance["device"] == "2 x cpu"
        largest, wrong = differences(single[name], sharded[name], tolerance)
        assert not wrong, f"{name}: {wrong[:3]}"
        assert sum(len(t["scores"]) for r in sharded[name]["records"] for t in r["turns"]) > 0


def test_sharded_golden_equals_single_process_on_the_conformance_checkpoint(tmp_path):
    single = golden_build(tmp_path / "single", *LIMITS)
    sharded = golden_build(tmp_path / "tp", *LIMITS, "--tp", "2")
    assert single.returncode == 0, single.stderr[-2000:]
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    assert sharded.stdout.count("records ->") == 2
    assert_same_golden(tmp_path / "single", tmp_path / "tp", FP32_TOLERANCE)


def test_the_comparison_catches_a_wrong_golden(tmp_path):
    """The check above fails on a golden whose scores moved past the tolerance or whose tokens differ."""
    golden = {"records": [{"case_id": "c", "turns": [{"completion_token_ids": [5, 6], "scores": [
        {"token": 5, "logprob": -0.5, "top_ids": [5, 7], "top_logprobs": [-0.5, -1.5]},
        {"token": 6, "logprob": -0.2, "top_ids": [6, 8], "top_logprobs": [-0.2, -2.0]}]}]}]}
    moved = json.loads(json.dumps(golden))
    moved["records"][0]["turns"][0]["scores"][1]["logprob"] += 3 * FP32_TOLERANCE
    moved["records"][0]["turns"][0]["scores"][1]["top_logprobs"][0] += 3 * FP32_TOLERANCE
    swapped = json.loads(json.dumps(golden))
    swapped["records"][0]["turns"][0]["scores"][0]["top_ids"] = [7, 5]
    other = json.loads(json.dumps(golden))
    other["records"][0]["turns"][0]["completion_token_ids"] = [5, 8]  # decoding parted where 6 led 8 by 1.8
    other["records"][0]["turns"][0]["scores"][1] |= {"token": 8, "logprob": -2.0}
    tied_reference = json.loads(json.dumps(golden))  # 8 within half the tolerance of 6
    tied_reference["records"][0]["turns"][0]["scores"][1]["top_logprobs"][1] = -0.2 - FP32_TOLERANCE / 2
    tied = json.loads(json.dumps(tied_reference))
    tied["records"][0]["turns"][0]["completion_token_ids"] = [5, 8]
    tied["records"][0]["turns"][0]["scores"][1] |= {"token": 8, "logprob": -0.2 - FP32_TOLERANCE / 2}
    assert differences(golden, golden, FP32_TOLERANCE) == (0.0, [])
    for wrong in (moved, swapped, other):
        assert differences(golden, wrong, FP32_TOLERANCE)[1]
    assert differences(tied_reference, tied, FP32_TOLERANCE)[1] == []  # parted at a near-tie: allowed


def test_a_sharding_the_plan_cannot_do_is_refused_in_one_line():
    config = real_width_config(1)
    with pytest.raises(parallel.UsageError, match="does not divide the 8 key-value heads"):
        parallel.check_plan(config, 16, "bf16", "cpu", "transformers")
    with pytest.raises(parallel.UsageError, match="not mxfp4-triton"):
        parallel.check_plan(config, 2, "bf16", "cpu", "mxfp4-triton")


def test_golden_build_refuses_a_tp_that_does_not_divide_the_heads(tmp_path):
    line = one_line_exit_2(golden_build(tmp_path, "--suite", "harmony", "--tp", "3"))
    assert "--tp 3 does not divide the 4 query heads" in line
    assert not list(tmp_path.rglob("*.json"))


def test_the_plan_splits_everything_but_embedding_router_and_norms():
    """Per-device weights of 120b in bf16 on 4 devices: what the plan shards over 4, the rest whole."""
    config = ck.config_from_original(memory.GPT_OSS_120B)
    params, _ = memory.count_params(config)
    h, e, layers = config.hidden_size, config.num_local_experts, config.num_hidden_layers
    replicated = config.vocab_size * h + layers * (e * h + e + 3 * h) + h  # embedding; router, 2 norms, o_proj bias
    assert params - parallel.sharded_params(config) == replicated
    assert parallel.weights_per_device(config, "bf16", 4) == (parallel.sharded_params(config) // 4 + replicated) * 2


@pytest.mark.real_width
def test_sharded_golden_equals_single_process_at_real_width(tmp_path, real_width_repo):
    """gpt-oss-20b's widths (2 layers, HF MXFP4 layout, sharded files): one case, 6 tokens, bf16."""
    limits = ["--checkpoint", str(real_width_repo), "--dtype", "bf16", "--suite", "harmony", "--cases", "1",
              "--max-tokens", "6"]
    single = golden_build(tmp_path / "single", *limits)
    assert single.returncode == 0, single.stderr[-2000:]
    sharded = golden_build(tmp_path / "tp", *limits, "--tp", "2")
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    assert_same_golden(tmp_path / "single", tmp_path / "tp", BF16_TOLERANCE)
