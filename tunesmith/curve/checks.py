"""Refuse a curve that cannot be right before training anything: bad fractions, a test file that overlaps the
training file, a grader that cannot run, a model that does not train here, a subset too small to train on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith.conversation import Conversation
from tunesmith.curve.request import CurveRequest
from tunesmith.curve.subsets import Strata, read_strata, subset_sizes
from tunesmith.evaluate.graders import Grader, parse_grader

NOT_DRY_RUN = ("judge", "score_model", "label_model")  # graders that call a model: built, not run, here
DRY_RUN_ITEMS = 5


class CurveError(ValueError):
    """A curve that must not start; the message says which option or file, and what to change."""


@dataclass
class CurveInputs:
    train: list[tuple[int, Conversation]]  # (line, example) of the training file
    strata: Strata
    sizes: list[int]  # examples per fraction, ascending
    graders: list[Grader]
    metric: str
    n_test: int  # test items evaluated (after --limit)


def parse_fractions(text: str) -> list[float]:
    """"0.125,0.25,0.5,1" as ascending fractions, each in (0, 1]."""
    out = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        try:
            value = float(part)
        except ValueError:
            raise CurveError(f"--fractions: {part!r} is not a number (give e.g. 0.125,0.25,0.5,1)") from None
        out.append(value)
    return check_fractions(out)


def check_fractions(fractions: list[float]) -> list[float]:
    if not fractions:
        raise CurveError("--fractions: give at least one fraction, e.g. 0.125,0.25,0.5,1")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise CurveError(f"--fractions: {bad[0]:g} is outside (0, 1]: each is a share of the training file")
    if len(set(fractions)) != len(fractions):
        raise CurveError("--fractions: a fraction is given twice")
    return sorted(fractions)


def check_inputs(request: CurveRequest) -> CurveInputs:
    """Everything a curve needs to know is sound, read once; raises CurveError (or the data area's DataError)."""
    from tunesmith.data.formats import iter_numbered_conversations, read_conversations
    from tunesmith.data.validate import MIN_EXAMPLES

    fractions = check_fractions(list(request.fractions))
    check_models([request.model, *request.models])
    graders = build_graders(request.graders, request.grader_file)
    metric = request.metric or graders[0].name
    if metric not in [g.name for g in graders]:
        raise CurveError(f"--metric {metric!r} is not one of the graders ({', '.join(g.name for g in graders)})")
    train = list(iter_numbered_conversations(request.train))
    test = read_conversations(request.test)[:request.limit]
    if not test:
        raise CurveError(f"{request.test}: no test items")
    check_graders_run(graders, test, request.test)
    check_no_overlap(Path(request.train), Path(request.test))
    sizes = subset_sizes(len(train), fractions)
    if sizes[0] < MIN_EXAMPLES:
        raise CurveError(f"--fractions: {fractions[0]:g} of the {len(train)} examples in {request.train} is "
                         f"{sizes[0]} example(s); training needs at least {MIN_EXAMPLES}: use a larger fraction")
    if len(set(sizes)) != len(sizes):
        raise CurveError(f"--fractions: two fractions give the same number of examples of {request.train} "
                         f"({sizes}); use fewer or further apart")
    return CurveInputs(train, read_strata(Path(request.train), train), sizes, graders, metric, len(test))


def check_models(models: list[str]) -> None:
    """Every model trains here: a local catalog model, a hub id or a folder, never a provider's model."""
    from tunesmith.catalog import find_model_spec

    for model in models:
        spec = find_model_spec(model)
        if spec is not None and not spec.local:
            raise CurveError(f"--model/--models: {model} trains in a provider's cloud; a curve trains each point "
                             "here, so give models that run locally (see `tunesmith models`)")


def build_graders(specs: list[str], grader_file: Path | None) -> list[Grader]:
    """The graders `tunesmith eval` would build from the same options."""
    graders = [parse_grader(s) for s in specs]
    if grader_file is not None:
        from tunesmith.evaluate.openai_graders import load_grader_file

        graders += load_grader_file(grader_file)
    if not graders:
        raise CurveError("no grader given: pass at least one --grader (e.g. --grader exact)")
    names = [g.name for g in graders]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CurveError(f"two graders are named {twice[0]!r}; give each once")
    return graders


def check_graders_run(graders: list[Grader], test: list[Conversation], path: Path) -> None:
    """Grade the first test items' reference answers against themselves: a grader that raises on them, or that
    fails every one (a crashing custom function, a database that does not answer), would fail every point."""
    items = test[:DRY_RUN_ITEMS]
    for g in graders:
        if g.kind in NOT_DRY_RUN:
            continue
        details = []
        for conv in items:
            reference = conv.reference()
            try:
                score = g.score(reference or "", reference)
            except Exception as e:  # a user's grader can raise anything; say which one and where
                raise CurveError(f"grader {g.name!r} cannot run: on {path} item 1 (its reference answer as the "
                                 f"output) it raised {type(e).__name__}: {e}") from e
            if g.passed(score.value):
                break
            details.append(score.detail)
        else:
            raise CurveError(f"grader {g.name!r} cannot run on {path}: its first {len(items)} reference answers, "
                             f"graded as outputs, all fail ({details[0] or 'score ' + str(score.value)}); fix the "
                             "grader or the test file before training anything")


def check_no_overlap(train: Path, test: Path) -> None:
    """No test item may also be a training example (after normalising case, whitespace, punctuation)."""
    from tunesmith.data.validate import validate_file

    report = validate_file(train, validation=test)
    overlap = [i for i in report.errors if i.code == "train_validation_overlap"]
    if overlap:
        total = report.counts.get("train_validation_overlap", len(overlap))
        first = overlap[0]
        raise CurveError(f"{test} line {first.line}: {first.message.replace('validation', 'test')}; {total} test "
                         f"item(s) in all are training examples, so the curve would measure memory, not learning. "
                         f"Remove them from {test} (or re-split with `tunesmith data split`)")
