"""CPU training throughput: tunesmith vs plain transformers Trainer + peft, in the same process.

SmolLM2-135M-Instruct, LoRA r=16 on every linear layer, a chat dataset shaped like the query-language task:
long prompts (a schema of varying length), short answers. Both sides train the same examples, in batches
of the same size, for the same number of optimizer steps, in fp32 on the same threads. The baseline pads
each batch to its longest example and computes logits and loss at every position (labels -100 on the
prompt); tunesmith packs padding-free and runs the LM head only where a trained token comes next.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_train_cpu.py --steps 8 --batch-size 8
    ... --tunesmith-dtype auto                  # tunesmith's default precision vs the Trainer's (float32)
    ... --tunesmith-dtype bfloat16 --baseline-bf16   # both in bf16

Throughput is real (non-pad) tokens per second, timed from the end of step 1 to the end of the last step
(model loading and the first, allocator-warming step excluded). Both CPU seconds of this process and wall
seconds are reported: on a shared machine CPU time is the fair figure, wall time the one users feel.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

FIELDS = ["id", "name", "email", "created_at", "status", "amount", "currency", "country", "city", "owner",
          "priority", "due_date", "tags", "score", "category", "updated_at", "region", "quantity", "sku", "notes"]
TABLES = ["orders", "customers", "tickets", "invoices", "shipments", "products", "events", "users"]


class StepClock:
    """Tokens and seconds (CPU and wall) from the end of step 1 to the end of the last step."""

    def __init__(self) -> None:
        self.tokens, self.cpu, self.wall = 0, 0.0, 0.0
        self.last: tuple[float, float] | None = None

    def step_ended(self, step: int, tokens: int) -> None:
        now = (time.process_time(), time.perf_counter())
        if self.last is not None and step > 1:
            self.tokens += tokens
            self.cpu += now[0] - self.last[0]
            self.wall += now[1] - self.last[1]
        self.last = now

    def summary(self) -> dict:
        return {"tokens": self.tokens, "cpu_seconds": round(self.cpu, 2), "wall_seconds": round(self.wall, 2),
                "tokens_per_cpu_second": round(self.tokens / self.cpu, 1),
                "tokens_per_wall_second": round(self.tokens / self.wall, 1)}


def make_dataset(path: Path, n: int, seed: int = 0) -> Path:
    """Query-language-like chat examples: a schema of 2–6 tables in the system prompt, a one-line answer."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            tables = rng.sample(TABLES, rng.randint(2, 6))
            schema = "\n".join(
                f"table {t} (" + ", ".join(f"{c} {rng.choice(['int', 'text', 'date', 'float'])}"
                                           for c in rng.sample(FIELDS, rng.randint(4, 12))) + ")"
                for t in tables
            )
            table, column = rng.choice(tables), rng.choice(FIELDS)
            limit = rng.randint(1, 50)
            messages = [
                {"role": "system", "content": "Translate the request into a query. Schema:\n" + schema},
                {"role": "user", "content": f"Show the top {limit} {table} by {column} (request {i})."},
                {"role": "assistant", "content": f"FROM {table} | SORT {column} DESC | LIMIT {limit}"},
            ]
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


def bench_tunesmith(data: Path, model: str, steps: int, batch_size: int, out: Path, dtype: str) -> dict:
    from tunesmith.train_config import TrainConfig
    from tunesmith.training.sft import train

    clock = StepClock()

    def on_event(event: dict) -> None:
        if event["type"] == "metrics":
            data = event["data"]
            clock.step_ended(data["step"], round(data["tokens_per_second"] * data["step_seconds"]))

    config = TrainConfig(model=model, train=data, n_epochs=1, batch_size=batch_size, learning_rate_multiplier=0.1,
                         lora_r=16, lora_alpha=32, lora_dropout=0.0, output=out, seed=0, dtype=dtype)
    result = train(config, on_event=on_event)
    assert result.step == steps, (result.step, steps)
    return clock.summary()


def bench_transformers(data: Path, model_ref: str, steps: int, batch_size: int, out: Path, bf16: bool) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from tunesmith.data.formats import read_conversations
    from tunesmith.models import load_model
    from tunesmith.training.render import render_example

    loaded = load_model(model_ref, load_weights=False)
    # A cache made by an older tunesmith kept the GGUF quantizer in the config, which the Trainer refuses to
    # train; the weights themselves are plain fp32, so load them without it.
    config = AutoConfig.from_pretrained(str(loaded.source))
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    base = AutoModelForCausalLM.from_pretrained(str(loaded.source), config=config, dtype=torch.float32)
    tokenizer = loaded.tokenizer
    rows = [render_example(c, tokenizer) for c in read_conversations(data)]
    dataset = [{"input_ids": r.ids, "labels": r.labels()} for r in rows]
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))

    def collate(batch: list[dict]) -> dict:
        """Pad each batch to its longest example (what DataCollatorForSeq2Seq does)."""
        longest = max(len(b["input_ids"]) for b in batch)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([b["input_ids"] + [pad] * (longest - len(b["input_ids"])) for b in batch])
        labels = torch.tensor([b["labels"] + [-100] * (longest - len(b["labels"])) for b in batch])
        mask = torch.tensor([[1] * len(b["input_ids"]) + [0] * (longest - len(b["input_ids"])) for b in batch])
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    batch_tokens: list[int] = []

    def counting_collate(batch: list[dict]) -> dict:
        out = collate(batch)
        batch_tokens.append(int(out["attention_mask"].sum()))
        return out

    clock = StepClock()

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            clock.step_ended(state.global_step, batch_tokens[state.global_step - 1])

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=2e-4,
        lr_scheduler_type="linear", logging_steps=1000, save_strategy="no", report_to=[], seed=0,
        dataloader_num_workers=0, use_cpu=True, disable_tqdm=True, bf16=bf16,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=counting_collate,
                      callbacks=[Timer()])
    trainer.train()
    return clock.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tunesmith-dtype", default="float32", choices=["auto", "float32", "bfloat16"],
                        help="auto: bf16 base weights on CPUs with AMX/AVX512-BF16 (tunesmith's default)")
    parser.add_argument("--baseline-bf16", action="store_true", help="Trainer(bf16=True): CPU autocast")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_dataset(tmp / "train.jsonl", args.steps * args.batch_size)
        baseline = bench_transformers(data, args.model, args.steps, args.batch_size, tmp / "hf", args.baseline_bf16)
        ours = bench_tunesmith(data, args.model, args.steps, args.batch_size, tmp / "run", args.tunesmith_dtype)
    speedup = ours["tokens_per_cpu_second"] / baseline["tokens_per_cpu_second"]
    speedup_wall = ours["tokens_per_wall_second"] / baseline["tokens_per_wall_second"]
    print(json.dumps({"threads": torch.get_num_threads(), "steps": args.steps, "batch_size": args.batch_size,
                      "tunesmith_dtype": args.tunesmith_dtype, "baseline_bf16": args.baseline_bf16,
                      "transformers_trainer_peft": baseline, "tunesmith": ours, "speedup_cpu_time": round(speedup, 2),
                      "speedup_wall_time": round(speedup_wall, 2)},
                     indent=2))


if __name__ == "__main__":
    main()
