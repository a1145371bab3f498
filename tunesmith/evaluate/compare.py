"""A/B comparison of eval directories, paired by item id, with a verdict per grader.

For every treatment eval against the baseline (the first one unless named) and every grader both ran:
- delta = mean(treatment − baseline) over the items both evaluated;
- a 95% paired-bootstrap interval for that delta;
- a p-value: McNemar's exact test for pass/fail graders, an exact/Monte-Carlo sign-flip test for scores;
- a verdict, in Azure AI Foundry's vocabulary:
    TooFewSamples  fewer than MIN_PAIRED_ITEMS paired items (no verdict is honest on so few)
    Improved       p < ALPHA and delta > 0
    Degraded       p < ALPHA and delta < 0
    Inconclusive   otherwise
- the items it fixed (baseline failed, treatment passed) and broke (the reverse).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunesmith.artifacts.eval_dir import EvalRun, read_eval_run
from tunesmith.evaluate.significance import mcnemar_exact_p, paired_bootstrap_ci, sign_flip_p

ALPHA = 0.05
MIN_PAIRED_ITEMS = 10


@dataclass
class GraderComparison:
    grader: str
    binary: bool
    n: int
    baseline_mean: float
    treatment_mean: float
    delta: float
    ci95: tuple[float, float]
    p_value: float
    test: str
    verdict: str
    fixed: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    item_deltas: dict[str, float] = field(default_factory=dict)  # per item: treatment − baseline


@dataclass
class TreatmentComparison:
    treatment: EvalRun
    graders: list[GraderComparison]
    only_in_baseline: int
    only_in_treatment: int

    @property
    def degraded(self) -> list[GraderComparison]:
        return [g for g in self.graders if g.verdict == "Degraded"]


@dataclass
class Comparison:
    baseline: EvalRun
    treatments: list[TreatmentComparison]

    @property
    def warnings(self) -> list[str]:
        """Plain-language lines for every treatment that is significantly worse; a fine-tuned one's is loud."""
        out = []
        for t in self.treatments:
            for g in t.degraded:
                line = (f"{t.treatment.label} scores {g.delta:+.3f} on {g.grader} "
                        f"(p={g.p_value:.3g}, {len(g.broken)} items broken)")
                if t.treatment.is_fine_tuned:  # bad training data makes models worse; this is where it shows
                    out.append(f"FINE-TUNED MODEL IS WORSE THAN BASELINE: {line}. Do not ship it: check the "
                               "training data (tunesmith data validate / stats) before training again.")
                else:
                    out.append(f"Worse than the baseline: {line}.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": {"path": str(self.baseline.path), "summary": self.baseline.summary},
            "alpha": ALPHA,
            "min_paired_items": MIN_PAIRED_ITEMS,
            "treatments": [
                {
                    "path": str(t.treatment.path),
                    "summary": t.treatment.summary,
                    "only_in_baseline": t.only_in_baseline,
                    "only_in_treatment": t.only_in_treatment,
                    "graders": [asdict(g) for g in t.graders],
                }
                for t in self.treatments
            ],
            "warnings": self.warnings,
        }


def load_eval_run(path: str | Path) -> EvalRun:
    """An eval directory with its predictions read (a comparison pairs them by item id)."""
    run = read_eval_run(path)
    run.predictions  # noqa: B018  (read now: a missing or broken predictions.jsonl fails before comparing)
    return run


def compare(eval_dirs: Sequence[str | Path], baseline: str | Path | None = None) -> Comparison:
    """Compare each eval directory against the baseline (default: the first of `eval_dirs`)."""
    runs = [load_eval_run(p) for p in eval_dirs]
    if baseline is not None and Path(baseline).resolve() not in [r.path.resolve() for r in runs]:
        runs.insert(0, load_eval_run(baseline))
    if len(runs) < 2:
        raise ValueError("compare needs at least two eval directories")
    base_index = 0 if baseline is None else [r.path.resolve() for r in runs].index(Path(baseline).resolve())
    base = runs[base_index]
    treatments = [compare_pair(base, r) for i, r in enumerate(runs) if i != base_index]
    return Comparison(base, treatments)


def compare_pair(base: EvalRun, treat: EvalRun) -> TreatmentComparison:
    shared = [i for i in base.predictions if i in treat.predictions]
    graders = [g for g in base.summary.get("graders", {}) if g in treat.summary.get("graders", {})]
    return TreatmentComparison(
        treat,
        [compare_grader(g, base, treat, shared) for g in graders],
        only_in_baseline=len(base.predictions) - len(shared),
        only_in_treatment=len(treat.predictions) - len(shared),
    )


def compare_grader(grader: str, base: EvalRun, treat: EvalRun, ids: Sequence[str]) -> GraderComparison:
    b = np.array([base.predictions[i]["scores"][grader] for i in ids], dtype=float)
    t = np.array([treat.predictions[i]["scores"][grader] for i in ids], dtype=float)
    b_pass = [item_passed(base, i, grader) for i in ids]
    t_pass = [item_passed(treat, i, grader) for i in ids]
    fixed = [i for i, bp, tp in zip(ids, b_pass, t_pass) if tp and not bp]
    broken = [i for i, bp, tp in zip(ids, b_pass, t_pass) if bp and not tp]
    binary = grader_is_binary(base, grader, np.concatenate([b, t]))
    if binary:
        p, test = mcnemar_exact_p(len(fixed), len(broken)), "McNemar exact"
    else:
        p, test = sign_flip_p(t - b), "paired sign-flip permutation"
    n = len(ids)
    delta = float((t - b).mean()) if n else 0.0
    ci = paired_bootstrap_ci(b, t) if n else (float("nan"), float("nan"))
    return GraderComparison(
        grader=grader, binary=binary, n=n,
        baseline_mean=float(b.mean()) if n else float("nan"),
        treatment_mean=float(t.mean()) if n else float("nan"),
        delta=delta, ci95=ci, p_value=p, test=test, verdict=verdict(n, delta, p),
        fixed=fixed, broken=broken, item_deltas={i: float(d) for i, d in zip(ids, t - b)},
    )


def verdict(n: int, delta: float, p_value: float) -> str:
    if n < MIN_PAIRED_ITEMS:
        return "TooFewSamples"
    if p_value < ALPHA and delta > 0:
        return "Improved"
    if p_value < ALPHA and delta < 0:
        return "Degraded"
    return "Inconclusive"


def item_passed(run: EvalRun, item_id: str, grader: str) -> bool:
    prediction = run.predictions[item_id]
    if grader in prediction.get("passed", {}):
        return bool(prediction["passed"][grader])
    threshold = run.summary["graders"][grader].get("threshold", 1.0)  # eval dirs written by other tools
    return prediction["scores"][grader] >= threshold


def grader_is_binary(run: EvalRun, grader: str, scores: np.ndarray) -> bool:
    recorded = run.summary["graders"][grader].get("binary")
    if recorded is not None:
        return bool(recorded)
    return bool(np.isin(scores, (0.0, 1.0)).all())
