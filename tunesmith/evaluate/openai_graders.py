"""OpenAI's grader objects, run here: `string_check`, `text_similarity`, `score_model`, `label_model`, `python`, `multi`.

The JSON is OpenAI's (`/v1/fine_tuning/alpha/graders/run`, the graders guide), so a migrating script's graders
work unchanged:

    run_grader({"type": "string_check", "name": "city", "operation": "ilike",
                "input": "{{ sample.output_text }}", "reference": "{{ item.city }}"},
               model_sample="It is Paris.", item={"city": "paris"})
    -> {"reward": 1.0, "metadata": {...}, "sub_rewards": {}, "model_grader_token_usage_per_model": {}}

Where OpenAI leaves a choice open, the choice made here:
- `text_similarity`: fuzzy_match is rapidfuzz's WRatio / 100 (the guide's own python-grader example); bleu, gleu and
  meteor are NLTK's sentence scores on whitespace tokens (bleu: 4-gram, smoothing method1); rouge_N / rouge_l are
  rouge-score's F-measure; cosine is the cosine of all-MiniLM-L6-v2 embeddings (the model RAG ships). meteor
  needs NLTK's WordNet data, which no PyPI package ships: without it (`python -m nltk.downloader wordnet`) the
  grader is refused with that message.
- `score_model` / `label_model`: `model` is anything `tunesmith` loads (catalog id, hub id, run dir, adapter) or
  `provider:NAME:MODEL` for a configured provider's model. A local model has no structured outputs, so the reply
  is asked for as `{"result": N}` and read leniently (the first number / the label it names).
- `python`: run in a child process with no network and a timeout (python_sandbox.py), never in this process.
- `multi`: `calculate_output` is parsed with `ast` and evaluated over + - * / ** ^ (power), min, max, abs, floor,
  ceil, exp, sqrt, log and the sub-graders' names; nothing else is accepted.
Extensions OpenAI's objects do not have: `pass_threshold` (any grader, for `tunesmith eval`'s pass rate) and
`timeout_s` (python).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from tunesmith.evaluate.graders import Grader, GraderError, Score
from tunesmith.evaluate.python_sandbox import DEFAULT_TIMEOUT_S, MAX_SOURCE_BYTES, run_python_grader
from tunesmith.evaluate.templating import (TemplateVariableError, check_variable, render_template,
                                           template_variables)

TYPES = ("string_check", "text_similarity", "score_model", "label_model", "python", "multi")
OPERATIONS = ("eq", "ne", "like", "ilike")
METRICS = ("fuzzy_match", "bleu", "gleu", "meteor", "cosine", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5",
           "rouge_l")
_FIELDS = {  # required, optional
    "string_check": ({"input", "reference", "operation"}, {"pass_threshold"}),
    "text_similarity": ({"input", "reference", "evaluation_metric"}, {"pass_threshold"}),
    "score_model": ({"input", "model"}, {"range", "sampling_params", "pass_threshold"}),
    "label_model": ({"input", "model", "labels", "passing_labels"}, {"pass_threshold"}),
    "python": ({"source"}, {"image_tag", "timeout_s", "pass_threshold"}),
    "multi": ({"graders", "calculate_output"}, {"pass_threshold"}),
}
ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error", "other_error",
               "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
               "truncated_observation_error", "unresponsive_reward_error")
LOCAL_MAX_TOKENS = 256


class OpenAIGraderError(GraderError):
    """A grader object that cannot run; `param` is the field path (`grader.graders.b.operation`)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


# --- validation -------------------------------------------------------------------------------------------------


def validate_grader(spec: Any, where: str = "grader") -> dict[str, Any]:
    """`spec` checked field by field (raises OpenAIGraderError naming the field); returns it unchanged."""
    if not isinstance(spec, dict):
        raise OpenAIGraderError(where, "a grader is a JSON object with a 'type'")
    kind = spec.get("type")
    if kind not in TYPES:
        raise OpenAIGraderError(f"{where}.type", f"must be one of {', '.join(TYPES)}; got {kind!r}")
    required, optional = _FIELDS[kind]
    missing = sorted(required - spec.keys())
    if missing:
        raise OpenAIGraderError(f"{where}.{missing[0]}", f"required by a {kind} grader")
    unknown = sorted(spec.keys() - required - optional - {"type", "name"})
    if unknown:
        raise OpenAIGraderError(f"{where}.{unknown[0]}", f"not a field of a {kind} grader")
    if not isinstance(spec.get("name", ""), str):
        raise OpenAIGraderError(f"{where}.name", "must be a string")
    _VALIDATORS[kind](spec, where)
    if "pass_threshold" in spec and not isinstance(spec["pass_threshold"], (int, float)):
        raise OpenAIGraderError(f"{where}.pass_threshold", "must be a number")
    return spec


def _check_template(text: Any, param: str) -> None:
    if not isinstance(text, str):
        raise OpenAIGraderError(param, "must be a string (it may hold {{ item.* }} / {{ sample.* }} templates)")
    for variable in template_variables(text):
        problem = check_variable(variable)
        if problem:
            raise OpenAIGraderError(param, problem)


def _validate_string_check(spec: dict, where: str) -> None:
    _check_template(spec["input"], f"{where}.input")
    _check_template(spec["reference"], f"{where}.reference")
    if spec["operation"] not in OPERATIONS:
        raise OpenAIGraderError(f"{where}.operation", f"must be one of {', '.join(OPERATIONS)}")


def _validate_text_similarity(spec: dict, where: str) -> None:
    _check_template(spec["input"], f"{where}.input")
    _check_template(spec["reference"], f"{where}.reference")
    if spec["evaluation_metric"] not in METRICS:
        raise OpenAIGraderError(f"{where}.evaluation_metric", f"must be one of {', '.join(METRICS)}")
    if spec["evaluation_metric"] == "meteor":
        problem = meteor_unavailable()
        if problem:
            raise OpenAIGraderError(f"{where}.evaluation_metric", problem)


def _validate_messages(spec: dict, where: str) -> None:
    messages = spec["input"]
    if not isinstance(messages, list) or not messages:
        raise OpenAIGraderError(f"{where}.input", "must be a non-empty list of messages {role, content}")
    for i, message in enumerate(messages):
        at = f"{where}.input[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system", "developer"):
            raise OpenAIGraderError(f"{at}.role", "must be user, assistant, system or developer")
        try:
            text = content_text(message.get("content"))
        except ValueError as e:
            raise OpenAIGraderError(f"{at}.content", str(e)) from None
        _check_template(text, f"{at}.content")
    if not isinstance(spec["model"], str) or not spec["model"].strip():
        raise OpenAIGraderError(f"{where}.model", "must name a model")


def _validate_score_model(spec: dict, where: str) -> None:
    _validate_messages(spec, where)
    bounds = spec.get("range", [0, 1])
    if (not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds)
            or bounds[0] >= bounds[1]):
        raise OpenAIGraderError(f"{where}.range", "must be two numbers [low, high] with low < high")
    params = spec.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise OpenAIGraderError(f"{where}.sampling_params", "must be an object")
    kinds = {"max_completions_tokens": int, "seed": int, "temperature": (int, float), "top_p": (int, float),
             "reasoning_effort": str}
    for key, value in params.items():
        if key not in kinds:
            raise OpenAIGraderError(f"{where}.sampling_params.{key}", "not a sampling parameter")
        if value is not None and (not isinstance(value, kinds[key]) or isinstance(value, bool)):
            raise OpenAIGraderError(f"{where}.sampling_params.{key}", "has the wrong type")
    if (params.get("max_completions_tokens") or 1) < 1:
        raise OpenAIGraderError(f"{where}.sampling_params.max_completions_tokens", "must be at least 1")


def _validate_label_model(spec: dict, where: str) -> None:
    _validate_messages(spec, where)
    labels, passing = spec["labels"], spec["passing_labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise OpenAIGraderError(f"{where}.labels", "must be a non-empty list of strings")
    if not isinstance(passing, list) or not all(isinstance(x, str) for x in passing) or not set(passing) <= set(labels):
        raise OpenAIGraderError(f"{where}.passing_labels", "must be a subset of labels")


def _validate_python(spec: dict, where: str) -> None:
    source = spec["source"]
    if not isinstance(source, str) or len(source.encode()) > MAX_SOURCE_BYTES:
        raise OpenAIGraderError(f"{where}.source", f"must be Python source of at most {MAX_SOURCE_BYTES} bytes")
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise OpenAIGraderError(f"{where}.source", f"line {e.lineno}: {e.msg}") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "grade" for n in tree.body):
        raise OpenAIGraderError(f"{where}.source", "must define grade(sample, item)")
    timeout = spec.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise OpenAIGraderError(f"{where}.timeout_s", "must be a number of seconds in (0, 600]")


def _validate_multi(spec: dict, where: str) -> None:
    subs = sub_graders(spec)
    if not subs:
        raise OpenAIGraderError(f"{where}.graders", "must hold at least one grader, as {name: grader}")
    for name, sub in subs.items():
        if not name.isidentifier():
            raise OpenAIGraderError(f"{where}.graders.{name}", "a sub-grader's name must be an identifier (the "
                                    "formula refers to it)")
        if isinstance(sub, dict) and sub.get("type") == "multi":
            raise OpenAIGraderError(f"{where}.graders.{name}.type", "a multi grader cannot nest another multi")
        validate_grader(sub, f"{where}.graders.{name}")
    try:
        compile_formula(spec["calculate_output"], set(subs))
    except ValueError as e:
        raise OpenAIGraderError(f"{where}.calculate_output", str(e)) from None


_VALIDATORS: dict[str, Callable[[dict, str], None]] = {
    "string_check": _validate_string_check, "text_similarity": _validate_text_similarity,
    "score_model": _validate_score_model, "label_model": _validate_label_model, "python": _validate_python,
    "multi": _validate_multi,
}


def sub_graders(spec: dict[str, Any]) -> dict[str, Any]:
    """A multi grader's graders by name: the guide's `{name: grader}`, or the SDK's single grader object."""
    graders = spec.get("graders")
    if isinstance(graders, dict) and "type" in graders and isinstance(graders.get("type"), str):
        name = graders.get("name")
        return {name if isinstance(name, str) and name else "grader": graders}
    return graders if isinstance(graders, dict) else {}


def content_text(content: Any) -> str:
    """The text of a message's content: a string, an input_text / output_text part, or a list of them."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in ("input_text", "output_text") and "text" in part:
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ValueError(f"content of type {kind!r} is not supported here: text only")
    return "\n".join(texts)


# --- formulas (multi) -------------------------------------------------------------------------------------------

_FUNCTIONS: dict[str, Callable[..., float]] = {"min": min, "max": max, "abs": abs, "floor": math.floor,
                                               "ceil": math.ceil, "exp": math.exp, "sqrt": math.sqrt, "log": math.log}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow, ast.BitXor: operator.pow, ast.Mod: operator.mod}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def compile_formula(text: Any, names: set[str]) -> ast.expr:
    """The formula's syntax tree, checked to hold only numbers, `names`, the allowed operators and functions."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a formula over the sub-graders' names, e.g. '0.5 * a + 0.5 * b'")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"not a formula: {e.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCTIONS:
            raise ValueError(f"unknown name {node.id!r}; the sub-graders are {', '.join(sorted(names))}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                                               and not node.keywords):
            raise ValueError(f"only {', '.join(_FUNCTIONS)} may be called")
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
                   *_BINARY, *_UNARY)
        if not isinstance(node, allowed) or (isinstance(node, ast.Constant)
                                             and not isinstance(node.value, (int, float))):
            raise ValueError(f"{type(node).__name__} is not allowed in a formula")
    return tree


def evaluate_formula(tree: ast.expr, values: dict[str, float]) -> float:
    if isinstance(tree, ast.Constant):
        return float(tree.value)  # floats: a huge power overflows at once instead of building a giant int
    if isinstance(tree, ast.Name):
        return float(values[tree.id])
    if isinstance(tree, ast.UnaryOp):
        return _UNARY[type(tree.op)](evaluate_formula(tree.operand, values))
    if isinstance(tree, ast.BinOp):
        return float(_BINARY[type(tree.op)](evaluate_formula(tree.left, values), evaluate_formula(tree.right, values)))
    assert isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
    return float(_FUNCTIONS[tree.func.id](*(evaluate_formula(a, values) for a in tree.args)))


# --- running ----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What grading one sample found; `response()` is OpenAI's run-response shape."""

    name: str
    type: str
    reward: float = 0.0
    errors: dict[str, Any] = field(default_factory=lambda: {flag: False for flag in ERROR_FLAGS})
    sub_rewards: dict[str, float] = field(default_factory=dict)
    token_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    sampled_model_name: str | None = None
    detail: str = ""
    execution_time: float = 0.0

    def fail(self, flag: str, detail: str, **extra: Any) -> "Outcome":
        self.errors[flag] = True
        self.errors.update(extra)
        self.reward, self.detail = 0.0, detail
        return self

    def response(self) -> dict[str, Any]:
        total = sum(u["total_tokens"] for u in self.token_usage.values())
        return {
            "reward": self.reward,
            "metadata": {"name": self.name, "type": self.type, "errors": self.errors,
                         "execution_time": self.execution_time, "scores": {self.name: self.reward, **self.sub_rewards},
                         "token_usage": total if self.token_usage else None,
                         "sampled_model_name": self.sampled_model_name},
            "sub_rewards": self.sub_rewards,
            "model_grader_token_usage_per_model": self.token_usage,
        }


def run_grader(spec: dict[str, Any], model_sample: str, item: Any = None) -> dict[str, Any]:
    """OpenAI's `/fine_tuning/alpha/graders/run`: validate `spec`, grade `model_sample` against `item`."""
    return grade_sample(validate_grader(spec), model_sample, item).response()


def grade_sample(spec: dict[str, Any], model_sample: str, item: Any = None) -> Outcome:
    """Grade one sample with a validated grader; runtime problems become error flags, as OpenAI reports them."""
    started = time.perf_counter()
    sample = sample_namespace(model_sample)
    outcome = Outcome(spec.get("name") or spec["type"], spec["type"])
    try:
        _RUNNERS[spec["type"]](spec, sample, {} if item is None else item, outcome)
    except TemplateVariableError as e:
        outcome.fail("invalid_variable_error", str(e))
    outcome.execution_time = round(time.perf_counter() - started, 6)
    return outcome


def sample_namespace(model_sample: str) -> dict[str, Any]:
    """`sample.*`: output_text, and output_json when the sample is a JSON object or array."""
    try:
        parsed = json.loads(model_sample)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    return {"output_text": model_sample, "output_json": parsed if isinstance(parsed, (dict, list)) else None,
            "output_tools": [], "choices": []}


def _render(template: str, sample: dict, item: Any) -> str:
    return render_template(template, {"sample": sample, "item": item})


def _run_string_check(spec: dict, sample: dict, item: Any, out: Outcome) -> None:
    given, reference = _render(spec["input"], sample, item), _render(spec["reference"], sample, item)
    checks = {"eq": given == reference, "ne": given != reference, "like": reference in given,
              "ilike": reference.lower() in given.lower()}
    out.reward = 1.0 if checks[spec["operation"]] else 0.0
    out.detail = f"{spec['operation']}: {given[:60]!r} vs {reference[:60]!r}"


def _run_text_similarity(spec: dict, sample: dict, item: Any, out: Outcome) -> None:
    given, reference = _render(spec["input"], sample, item), _render(spec["reference"], sample, item)
    try:
        out.reward = text_similarity(spec["evaluation_metric"], given, reference)
    except GraderError as e:
        out.fail("other_error", str(e))
        return
    out.detail = f"{spec['evaluation_metric']} {out.reward:.4f}"


def _run_python(spec: dict, sample: dict, item: Any, out: Outcome) -> None:
    result = run_python_grader(spec["source"], sample, item, timeout_s=float(spec.get("timeout_s", DEFAULT_TIMEOUT_S)))
    if result.error_type == "runtime":
        out.fail("python_grader_runtime_error", result.error or "", python_grader_runtime_error_details=result.error)
    elif result.error_type is not None:
        out.fail("python_grader_server_error", result.error or "", python_grader_server_error_type=result.error_type)
    else:
        out.reward, out.detail = float(result.score), "grade() returned"


def _run_multi(spec: dict, sample: dict, item: Any, out: Outcome) -> None:
    subs = sub_graders(spec)
    for name, sub in subs.items():
        part = Outcome(name, sub["type"])
        _RUNNERS[sub["type"]](sub, sample, item, part)
        out.sub_rewards[name] = part.reward
        out.token_usage.update(part.token_usage)
        out.sampled_model_name = out.sampled_model_name or part.sampled_model_name
        for flag, value in part.errors.items():
            if value:
                out.errors[flag] = value
    try:
        out.reward = evaluate_formula(compile_formula(spec["calculate_output"], set(subs)), out.sub_rewards)
    except (ValueError, ArithmeticError) as e:
        out.fail("formula_parse_error", f"calculate_output: {e}")
        return
    out.detail = ", ".join(f"{k}={v:.3g}" for k, v in out.sub_rewards.items())


# --- text similarity --------------------------------------------------------------------------------------------


def text_similarity(metric: str, given: str, reference: str) -> float:
    """One `text_similarity` metric of `given` against `reference`, 0–1."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz, utils

        return fuzz.WRatio(given, reference, processor=utils.default_process) / 100.0
    if metric.startswith("rouge_"):
        key = "rougeL" if metric == "rouge_l" else f"rouge{metric[-1]}"
        return _rouge(key).score(reference, given)[key].fmeasure
    if metric == "cosine":
        from tunesmith.baselines.rag import embed, load_embedder

        vectors = embed(load_embedder(), [given, reference])
        return float(vectors[0] @ vectors[1])  # embeddings come normalised: the dot product is the cosine
    hypothesis, references = given.split(), [reference.split()]
    if metric == "bleu":
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        return float(sentence_bleu(references, hypothesis, smoothing_function=SmoothingFunction().method1))
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu(references, hypothesis))
    return _meteor(references, hypothesis)


@lru_cache(maxsize=None)
def _rouge(key: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([key], use_stemmer=True)


def meteor_unavailable() -> str | None:
    """Why METEOR cannot run here (NLTK's WordNet data missing), or None."""
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return ("meteor needs NLTK's WordNet data, which is not installed here and which no PyPI package ships: "
                "run `python -m nltk.downloader wordnet` once, or pick another evaluation_metric")
    return None


def _meteor(references: list[list[str]], hypothesis: list[str]) -> float:
    from nltk.translate.meteor_score import meteor_score

    problem = meteor_unavailable()
    if problem:
        raise GraderError(problem)
    return float(meteor_score(references, hypothesis))


# --- model graders ----------------------------------------------------------------------------------------------


def _model_messages(spec: dict, sample: dict, item: Any, instruction: str) -> list[dict[str, str]]:
    messages = [{"role": "system" if m["role"] == "developer" else m["role"],
                 "content": _render(content_text(m["content"]), sample, item)} for m in spec["input"]]
    return messages + [{"role": "user", "content": instruction}]


def _ask_model(spec: dict, messages: list[dict[str, str]], out: Outcome) -> str | None:
    from tunesmith.evaluate.model_reply import ModelReplyError, model_reply

    params = spec.get("sampling_params") or {}
    try:
        reply = model_reply(spec["model"], messages, max_tokens=int(params.get("max_completions_tokens")
                                                                    or LOCAL_MAX_TOKENS),
                            temperature=float(params.get("temperature") or 0.0),
                            top_p=float(params.get("top_p") or 1.0), seed=params.get("seed"))
    except ModelReplyError as e:
        out.fail("model_grader_server_error", str(e), model_grader_server_error_details=str(e))
        return None
    out.sampled_model_name = spec["model"]
    out.token_usage[spec["model"]] = {"prompt_tokens": reply.prompt_tokens,
                                      "completion_tokens": reply.completion_tokens,
                                      "total_tokens": reply.prompt_tokens + reply.completion_tokens}
    return reply.text


def _run_score_model(spec: dict, sample: dict, item: Any, out: Outcome) -> None:
    low, high = spec.get("range", [0, 1])
    instruction = f'Reply with only a JSON object {{"result": N}} where N is your score from {low} to {high}.'
    text = _ask_model(spec, _model_messages(spec, sample, item, instruction), out)
    if text is None:
        return
    score = read_score(text)
    if score is None:
        out.fail("model_grader_parse_error", f"no score in the model's reply: {text[:80]!r}")
        return
    out.reward = min(max(score, float(low)), float(high))
    out.detail = f"model scored {score:g}" + (" (clipped to the range)" if out.reward != score else "")


def read_score(text: str) -> float | None:
    """The number in `{"result": N}`, else the first number in the text."""
    found = re.search(r'"result"\s*:\s*(-?\d+(?:\.\d+)?)', text) or re.search(r"-?\d+(?:\.\d+)?", text)
    return float(found.group(1) if found.lastindex else found.group(0)) if found else None


def _run_label_model(spec: dict, sample: dict, item: Any, out: Outcome) -> None:
    labels = spec["labels"]
    instruction = "Reply with exactly one of these labels and nothing else: " + ", ".join(labels)
    text = _ask_model(spec, _model_messages(spec, sample, item, instruction), out)
    if text is None:
        return
    label = read_label(text, labels)
    if label is None:
        out.fail("model_grader_parse_error", f"the model's reply names none of the labels: {text[:80]!r}")
        return
    out.reward = 1.0 if label in spec["passing_labels"] else 0.0
    out.detail = f"label {label!r}"


def read_label(text: str, labels: list[str]) -> str | None:
    """The label the reply is (case-insensitive), else the label it names first."""
    stripped = text.strip().strip("\"'`.").lower()
    for label in labels:
        if stripped == label.lower():
            return label
    hits = [(m.start(), label) for label in labels
            for m in [re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text, re.I)] if m]
    return min(hits)[1] if hits else None


_RUNNERS: dict[str, Callable[[dict, dict, Any, Outcome], None]] = {
    "string_check": _run_string_check, "text_similarity": _run_text_similarity, "score_model": _run_score_model,
    "label_model": _run_label_model, "python": _run_python, "multi": _run_multi,
}


# --- grader files and tunesmith eval ----------------------------------------------------------------------------


def load_grader_file(path: Path) -> list[Grader]:
    """The graders in a JSON file (one grader object, a list of them, or {"graders": [...]}) as eval Graders."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise GraderError(f"{path}: cannot read the grader file: {e}") from None
    except json.JSONDecodeError as e:
        raise GraderError(f"{path}: line {e.lineno} column {e.colno}: not JSON: {e.msg}") from None
    if isinstance(data, dict) and "type" not in data and isinstance(data.get("graders"), list):
        data = data["graders"]
    specs = data if isinstance(data, list) else [data]
    graders: list[Grader] = []
    for i, spec in enumerate(specs):
        try:
            graders.append(as_grader(spec, where=f"graders[{i}]"))
        except OpenAIGraderError as e:
            raise GraderError(f"{path}: {e}") from None
    names = [g.name for g in graders]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GraderError(f"{path}: two graders are named {repeated[0]!r}; give each its own name")
    return graders


def as_grader(spec: Any, where: str = "grader") -> Grader:
    """An OpenAI grader object as one of `tunesmith eval`'s Graders; `item` is {"reference": the reference}."""
    spec = validate_grader(spec, where)
    binary = spec["type"] in ("string_check", "label_model")
    if spec["type"] == "score_model":
        low, high = spec.get("range", [0, 1])
        default = low + (high - low) / 2
    else:
        default = 1.0 if binary else 0.5
    threshold = float(spec.get("pass_threshold", default))

    def score(output: str, reference: str | None) -> Score:
        outcome = grade_sample(spec, output, {"reference": reference})
        return Score(outcome.reward, outcome.detail)

    return Grader(spec.get("name") or spec["type"], spec["type"], binary=binary, threshold=threshold, score_fn=score)
