"""An Ollama `Modelfile` whose Go-template TEMPLATE produces the same prompt text as the run's Jinja chat template.

Ollama does not run the Jinja template stored in the GGUF: it renders its own Go `text/template`. Rather than
guess which family a template belongs to, we render the run's own chat template on probe messages with marker
contents and read off what it writes around each role (header, footer, the generation prompt, a default system
prompt it inserts when there is none). The Go template is built from those pieces; before it is written, the same
pieces are assembled in Python for several conversations and compared with the Jinja rendering, so a template
that cannot be expressed this way (Llama 2 folds the system prompt into the first user turn) is refused instead
of exported wrong.

The leading BOS a template writes is left out: llama.cpp (and so Ollama) adds BOS itself when the GGUF says
`add_bos_token`, and writing it twice is the double-BOS bug.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_S, _U1, _A1, _U2, _A2 = "XSYSMARKX", "XUSERONEX", "XASSTONEX", "XUSERTWOX", "XASSTTWOX"


class TemplateNotExpressible(ValueError):
    """The chat template does not reduce to per-role header/footer text, so no Go template can match it."""


@dataclass(frozen=True)
class RoleWrappers:
    """The text a chat template writes around each message, BOS excluded."""

    system: tuple[str, str]
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation_prompt: str
    default_system: str  # the block written when the conversation has no system message ("" if none)
    bos: str  # the BOS text the template starts with ("" if it writes none)

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
        """The prompt text the Go template renders for `messages` (used to check it against the Jinja one)."""
        out = [] if messages and messages[0]["role"] == "system" else [self.default_system]
        for m in messages:
            pre, post = getattr(self, m["role"])
            out.append(pre + m["content"] + post)
        if add_generation_prompt:
            out.append(self.generation_prompt)
        return "".join(out)


def derive_role_wrappers(tokenizer: Any) -> RoleWrappers:
    """Read each role's wrapper text off the tokenizer's chat template; raise TemplateNotExpressible if the
    pieces do not reassemble into what the template renders."""
    try:
        return _read_wrappers(tokenizer)
    except TemplateNotExpressible as e:
        raise TemplateNotExpressible(
            f"{e}: the chat template does not reduce to a header and footer per role (a Llama 2 style template "
            "folds the system prompt into the first user turn). The GGUF still carries the template for "
            "llama.cpp (`llama-server --jinja`), but no Ollama TEMPLATE can match it") from None


def _read_wrappers(tokenizer: Any) -> RoleWrappers:
    def render(messages: list[tuple[str, str]], gen: bool) -> str:
        msgs = [{"role": r, "content": c} for r, c in messages]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    bos = tokenizer.bos_token if adds_bos(tokenizer) else ""
    # Without a generation prompt some templates close the conversation (Phi-3 writes EOS), so each footer is
    # what two renders agree on, token by token, after the message.
    one = _split(render([("user", _U1)], False), [_U1])
    one_gen = _split(render([("user", _U1)], True), [_U1])
    user_post = _common_token_prefix(tokenizer, one[1], one_gen[1])
    gen_prompt = _after(one_gen[1], user_post, "the generation prompt")
    pair = _split(render([("user", _U1), ("assistant", _A1)], False), [_U1, _A1])
    asst_pre = _after(pair[1], user_post, "the assistant header")
    turns = _split(render([("user", _U1), ("assistant", _A1), ("user", _U2)], True), [_U1, _A1, _U2])
    asst_post = _common_token_prefix(tokenizer, pair[2], turns[2])
    user_pre = _after(turns[2], asst_post, "the user header")
    full = _split(render([("system", _S), ("user", _U1), ("assistant", _A1), ("user", _U2)], True),
                  [_S, _U1, _A1, _U2])
    if not full[1].endswith(user_pre):
        raise TemplateNotExpressible("the system message's footer could not be told apart from the user header")
    sys_post = full[1][: len(full[1]) - len(user_pre)]
    head, sys_pre = _strip_bos(full[0], bos)
    _, default_block = _strip_bos(one[0], bos)
    if not default_block.endswith(user_pre):
        raise TemplateNotExpressible("the text before the first user message does not end with the user header")
    wrappers = RoleWrappers((sys_pre, sys_post), (user_pre, user_post), (asst_pre, asst_post), gen_prompt,
                            default_block[: len(default_block) - len(user_pre)], head)
    _check_reassembles(wrappers, render)
    return wrappers


def adds_bos(tokenizer: Any) -> bool:
    """Whether encoding adds BOS by itself (what the GGUF's add_bos_token records for llama.cpp)."""
    ids = tokenizer("x").input_ids
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def go_template(w: RoleWrappers) -> str:
    """The Ollama TEMPLATE: every literal is a Go string constant, so `{{-` trimming never eats its newlines."""
    q = _go_string
    return (
        "{{- if .Messages }}{{ if ne (index .Messages 0).Role \"system\" }}" + q(w.default_system) + "{{ end }}{{ end }}\n"
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        "{{- if eq .Role \"system\" }}" + q(w.system[0]) + "{{ .Content }}" + q(w.system[1]) + "\n"
        "{{- else if eq .Role \"user\" }}" + q(w.user[0]) + "{{ .Content }}" + q(w.user[1]) + "\n"
        # a last assistant message is left open: Ollama continues it (prefill), as the chat template would not
        "{{- else if eq .Role \"assistant\" }}" + q(w.assistant[0]) + "{{ .Content }}"
        "{{ if not $last }}" + q(w.assistant[1]) + "{{ end }}\n"
        "{{- end }}\n"
        "{{- if and $last (ne .Role \"assistant\") }}" + q(w.generation_prompt) + "{{ end }}\n"
        "{{- end }}"
    )


def stop_strings(w: RoleWrappers, tokenizer: Any) -> list[str]:
    """The EOS plus the special tokens that end an assistant turn or start the next one (Ollama's `stop`)."""
    specials = [t for t in tokenizer.all_special_tokens + list(tokenizer.get_added_vocab()) if t and t != w.bos]
    ends = [t for t in specials if t in w.assistant[1] or w.user[0].startswith(t)]
    out: list[str] = []
    for s in [tokenizer.eos_token, *ends]:
        if s and s not in out:
            out.append(s)
    return out


def write_modelfile(w: RoleWrappers, tokenizer: Any, gguf_name: str = "model.gguf") -> str:
    """The Modelfile text: FROM the GGUF beside it, the TEMPLATE, one PARAMETER stop per stop string."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{go_template(w)}"""']
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in stop_strings(w, tokenizer)]
    return "\n".join(lines) + "\n"


def _common_token_prefix(tokenizer: Any, a: str, b: str) -> str:
    """The longest common start of `a` and `b` that ends on a token boundary of both (never half a special)."""
    ids_a = tokenizer.encode(a, add_special_tokens=False)
    ids_b = tokenizer.encode(b, add_special_tokens=False)
    k = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
    text = tokenizer.decode(ids_a[:k], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if a.startswith(text) and b.startswith(text):
        return text
    raise TemplateNotExpressible("a message footer could not be read off the chat template")


def _go_string(text: str) -> str:
    """A Go interpreted string literal inside an action; JSON's escapes are all valid Go escapes."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


def _split(text: str, markers: list[str]) -> list[str]:
    """The text between the markers, in order (len(markers) + 1 pieces)."""
    pieces, rest = [], text
    for marker in markers:
        if rest.count(marker) != 1:
            raise TemplateNotExpressible("the chat template does not write each message's content exactly once")
        before, rest = rest.split(marker)
        pieces.append(before)
    return pieces + [rest]


def _after(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise TemplateNotExpressible(f"{what} could not be read off the chat template")
    return text[len(prefix):]


def _strip_bos(text: str, bos: str) -> tuple[str, str]:
    return (bos, text[len(bos):]) if bos and text.startswith(bos) else ("", text)


def _check_reassembles(w: RoleWrappers, render: Any) -> None:
    probes = [
        ([("user", _U1)], True),
        ([("system", _S), ("user", _U1)], True),
        ([("user", _U1), ("assistant", _A1), ("user", _U2)], True),
        ([("system", _S), ("user", _U1), ("assistant", _A1), ("user", _U2), ("assistant", _A2), ("user", _U1)], True),
    ]
    for messages, gen in probes:
        expected = render(messages, gen)
        expected = expected[len(w.bos):] if w.bos and expected.startswith(w.bos) else expected
        got = w.render([{"role": r, "content": c} for r, c in messages], add_generation_prompt=gen)
        if got != expected:
            raise TemplateNotExpressible("the pieces read off the template do not reassemble a test conversation")
