"""Validate data here before a provider sees it: same checks as a local run, counted with cl100k_base against
the provider model's per-example token limit from the catalog.

Without this a bad line is found only after upload, when the job fails minutes later (the most common
complaint about hosted fine-tuning); here it is found with its line number before anything leaves the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.catalog import ModelSpec
from tunesmith.data.formats import conversation_to_record, detect_format, read_conversations
from tunesmith.data.validate import ValidationReport, validate_file
from tunesmith.openai_tokens import OpenAIChatTokenCounter


def validate_for_provider(path: Path, spec: ModelSpec, validation: Path | None = None) -> ValidationReport:
    """The validation report for training (and validation) data bound for provider model `spec`."""
    return validate_file(path, validation=validation, tokenizer=OpenAIChatTokenCounter(),
                         context_length=spec.context_length)


def provider_upload(path: Path, spec: ModelSpec) -> tuple[str, bytes]:
    """(file name, bytes) to upload: the provider takes chat JSONL (prompt/completion JSONL for babbage-002 and
    davinci-002); a file in any other format tunesmith reads is converted, a file already right goes as is."""
    path = Path(path)
    wanted = "chat" if spec.chat else "prompt-completion"
    if path.suffix.lower() == ".jsonl" and detect_format(path) == wanted:
        return path.name, path.read_bytes()
    try:
        records = [conversation_to_record(c, wanted) for c in read_conversations(path)]
    except ValueError as e:
        raise ValueError(f"{path}: {spec.id} needs {wanted} data: {e}") from e
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return path.stem + ".jsonl", text.encode("utf-8")


def describe_report(report: ValidationReport, limit: int = 10) -> str:
    """The first errors, one per line, as `file:line field: message (code)`."""
    lines = []
    for issue in report.errors[:limit]:
        where = f"{issue.file or report.path}:{issue.line}" if issue.line else (issue.file or report.path)
        field = f" {issue.field}" if getattr(issue, "field", None) else ""
        lines.append(f"  {where}{field}: {issue.message} ({issue.code})")
    if len(report.errors) > limit:
        lines.append(f"  … and {len(report.errors) - limit} more")
    return "\n".join(lines)
