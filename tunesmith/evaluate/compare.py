"""A/B comparison of eval directories, paired item by item, with a verdict per grader.

Items and graders are paired by `evaluate.pairing` (by default by what each item asks and expects, whatever
its prompt). A treatment that does not pair with the baseline (fewer than half the items, no grader in common)
gets no verdict: `TreatmentComparison.problem` says why and `Comparison.problems` lists them.
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
from tunesmith.evaluate.pairing import Pairing, grader_identity, pair_items
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
    fixed: list[str] = field(default_factory=list)  # pairing keys (see `Pairing.pair_by`)
    broken: list[str] = field(default_factory=list)
    item_deltas: dict[str, float] = field(default_factory=dict)  # per item: treatment − baseline
    treatment_grader: str | None = None  # the treatment's spelling, when it differs (`sql-exec:./geo.sqlite`)


@dataclass
class TreatmentComparison:
    treatment: EvalRun
    graders: list[GraderComparison]
    pairing: Pairing
    baseline_prompt_tokens: float | None = None  # mean per paired item
    treatment_prompt_tokens: float | None = None

    @property
    def problem(self) -> str | None:
        return self.pairing.problem

    @property
    def only_in_baseline(self) -> int:
        return len(self.pairing.only_in_baseline)

    @property
    def only_in_treatment(self) -> int:
        return len(self.pairing.only_in_treatment)

    @property
    def prompt_token_saving(self) -> float | None:
        """The share of prompt tokens the treatment saves per item (0.9 = 90% fewer); negative when it spends more."""
        if not self.baseline_prompt_tokens or self.treatment_prompt_tokens is None:
            return None
        return 1.0 - self.treatment_prompt_tokens / self.baseline_prompt_tokens

    @property
    def degraded(self) -> list[GraderComparison]:
        return [g for g in self.graders if g.verdict == "Degraded"]


@dataclass
class Comparison:
    baseline: EvalRun
    treatments: list[TreatmentComparison]

    @property
    def problems(self) -> list[str]:
        """Why each treatment that does not pair with the baseline got no verdict."""
        return [f"{t.treatment.label} does not pair with the baseline {self.baseline.label}: {t.problem}."
                for t in self.treatments if t.problem]

    def verdict_for(self, treatment: str | Path, grader: str) -> str | None:
        """The verdict of one treatment (its eval dir) on one grader (any spelling of it); None without one."""
        wanted = grader_identity(grader, {})
        for t in self.treatments:
            if t.treatment.path.resolve() != Path(treatment).resolve():
                continue
            for g in t.graders:
                if grader_identity(g.grader, self.baseline.summary["graders"][g.grader]) == wanted:
                    return g.verdict
        return None

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
            "problems": self.problems,
            "treatments": [
                {
                    "path": str(t.treatment.path),
                    "summary": t.treatment.summary,
                    "pair_by": t.pairing.pair_by,
                    "paired": len(t.pairing.keys),
                    "only_in_baseline": t.pairing.only_in_baseline,
                    "only_in_treatment": t.pairing.only_in_treatment,
                    "problem": t.problem,
                    "baseline_prompt_tokens": t.baseline_prompt_tokens,
                    "treatment_prompt_tokens": t.treatment_prompt_tokens,
                    "prompt_token_saving": t.prompt_token_saving,
                    "graders": [asdict(g) for g in t.graders],
                }
                for t in self.treatments
            ],
            "warnings": self.warnings,
        }


def load_eval_run(path: str | Path) -> EvalRun:
    """An eval directory with its predictions read (a comparison pairs them item by item)."""
    run = read_eval_run(path)
    run.rows  # noqa: B018  (read now: a missing or broken predictions.jsonl fails before comparing)
    return run


def compare(eval_dirs: Sequence[str | Path], baseline: str | Path | None = None,
            pair_by: str = "question") -> Comparison:
    """Compare each eval directory against the baseline (default: the first of `eval_dirs`).

    `pair_by`: "question" (what each item asks and expects), "id" (the whole conversation) or "line"."""
    runs = [load_eval_run(p) for p in eval_dirs]
    if baseline is not None and Path(baseline).resolve() not in [r.path.resolve() for r in runs]:
        runs.insert(0, load_eval_run(baseline))
    if len(runs) < 2:
        raise ValueError("compare needs at least two eval directories")
    base_index = 0 if baseline is None else [r.path.resolve() for r in runs].index(Path(baseline).resolve())
    base = runs[base_index]
    treatments = [compare_pair(base, r, pair_by) for i, r in enumerate(runs) if i != base_index]
    return Comparison(base, treatments)


def compare_pair(base: EvalRun, treat: EvalRun, pair_by: str = "question") -> TreatmentComparison:
    pairing = pair_items(base, treat, pair_by)
    b_items, t_items = base.items_by(pair_by), treat.items_by(pair_by)
    graders = [] if pairing.problem else [
        compare_grader(b_name, t_name, base, treat, pairing.keys, pair_by) for b_name, t_name in pairing.graders]
    return TreatmentComparison(treat, graders, pairing,
                               baseline_prompt_tokens=_mean_prompt_tokens(base, [b_items[k] for k in pairing.keys]),
                               treatment_prompt_tokens=_mean_prompt_tokens(treat, [t_items[k] for k in pairing.keys]))


def _mean_prompt_tokens(run: EvalRun, items: list[dict[str, Any]]) -> float | None:
    """Over the paired items, so both sides are measured on the same questions; the summary's when not recorded."""
    counts = [p["prompt_tokens"] for p in items if isinstance(p.get("prompt_tokens"), (int, float))]
    return sum(counts) / len(counts) if counts else run.prompt_tokens_mean


def compare_grader(grader: str, treatment_grader: str, base: EvalRun, treat: EvalRun, keys: Sequence[str],
                   pair_by: str = "question") -> GraderComparison:
    """One grader over the paired items (`keys`: what both runs' `items_by(pair_by)` hold)."""
    b_items, t_items = base.items_by(pair_by), treat.items_by(pair_by)
    b = np.array([b_items[k]["scores"][grader] for k in keys], dtype=float)
    t = np.array([t_items[k]["scores"][treatment_grader] for k in keys], dtype=float)
    b_pass = [item_passed(base, b_items[k], grader) for k in keys]
    t_pass = [item_passed(treat, t_items[k], treatment_grader) for k in keys]
    fixed = [k for k, bp, tp in zip(keys, b_pass, t_pass) if tp and not bp]
    broken = [k for k, bp, tp in zip(keys, b_pass, t_pass) if bp and not tp]
    binary = grader_is_binary(base, grader, np.concatenate([b, t]))
    if binary:
        p, test = mcnemar_exact_p(len(fixed), len(broken)), "McNemar exact"
    else:
        p, test = sign_flip_p(t - b), "paired sign-flip permutation"
    n = len(keys)
    delta = float((t - b).mean()) if n else 0.0
    ci = paired_bootstrap_ci(b, t) if n else (float("nan"), float("nan"))
    return GraderComparison(
        grader=grader, binary=binary, n=n,
        baseline_mean=float(b.mean()) if n else float("nan"),
        treatment_mean=float(t.mean()) if n else float("nan"),
        delta=delta, ci95=ci, p_value=p, test=test, verdict=verdict(n, delta, p),
        fixed=fixed, broken=broken, item_deltas={k: float(d) for k, d in zip(keys, t - b)},
        treatment_grader=treatment_grader if treatment_grader != grader else None,
    )


def verdict(n: int, delta: float, p_value: float) -> str:
    if n < MIN_PAIRED_ITEMS:
        return "TooFewSamples"
    if p_value < ALPHA and delta > 0:
        return "Improved"
    if p_value < ALPHA and delta < 0:
        return "Degraded"
    return "Inconclusive"


def item_passed(run: EvalRun, prediction: dict[str, Any], grader: str) -> bool:
    if grader in prediction.get("passed", {}):
        return bool(prediction["passed"][grader])
    threshold = run.summary["graders"][grader].get("threshold", 1.0)  # eval dirs written by other tools
    return prediction["scores"][grader] >= threshold


def grader_is_binary(run: EvalRun, grader: str, scores: np.ndarray) -> bool:
    recorded = run.summary["graders"][grader].get("binary")
    if recorded is not None:
        return bool(recorded)
    return bool(np.isin(scores, (0.0, 1.0)).all())
