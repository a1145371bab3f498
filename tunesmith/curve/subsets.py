"""Nested, stratified subsets of a training file, from a fixed seed.

One seeded ordering of every example is built so that each of its prefixes keeps the mix of the whole file
(its label / intent where the records carry one, else its length quartile); a subset of n examples is the
first n of that ordering. So every subset contains the smaller ones, and each keeps the file's mix to within
one example per stratum.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.conversation import Conversation

LABEL_FIELDS = ("label", "intent", "category", "task")  # record fields (or metadata fields) that name a stratum
LENGTH_BUCKETS = 4


@dataclass
class Strata:
    labels: list[str]  # one per example
    by: str  # what they are: "intent", "length quartile", …

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return out


def read_strata(path: Path, numbered: list[tuple[int, Conversation]]) -> Strata:
    """The stratum of each example of `path` (`numbered`: its `(line, Conversation)`s): a label field that
    every record has, else the example's length quartile."""
    from tunesmith.data.formats import iter_records

    records = {line: r for line, r in iter_records(path) if isinstance(r, dict)}
    for name in LABEL_FIELDS:
        labels = [_label(records.get(line), name) for line, _ in numbered]
        if labels and all(label is not None for label in labels) and len(set(labels)) > 1:
            return Strata([str(label) for label in labels], name)
    return Strata(length_buckets([c for _, c in numbered]), "length quartile")


def _label(record: dict[str, Any] | None, name: str) -> Any:
    if record is None:
        return None
    value = record.get(name)
    if value is None and isinstance(record.get("metadata"), dict):
        value = record["metadata"].get(name)
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def length_buckets(conversations: list[Conversation], n_buckets: int = LENGTH_BUCKETS) -> list[str]:
    """Each example's length quartile in characters ("length 1/4" the shortest): no tokenizer needed."""
    lengths = np.array([sum(len(m.content or "") for m in c.messages) for c in conversations], dtype=float)
    if len(lengths) == 0:
        return []
    edges = np.quantile(lengths, np.linspace(0, 1, n_buckets + 1)[1:-1])
    return [f"length {int(np.searchsorted(edges, x, side='right')) + 1}/{n_buckets}" for x in lengths]


def stratified_order(labels: list[str], seed: int = 0) -> list[int]:
    """Every index once, ordered so that each prefix holds each stratum in proportion (largest deficit next)."""
    rng = random.Random(seed)
    members: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    for group in members.values():
        rng.shuffle(group)
    share = {label: len(group) / len(labels) for label, group in members.items()}
    taken = {label: 0 for label in members}
    order: list[int] = []
    for k in range(1, len(labels) + 1):
        # the stratum furthest below its share of the first k; ties go to the larger stratum, then by name
        label = max((lab for lab in members if taken[lab] < len(members[lab])),
                    key=lambda lab: (share[lab] * k - taken[lab], share[lab], lab))
        order.append(members[label][taken[label]])
        taken[label] += 1
    return order


def nested_subsets(labels: list[str], sizes: list[int], seed: int = 0) -> dict[int, list[int]]:
    """{size: sorted example indices}: each a prefix of one stratified ordering, so smaller ⊂ larger."""
    order = stratified_order(labels, seed)
    return {n: sorted(order[:n]) for n in sizes}


def subset_sizes(n_examples: int, fractions: list[float]) -> list[int]:
    """Examples per fraction (at least 1; the whole file at 1.0)."""
    return [max(1, round(f * n_examples)) for f in fractions]
