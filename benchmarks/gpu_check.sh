#!/usr/bin/env bash
# The prepared device check (issue 19): every GPU figure into benchmarks/results/gpu_check.json.
#
#   bash benchmarks/gpu_check.sh          # CUDA machine (H100/H200): installs, then runs, under 8 minutes
#   bash benchmarks/gpu_check.sh --cpu    # the CPU-checkable parts with small limits (results/gpu_check_cpu.json)
#
# Installs from the package index only (pip): the project itself, and on CUDA triton, kernels and
# accelerate for the mxfp4-triton backend. The Triton MXFP4 kernels themselves come from the Hugging
# Face hub (kernels-community/gpt-oss-triton-kernels); where the hub cannot be reached, set
# KERNELS_CACHE to a copy and HF_HUB_OFFLINE=1, else the mxfp4 steps record "failed" with the cause.
# Every step's status (ok, failed, timeout, skipped + reason) is in the JSON; see benchmarks/gpu_check.py.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
LOG=$(mktemp -t gpu-check-install.XXXX)
{
  echo "python: $($PY --version 2>&1)"
  if ! $PY -c "import verifier, torch, transformers" 2>/dev/null; then
    $PY -m pip install -q -e . 2>&1 | tail -3 || echo "pip install -e . failed"
  fi
  case " $* " in
    *" --cpu "*) echo "cpu mode: no GPU packages installed" ;;
    *) if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
         $PY -m pip install -q "triton>=3.4" kernels accelerate 2>&1 | tail -3 || echo "pip install of triton/kernels/accelerate failed"
       else
         echo "no CUDA device visible to torch: running the CPU-checkable parts"
       fi ;;
  esac
} >"$LOG" 2>&1
cat "$LOG"
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  set -- --cpu "$@"
fi
exec $PY benchmarks/gpu_check.py --install-log "$LOG" "$@"
