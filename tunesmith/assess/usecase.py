"""Read a use-case statement and say which of Azure's "when to fine-tune" cases it describes.

Keyword rules, on purpose: the assessment must show *why* it reached a verdict, and "matched: tone, JSON" is
an explanation a user can check and argue with; a classifier's score is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Cases fine-tuning suits (Azure fine-tuning considerations; OpenAI guide "common use cases").
SUITS = {
    "style or tone": ["tone", "style", "voice", "persona", "brand", "formal", "informal", "friendly", "concise",
                      "politeness", "register"],
    "output format": ["format", "json", "yaml", "xml", "csv", "schema", "structured", "template", "consistent",
                      "always answer", "fields", "markdown"],
    "complex or long instructions": ["instructions", "long prompt", "prompt is too long", "few-shot", "few shot",
                                     "examples in the prompt", "context window", "shorter prompt", "rules",
                                     "guidelines", "edge cases"],
    "syntax or a language the model lacks": ["syntax", "query language", "sql", "dsl", "grammar", "code",
                                             "regex", "domain-specific language", "translate", "convert",
                                             "into queries", "to queries"],
    "tool use": ["tool call", "function call", "tool use", "api call", "arguments"],
    "distillation": ["distil", "distill", "smaller model", "teacher", "cheaper model"],
}
# New or changing knowledge: retrieval (RAG) first.
KNOWLEDGE = ["knowledge", "facts", "up to date", "up-to-date", "latest", "recent", "news", "new products",
             "product catalog", "documentation", "documents", "our docs", "wiki", "policies", "policy",
             "changes every", "changing", "frequently updated", "answer questions about", "knowledge base",
             "manuals", "faq", "prices", "inventory"]
COST = ["cost", "cheaper", "save money", "saving", "spend", "budget", "price", "bill", "expensive", "reduce tokens"]
VAGUE = ["better", "improve", "smarter", "more accurate", "more intelligent", "best", "good", "quality"]

MIN_CONCRETE_WORDS = 8  # "make it better" is not a use case; one sentence with a task and an output is


@dataclass
class UseCase:
    text: str
    suits: dict[str, list[str]] = field(default_factory=dict)  # case -> words that matched
    knowledge: list[str] = field(default_factory=list)
    cost: list[str] = field(default_factory=list)
    vague: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """suits | knowledge | knowledge+suits | cost | vague | missing."""
        if not self.text.strip():
            return "missing"
        if self.knowledge and self.suits:
            return "knowledge+suits"
        if self.knowledge:
            return "knowledge"
        # Cost is the main motive when it is named and no task shape fine-tuning suits is.
        if self.cost and not self.suits:
            return "cost"
        if self.suits and len(self.text.split()) >= MIN_CONCRETE_WORDS:
            return "suits"
        if self.cost:
            return "cost"
        return "vague"

    @property
    def syntax_task(self) -> bool:
        return "syntax or a language the model lacks" in self.suits


def read_use_case(text_or_file: str | None) -> str:
    """The use-case text, from the argument itself or from the file it names."""
    if not text_or_file:
        return ""
    path = Path(text_or_file)
    if len(text_or_file) < 4096 and "\n" not in text_or_file and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    return text_or_file.strip()


def classify_use_case(text: str) -> UseCase:
    lowered = " " + re.sub(r"\s+", " ", text.lower()) + " "
    found = UseCase(text=text)
    for case, words in SUITS.items():
        hits = _hits(lowered, words)
        if hits:
            found.suits[case] = hits
    found.knowledge = _hits(lowered, KNOWLEDGE)
    found.cost = _hits(lowered, COST)
    found.vague = _hits(lowered, VAGUE)
    return found


def _hits(lowered: str, words: list[str]) -> list[str]:
    # Word-start boundary so "format" matches "formatted" but "sql" does not match inside "mysqlx"-like noise.
    return [w for w in words if re.search(r"(?<![a-z])" + re.escape(w), lowered)]
