"""Graders: score one model output against its reference, 0.0–1.0, with a detail string saying why.

A grader is named by a spec string, the same on the command line, in `summary.json` and in `predictions.jsonl`:

    exact                 output == reference (surrounding whitespace ignored)
    normalized            equal after lower-casing, dropping punctuation and collapsing whitespace
    contains              the reference appears inside the output (case-sensitive)
    regex:PATTERN         PATTERN is found in the output (re.search)
    json                  the output parses as JSON (a ``` fence around it is allowed)
    json-schema:FILE      the output parses as JSON and validates against the JSON Schema in FILE
    bleu | chrf           sentence BLEU / chrF (sacrebleu), scaled to 0–1
    rouge-l               ROUGE-L F-measure (rouge-score)
    python:MODULE:FUNC    FUNC(output, reference) -> float | bool | (float, detail)
    sql-exec:DB.sqlite    run reference and output on a read-only copy of DB; 1 when the result sets match
    judge:MODEL           MODEL rates the output 1–5 against the reference with a rubric; scaled to 0–1

Pass/fail graders (`binary`) score exactly 0 or 1 and are compared with McNemar's test; the others are
continuous and pass when the score reaches `threshold`.
"""

from __future__ import annotations

import importlib
import json
import re
import sqlite3
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

# Continuous graders pass at these scores; promptfoo's defaults for BLEU (0.5) and ROUGE (0.75).
PASS_THRESHOLDS = {"bleu": 0.5, "chrf": 0.5, "rouge-l": 0.75, "python": 0.5, "judge": 0.75}
SQL_TIMEOUT_S = 5.0


class GraderError(ValueError):
    """A grader spec that cannot be used (unknown name, missing file, bad pattern)."""


@dataclass
class Score:
    value: float
    detail: str = ""


@dataclass
class Grader:
    name: str  # the spec string, e.g. "regex:^SELECT"
    kind: str  # the part before the first colon
    binary: bool
    threshold: float
    score_fn: Callable[[str, str | None], Score] = field(repr=False)

    def score(self, output: str, reference: str | None) -> Score:
        return self.score_fn(output, reference)

    def passed(self, value: float) -> bool:
        return value >= self.threshold


def parse_grader(spec: str) -> Grader:
    """Build the grader a spec string names; raise GraderError saying what is wrong with it."""
    kind, _, arg = spec.partition(":")
    simple = {"exact": grade_exact, "normalized": grade_normalized, "contains": grade_contains, "json": grade_json,
              "bleu": grade_bleu, "chrf": grade_chrf, "rouge-l": grade_rouge_l}
    if kind in simple:
        if arg:
            raise GraderError(f"grader {kind!r} takes no argument (got {spec!r})")
        return _grader(spec, kind, simple[kind])
    with_argument = ("regex", "json-schema", "python", "sql-exec", "judge")
    if kind in with_argument and not arg:
        raise GraderError(f"grader {spec!r} needs an argument: {kind}:...  (see `tunesmith eval --help`)")
    if kind == "regex":
        return _grader(spec, kind, regex_grader(arg))
    if kind == "json-schema":
        return _grader(spec, kind, json_schema_grader(Path(arg)))
    if kind == "python":
        return _grader(spec, kind, python_grader(arg))
    if kind == "sql-exec":
        return _grader(spec, kind, sql_exec_grader(Path(arg)))
    if kind == "judge":
        return _grader(spec, kind, JudgeGrader(arg))
    raise GraderError(
        f"unknown grader {spec!r}; use one of exact, normalized, contains, regex:PATTERN, json, "
        "json-schema:FILE, bleu, chrf, rouge-l, python:MODULE:FUNC, sql-exec:DB.sqlite, judge:MODEL"
    )


def _grader(spec: str, kind: str, fn: Callable[[str, str | None], Score]) -> Grader:
    threshold = PASS_THRESHOLDS.get(kind, 1.0)
    return Grader(spec, kind, binary=kind not in PASS_THRESHOLDS, threshold=threshold, score_fn=fn)


def _pass(ok: bool, detail: str = "") -> Score:
    return Score(1.0 if ok else 0.0, detail)


# --- string graders ---------------------------------------------------------------------------------------------


def grade_exact(output: str, reference: str | None) -> Score:
    if reference is None:
        return Score(0.0, "no reference answer")
    return _pass(output.strip() == reference.strip())


_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """Lower-case, drop ASCII punctuation, collapse runs of whitespace."""
    return " ".join(text.lower().translate(_PUNCT).split())


def grade_normalized(output: str, reference: str | None) -> Score:
    if reference is None:
        return Score(0.0, "no reference answer")
    return _pass(normalize_text(output) == normalize_text(reference))


def grade_contains(output: str, reference: str | None) -> Score:
    if not reference or not reference.strip():
        return Score(0.0, "no reference answer")
    return _pass(reference.strip() in output)


def regex_grader(pattern: str) -> Callable[[str, str | None], Score]:
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise GraderError(f"regex:{pattern}: invalid pattern: {e}") from e

    def grade(output: str, reference: str | None) -> Score:
        found = compiled.search(output)
        return _pass(found is not None, f"matched {found.group(0)!r}" if found else "no match")

    return grade


# --- structured output ------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n?\s*```\s*$", re.S)


def strip_code_fence(text: str) -> str:
    """The inside of a single ```lang fenced block, or the text itself when it is not fenced."""
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text.strip()


def parse_json_output(output: str) -> tuple[Any, str | None]:
    """(value, None) when the output is JSON, else (None, the parser's error with line and column)."""
    try:
        return json.loads(strip_code_fence(output)), None
    except json.JSONDecodeError as e:
        return None, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"


def grade_json(output: str, reference: str | None) -> Score:
    _, error = parse_json_output(output)
    return _pass(error is None, error or "")


def json_schema_grader(path: Path) -> Callable[[str, str | None], Score]:
    import jsonschema

    try:
        schema = json.loads(path.read_text())
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except OSError as e:
        raise GraderError(f"json-schema:{path}: cannot read the schema file: {e}") from e
    except json.JSONDecodeError as e:
        raise GraderError(f"json-schema:{path}: line {e.lineno}: not JSON: {e.msg}") from e
    except jsonschema.SchemaError as e:
        raise GraderError(f"json-schema:{path}: not a valid JSON Schema: {e.message}") from e
    validator = validator_cls(schema)

    def grade(output: str, reference: str | None) -> Score:
        value, error = parse_json_output(output)
        if error:
            return Score(0.0, error)
        problem = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if problem is None:
            return Score(1.0, "valid")
        where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
        return Score(0.0, f"schema violation at {where}: {problem.message}")

    return grade


# --- similarity -------------------------------------------------------------------------------------------------


def grade_bleu(output: str, reference: str | None) -> Score:
    import sacrebleu

    if reference is None:
        return Score(0.0, "no reference answer")
    return Score(sacrebleu.sentence_bleu(output, [reference]).score / 100.0)


def grade_chrf(output: str, reference: str | None) -> Score:
    import sacrebleu

    if reference is None:
        return Score(0.0, "no reference answer")
    return Score(sacrebleu.sentence_chrf(output, [reference]).score / 100.0)


def grade_rouge_l(output: str, reference: str | None) -> Score:
    if reference is None:
        return Score(0.0, "no reference answer")
    return Score(_rouge_scorer().score(reference, output)["rougeL"].fmeasure)


_ROUGE: list[Any] = []


def _rouge_scorer() -> Any:
    if not _ROUGE:  # building the scorer loads NLTK's stemmer data: do it once
        from rouge_score import rouge_scorer

        _ROUGE.append(rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True))
    return _ROUGE[0]


# --- custom python ----------------------------------------------------------------------------------------------


def python_grader(target: str) -> Callable[[str, str | None], Score]:
    module_name, _, func_name = target.rpartition(":")
    if not module_name or not func_name:
        raise GraderError(f"python:{target}: expected python:MODULE:FUNCTION, e.g. python:my_checks:score")
    try:
        fn = getattr(importlib.import_module(module_name), func_name)
    except ImportError as e:
        raise GraderError(f"python:{target}: cannot import module {module_name!r}: {e}") from e
    except AttributeError as e:
        raise GraderError(f"python:{target}: module {module_name!r} has no function {func_name!r}") from e

    def grade(output: str, reference: str | None) -> Score:
        try:
            result = fn(output, reference)
        except Exception as e:  # a crashing custom grader scores the item 0, it does not end the eval
            return Score(0.0, f"{func_name} raised {type(e).__name__}: {e}")
        detail = ""
        if isinstance(result, tuple):
            result, detail = result
        value = float(result)
        if not 0.0 <= value <= 1.0:
            return Score(0.0, f"{func_name} returned {value}, outside 0–1")
        return Score(value, str(detail))

    return grade


# --- SQL execution accuracy -------------------------------------------------------------------------------------


def sql_exec_grader(db: Path) -> Callable[[str, str | None], Score]:
    if not db.is_file():
        raise GraderError(f"sql-exec:{db}: database file not found")

    def grade(output: str, reference: str | None) -> Score:
        if reference is None:
            return Score(0.0, "no reference query")
        expected, error = run_sql(db, reference)
        if error:
            return Score(0.0, f"reference query failed: {error}")
        got, error = run_sql(db, strip_code_fence(output))
        if error:
            return Score(0.0, f"invalid SQL: {error}")
        ordered = re.search(r"\border\s+by\b", reference, re.I) is not None
        same = got == expected if ordered else Counter(got) == Counter(expected)
        return _pass(same, f"{len(got)} rows" if same else f"result differs: {len(got)} rows vs {len(expected)} expected")

    return grade


def run_sql(db: Path, query: str) -> tuple[list[tuple], str | None]:
    """Rows of `query` on a read-only connection (a model's DROP TABLE cannot touch the file); (rows, error)."""
    conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
    deadline = time.monotonic() + SQL_TIMEOUT_S
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)  # non-zero aborts the query
    try:
        rows = conn.execute(query).fetchall()
        return [tuple(r) for r in rows], None
    except (sqlite3.Error, sqlite3.Warning, ValueError) as e:
        message = "timed out" if "interrupted" in str(e) else str(e)
        return [], f"{type(e).__name__}: {message}"
    finally:
        conn.close()


# --- model as judge ---------------------------------------------------------------------------------------------

JUDGE_RUBRIC = (
    "You grade answers. Compare the candidate answer with the reference answer.\n"
    "Reply with one digit from 1 to 5: 5 = same meaning as the reference, 4 = correct with minor slips, "
    "3 = partly correct, 2 = mostly wrong, 1 = wrong or no answer.\n\n"
    "Reference answer:\n{reference}\n\nCandidate answer:\n{output}\n\nScore (1-5):"
)


class JudgeGrader:
    """A local model rates each output 1–5 against the reference; the rating is scaled to 0–1."""

    def __init__(self, model_ref: str):
        self.model_ref = model_ref

    @cached_property
    def loaded(self) -> Any:
        from tunesmith.models import load_model

        return load_model(self.model_ref)

    def __call__(self, output: str, reference: str | None) -> Score:
        from tunesmith.generation import generate

        if reference is None:
            return Score(0.0, "no reference answer")
        prompt = [{"role": "user", "content": JUDGE_RUBRIC.format(reference=reference, output=output)}]
        reply = generate(self.loaded.model, self.loaded.tokenizer, [prompt], max_new_tokens=8)[0].text
        return judge_score(reply)


def judge_score(reply: str) -> Score:
    digit = re.search(r"[1-5]", reply)
    if digit is None:
        return Score(0.0, f"judge gave no 1-5 rating: {reply[:80]!r}")
    return Score((int(digit.group(0)) - 1) / 4.0, f"judge rated {digit.group(0)}/5")
