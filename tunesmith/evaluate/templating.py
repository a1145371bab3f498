"""OpenAI's grader templates: `{{ item.field }}`, `{{ sample.output_text }}`, nested paths like `{{ item.a.b[0] }}`.

Only the `item` and `sample` namespaces exist (as in OpenAI's graders guide). A value that is not a string is
written as JSON; a variable that does not resolve raises `TemplateVariableError` naming it.
"""

from __future__ import annotations

import json
import re
from typing import Any

_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]")
NAMESPACES = ("item", "sample")


class TemplateVariableError(KeyError):
    """A `{{ … }}` that names no value: unknown namespace, missing field, index out of range."""

    def __str__(self) -> str:
        return str(self.args[0])


def render_template(template: str, namespaces: dict[str, Any]) -> str:
    """`template` with every `{{ namespace.path }}` replaced by its value."""
    return _VARIABLE.sub(lambda m: _as_text(resolve_variable(m.group(1), namespaces)), template)


def template_variables(template: str) -> list[str]:
    """The variable paths a template names, in order (what /validate checks without data)."""
    return [m.group(1) for m in _VARIABLE.finditer(template)]


def check_variable(path: str) -> str | None:
    """Why `path` can never resolve (bad namespace or syntax), or None."""
    parts = _split(path)
    if parts is None:
        return f"'{{{{ {path} }}}}' is not namespace.field (e.g. item.reference, sample.output_text)"
    if parts[0] not in NAMESPACES:
        return f"'{{{{ {path} }}}}': the namespace must be item or sample"
    return None


def resolve_variable(path: str, namespaces: dict[str, Any]) -> Any:
    problem = check_variable(path)
    if problem:
        raise TemplateVariableError(problem)
    value: Any = namespaces
    for part in _split(path) or []:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise TemplateVariableError(f"'{{{{ {path} }}}}': no {part!r} in the data") from None
    return value


def _split(path: str) -> list[str | int] | None:
    parts: list[str | int] = []
    pos = 0
    for m in _PART.finditer(path):
        gap = path[pos:m.start()]
        if gap not in ("", ".") or (gap == "" and parts and m.group(1)):
            return None
        parts.append(m.group(1) if m.group(1) else int(m.group(2)))
        pos = m.end()
    return parts if parts and pos == len(path) and len(parts) >= 2 else None


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
