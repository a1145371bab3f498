#!/usr/bin/env bash
# The issue-9 GPU benchmark in one device call (see bench/NOTES-gpu.md for what to check in the output):
#   run(command="bash bench/run_gpu.sh", carry=[".whl"], timeout_s=600)
# .whl/ holds the wheels the device image lacks (pydantic for tunesmith's config, liger-kernel for the third
# column); fetch them here first with the pip download line in bench/NOTES-gpu.md.
# Extra arguments go to both bench runs (e.g. --shapes llama-1b). Results: $OUT/*.json and *.log.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv > "$OUT/gpu.txt" 2>&1
# 1) the reference table: random tokens, loss on every position (~5 min); 2) realistic SFT batches.
timeout 330 python3 bench/bench_train_gpu.py --data random --json "$OUT/random.json" "$@" 2>&1 | tee "$OUT/random.log"
timeout 200 python3 bench/bench_train_gpu.py --data sft --shapes llama-1b llama-8b --json "$OUT/sft.json" "$@" 2>&1 \
  | tee "$OUT/sft.log"
