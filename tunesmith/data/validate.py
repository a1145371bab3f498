"""Validate a fine-tuning data file: every problem, with its line, message index, field and code.

The file is streamed: each example is checked, measured and fingerprinted, then dropped; only a few
integers and hashes per example stay in memory, and the dataset-wide checks (duplicates, near duplicates,
conflicting answers, train/validation overlap) run on those at the end.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.conversation import Conversation
from tunesmith.data.fingerprint import N_PERMUTATIONS, fingerprint, near_duplicate_pairs
from tunesmith.data.formats import (
    conversation_from_chat,
    PREFERENCE_FORMAT,
    detect_format,
    iter_examples,
    normalize_format,
    require_readable_file,
)
from tunesmith.data.preference import preference_issues
from tunesmith.data.schema import CODES, ERROR, Issue, chat_example_issues
from tunesmith.data.stats import StatsAccumulator, count_example_tokens

MIN_EXAMPLES = 10  # OpenAI rejects a training file with fewer
RECOMMENDED_EXAMPLES = 50  # "clear improvements from 50 to 100 examples"
SHORT_ANSWER_CHARS = 3
LONG_ANSWER_CHARS = 10_000  # the legacy OpenAI validator's "long example" bound
MAX_ISSUES_PER_CODE = 1000  # beyond this, issues are counted, not listed
SUMMARY_LINES = 5  # line numbers a summary names per code

# What looks like personal data or a secret: (code, kind, literal hints, pattern). A pattern runs only on
# text holding one of its hints, since Python's re scans every position and this runs on every message.
_SENSITIVE = [
    ("personal_data", "an e-mail address", ("@",), r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}\b"),
    ("personal_data", "a phone number", (), r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}"
     r"(?:[ .-]\d{2,4}){2,3}|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?!\w)"),
    ("possible_secret", "an OpenAI API key", ("sk-",), r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    ("possible_secret", "an AWS access key", ("AKIA", "ASIA"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("possible_secret", "a GitHub token", ("gh",), r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    ("possible_secret", "a Hugging Face token", ("hf_",), r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("possible_secret", "a Slack token", ("xox",), r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("possible_secret", "a Google API key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("possible_secret", "a private key", ("PRIVATE KEY",), r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
]
_SENSITIVE_RE = [(code, kind, hints, re.compile(pattern)) for code, kind, hints, pattern in _SENSITIVE]
_MIN_PHONE_DIGITS = 7


@dataclass
class ValidationReport:
    path: str
    format: str
    n_examples: int
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # every issue by code, including those not listed

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "n_examples": self.n_examples, "errors": [i.to_dict() for i in self.errors],
                "warnings": [i.to_dict() for i in self.warnings], "stats": self.stats,
                "counts": self.counts, "summary": self.summary(), "path": self.path, "format": self.format}

    def summary(self, n_lines: int = SUMMARY_LINES) -> list[dict[str, Any]]:
        """One entry per code, errors first: how many (listed or not), the first few lines, what it means."""
        out = []
        for issues in (self.errors, self.warnings):
            for code in dict.fromkeys(i.code for i in issues):
                of_code = [i for i in issues if i.code == code]
                lines = list(dict.fromkeys(i.line for i in of_code if i.line is not None))[:n_lines]
                out.append({"code": code, "severity": CODES[code][0], "count": self.counts.get(code, len(of_code)),
                            "first_lines": lines, "description": CODES[code][1]})
        return out


class _IssueLog:
    """Collects issues, listing at most `cap` per code (a 100k-line file can repeat one warning 100k times)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.counts, self.listed = cap, Counter(), []

    def add(self, issue: Issue) -> None:
        self.counts[issue.code] += 1
        if self.counts[issue.code] <= self.cap:
            self.listed.append(issue)


@dataclass
class _Scan:
    """What streaming one file leaves behind: per-example fingerprints and counts, no examples."""

    fmt: str
    lines: array = field(default_factory=lambda: array("I"))
    exact: array = field(default_factory=lambda: array("Q"))
    normalized: array = field(default_factory=lambda: array("Q"))
    prompt: array = field(default_factory=lambda: array("Q"))
    signatures: array = field(default_factory=lambda: array("I"))
    system_signatures: array = field(default_factory=lambda: array("I"))
    no_system: array = field(default_factory=lambda: array("I"))  # lines of examples without a system message
    stats: StatsAccumulator = field(default_factory=StatsAccumulator)
    n_records: int = 0  # non-blank lines/rows, readable or not

    @property
    def n_examples(self) -> int:
        return len(self.lines)


def validate_file(path: Path | str, *, model: str | None = None, validation: Path | str | None = None,
                  tokenizer: Any = None, context_length: int | None = None, fmt: str = "auto",
                  column_map: dict[str, str] | None = None,
                  max_issues_per_code: int = MAX_ISSUES_PER_CODE, method: str | None = None) -> ValidationReport:
    """Check a training file (and optionally its validation file) the way a fine-tuning job would, and more.

    `method` ("dpo", or any other for supervised training) also checks the file holds the data it needs:
    preference pairs for DPO, chat examples otherwise. Token limits are checked only when a `model` (catalog id, hub id, path) or a `tokenizer` is given:
    examples are rendered with the model's chat template and counted with its tokenizer."""
    path = Path(path)
    require_readable_file(path)
    if validation is not None:
        require_readable_file(validation)
    log = _IssueLog(max_issues_per_code)
    tokenizer, context_length = _resolve_tokenizer(model, tokenizer, context_length, log)
    fmt = normalize_format(fmt)
    scan = _scan_file(path, fmt, column_map, tokenizer, context_length, log, label=None)
    _check_dataset(scan, log, label=None)
    _check_data_kind(path, scan.fmt, method, log)
    if scan.n_examples == 0 and scan.n_records == 0:
        log.add(Issue(None, "empty_file", f"{path} holds no examples"))
    elif scan.n_examples < MIN_EXAMPLES:
        log.add(Issue(None, "too_few_examples", f"{scan.n_examples} valid example(s); fine-tuning needs at least "
                      f"{MIN_EXAMPLES}"))
    elif scan.n_examples < RECOMMENDED_EXAMPLES:
        log.add(Issue(None, "few_examples", f"{scan.n_examples} examples; OpenAI sees clear gains from 50-100 "
                      "well-crafted examples"))
    stats = scan.stats.summary(context_length)
    stats["format"] = scan.fmt
    if validation is not None:
        label = str(validation)
        vscan = _scan_file(Path(validation), fmt, column_map, tokenizer, context_length, log, label=label)
        _check_dataset(vscan, log, label=label)
        _check_overlap(scan, vscan, log, label)
        stats["validation"] = vscan.stats.summary(context_length)
    issues = sorted(log.listed, key=lambda i: (i.file is not None, i.line or 0, -1 if i.index is None else i.index))
    return ValidationReport(
        path=str(path), format=scan.fmt, n_examples=scan.n_examples,
        errors=[i for i in issues if i.severity == ERROR], warnings=[i for i in issues if i.severity != ERROR],
        stats=stats, counts=dict(sorted(log.counts.items())),
    )


def _check_data_kind(path: Path, fmt: str, method: str | None, log: _IssueLog) -> None:
    if method is None or (method == "dpo") == (fmt == PREFERENCE_FORMAT):
        return
    if method == "dpo":
        log.add(Issue(None, "wrong_data_kind", f"{path} holds {fmt} examples; DPO trains on preference pairs "
                      "(input, preferred_output, non_preferred_output per line)"))
    else:
        log.add(Issue(None, "wrong_data_kind", f"{path} holds preference pairs; train them with DPO "
                      "(--method dpo, or method.type 'dpo')"))


def _resolve_tokenizer(model: str | None, tokenizer: Any, context_length: int | None,
                       log: _IssueLog) -> tuple[Any, int | None]:
    """The tokenizer and context limit to count with: given ones win; else the model's (weights not loaded)."""
    if model is None:
        return tokenizer, context_length
    from tunesmith.catalog import find_model_spec
    from tunesmith.models import load_model

    spec = find_model_spec(model)
    if tokenizer is None and spec is not None and not spec.local:
        log.add(Issue(None, "tokens_not_counted", f"{spec.id} has no local tokenizer: token counts and its "
                      f"{spec.context_length:,}-token limit were not checked"))
        return None, context_length or spec.context_length
    if tokenizer is None:
        loaded = load_model(model, load_weights=False)
        return loaded.tokenizer, context_length or loaded.context_length
    return tokenizer, context_length or (spec.context_length if spec else None)


def _scan_file(path: Path, fmt: str, column_map: dict[str, str] | None, tokenizer: Any,
               context_length: int | None, log: _IssueLog, label: str | None) -> _Scan:
    fmt = detect_format(path) if fmt == "auto" else fmt
    scan = _Scan(fmt)
    for line, example in iter_examples(path, fmt, column_map):
        if isinstance(example, Issue):
            example.file = label
            log.add(example)
            scan.n_records += CODES[example.code][0] == ERROR
            continue
        scan.n_records += 1
        if fmt == PREFERENCE_FORMAT:  # both outputs are checked and counted; the preferred one is remembered
            conversation, other = _checked_pair(example, line, log, label)
        else:
            conversation, other = _checked_conversation(example, line, log, label), None
        if conversation is None:
            continue
        counts = _token_counts(conversation, line, tokenizer, context_length, log, label)
        if counts is None or (other is not None and
                              _token_counts(other, line, tokenizer, context_length, log, label) is None):
            continue
        for issue in content_issues(conversation, line):
            issue.file = label
            log.add(issue)
        _remember(scan, conversation, line, counts)
    return scan


def _checked_pair(record: Any, line: int, log: _IssueLog,
                  label: str | None) -> tuple[Conversation | None, Conversation | None]:
    """(prompt + preferred, prompt + non-preferred) of a valid preference record; (None, None) after logging."""
    issues, pair = preference_issues(record, line)
    for issue in issues:
        issue.file = label
        log.add(issue)
    return (pair.chosen, pair.rejected) if pair is not None else (None, None)


def _checked_conversation(example: Any, line: int, log: _IssueLog, label: str | None) -> Conversation | None:
    """The chat example as a Conversation, or None after logging why it is not a valid example."""
    issues = chat_example_issues(example, line)
    for issue in issues:
        issue.file = label
        log.add(issue)
    if any(i.severity == ERROR for i in issues):
        return None
    return conversation_from_chat(example)


def _token_counts(conversation: Conversation, line: int, tokenizer: Any, context_length: int | None,
                  log: _IssueLog, label: str | None) -> tuple[int | None, int | None] | None:
    """(tokens, trained assistant tokens), (None, None) without a tokenizer, None if the example is too long
    or the chat template cannot render it (both logged)."""
    if tokenizer is None:
        return None, None
    try:
        tokens, trained = count_example_tokens(conversation, tokenizer)
    except Exception as e:  # a Jinja template raises whatever its author chose (often TemplateError)
        log.add(Issue(line, "chat_template_error", f"the chat template cannot render this example: {e}", file=label))
        return None
    if context_length is not None and tokens > context_length:
        log.add(Issue(line, "too_many_tokens", f"the example has {tokens:,} tokens; the model takes at most "
                      f"{context_length:,} (the end would be cut off)", field="messages", file=label))
    return tokens, trained


def content_issues(conversation: Conversation, line: int | None) -> list[Issue]:
    """Warnings about what the example says: very short or long answers, personal data, secrets."""
    issues = []
    for i, m in enumerate(conversation.messages):
        if m.trained and not m.tool_calls and m.content is not None:
            size = len(m.content.strip())
            if size < SHORT_ANSWER_CHARS:
                issues.append(Issue(line, "short_answer", f"assistant message {i} is only {size} character(s): "
                                    f"{m.content.strip()!r}", i, f"messages[{i}].content"))
            elif size > LONG_ANSWER_CHARS:
                issues.append(Issue(line, "long_answer", f"assistant message {i} is {size:,} characters long",
                                    i, f"messages[{i}].content"))
    texts = [(m.content or "") + " ".join(c.arguments for c in m.tool_calls) for m in conversation.messages]
    whole = "\n".join(texts)
    for code, kind, hints, pattern in _SENSITIVE_RE:
        if not (_may_hold(whole, hints) and pattern.search(whole)):
            continue
        hit = next(((i, f) for i, text in enumerate(texts) if (f := pattern.search(text))), None)
        if hit is not None:  # None: the match spanned two messages
            i, found = hit
            issues.append(Issue(line, code, f"message {i} contains what looks like {kind} "
                                f"({_redact(found.group())})", i, f"messages[{i}].content"))
    return issues


def _may_hold(text: str, hints: tuple[str, ...]) -> bool:
    if hints:
        return any(h in text for h in hints)
    return sum(map(text.count, "0123456789")) >= _MIN_PHONE_DIGITS  # no hint: a phone number has 7+ digits


def _redact(secret: str) -> str:
    return secret[:4] + "…" + (secret[-2:] if len(secret) > 12 else "")


def _remember(scan: _Scan, conversation: Conversation, line: int, counts: tuple[int | None, int | None]) -> None:
    fp = fingerprint(conversation)
    scan.lines.append(line)
    scan.exact.append(fp.exact)
    scan.normalized.append(fp.normalized)
    scan.prompt.append(fp.prompt)
    scan.signatures.extend(fp.signature.tolist())
    scan.system_signatures.extend(fp.system_signature.tolist())
    if conversation.system is None:
        scan.no_system.append(line)
    scan.stats.add(conversation, *counts)


def _check_dataset(scan: _Scan, log: _IssueLog, label: str | None) -> None:
    """Dataset-wide checks from the fingerprints: duplicates, near duplicates, conflicting answers, system."""
    lines = np.frombuffer(scan.lines, dtype=np.uint32) if scan.n_examples else np.zeros(0, np.uint32)
    exact_first = _first_rows(scan.exact)
    normal_first = _first_rows(scan.normalized)
    prompt_first = _first_rows(scan.prompt)
    signatures = np.frombuffer(scan.signatures, dtype=np.uint32).reshape(-1, N_PERMUTATIONS)
    system_signatures = np.frombuffer(scan.system_signatures, dtype=np.uint32).reshape(-1, N_PERMUTATIONS)
    near = near_duplicate_pairs(signatures, system_signatures=system_signatures)
    for row in range(scan.n_examples):
        line = int(lines[row])
        if exact_first[row] != row:
            log.add(Issue(line, "duplicate_example", f"the same example as line {lines[exact_first[row]]}",
                          file=label))
        elif normal_first[row] != row:
            log.add(Issue(line, "near_duplicate", f"the same text as line {lines[normal_first[row]]} after "
                          "normalising case, whitespace and punctuation", file=label))
        elif row in near:
            earlier, sim = near[row]
            log.add(Issue(line, "near_duplicate", f"{sim:.0%} similar to line {lines[earlier]} "
                          "in the turns that vary, with a similar system prompt (word-bigram Jaccard estimate)",
                          file=label))
        if prompt_first[row] != row and normal_first[row] == row:
            log.add(Issue(line, "conflicting_answers", f"the same prompt as line {lines[prompt_first[row]]} "
                          "with a different answer", file=label))
    if scan.no_system:
        first = scan.no_system[0]
        log.add(Issue(first, "missing_system_message", f"{len(scan.no_system):,} of {scan.n_examples:,} examples "
                      f"have no system message (first at line {first}); train with the system prompt you will "
                      "serve with", file=label))


def _first_rows(hashes: array) -> np.ndarray:
    """For each row, the first row with the same hash (itself when it is the first)."""
    a = np.frombuffer(hashes, dtype=np.uint64) if len(hashes) else np.zeros(0, np.uint64)
    _, first, inverse = np.unique(a, return_index=True, return_inverse=True)
    return first[inverse]


def _check_overlap(train: _Scan, valid: _Scan, log: _IssueLog, label: str) -> None:
    """Validation examples that also appear (after normalisation) in the training file: leaked answers."""
    if not train.n_examples or not valid.n_examples:
        return
    train_hashes = np.frombuffer(train.normalized, dtype=np.uint64)
    order = np.argsort(train_hashes, kind="stable")
    sorted_hashes = train_hashes[order]
    train_lines = np.frombuffer(train.lines, dtype=np.uint32)
    for row, h in enumerate(np.frombuffer(valid.normalized, dtype=np.uint64)):
        at = np.searchsorted(sorted_hashes, h)
        if at < len(sorted_hashes) and sorted_hashes[at] == h:
            log.add(Issue(int(valid.lines[row]), "train_validation_overlap", f"this validation example is also in "
                          f"the training file (line {train_lines[order[at]]})", file=label))
