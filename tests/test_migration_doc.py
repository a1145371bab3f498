"""docs/migrating-from-openai.md names only models the catalog has and grader types tunesmith runs."""

import re
from pathlib import Path

from tunesmith.catalog import find_model_spec
from tunesmith.evaluate.openai_graders import METRICS, TYPES

DOC = Path(__file__).resolve().parents[1] / "docs" / "migrating-from-openai.md"


def test_every_recommended_open_model_is_in_the_catalog_and_trains_here():
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| you fine-tuned |"):text.index("- **Measure the choice")]
    recommended = re.findall(r"`([A-Za-z0-9.\-]+)`", table)
    assert len(recommended) >= 6
    for model in recommended:
        spec = find_model_spec(model)
        assert spec is not None and spec.local, model


def test_every_grader_type_and_metric_it_lists_runs_here():
    text = DOC.read_text(encoding="utf-8")
    for kind in TYPES:
        assert f"`{kind}`" in text, kind
    for metric in ("fuzzy_match", "bleu", "gleu", "meteor", "cosine", "rouge_l"):
        assert metric in text and metric in METRICS
