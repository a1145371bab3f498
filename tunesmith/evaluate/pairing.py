"""Which items and which graders of two eval directories meet: the one pairing that `tunesmith compare`, the
studio's compare page, the query-language example and `tunesmith assess` all use.

Items pair by what the test asks and expects (`question`: the pairing key eval_dir stores, blind to the system
prompt, few-shot turns and retrieved context), by item id (`id`: the whole conversation, system prompt included)
or by position (`line`). Graders meet by kind and resolved target, not by their spelling:
`sql-exec:./geo.sqlite` and `sql-exec:geo.sqlite` are one grader when they name one file.
When fewer than half the items pair, or no grader meets, the evals do not pair and `Pairing.problem` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.artifacts.eval_dir import PAIR_BY, EvalRun

FILE_GRADERS = ("sql-exec", "json-schema")  # graders whose argument is a file: the file itself is the target
MIN_PAIRED_SHARE = 0.5  # of the smaller eval: below it the two evals are not of the same test


@dataclass
class Pairing:
    pair_by: str
    keys: list[str]  # the items both evals ran, in the baseline's order
    graders: list[tuple[str, str]]  # (baseline's name, treatment's name) of every grader both ran
    only_in_baseline: list[str] = field(default_factory=list)
    only_in_treatment: list[str] = field(default_factory=list)
    n_baseline: int = 0
    n_treatment: int = 0
    problem: str | None = None  # why the two evals do not pair; None when they do
    questions: dict[str, str] = field(default_factory=dict, repr=False)  # unpaired key -> its question, shortened

    def describe(self) -> str:
        """One line: how many items paired out of each side, and which did not (by their question)."""
        line = (f"paired {len(self.keys)} of {self.n_baseline} baseline items and {len(self.keys)} of "
                f"{self.n_treatment} items of this run (by {self.pair_by})")
        unpaired = [f"only in the baseline: {self._few(self.only_in_baseline)}" if self.only_in_baseline else "",
                    f"only in this run: {self._few(self.only_in_treatment)}" if self.only_in_treatment else ""]
        return "; ".join([line] + [u for u in unpaired if u])

    def _few(self, keys: list[str], limit: int = 5) -> str:
        shown = ", ".join(f"{k} ({self.questions[k]!r})" if self.questions.get(k) else k for k in keys[:limit])
        return shown + (f" … (+{len(keys) - limit})" if len(keys) > limit else "")


def pair_items(base: EvalRun, treat: EvalRun, pair_by: str = "question") -> Pairing:
    """The items and graders `base` and `treat` share, and whether enough of them do for a verdict."""
    if pair_by not in PAIR_BY:
        raise ValueError(f"unknown --pair-by {pair_by!r}: use one of {', '.join(PAIR_BY)}")
    b, t = base.items_by(pair_by), treat.items_by(pair_by)
    keys = [k for k in b if k in t]
    pairing = Pairing(pair_by, keys, match_graders(base, treat),
                      only_in_baseline=[k for k in b if k not in t], only_in_treatment=[k for k in t if k not in b],
                      n_baseline=len(b), n_treatment=len(t))
    pairing.questions = {k: _question(items[k]) for items, unpaired in ((b, pairing.only_in_baseline),
                                                                        (t, pairing.only_in_treatment))
                         for k in unpaired[:5]}
    pairing.problem = _why_not_paired(base, treat, pairing)
    return pairing


def _why_not_paired(base: EvalRun, treat: EvalRun, p: Pairing) -> str | None:
    smaller = min(p.n_baseline, p.n_treatment)
    if smaller == 0:
        return "one of them has no items"
    if len(p.keys) < MIN_PAIRED_SHARE * smaller:
        why = (f"only {len(p.keys)} of {smaller} items pair (by {p.pair_by}), fewer than half: ")
        if not _same_file(base.data, treat.data):
            why += f"they were evaluated on different test files ({base.data} and {treat.data})"
        else:
            why += "their items differ"
        if p.pair_by == "question" and p.n_baseline == p.n_treatment:
            why += "; if the files hold the same questions reworded, in the same order, try --pair-by line"
        return why
    if not p.graders:
        return (f"they share no grader: the baseline was graded with {', '.join(base.graders) or 'nothing'}, "
                f"this run with {', '.join(treat.graders) or 'nothing'} (graders meet by kind and target)")
    return None


def match_graders(base: EvalRun, treat: EvalRun) -> list[tuple[str, str]]:
    """Graders both evals scored with, matched by kind and resolved target; in the baseline's order."""
    theirs = _identities(treat)
    return [(name, theirs[identity]) for identity, name in _identities(base).items() if identity in theirs]


def common_graders(runs: list[EvalRun]) -> list[str]:
    """The graders every run scored with, matched by kind and resolved target as `match_graders` matches two;
    named as the first run names them."""
    if not runs:
        return []
    shared = set.intersection(*(set(_identities(r)) for r in runs))
    return [name for identity, name in _identities(runs[0]).items() if identity in shared]


def grader_in(run: EvalRun, grader: str, runs: list[EvalRun] = ()) -> str | None:
    """`run`'s own name for `grader`, spelled as any of `runs` (or the user) spells it: the grader of the same kind
    and target, its target as the first of `runs` naming it recorded it (else resolved here); None if none."""
    stats = next((r.summary["graders"][grader] for r in runs if grader in r.graders), {})
    return _identities(run).get(grader_identity(grader, stats))


def _identities(run: EvalRun) -> dict[str, str]:
    """identity -> the run's name for that grader, in the run's order."""
    return {grader_identity(name, run.summary["graders"][name]): name for name in run.graders}


def grader_identity(name: str, stats: dict[str, Any]) -> str:
    """`kind:target`: the target the eval recorded, or (eval dirs from before it did) the name's, resolved here."""
    kind, _, _ = name.partition(":")
    target = stats.get("target") or grader_target(name)
    return f"{kind}:{target}" if target else kind


def grader_target(spec: str) -> str | None:
    """What a grader checks against: the absolute path of its database or schema file, else its argument."""
    kind, _, arg = spec.partition(":")
    if not arg:
        return None
    return str(Path(arg).expanduser().resolve()) if kind in FILE_GRADERS else arg


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _question(prediction: dict[str, Any], limit: int = 40) -> str:
    """The last user turn an item asked, cut to `limit` characters: how a person recognises it."""
    users = [m.get("content") for m in prediction.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    text = " ".join(str(users[-1] or "").split()) if users else ""
    return text if len(text) <= limit else text[:limit - 1] + "…"
