"""bench/bench_train_gpu.py runs end to end on CPU (--tiny): the GPU session only has to press go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_train_gpu.py"


def test_tiny_benchmark_measures_both_paths_with_equal_first_loss(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--shapes", "tiny", "--data", "sft", "--paths", "tunesmith", "plain",
         "liger", "--json", str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = {r["path"]: r for r in json.loads(out.read_text())["results"]}
    tunesmith, plain = results["tunesmith"], results["plain"]
    assert tunesmith["tokens_per_step"] == plain["tokens_per_step"] > 0
    assert tunesmith["tokens_per_second"] > 0 and plain["tokens_per_second"] > 0
    # same weights, same chats, loss only on the replies: packed+gathered equals padded+masked
    assert tunesmith["loss0"] == pytest.approx(plain["loss0"], rel=1e-4)
    assert "error" in results["liger"]  # no CUDA here: skipped with a note, not silently dropped
    assert "×" in done.stdout and "tiny / sft" in done.stdout
