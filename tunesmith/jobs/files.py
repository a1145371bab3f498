"""Uploaded files on disk: stored under their random id, never under the name the client sent.

A fine-tuning upload is validated when it arrives (`tunesmith.data.validate.validate_file`); the record's
`status` (`processed` | `error`) and `status_details` carry the result, as OpenAI's file object does.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from tunesmith.jobs.store import FileRecord, JobStore, new_id, now

PURPOSES = ("fine-tune", "fine-tune-results", "assistants", "batch", "vision", "user_data", "evals")
# Data readers pick the format from the suffix, so a known suffix is kept; anything else is dropped.
_KEPT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
_CHUNK = 1 << 20


class UploadTooLarge(Exception):
    pass


def files_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / "files"
    path.mkdir(parents=True, exist_ok=True)
    return path


def display_name(filename: str | None) -> str:
    """The client's file name without any directory part, for display only."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or "upload"


def file_path(data_dir: Path, record: FileRecord) -> Path:
    suffix = Path(record.filename).suffix.lower()
    return files_dir(data_dir) / (record.id + (suffix if suffix in _KEPT_SUFFIXES else ""))


def save_upload(store: JobStore, data_dir: Path, stream: BinaryIO, filename: str | None, purpose: str, *,
                max_bytes: int) -> FileRecord:
    """Copy an upload to disk (temp file + rename), validate fine-tuning data, record it."""
    record = FileRecord(id=new_id("file-"), filename=display_name(filename), purpose=purpose, bytes=0,
                        created_at=now(), status="uploaded")
    path = file_path(data_dir, record)
    tmp = path.with_name(f".{path.name}.upload")
    try:
        with open(tmp, "wb") as out:
            while chunk := stream.read(_CHUNK):
                record.bytes += len(chunk)
                if record.bytes > max_bytes:
                    raise UploadTooLarge(f"file is larger than the server's upload limit of {max_bytes:,} bytes")
                out.write(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if purpose == "fine-tune":
        _record_validation(record, path)
    else:
        record.status = "processed"
    return store.add_file(record)


def add_result_file(store: JobStore, data_dir: Path, source: Path, filename: str) -> FileRecord:
    """Register a file a job produced (its results.csv) with purpose `fine-tune-results`."""
    record = FileRecord(id=new_id("file-"), filename=filename, purpose="fine-tune-results",
                        bytes=source.stat().st_size, created_at=now(), status="processed")
    path = file_path(data_dir, record)
    tmp = path.with_name(f".{path.name}.copy")
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)
    return store.add_file(record)


def delete_file(store: JobStore, data_dir: Path, file_id: str) -> bool:
    record = store.get_file(file_id)
    if record is None:
        return False
    file_path(data_dir, record).unlink(missing_ok=True)
    return store.delete_file(file_id)


def _record_validation(record: FileRecord, path: Path) -> None:
    from tunesmith.data.validate import validate_file

    try:
        report = validate_file(path).to_dict()
    except Exception as e:  # an unreadable file is a validation result, not a server error
        report = {"ok": False, "n_examples": 0, "stats": {}, "warnings": [],
                  "errors": [{"line": None, "code": "invalid_file_format", "message": str(e)}]}
    record.report = json.loads(json.dumps(report, default=str))
    record.status = "processed" if report["ok"] else "error"
    # the validator names the file by its server path; the client knows it by its own name
    record.status_details = None if report["ok"] else describe_errors(report["errors"]).replace(str(path),
                                                                                                 record.filename)


def describe_errors(errors: list[dict], limit: int = 5) -> str:
    """`line 3: unrecognized_role: …` for the first few errors, then how many more."""
    lines = []
    for issue in errors[:limit]:
        where = f"line {issue['line']}: " if issue.get("line") else ""
        lines.append(f"{where}{issue.get('code')}: {issue.get('message')}")
    if len(errors) > limit:
        lines.append(f"… and {len(errors) - limit} more errors")
    return "\n".join(lines)
