"""LoRA training throughput on one GPU: tunesmith's trainer step vs plain transformers+PEFT vs plain + Liger.

    python bench/bench_train_gpu.py                      # the issue-9 table (H100/H200, ~6 min)
    python bench/bench_train_gpu.py --tiny               # tiny shapes on CPU: checks the script, not speed
    python bench/bench_train_gpu.py --shapes llama-1b --data sft --json out.json

Random-initialised bf16 Llama-architecture models shaped like SmolLM2-135M, Llama-3.2-1B and Llama-3.1-8B
(gradient checkpointing), LoRA r=16 on every linear layer of the blocks, sequences of 2,048 tokens. Two
batches: `random` (random tokens, loss on every position: the issue's reference table) and `sft` (variable
length chats, loss only on the assistant replies; plain and Liger pad to the longest, as a standard
collator does; tunesmith packs).

Every (shape, data, path) runs in a fresh subprocess: Liger patches transformers' Llama classes process-wide,
and each peak-memory figure then belongs to one path alone. Same seed, same weights, same batches for every
path, so the first step's loss must agree (printed as loss0).

MFU counts model FLOPs for LoRA: the forward (2 FLOPs per weight per token) and the backward's input
gradients through the frozen weights (2 more; LoRA's own weight gradients are negligible), plus causal
attention (forward and backward); recomputation under checkpointing is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

SHAPES: dict[str, dict[str, Any]] = {
    # name: LlamaConfig fields + the batch (rows x seq) and checkpointing of the reference table
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, batch=16, ckpt=False),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, batch=8, ckpt=False),
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, batch=4, ckpt=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=True, batch=2, ckpt=False),
    "tiny-ckpt": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=False, batch=2, ckpt=True),
}
PATHS = ("tunesmith", "plain", "liger")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, SXM data sheets


@dataclass
class Measurement:
    shape: str
    data: str
    path: str
    device: str
    tokens_per_step: int
    trained_per_step: int
    step_seconds: float  # median of the timed steps
    tokens_per_second: float
    peak_gib: float | None
    mfu: float | None
    loss0: float
    note: str = ""


# --- batches ---------------------------------------------------------------------------------------------------


def make_examples(data: str, shape: dict[str, Any], seq: int, seed: int) -> list[tuple[list[int], list[bool]]]:
    """(token ids, trained flags) per example. random: `batch` rows of `seq` tokens, every next token trained.
    sft: chats of 20% to 100% of `seq` tokens whose last 25-50% (the assistant's reply) is trained."""
    g = torch.Generator().manual_seed(seed)
    vocab = shape["vocab_size"]
    if data == "random":
        rows = torch.randint(0, vocab, (shape["batch"], seq), generator=g).tolist()
        return [(row, [False] + [True] * (seq - 1)) for row in rows]
    examples = []
    for _ in range(shape["batch"] * 2):  # about as many tokens as the random batch
        n = int(seq * (0.2 + 0.8 * torch.rand(1, generator=g).item()))
        reply = int(n * (0.25 + 0.25 * torch.rand(1, generator=g).item()))
        ids = torch.randint(0, vocab, (n,), generator=g).tolist()
        examples.append((ids, [False] * (n - reply) + [True] * reply))
    return examples


def padded_batch(examples: list[tuple[list[int], list[bool]]], device: torch.device) -> dict[str, torch.Tensor]:
    """What a standard collator gives transformers: right-padded ids, attention mask, labels -100 off-target."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.zeros(len(examples), width, dtype=torch.long)
    attention = torch.zeros(len(examples), width, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for r, (ids, trained) in enumerate(examples):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        attention[r, : len(ids)] = 1
        labels[r, : len(ids)] = torch.where(torch.tensor(trained), torch.tensor(ids), torch.tensor(-100))
    if all(len(ids) == width for ids, _ in examples):
        return {"input_ids": input_ids.to(device), "labels": labels.to(device)}  # no mask: plain causal SDPA
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device), "labels": labels.to(device)}


# --- one measurement (in its own process) ----------------------------------------------------------------------


def build_model(shape: dict[str, Any], seq: int, device: torch.device, dtype: torch.dtype, path: str) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    if path == "liger":
        from liger_kernel.transformers import apply_liger_kernel_to_llama

        apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, fused_linear_cross_entropy=True,
                                    cross_entropy=False)
    fields = {k: v for k, v in shape.items() if k not in ("batch", "ckpt")}
    config = LlamaConfig(**fields, max_position_embeddings=max(seq, 2048), attn_implementation="sdpa",
                         rope_theta=500000.0)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise straight in bf16: an 8B fp32 copy would not fit beside it
    try:
        with device:
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.requires_grad_(False)
    if shape["ckpt"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)  # PEFT keeps the adapter in fp32 over the bf16 base
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    model.train()
    return model


def plain_step(model: Any, optimizer: Any, batch: dict[str, torch.Tensor]) -> float:
    """What a transformers+PEFT user's loop does: the model's own loss, backward, clip, AdamW."""
    loss = model(**batch, use_cache=False).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def measure(shape_name: str, data: str, path: str, seq: int, warmup: int, steps: int, peak_tflops: float | None,
            compile_forward: bool = False) -> Measurement:
    from tunesmith.training.adapters import decoder_and_head
    from tunesmith.training.collate import collate_step
    from tunesmith.training.render import TokenizedExample
    from tunesmith.training.step import TargetLoss, mixed_precision, train_step

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    shape = SHAPES[shape_name]
    model = build_model(shape, seq, device, dtype, path)
    params = [p for p in model.parameters() if p.requires_grad]
    examples = make_examples(data, shape, seq, seed=1)
    n_tokens = sum(len(ids) for ids, _ in examples)
    n_trained = sum(sum(t[1:]) for _, t in examples)

    if path == "tunesmith":
        optimizer = torch.optim.AdamW(params, lr=1e-4, fused=cuda)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        decoder, head = decoder_and_head(model)
        forward = TargetLoss(decoder, head)
        if compile_forward:
            forward = torch.compile(forward, dynamic=True)
        precision = mixed_precision(model, dtype, device)
        tokenized = [TokenizedExample(ids, trained) for ids, trained in examples]
        micro_batches = collate_step(tokenized, micro_batch_tokens=n_tokens, pad_id=0)

        def step() -> float:
            return train_step(forward, model, optimizer, scheduler, micro_batches, device, precision)[0]
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-4)  # transformers' Trainer default: foreach, not fused
        batch = padded_batch(examples, device)

        def step() -> float:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                return plain_step(model, optimizer, batch)

    loss0 = step()
    for _ in range(max(0, warmup - 1)):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    flops = flops_per_step(shape, examples)
    mfu = flops / seconds / (peak_tflops * 1e12) if peak_tflops else None
    name = torch.cuda.get_device_name() if cuda else "cpu"
    return Measurement(shape_name, data, path, name, n_tokens, n_trained, seconds, n_tokens / seconds, peak, mfu,
                       loss0, "torch.compile" if compile_forward and path == "tunesmith" else "")


def flops_per_step(shape: dict[str, Any], examples: list[tuple[list[int], list[bool]]]) -> float:
    """Model FLOPs of one LoRA step (see the module docstring), from the shape alone."""
    h, layers, inter = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * inter  # q, o, k, v, gate, up, down
    weights = layers * per_layer + h * shape["vocab_size"]
    tokens = sum(len(ids) for ids, _ in examples)
    attention = sum(len(ids) ** 2 for ids, _ in examples) * h * layers * 2  # causal: half of 4·s²·h, fwd
    return 4 * weights * tokens + 3 * attention  # fwd + input-grad bwd; attention bwd ≈ 2× its fwd


# --- the driver -------------------------------------------------------------------------------------------------


def run_one_in_subprocess(args: argparse.Namespace, shape: str, data: str, path: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", shape, data, path, "--seq", str(args.seq),
               "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if args.peak_tflops:
        command += ["--peak-tflops", str(args.peak_tflops)]
    if args.compile:
        command.append("--compile")
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"shape": shape, "data": data, "path": path, "error": " | ".join(tail)}


def liger_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None and torch.cuda.is_available()


def print_table(results: list[dict[str, Any]]) -> None:
    def fmt(r: dict[str, Any]) -> str:
        if "error" in r:
            return f"error: {r['error'][:60]}"
        peak = f"{r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else "-"
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        return f"{r['tokens_per_second']:>10,.0f} tok/s  {peak:>9}  MFU {mfu:>6}  loss0 {r['loss0']:.4f}"

    by_key = {(r["shape"], r["data"], r["path"]): r for r in results}
    for shape, data in dict.fromkeys((r["shape"], r["data"]) for r in results):
        print(f"\n{shape} / {data}")
        plain = by_key.get((shape, data, "plain"))
        for path in PATHS:
            r = by_key.get((shape, data, path))
            if r is None:
                continue
            ratio = ""
            if plain and "error" not in plain and "error" not in r:
                ratio = f"  ×{r['tokens_per_second'] / plain['tokens_per_second']:.2f} vs plain"
                if plain["peak_gib"]:
                    ratio += f", mem ×{r['peak_gib'] / plain['peak_gib']:.2f}"
                ratio += f", loss0 Δ {abs(r['loss0'] - plain['loss0']) / plain['loss0']:.1e}"
            print(f"  {path:<10} {fmt(r)}{ratio}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny shapes, 128 tokens, 2 steps: runs on CPU")
    p.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES))
    p.add_argument("--data", nargs="+", default=None, choices=["random", "sft"])
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    p.add_argument("--seq", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (default: by name)")
    p.add_argument("--compile", action="store_true", help="torch.compile tunesmith's forward")
    p.add_argument("--timeout", type=int, default=300, help="seconds per measurement")
    p.add_argument("--json", type=Path, default=None, help="write every measurement here (after each one)")
    p.add_argument("--one", nargs=3, metavar=("SHAPE", "DATA", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    small = args.tiny or not torch.cuda.is_available()
    args.shapes = args.shapes or (["tiny", "tiny-ckpt"] if small else ["smollm2-135m", "llama-1b", "llama-8b"])
    args.data = args.data or ["random", "sft"]
    args.seq = args.seq or (128 if small else 2048)
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 3)
    args.steps = args.steps or (2 if small else 6)
    if args.peak_tflops is None and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        shape, data, path = args.one
        result = measure(shape, data, path, args.seq, args.warmup, args.steps, args.peak_tflops, args.compile)
        print("RESULT " + json.dumps(asdict(result)), flush=True)
        return 0
    import peft
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    print("versions: " + json.dumps(versions), flush=True)
    results: list[dict[str, Any]] = []
    for shape in args.shapes:
        for data in args.data:
            for path in args.paths:
                if path == "liger" and not liger_available():
                    result = {"shape": shape, "data": data, "path": path,
                              "error": "skipped: liger_kernel not importable (or no CUDA)"}
                else:
                    result = run_one_in_subprocess(args, shape, data, path)
                results.append(result)
                print(json.dumps(result), flush=True)
                if args.json:
                    args.json.write_text(json.dumps({"versions": versions, "results": results}, indent=1))
    print_table(results)
    measured = [r for r in results if "error" not in r]
    return 0 if measured and all(math.isfinite(r["loss0"]) for r in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
