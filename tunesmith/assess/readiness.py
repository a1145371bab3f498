"""Is fine-tuning right for this use case? Azure's four readiness questions, answered from the user's evidence.

1. Why fine-tune?              the use case, and whether it is one fine-tuning is good at
2. What has been tried?        prompt-engineering and RAG baselines, their scores, the failures they left
3. Which data?                 validation, example count, format, curation signals
4. How is quality measured?    a separate validation set, a metric, a target, and the best baseline against it

Each answer carries a status (ready / not yet / caution), the reasons, and the next steps as commands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.assess.cost import CostEstimate, UsageAssumptions, estimate_cost
from tunesmith.assess.curation import Signal, length_outlier_sentence, length_outliers, signals_from_validation
from tunesmith.artifacts.eval_dir import EvalRun, read_eval_run
from tunesmith.assess.evidence import (CurveEvidence, Prediction, data_format, find_curve_for,
                                       load_numbered_conversations, prompt_text, read_curve_evidence,
                                       read_predictions, text_similarity)
from tunesmith.assess.usecase import UseCase, classify_use_case
from tunesmith.catalog import DEFAULT_MODEL, get_model_spec
from tunesmith.conversation import Conversation
from tunesmith.evaluate.pairing import common_graders, grader_in

READY, NOT_YET, CAUTION = "ready", "not yet", "caution"
_RANK = {READY: 0, CAUTION: 1, NOT_YET: 2}

# OpenAI's guide: 10 examples is the minimum a job accepts; "clear improvements from 50 to 100"; tasks that
# teach a new syntax need hundreds (Azure troubleshooting: "hundreds to thousands").
MIN_EXAMPLES = 10
VISIBLE_GAINS_EXAMPLES = 50
SYNTAX_EXAMPLES = 200
FAILED_BELOW = 0.5  # when an eval recorded no pass/fail: a score under this is "got it wrong" (scores 0..1)
SIMILAR_AT = 0.5  # text_similarity at which a training example "covers" a failure
COVERED_SHARE = 0.5  # under this share of failures covered, the data does not target what went wrong
SHOW = 5


@dataclass
class Finding:
    question: str
    status: str
    reasons: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)  # commands start with "tunesmith "; the rest are actions
    summary: str | None = None  # the one sentence the verdict quotes; the first reason when unset


@dataclass
class Assessment:
    verdict: str
    verdict_reasons: list[str]
    findings: list[Finding]
    model: str
    use_case: str
    use_case_kind: str
    metric: str | None
    target: float | None
    baselines: list[dict[str, Any]]
    cost: dict[str, Any] | None = None
    curve: dict[str, Any] | None = None  # the learning curve the data question used: path, kind, message, plot

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Context:
    """Everything read once and shared by the four questions."""

    use_case: UseCase
    model: str
    train: Path | None
    validation: Path | None
    runs: list[EvalRun]
    metric: str | None
    target: float | None
    report: Any = None  # tunesmith.data.validate.ValidationReport of train (+ validation)
    train_examples: list[tuple[int, Conversation]] | None = None  # (line, example); None: unreadable
    n_validation: int | None = None
    read_error: str | None = None
    signals: list[Signal] = field(default_factory=list)
    cost: CostEstimate | None = None
    curve: CurveEvidence | None = None  # a learning curve of this training file (`tunesmith curve`)

    def metric_in(self, run: EvalRun) -> str | None:
        """`run`'s own name for the metric: graders meet by kind and resolved target, as `compare` pairs them
        (`sql-exec:./geo.sqlite` in one eval is `sql-exec:geo.sqlite` in another)."""
        return grader_in(run, self.metric, self.runs) if self.metric else None

    @property
    def overlap(self) -> Signal | None:
        return next((s for s in self.signals if s.code == "train_validation_overlap"), None)


def assess(
    *,
    use_case: str = "",
    train: Path | None = None,
    validation: Path | None = None,
    baselines: list[Path] | None = None,
    model: str = DEFAULT_MODEL,
    metric: str | None = None,
    target: float | None = None,
    curve: Path | None = None,
) -> Assessment:
    """Answer the four questions from whatever evidence is given; missing evidence is itself an answer."""
    model = get_model_spec(model).id
    runs = [read_eval_run(Path(p)) for p in baselines or []]
    uc = classify_use_case(use_case)
    ctx = _Context(use_case=uc, model=model, train=Path(train) if train else None,
                   validation=Path(validation) if validation else None, runs=runs,
                   metric=metric or _only_common_grader(runs), target=target)
    if ctx.train:
        _read_data(ctx)
        ctx.cost = _cost_numbers(uc, ctx, runs)
        found = curve or find_curve_for(ctx.train, sorted({Path(p).parent for p in baselines or []}))
        ctx.curve = read_curve_evidence(found) if found else None
    findings = [why_fine_tune(ctx), what_was_tried(ctx), which_data(ctx), how_measured(ctx)]
    verdict = max((f.status for f in findings), key=_RANK.__getitem__)
    return Assessment(
        verdict=verdict,
        verdict_reasons=_verdict_reasons(verdict, findings, ctx),
        findings=findings,
        model=model,
        use_case=use_case,
        use_case_kind=uc.kind,
        metric=ctx.metric,
        target=target,
        baselines=[_baseline_row(r, ctx.metric_in(r)) for r in runs],
        cost=ctx.cost.to_dict() if ctx.cost else None,
        curve=ctx.curve.summary() if ctx.curve else None,
    )


def _read_data(ctx: _Context) -> None:
    """Validate the data once; read the examples when they can be read (duplicates do not stop reading)."""
    from tunesmith.data.formats import DataError
    from tunesmith.data.validate import validate_file

    ctx.report = validate_file(ctx.train, model=ctx.model, validation=ctx.validation)
    ctx.signals = signals_from_validation(ctx.report)
    try:
        ctx.train_examples = load_numbered_conversations(ctx.train)
        if ctx.validation:
            ctx.n_validation = len(load_numbered_conversations(ctx.validation))
    except DataError as e:
        ctx.read_error = str(e)


# --- 1. Why fine-tune? ----------------------------------------------------------------------------------------
def style_sentence(data_format: str | None) -> str:
    """Style and tone are what preference pairs teach best (OpenAI and Foundry recommend DPO after SFT)."""
    if data_format == "preference":
        return ("Style and tone: the training file holds preference pairs, which answer it directly: train them "
                "with DPO (tunesmith train --method dpo), ideally from an SFT run (--model runs/<sft-run>).")
    return ("Style and tone are answered best by preference data: pairs of a preferred and a non-preferred answer "
            "to the same prompt, trained with DPO (tunesmith train --method dpo) after SFT.")


def why_fine_tune(ctx: _Context) -> Finding:
    uc, f = ctx.use_case, Finding("Why fine-tune?", READY)
    cases = "; ".join(f"{case} ({', '.join(words)})" for case, words in uc.suits.items())
    if uc.kind == "missing":
        f.status = NOT_YET
        f.reasons.append("No use case stated: fine-tuning needs a concrete task to aim at and to be judged on.")
        f.next_steps.append('tunesmith assess --use-case "Turn support questions into our ticket JSON format; '
                            'prompting gets the fields wrong 30% of the time"')
    elif uc.kind == "vague":
        f.status = NOT_YET
        f.reasons.append(f'"{_short(uc.text)}" names no task fine-tuning is good at (style, tone, output format, '
                         "complex instructions, syntax, tool use): \"make the model better\" is not a use case.")
        f.next_steps.append("State the input, the output you want, and what goes wrong today with prompting, then "
                            'rerun: tunesmith assess --use-case "…"')
    elif uc.kind == "knowledge":
        f.status = NOT_YET
        f.reasons.append(f"The use case is about knowledge ({', '.join(uc.knowledge)}): fine-tuning is poor at "
                         "adding new or changing facts. Start with retrieval-augmented generation (RAG first).")
        f.next_steps.append(_eval_command(ctx, "rag:DOCS_DIR", "evals/rag"))
    elif uc.kind == "knowledge+suits":
        f.status = CAUTION
        f.reasons.append(f"Knowledge ({', '.join(uc.knowledge)}) belongs in retrieval (RAG); the {cases} part suits "
                         "fine-tuning. Combine them: RAG for facts, fine-tuning for how answers look.")
        f.next_steps.append(_eval_command(ctx, "rag:DOCS_DIR", "evals/rag"))
    elif uc.kind == "cost":
        f.status = CAUTION
        f.reasons.append(f"Cost is the main motive ({', '.join(uc.cost)}): proceed with caution; training and "
                         "hosting are paid up front and every month.")
        f.reasons.extend(_cost_sentences(ctx.cost))
        f.next_steps.append(_cost_command(ctx))
    else:
        f.reasons.append(f"The use case is one fine-tuning suits: {cases}.")
        if "style or tone" in uc.suits:
            f.reasons.append(style_sentence(ctx.report.format if ctx.report else None))
        if uc.cost:
            f.reasons.extend(_cost_sentences(ctx.cost))
    return f


# --- 2. What has been tried? ----------------------------------------------------------------------------------
def what_was_tried(ctx: _Context) -> Finding:
    f = Finding("What has been tried?", READY)
    prompting = [r for r in ctx.runs if r.kind == "prompting"]
    rag = [r for r in ctx.runs if r.kind == "rag"]
    if not ctx.runs:
        f.status = NOT_YET
        f.reasons.append("No baseline evaluations: without a baseline a fine-tuned model's regressions go unseen.")
        f.next_steps += [_eval_command(ctx, "zero-shot", "evals/zero-shot"),
                         _eval_command(ctx, "few-shot:3", "evals/few-shot-3"),
                         _eval_command(ctx, "rag:DOCS_DIR", "evals/rag")]
        return f
    for r in ctx.runs:
        f.reasons.append(f"Baseline {r.baseline_label}: {_score_text(r, ctx.metric_in(r))}" + _data_note(r, ctx))
        if ctx.train and r.data and _same_file(r.data, ctx.train):
            f.status = _worse(f.status, CAUTION)
            f.reasons.append(f"{r.baseline_label} was scored on the training file: score it on the validation set instead.")
    if not prompting:
        f.status = _worse(f.status, NOT_YET)
        f.reasons.append("No prompt-engineering baseline (zero-shot / few-shot).")
        f.next_steps.append(_eval_command(ctx, "few-shot:3", "evals/few-shot-3"))
    if not rag:
        needed = NOT_YET if ctx.use_case.knowledge else CAUTION
        f.status = _worse(f.status, needed)
        f.reasons.append("No RAG baseline" + (": the use case is about knowledge, so RAG must be tried first."
                                               if ctx.use_case.knowledge else "."))
        f.next_steps.append(_eval_command(ctx, "rag:DOCS_DIR", "evals/rag"))
    if ctx.metric is None:
        return f
    best = best_baseline(ctx)
    if best is None:
        f.status = _worse(f.status, NOT_YET)
        f.reasons.append(f"No baseline was scored with the grader {ctx.metric!r}.")
        return f
    _add_failure_evidence(f, best, ctx)
    tried = ", ".join(sorted({r.kind for r in ctx.runs}))
    f.summary = (f"Baselines tried ({tried}); the best, {best.baseline_label}, scores {ctx.metric} "
                 f"{best.graders[ctx.metric_in(best)].mean:.3g}.")
    return f


def _failed(p: Prediction, metric: str, threshold: float | None) -> bool:
    if metric in p.passed:
        return not p.passed[metric]
    return p.scores.get(metric, 1.0) < (threshold if threshold is not None else FAILED_BELOW)


def best_baseline(ctx: _Context) -> EvalRun | None:
    """The baseline scoring best on the metric, under whichever spelling of it each one was graded with."""
    scored = [r for r in ctx.runs if ctx.metric_in(r)]
    return max(scored, key=lambda r: r.graders[ctx.metric_in(r)].mean) if scored else None


def _add_failure_evidence(f: Finding, best: EvalRun, ctx: _Context) -> None:
    predictions = read_predictions(best.path)
    if not predictions:
        f.status = _worse(f.status, CAUTION)
        f.reasons.append(f"{best.path}/predictions.jsonl is missing: the best baseline's failures can't be collected.")
        return
    metric = ctx.metric_in(best)
    threshold = best.graders[metric].threshold
    failures = [p for p in predictions if _failed(p, metric, threshold)]
    ids = ", ".join(p.id for p in failures[:SHOW])
    f.reasons.append(f"Failures collected: the best baseline, {best.baseline_label}, got {len(failures)} of "
                     f"{len(predictions)} items wrong by {ctx.metric}" + (f" (e.g. {ids})." if failures else "."))
    if not failures or not ctx.train_examples:
        return
    train_prompts = [prompt_text(c) for _, c in ctx.train_examples]
    covered = [p for p in failures if max((text_similarity(p.prompt, t) for t in train_prompts), default=0) >= SIMILAR_AT]
    share = len(covered) / len(failures)
    f.reasons.append(f"{len(covered)} of {len(failures)} failures ({share:.0%}) have a similar training example "
                     f"(word-overlap similarity >= {SIMILAR_AT}).")
    if share < COVERED_SHARE:
        missing = ", ".join(p.id for p in failures if p not in covered)
        f.status = _worse(f.status, CAUTION)
        f.reasons.append("The training data does not target most of what the baselines get wrong.")
        f.next_steps.append(f"Add training examples like the uncovered failures ({_short(missing, 80)}) "
                            f"from {best.path}/predictions.jsonl, with correct answers.")


# --- 3. Which data? -------------------------------------------------------------------------------------------
def which_data(ctx: _Context) -> Finding:
    f = Finding("Which data?", READY)
    if ctx.train is None:
        f.status = NOT_YET
        f.reasons.append("No training file given.")
        f.next_steps.append(f"tunesmith assess --train train.jsonl --model {ctx.model} …  (OpenAI chat JSONL)")
        return f
    _add_validation_result(f, ctx)
    _add_example_count(f, ctx)
    _add_curve(f, ctx)
    _add_format_check(f, ctx)
    _add_curation_signals(f, ctx)
    if f.status == READY:
        f.summary = (f"{ctx.report.n_examples} training examples that pass validation, in the format "
                     f"{ctx.model} trains on, with no curation problems found.")
    return f


def _add_validation_result(f: Finding, ctx: _Context) -> None:
    report = ctx.report
    # Curation and example-count issues get their own sentences below.
    said_elsewhere = {s.code for s in ctx.signals} | {"too_few_examples", "few_examples"}
    blocking = [e for e in report.errors if e.code not in said_elsewhere]
    warnings = [w for w in report.warnings if w.code not in said_elsewhere]
    if blocking:
        f.status = _worse(f.status, NOT_YET)
        f.reasons.append(f"Validation found {len(blocking)} error(s), e.g. "
                         + "; ".join(_issue_text(e) for e in blocking[:3]) + ".")
        f.next_steps.append(f"tunesmith data validate {ctx.train} --model {ctx.model}")
    else:
        f.reasons.append(f"Validation passes ({len(warnings)} warning(s)"
                         + (": " + "; ".join(_issue_text(w) for w in warnings[:3]) if warnings else "") + ").")
    if ctx.read_error:
        f.reasons.append(f"The examples could not be read: {ctx.read_error}")


def _add_example_count(f: Finding, ctx: _Context) -> None:
    n = ctx.report.n_examples
    needed = SYNTAX_EXAMPLES if ctx.use_case.syntax_task else VISIBLE_GAINS_EXAMPLES
    if n < MIN_EXAMPLES:
        f.status = _worse(f.status, NOT_YET)
        f.reasons.append(f"{n} training examples: fewer than the minimum of {MIN_EXAMPLES} a fine-tuning job accepts.")
    elif n < needed:
        f.status = _worse(f.status, CAUTION)
        why = ("tasks that teach a syntax need hundreds" if ctx.use_case.syntax_task
               else "OpenAI sees clear improvements from 50-100 well-crafted examples")
        f.reasons.append(f"{n} training examples, {needed} or more advised: {why}.")
    else:
        f.reasons.append(f"{n} training examples ({needed} or more advised for this use case).")
    if n < needed:
        f.next_steps.append(f"Collect at least {needed - n} more examples, starting with the baselines' failures.")


def _add_curve(f: Finding, ctx: _Context) -> None:
    """With a learning curve, the data question is answered by what more data did, not by counts."""
    c = ctx.curve
    if c is None:
        return
    f.reasons.append(c.sentence())
    f.next_steps = [s for s in f.next_steps if not s.startswith("Collect at least")]
    if c.kind == "rising" and c.projection:
        p = c.projection[0]
        f.next_steps.append(f"Collect more examples like these: at {p['examples']} the curve projects "
                            f"{p['score']:.0%} ({p['low']:.0%}-{p['high']:.0%}; an extrapolation).")
    elif c.kind == "flat":
        f.status = _worse(f.status, CAUTION)
        f.next_steps.append("More of the same data will not help: try a larger model (tunesmith curve --models "
                            "…), a better prompt format or harder examples.")
    elif c.kind != "rising":
        f.next_steps.append(f"Add test items (about {c.items_needed or 'more'}) and run the curve again: it cannot "
                            "yet tell whether more data helps.")


def _add_format_check(f: Finding, ctx: _Context) -> None:
    spec = get_model_spec(ctx.model)
    found, wanted = data_format(ctx.train), "chat" if spec.chat else "completion"
    if found == wanted:
        f.reasons.append(f"Format matches {spec.id}: {wanted} data for a {wanted} model.")
        return
    # prompt/completion pairs become single-turn chats losslessly; multi-turn chats do not fit a completion model.
    single_turn = all(sum(m.role == "user" for m in c.messages) <= 1 for _, c in ctx.train_examples or [])
    convertible = found == "completion" or (ctx.train_examples is not None and single_turn)
    f.status = _worse(f.status, CAUTION if convertible else NOT_YET)
    to = "chat" if wanted == "chat" else "prompt-completion"
    f.reasons.append(f"Format mismatch: {found} data, but {spec.id} trains on {wanted} data"
                     + (" (convertible)." if convertible else "; multi-turn chats do not fit a completion model."))
    out = ctx.train.with_name(f"{ctx.train.stem}.{to}.jsonl")
    f.next_steps.append(f"tunesmith data convert {ctx.train} {out} --to {to}" if convertible
                        else f"Choose a chat model (e.g. --model gpt-35-turbo-0125) for multi-turn data.")


def _add_curation_signals(f: Finding, ctx: _Context) -> None:
    problems = [s.sentence() for s in ctx.signals]
    if ctx.train_examples:
        outliers, fence = length_outliers(ctx.train_examples)
        if outliers:
            problems.append(length_outlier_sentence(outliers, fence))
    if not problems:
        f.reasons.append("Curation: no duplicates, near duplicates, conflicting answers or length outliers"
                         + (", and no train/validation overlap." if ctx.validation else "."))
        return
    f.status = _worse(f.status, CAUTION)
    f.reasons += ["Curation: " + p for p in problems]
    if any(s.code in ("duplicate_example", "near_duplicate") for s in ctx.signals):
        out = ctx.train.with_name(f"{ctx.train.stem}.dedup.jsonl")
        f.next_steps.append(f"tunesmith data dedupe {ctx.train} {out}")
    if ctx.overlap:
        f.next_steps.append(f"Remove the overlapping examples from {ctx.validation}, or re-split: "
                            f"tunesmith data split {ctx.train} --out-dir data/")
    if any(s.code == "conflicting_answers" for s in ctx.signals):
        f.next_steps.append("Decide one correct answer for each conflicting input.")


def _issue_text(issue: Any) -> str:
    where = f"{issue.file} " if getattr(issue, "file", None) else ""
    line = f"line {issue.line}: " if issue.line is not None else ""
    return f"{where}{line}{issue.code}: {issue.message}"


# --- 4. How will quality be measured? -------------------------------------------------------------------------
def how_measured(ctx: _Context) -> Finding:
    f = Finding("How will quality be measured?", READY)
    if ctx.validation is None:
        f.status = NOT_YET
        f.reasons.append("No validation set: quality must be measured on examples the model never trained on.")
        if ctx.train:
            f.next_steps.append(f"tunesmith data split {ctx.train}  (then pass --validation)")
    elif ctx.overlap:
        f.status = CAUTION
        f.reasons.append(f"The validation set is not separate: {ctx.overlap.count} of its examples are also in "
                         "the training data, so its scores will flatter the fine-tuned model.")
    else:
        count = f" ({ctx.n_validation} examples)" if ctx.n_validation is not None else ""
        f.reasons.append(f"Separate validation set: {ctx.validation}{count}, no overlap with training data.")
    if ctx.metric is None:
        f.status = NOT_YET
        graders = sorted({g for r in ctx.runs for g in r.graders})
        f.reasons.append("No metric chosen" + (f" (the baselines were scored with {', '.join(graders)})." if graders
                                               else "."))
        f.next_steps.append("Choose the grader that decides success: --metric GRADER --target X")
        return f
    f.reasons.append(f"Metric: {ctx.metric}.")
    if ctx.target is None:
        f.status = NOT_YET
        f.reasons.append("No target: without one nobody can say whether fine-tuning succeeded.")
        f.next_steps.append(f"State the score that would be good enough: --metric {ctx.metric} --target X")
        return f
    best = best_baseline(ctx)
    if best is None:
        f.reasons.append(f"Target: {ctx.metric} >= {ctx.target:g}; no baseline to compare with yet.")
        return f
    score = best.graders[ctx.metric_in(best)]
    if score.mean >= ctx.target:
        f.status = CAUTION
        sure = score.ci95 is not None and score.ci95[0] >= ctx.target
        f.reasons.append(f"The best baseline already meets the target: {best.baseline_label} scores {ctx.metric} "
                         f"{score.mean:.3g} >= {ctx.target:g}" + (" (even its 95% CI's lower end does)" if sure else "")
                         + ". Fine-tuning may not be needed.")
        f.next_steps.append(f"Ship the baseline ({best.strategy}) or raise the target; fine-tune only for a gap "
                            "the baseline leaves.")
    else:
        f.reasons.append(f"Target: {ctx.metric} >= {ctx.target:g}; the best baseline, {best.baseline_label}, scores "
                         f"{score.mean:.3g}: a gap of {ctx.target - score.mean:.3g} for fine-tuning to close.")
        f.summary = f.reasons[-1]
    return f


# --- verdict and helpers --------------------------------------------------------------------------------------
def _verdict_reasons(verdict: str, findings: list[Finding], ctx: _Context) -> list[str]:
    if verdict == READY:
        return [f"{f.question} {f.summary or f.reasons[0]}" for f in findings] + [
            f"Next: tunesmith train --model {ctx.model} --train {ctx.train} --validation {ctx.validation}, then "
            f"evaluate the run with --grader {ctx.metric} and compare it with the best baseline (tunesmith compare)."]
    out = []
    for f in findings:
        headline = next((r for r in f.reasons if _is_headline(r)), None)
        if f.status == verdict or headline:
            out.append(f"{f.question} {f.status}: {headline or f.summary or f.reasons[0]}")
    # The two findings that change the plan, not just its order, go first.
    return sorted(out, key=lambda r: not _is_headline(r))


def _is_headline(reason: str) -> bool:
    return "already meets the target" in reason or "RAG first" in reason


def _cost_numbers(uc: UseCase, ctx: _Context, runs: list[EvalRun]) -> CostEstimate | None:
    """Cost figures when cost is part of the motive and the training file can be read to count tokens."""
    if not uc.cost or ctx.train_examples is None:
        return None
    usage = UsageAssumptions()
    short = [r for r in runs if r.prompt_tokens_mean and r.strategy.lower().startswith("zero-shot")]
    long = [r for r in runs if r.prompt_tokens_mean and not r.strategy.lower().startswith("zero-shot")]
    if short and long:
        usage.prompt_tokens_after = short[0].prompt_tokens_mean
        usage.prompt_tokens_before = max(r.prompt_tokens_mean for r in long)
    return estimate_cost(ctx.train, ctx.model, usage=usage)


def _cost_sentences(cost: CostEstimate | None) -> list[str]:
    if cost is None:
        return ["No cost figures yet (give --train so the tokens can be counted)."]
    money = f"${cost.training_cost:,.2f}" if cost.training_cost is not None else "unpriced"
    hours = f", about {cost.training_hours:.2g} h" if cost.training_hours is not None else ""
    out = [f"Training: {cost.trained_tokens:,} tokens ({cost.billing_tokens:,} × {cost.n_epochs} epochs), {money}"
           f"{hours}; hosting ${cost.hosting_per_month:,.0f}/month."]
    if cost.break_even_days is not None:
        out.append(f"Saving ${cost.net_saving_per_month:,.2f}/month after hosting: break-even in "
                   f"{cost.break_even_days:,.0f} days.")
    elif cost.net_saving_per_month is not None:
        out.append(f"Net saving ${cost.net_saving_per_month:,.2f}/month: it never pays back on cost alone.")
    return out


def _cost_command(ctx: _Context) -> str:
    data = ctx.train or "train.jsonl"
    return (f"tunesmith cost --data {data} --model {ctx.model} --requests-per-day N "
            "--prompt-tokens-before N --prompt-tokens-after N")


def _eval_command(ctx: _Context, strategy: str, output: str) -> str:
    data = ctx.validation or "validation.jsonl"
    grader = ctx.metric or "GRADER"
    pool = f" --pool {ctx.train or 'train.jsonl'}" if "few-shot" in strategy else ""
    return (f"tunesmith eval --model {ctx.model} --data {data} --grader {grader} --strategy {strategy}{pool} "
            f"--output {output}")


def _only_common_grader(runs: list[EvalRun]) -> str | None:
    """The metric when the user named none: the one grader every baseline shares (by kind and resolved target,
    as `compare` matches them), if there is exactly one."""
    common = common_graders(runs)
    return common[0] if len(common) == 1 else None


def _score_text(run: EvalRun, metric: str | None) -> str:
    names = [metric] if metric in run.graders else sorted(run.graders)
    parts = []
    for name in names:
        g = run.graders[name]
        ci = f" [95% CI {g.ci95[0]:.3g}-{g.ci95[1]:.3g}]" if g.ci95 else ""
        parts.append(f"{name} {g.mean:.3g}{ci}")
    return ", ".join(parts) + f" on {run.n} items"


def _data_note(run: EvalRun, ctx: _Context) -> str:
    if ctx.validation and run.data and not _same_file(run.data, ctx.validation):
        return f" (scored on {run.data}, not the validation set)"
    return ""


def _baseline_row(run: EvalRun, metric: str | None) -> dict[str, Any]:
    g = run.graders.get(metric) if metric else None
    return {"path": str(run.path), "strategy": run.strategy, "model": run.model, "kind": run.kind, "n": run.n,
            "metric": metric, "mean": g.mean if g else None, "ci95": list(g.ci95) if g and g.ci95 else None,
            "prompt_tokens_mean": run.prompt_tokens_mean}


def _same_file(a: str | Path, b: str | Path) -> bool:
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or (pa.name == pb.name and not (pa.exists() and pb.exists()))
    except OSError:
        return pa.name == pb.name


def _worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
