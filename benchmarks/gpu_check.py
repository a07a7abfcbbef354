"""The device check: every GPU figure the project lacks, in one run, into one JSON file.

    bash benchmarks/gpu_check.sh            # on a CUDA machine (H100/H200): under 8 minutes
    bash benchmarks/gpu_check.sh --cpu      # its CPU-checkable parts, small limits (no GPU needed)

Steps (each recorded with its status: ok, failed, timeout, or skipped with the reason):

1. `environment`: torch, CUDA, the GPU and its compute capability, triton/kernels/accelerate.
2. `check_fits`: the memory plan of 20b and 120b in bf16 and MXFP4 against this device
   (`verifier.reference.memory.check_fits`: refused or not, weights and activations in GB).
3. `real_width_*`: a 2-layer checkpoint with gpt-oss-20b's widths (`verifier.reference.synthetic`),
   golden built with the mxfp4-triton backend and with bf16 (CUDA), or bf16 on the CPU.
4. `golden_speed`: `benchmarks/golden_speed.py` on the synthetic 20b (24 layers, MXFP4, 13.8 GB) with
   `--compare-backends`: golden vs plain transformers tokens/s, and the bf16-vs-MXFP4 disagreement per
   position that feeds the drift calibration (fp32 vs bf16 on the conformance checkpoint with --cpu).
5. `tensor_parallel`: `golden build --tp 2` (needs 2 GPUs; on the CPU, gloo).

The whole run has a budget of BUDGET_S seconds: each step gets its own limit or what is left of the
budget, whichever is less (a step past it is stopped with all its processes and recorded as `timeout`);
once under 20 s are left, the remaining steps are skipped and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "gpu_check.json"
OUT_CPU = OUT.with_name("gpu_check_cpu.json")
BUDGET_S = 450
"""The whole check: 7.5 minutes, under the 8 the issue allows."""


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "verifier.cli", *args]


ENVIRONMENT = """
import importlib.util, json, torch
out = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "gpus": torch.cuda.device_count()}
if torch.cuda.is_available():
    out |= {"gpu": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
            "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 1e9, 1)}
out["packages"] = {m: importlib.util.find_spec(m) is not None for m in ("triton", "kernels", "accelerate")}
print(json.dumps(out))
"""

CHECK_FITS = """
import json, torch
from verifier.errors import UsageError
from verifier.reference import checkpoints as ck, memory, parallel
device = "cuda" if torch.cuda.is_available() else "cpu"
out = {"device": device}
for name, raw in (("20b", memory.GPT_OSS_20B), ("120b", memory.GPT_OSS_120B)):
    config = ck.config_from_original(raw)
    for dtype in ("bf16", "mxfp4"):
        plan = memory.estimate(config, dtype, 4096)
        try:
            memory.check_fits(config, dtype, device)
            verdict = "fits" if device == "cuda" else "not checked (no CUDA device)"
        except UsageError as exc:
            verdict = f"refused: {exc}"
        out[f"{name}/{dtype}"] = {"weights_gb": round(plan.weights_bytes / 1e9, 1),
                                  "total_gb_at_4096": round(plan.total_bytes / 1e9, 1), "check_fits": verdict}
    out[f"{name}/bf16 per device"] = {f"tp{n}": round(parallel.weights_per_device(config, "bf16", n) / 1e9, 1)
                                      for n in (1, 2, 4, 8)}
print(json.dumps(out))
"""

WRITE_REAL_WIDTH = """
import sys
from verifier.reference.synthetic import write_real_width
write_real_width(sys.argv[1], layouts=("hf",))
"""


def steps(args, work: Path) -> list[tuple[str, list[str], int, str | None]]:
    """(name, command, timeout seconds, why it cannot run here or None)."""
    cuda = args.cuda
    no_gpu = None if cuda else "no CUDA device (run without --cpu on a GPU machine)"
    rw = work / "real-width"
    cases = ["--suite", "harmony", "--cases", str(args.cases), "--max-tokens", str(args.max_tokens), "--quiet"]
    device = ["--device", "cuda" if cuda else "cpu"]
    speed = [sys.executable, str(ROOT / "benchmarks" / "golden_speed.py"), "--compare-backends", "--repeats", "1",
             "--cases", str(args.cases), "--max-tokens", str(args.max_tokens), "--out", str(work / "speed.json")]
    speed += ["--device", "cuda", "--synthetic-20b", "--workdir", str(work)] if cuda else []
    two_gpus = args.gpus >= 2 or not cuda
    return [
        ("environment", python(ENVIRONMENT), 60, None),
        ("check_fits", python(CHECK_FITS), 60, None),
        ("real_width_write", python(WRITE_REAL_WIDTH) + [str(rw)], 120, None),
        ("real_width_mxfp4_triton", cli("golden", "build", "--checkpoint", str(rw), "--backend", "mxfp4-triton",
                                        "--out", str(work / "g-mxfp4"), *device, *cases), 150, no_gpu),
        ("real_width_bf16", cli("golden", "build", "--checkpoint", str(rw), "--dtype", "bf16",
                                "--out", str(work / "g-bf16"), *device, *cases), 200, None),
        ("golden_speed", speed, 300, None),
        ("tensor_parallel", cli("golden", "build", "--tp", "2", "--out", str(work / "g-tp"), *device, *cases), 150,
         None if two_gpus else f"{args.gpus} GPU here; --tp 2 needs 2"),
    ]


def figures(name: str, stdout: str, work: Path) -> dict:
    """What a finished step measured."""
    if name in ("environment", "check_fits"):
        return json.loads(stdout.strip().splitlines()[-1])
    if name == "golden_speed":
        return json.loads((work / "speed.json").read_text())
    folder = {"real_width_mxfp4_triton": "g-mxfp4", "real_width_bf16": "g-bf16", "tensor_parallel": "g-tp"}.get(name)
    if folder is None:
        return {}
    out = {}
    for path in sorted((work / folder).rglob("*.json")):
        golden = json.loads(path.read_text())
        turns = [t for r in golden["records"] for t in r["turns"]]
        out[str(path.relative_to(work / folder))] = {
            "backend": golden["provenance"]["backend"], "dtype": golden["provenance"]["dtype"],
            "turns": len(turns), "positions": sum(len(t["scores"]) for t in turns),
            "off_top1_positions": sum(len(t.get("off_top1_positions") or []) for t in turns)}
    return out


def run_step(name: str, command: list[str], timeout: int, why_not: str | None, left: float, work: Path) -> dict:
    if why_not:
        return {"status": "skipped", "reason": why_not}
    if left < 20:
        return {"status": "skipped", "reason": f"out of time ({left:.0f} s of the {BUDGET_S} s budget left)"}
    start = time.perf_counter()
    # a session of its own, so a timeout stops the whole step (torchrun's workers too), not only its first process
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=min(timeout, left))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "seconds": round(time.perf_counter() - start, 1)}
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    result = {"status": "ok" if done.returncode == 0 else "failed", "seconds": round(time.perf_counter() - start, 1)}
    if done.returncode != 0:
        result["error"] = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:500]
        return result
    try:
        result["figures"] = figures(name, done.stdout, work)
    except (OSError, ValueError) as exc:
        result |= {"status": "failed", "error": f"no figures: {exc}"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the CPU-checkable parts only, small limits")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help=f"default {OUT} ({OUT_CPU.name} with --cpu)")
    parser.add_argument("--install-log", type=Path, default=None, help="gpu_check.sh's pip log, to record")
    args = parser.parse_args()
    import torch

    args.cuda = torch.cuda.is_available() and not args.cpu
    args.out = args.out or (OUT if args.cuda else OUT_CPU)
    args.gpus = torch.cuda.device_count() if args.cuda else 0
    args.cases = args.cases or (3 if args.cuda else 1)
    args.max_tokens = args.max_tokens or (64 if args.cuda else 6)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-check-"))  # removed at the end unless given
    work.mkdir(parents=True, exist_ok=True)
    report = {"mode": "cuda" if args.cuda else "cpu", "host": platform.node(), "started": time.strftime("%FT%TZ"),
              "budget_s": BUDGET_S, "limits": {"cases": args.cases, "max_tokens": args.max_tokens}, "steps": {}}
    if args.install_log and args.install_log.is_file():
        report["install"] = args.install_log.read_text()[-2000:]
    start = time.perf_counter()
    for name, command, timeout, why_not in steps(args, work):
        left = BUDGET_S - (time.perf_counter() - start)
        report["steps"][name] = run_step(name, command, timeout, why_not, left, work)
        print(f"{name}: {report['steps'][name]['status']}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["not_done"] = {k: v.get("reason") or v.get("error") or v["status"] for k, v in report["steps"].items()
                          if v["status"] != "ok"}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)  # checkpoints of 3 to 14 GB
    print(f"{len(report['steps']) - len(report['not_done'])}/{len(report['steps'])} steps ok in "
          f"{report['seconds']} s -> {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
