"""The golden build across N processes (`golden build --tp N`): one model sharded over N devices with
transformers' own tensor- and expert-parallel machinery (`transformers.distributed`, DTensor on a
torch.distributed device mesh), under `torchrun`.

Why a plan of our own: transformers 5.19 ships no `base_model_tp_plan` for gpt-oss (only
`lm_head: colwise_gather_output` and an expert-parallel plan whose token dispatch also wraps the
model in FSDP). Its generic styles fit gpt-oss as follows; `TP_PLAN` and `EP_PLAN` name them:

* attention, tensor parallel: `q_proj`/`k_proj`/`v_proj` `colwise` (each rank computes its own heads:
  64/N query and 8/N key-value heads), `o_proj` `rowwise` (partial products, one all-reduce), the
  per-head `sinks` `colwise` (the same head slice). The eager attention mixes `sinks` with plain
  tensors, so after loading each rank swaps the sinks' DTensor for its local shard (`to_local`, the
  slice transformers loaded), as transformers itself does for the weights of its local kernels.
* MoE, expert parallel with the TP group as EP group (`ep_size = tp_size`): expert weights and biases
  `grouped_gemm` (each rank holds experts/N whole experts, with their biases), the router `ep_router`
  (every rank routes every token, then keeps only its own experts' slots), the experts
  `moe_tp_experts` (one all-reduce of the partial outputs). The interleaved gate/up columns of gpt-oss
  never split, and each down bias is added by exactly one rank.
* `lm_head` `colwise_gather_output` (transformers' own rule): each rank computes V/N logits, gathered.
* embedding, norms, router: replicated (0.6e9 parameters of 120b).

Every rank runs the same `build` (collectives need all of them in lockstep; greedy choices agree
because the gathered logits are the same bits on every rank, checked at the end by comparing the
records' digest across ranks); rank 0 writes the golden.

Values: sharded matrix products sum their partial products in a different order (the `o_proj` and
experts all-reduce adds N partial sums; a full-width matmul accumulates in one), so scores differ
from the single-process golden at the dtype's rounding: ~1e-5 in log-probability in fp32
(tests/test_tensor_parallel.py states the tolerance it checks), more in bf16, where greedy decoding
may part at a near-tie.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from pydantic import BaseModel

from verifier.errors import UsageError, VerifierError
from verifier.golden import records_digest
from verifier.reference import memory

TP_PLAN = {
    "model.layers.*.self_attn.q_proj": "colwise",
    "model.layers.*.self_attn.k_proj": "colwise",
    "model.layers.*.self_attn.v_proj": "colwise",
    "model.layers.*.self_attn.o_proj": "rowwise",
    "model.layers.*.self_attn.sinks": "colwise",
}
"""Tensor-parallel rules (transformers' styles) for gpt-oss attention; `lm_head` keeps the model's own."""
EP_PLAN = {
    "model.layers.*.mlp.router": "ep_router",
    "model.layers.*.mlp.experts.gate_up_proj": "grouped_gemm",
    "model.layers.*.mlp.experts.gate_up_proj_bias": "grouped_gemm",
    "model.layers.*.mlp.experts.down_proj": "grouped_gemm",
    "model.layers.*.mlp.experts.down_proj_bias": "grouped_gemm",
    "model.layers.*.mlp.experts": "moe_tp_experts",
}
"""Expert-parallel rules: experts/N whole experts per rank, partial outputs all-reduced."""
PROGRESS = "progress: "
"""Prefix of the workers' progress lines on stdout (the launcher relays them to stderr)."""


class ShardedJob(BaseModel):
    """What every rank of a sharded golden build does (written as JSON for `torchrun`'s workers)."""

    checkpoint: Path
    suites: list[str]
    out: Path
    dtype: str = "fp32"
    device: str = "cpu"
    """cpu (gloo) or cuda (nccl, one GPU per rank)."""
    top_k: int = 20
    batch_size: int = 1
    date: str
    cases: int | None = None
    case_ids: list[str] | None = None
    max_tokens: int | None = None
    quiet: bool = False


# -- the plan ------------------------------------------------------------------------------------


def sharded_params(config) -> int:
    """Parameters the plan splits over the ranks (attention, sinks, experts with biases, lm_head);
    the rest (embedding, norms, router, `o_proj` bias) is replicated on every rank."""
    e, h, i = config.num_local_experts, config.hidden_size, config.intermediate_size
    q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    per_layer = (e * (h * 2 * i + i * h) + e * (2 * i + h)
                 + (h * q + q) + 2 * (h * kv + kv) + q * h + config.num_attention_heads)
    return config.num_hidden_layers * per_layer + config.vocab_size * h


def weights_per_device(config, dtype: str, tp: int) -> int:
    """Bytes of weights each of `tp` devices holds (experts dequantised to `dtype`: fp32 or bf16)."""
    params, _ = memory.count_params(config)
    split = sharded_params(config)
    return (-(-split // tp) + params - split) * memory.BYTES[dtype]


def check_plan(config, tp: int, dtype: str, device: str, backend: str) -> None:
    """Refuse, in one line, a sharding the plan cannot do or the devices cannot hold."""
    if backend != "transformers":
        raise UsageError(f"--tp shards the backend transformers (experts dequantised), not {backend}; "
                         "MXFP4 gpt-oss fits one device (see the README)")
    if dtype not in ("fp32", "bf16"):
        raise UsageError(f"--tp computes in fp32 or bf16, not {dtype}")
    for what, n in (("query heads", config.num_attention_heads), ("key-value heads", config.num_key_value_heads),
                    ("experts", config.num_local_experts), ("vocabulary rows", config.vocab_size)):
        if n % tp:
            raise UsageError(f"--tp {tp} does not divide the {n} {what} of the checkpoint")
    if device.startswith("cuda"):
        if torch.cuda.device_count() < tp:
            raise UsageError(f"--tp {tp} needs {tp} CUDA devices; torch sees {torch.cuda.device_count()}")
        need, have = weights_per_device(config, dtype, tp), torch.cuda.get_device_properties(0).total_memory
        if need > have:
            raise UsageError(f"{need / memory.GB:.1f} GB of {dtype} weights per device at --tp {tp}; a device has "
                             f"{have / memory.GB:.1f} GB: raise --tp")
    elif device != "cpu":
        raise UsageError(f"--tp runs on cpu (gloo) or cuda (nccl), not {device}")


# -- each rank -----------------------------------------------------------------------------------


def distributed_config(tp: int):
    from transformers.distributed import DistributedConfig

    return DistributedConfig(tp_size=tp, ep_size=tp, tp_plan=TP_PLAN, ep_plan=EP_PLAN)


def local_sinks(model) -> None:
    """Swap each attention's sharded `sinks` DTensor for this rank's shard (its heads' sinks)."""
    from torch.distributed.tensor import DTensor

    for module in model.modules():
        sinks = getattr(module, "sinks", None)
        if isinstance(sinks, torch.nn.Parameter) and isinstance(sinks.data, DTensor):
            module.sinks = torch.nn.Parameter(sinks.data.to_local(), requires_grad=False)


def load_sharded(checkpoint: Path, dtype: str, tp: int):
    """This rank's shard of the model, from a checkpoint in any layout the reference reads (the process
    group already initialised). MXFP4 experts are dequantised exactly (`checkpoints.read`), then
    transformers shards the state as it loads it; an unquantised HF checkpoint is read shard by shard."""
    from transformers import AutoModelForCausalLM, GptOssForCausalLM
    from transformers.utils import logging as hf_logging

    from verifier.reference import checkpoints as ck
    from verifier.reference.engine import DTYPES

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    ckpt = ck.resolve(checkpoint)
    common = {"dtype": DTYPES[dtype], "attn_implementation": "eager", "distributed_config": distributed_config(tp)}
    if ckpt.quantized:
        state = ck.read(ckpt)
        ck.dequantize_experts(state, DTYPES[dtype], ckpt.path)
        model = GptOssForCausalLM.from_pretrained(None, config=ckpt.config(), state_dict=state, **common)
        del state
    else:
        model = AutoModelForCausalLM.from_pretrained(str(ckpt.path), local_files_only=True, **common)
    local_sinks(model)
    return model.eval()


def _rank_cache(rank: int) -> Path | None:
    """Ranks above 0 keep the checkpoint-hash cache in a copy of their own (returned, to remove after):
    every rank's `build` hashes the checkpoint (cached by the launcher), and concurrent writes of one
    file could tear it."""
    from verifier.paths import cache_dir

    if rank == 0:
        return None
    shared = cache_dir() / "checkpoint-hashes.json"
    own = Path(tempfile.mkdtemp(prefix=f"gpt-oss-verify-rank{rank}-"))
    if shared.is_file():
        shutil.copy(shared, own / shared.name)
    os.environ["GPT_OSS_VERIFY_CACHE"] = str(own)
    return own


def _agree(golden) -> None:
    """Every rank built the same records (a rank that decoded differently would desynchronise)."""
    import torch.distributed as dist

    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, records_digest(golden.records))
    if len(set(digests)) > 1:
        raise VerifierError(f"the {len(digests)} ranks built different records for {golden.provenance.suite}")


def _in_turn(rank: int, tp: int, job: ShardedJob):
    """This rank's shard, loaded one rank after another: an MXFP4 checkpoint is dequantised whole
    before transformers shards it, so loading all ranks at once would hold N full copies."""
    import torch.distributed as dist

    model = None
    for turn in range(tp):
        if turn == rank:
            model = load_sharded(job.checkpoint, job.dtype, tp)
        dist.barrier()
    return model


def run_job(job: ShardedJob) -> None:
    """One rank's part: load its shard, build every suite in lockstep, rank 0 writes the golden."""
    import torch.distributed as dist

    from verifier import golden as store
    from verifier.reference.build import build, checkpoint_name, limited
    from verifier.reference.engine import Engine
    from verifier.suites import load_suite

    rank, tp = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = f"cuda:{os.environ['LOCAL_RANK']}" if job.device.startswith("cuda") else "cpu"
    if device == "cpu":
        dist.init_process_group("gloo")
    else:
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=torch.device(device))
    own_cache = _rank_cache(rank)
    say = (lambda line: print(PROGRESS + line, flush=True)) if rank == 0 and not job.quiet else None
    engine = Engine(job.checkpoint, job.dtype, device, model=_in_turn(rank, tp, job))
    if say:
        say(f"loaded {job.checkpoint} ({job.dtype}) sharded over {tp} {job.device} processes")
    for suite in limited([load_suite(n) for n in job.suites], job.cases, job.case_ids, job.max_tokens):
        golden = build(engine, suite, job.date, job.top_k, progress=say, batch_size=job.batch_size,
                       max_tokens=job.max_tokens)
        _agree(golden)
        if rank == 0:
            golden.provenance.backend += f" (tensor parallel: {tp} {job.device} processes, torchrun)"
            golden.provenance.device = f"{tp} x {job.device}"
            path = store.save(golden, store.golden_path(job.out, checkpoint_name(job.checkpoint), engine.dtype,
                                                        suite.name))
            print(f"{suite.name}: {len(golden.records)} records -> {path}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    if own_cache:
        shutil.rmtree(own_cache, ignore_errors=True)


def main(argv: list[str]) -> int:
    """`python -m verifier.reference.parallel JOB.json` under torchrun: a VerifierError becomes one line
    in JOB.rankN.err and exit code 2 (torchrun then stops the other ranks)."""
    job_file = Path(argv[0])
    try:
        run_job(ShardedJob.model_validate_json(job_file.read_text()))
    except VerifierError as exc:
        job_file.with_suffix(f".rank{os.environ.get('RANK', 0)}.err").write_text(str(exc).splitlines()[0] + "\n")
        return 2
    return 0


# -- the launcher --------------------------------------------------------------------------------


def torchrun_command(job_file: Path, tp: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={tp}",
            "-m", "verifier.reference.parallel", str(job_file)]


def _worker_env(job: ShardedJob, tp: int) -> dict[str, str]:
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // tp)
    env.setdefault("OMP_NUM_THREADS", str(threads))  # also silences torchrun's warning about it
    if job.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # transformers builds its mesh on the accelerator it sees
    return env


def build_sharded(job: ShardedJob, tp: int, echo, progress, backend: str = "transformers") -> None:
    """Run `job` on `tp` processes under torchrun: `echo` gets each golden written, `progress` the
    progress lines. A failing rank raises its own one-line error (torchrun's log is kept on failure)."""
    from verifier.reference import checkpoints as ck
    from verifier.reference.checkpoints import checkpoint_sha256

    ckpt = ck.resolve(job.checkpoint)
    check_plan(ckpt.config(), tp, job.dtype, job.device, backend)
    checkpoint_sha256(job.checkpoint)  # once, here, before the ranks read the cache
    work = Path(tempfile.mkdtemp(prefix="gpt-oss-verify-tp-"))
    job_file = work / "job.json"
    job_file.write_text(job.model_dump_json())
    log = work / "torchrun.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(torchrun_command(job_file, tp), stdout=subprocess.PIPE, stderr=err, text=True,
                                env=_worker_env(job, tp))
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(PROGRESS):
                progress(line.removeprefix(PROGRESS))
            else:
                echo(line)
        code = proc.wait()
    if code == 0:
        shutil.rmtree(work, ignore_errors=True)
        return
    errors = sorted(work.glob("job.rank*.err"))
    if errors:
        raise VerifierError(f"{errors[0].read_text().strip()} (rank {errors[0].suffixes[0].removeprefix('.rank')})")
    raise VerifierError(f"the sharded golden build failed (torchrun exit {code}); its log: {log}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
