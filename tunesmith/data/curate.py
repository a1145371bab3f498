"""Curate a dataset: drop duplicates, split train/validation without leaks, convert between formats."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.conversation import Conversation
from tunesmith.data.fingerprint import NEAR_THRESHOLD, fingerprint, near_duplicate_pairs
from tunesmith.data.formats import (
    DataError,
    conversation_to_record,
    iter_numbered_conversations,
    normalize_format,
    read_conversations,
    write_conversations,
    write_records,
)


@dataclass
class Removed:
    index: int  # position in the input (0-based)
    duplicate_of: int
    reason: str  # "exact" | "normalized" | "near (93%)"


@dataclass
class DedupeResult:
    kept: list[Conversation]
    removed: list[Removed] = field(default_factory=list)


@dataclass
class SplitResult:
    train: list[Conversation]
    validation: list[Conversation]
    train_path: Path | None = None
    validation_path: Path | None = None


def duplicate_of(conversations: list[Conversation], near: bool = True,
                 threshold: float = NEAR_THRESHOLD) -> dict[int, tuple[int, str]]:
    """{index: (earlier index it repeats, why)} for every example that repeats an earlier one."""
    prints = [fingerprint(c) for c in conversations]
    first_exact: dict[int, int] = {}
    first_normal: dict[int, int] = {}
    found: dict[int, tuple[int, str]] = {}
    for i, fp in enumerate(prints):
        if fp.exact in first_exact:
            found[i] = (first_exact[fp.exact], "exact")
        elif fp.normalized in first_normal:
            found[i] = (first_normal[fp.normalized], "normalized")
        first_exact.setdefault(fp.exact, i)
        first_normal.setdefault(fp.normalized, i)
    if near and prints:
        signatures = np.stack([fp.signature for fp in prints])
        system_signatures = np.stack([fp.system_signature for fp in prints])
        for i, (j, sim) in near_duplicate_pairs(signatures, threshold, system_signatures).items():
            found.setdefault(i, (j, f"near ({sim:.0%})"))
    return found


def dedupe(conversations: list[Conversation], near: bool = True, threshold: float = NEAR_THRESHOLD) -> DedupeResult:
    """Keep the first of each group of exact, normalised-text and (with `near`) near-duplicate examples."""
    found = duplicate_of(conversations, near, threshold)
    return DedupeResult(
        kept=[c for i, c in enumerate(conversations) if i not in found],
        removed=[Removed(i, j, why) for i, (j, why) in sorted(found.items())],
    )


def duplicate_groups(conversations: list[Conversation], near: bool = True) -> list[list[int]]:
    """Indices grouped so that duplicates and near duplicates share a group (union-find over the pairs)."""
    parent = list(range(len(conversations)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (j, _) in duplicate_of(conversations, near).items():
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(conversations)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())  # ordered by first member, so the shuffle below is reproducible


def split(conversations: list[Conversation], validation_fraction: float = 0.1, seed: int = 0,
          near: bool = True) -> SplitResult:
    """A seeded, reproducible train/validation split in which no example (or near duplicate) lands on both
    sides: whole duplicate groups go to one side. Each side keeps the input order."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    groups = duplicate_groups(conversations, near)
    random.Random(seed).shuffle(groups)
    target = max(1, round(len(conversations) * validation_fraction)) if len(conversations) > 1 else 0
    chosen: set[int] = set()
    for group in groups:
        if len(chosen) + len(group) <= target:
            chosen.update(group)
        if len(chosen) >= target:
            break
    return SplitResult(
        train=[c for i, c in enumerate(conversations) if i not in chosen],
        validation=[c for i, c in enumerate(conversations) if i in chosen],
    )


def split_file(path: Path | str, out_dir: Path | str, validation_fraction: float = 0.1, seed: int = 0,
               fmt: str = "auto", column_map: dict[str, str] | None = None) -> SplitResult:
    """Split a data file into `out_dir/train.jsonl` and `out_dir/validation.jsonl` (chat JSONL)."""
    result = split(read_conversations(path, fmt, column_map), validation_fraction, seed)
    out_dir = Path(out_dir)
    result.train_path, result.validation_path = out_dir / "train.jsonl", out_dir / "validation.jsonl"
    write_conversations(result.train_path, result.train)
    write_conversations(result.validation_path, result.validation)
    return result


def dedupe_file(path: Path | str, out: Path | str, near: bool = True, fmt: str = "auto",
                column_map: dict[str, str] | None = None) -> DedupeResult:
    """Write `path` without its duplicates to `out` (chat JSONL)."""
    result = dedupe(read_conversations(path, fmt, column_map), near)
    write_conversations(out, result.kept)
    return result


def convert_file(src: Path | str, dst: Path | str, to: str = "chat", fmt: str = "auto",
                 column_map: dict[str, str] | None = None) -> int:
    """Convert a data file to JSONL of format `to`, streaming; returns the number of examples written.
    Raises DataError at the first record that is invalid or does not fit the target format."""
    to = normalize_format(to)

    def records() -> Iterator[dict]:
        for line, conversation in iter_numbered_conversations(src, fmt, column_map):
            try:
                yield conversation_to_record(conversation, to)
            except ValueError as e:
                raise DataError(src, line, str(e)) from None

    return write_records(dst, records())
