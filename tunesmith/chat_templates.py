"""The chat templates of the open-weight families we train, exactly as their instruct models ship them.

Used when a tokenizer has no template (Llama-2 base models) and by the tests, which build tiny random models
of every family with that family's real template and special tokens. The end-of-turn token of each family
is listed too: it must carry loss, or the fine-tuned model never learns to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# HuggingFaceTB/SmolLM2-135M-Instruct, tokenizer_config.json.
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json (no generation prompt: `[/INST]` already is one).
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# meta-llama/Llama-3.1-8B-Instruct, tokenizer_config.json, with the built-in tools (brave_search,
# wolfram_alpha, code_interpreter) branch left out: custom JSON tools render exactly as upstream.
LLAMA3 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools_in_user_message and not tools is none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
    {%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# microsoft/Phi-3-mini-4k-instruct, tokenizer_config.json. Note the eos_token appended only when no
# generation prompt is asked for: a prefix of a conversation is not a prefix of its rendering.
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


@dataclass(frozen=True)
class FamilyTemplate:
    template: str
    bos_token: str
    eos_token: str
    end_of_turn: str  # the token that closes an assistant turn; generation stops there
    special_tokens: tuple[str, ...]  # tokens the template relies on, added to a tokenizer that lacks them


FAMILIES: dict[str, FamilyTemplate] = {
    "smollm2": FamilyTemplate(SMOLLM2, "<|im_start|>", "<|im_end|>", "<|im_end|>", ("<|im_start|>", "<|im_end|>")),
    "llama2": FamilyTemplate(LLAMA2, "<s>", "</s>", "</s>", ("<s>", "</s>")),
    "llama3": FamilyTemplate(
        LLAMA3, "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>",
        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"),
    ),
    "phi3": FamilyTemplate(
        PHI3, "<s>", "<|endoftext|>", "<|end|>",
        ("<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
    ),
}

# Tokens that close a turn in any family we know; the trainer checks that one of them carries loss.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "</s>", "<end_of_turn>", "<|endoftext|>")


def apply_family_template(tokenizer: Any, family: str) -> Any:
    """Give `tokenizer` the family's special tokens, BOS/EOS and chat template (in place; returned)."""
    spec = FAMILIES.get(family)
    if spec is None:
        raise ValueError(f"no chat template for family {family!r}; known: {', '.join(FAMILIES)}")
    missing = [t for t in spec.special_tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    tokenizer.bos_token = spec.bos_token
    tokenizer.eos_token = spec.eos_token
    tokenizer.chat_template = spec.template
    from tunesmith.models import ensure_pad_token

    ensure_pad_token(tokenizer)  # Phi-3's EOS is <|endoftext|>, which SmolLM2's tokenizer pads with
    return tokenizer


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn for this tokenizer (EOS first), for training checks and stopping."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for token in END_OF_TURN_TOKENS:
        if token in vocab and vocab[token] not in ids and token in (tokenizer.chat_template or ""):
            ids.append(vocab[token])
    return ids


# --- tools for templates that have no tool support ------------------------------------------------------------
# SmolLM2's, Llama 2's and Phi-3's templates ignore `tools` and render an assistant tool call as an empty turn:
# trained as they are, such a model learns to say nothing. For those templates the tools, calls and results
# are written into the message text in the Hermes format (what Qwen2.5 and Hermes models use), which
# tunesmith.server.tool_calls reads back from the reply.
TOOLS_PREAMBLE = ("You can call functions. To call one, reply with <tool_call>\n{{\"name\": <function name>, "
                  "\"arguments\": <JSON object>}}\n</tool_call>, one block per call. The functions:\n"
                  "<tools>\n{tools}\n</tools>")
PROBE_TOOL, PROBE_CALL = "tunesmith_probe_tool", "tunesmith_probe_call"  # named apart: a definition is no call
_PROBE_TEXTS: dict[str, str] = {}  # chat template text -> how it renders the probe below


@dataclass
class TemplateInput:
    """What `tokenizer.apply_chat_template` gets for a conversation, and where each message went."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    index: list[int]  # index[i]: the template message holding conversation message i


def template_input(tokenizer: Any, conversation: Any) -> TemplateInput:
    """The conversation as this tokenizer's chat template should see it, tools included either way."""
    messages = conversation.to_template_messages()
    uses_tools = bool(conversation.tools) or any(m.tool_calls or m.role == "tool" for m in conversation.messages)
    if not uses_tools or renders_tools(tokenizer):
        return TemplateInput(messages, conversation.tools or None, list(range(len(messages))))
    return _tools_as_text(conversation, messages)


def renders_tools(tokenizer: Any) -> bool:
    """Whether the chat template writes both the tool definitions and an assistant's tool call into the text."""
    text = tool_probe_text(tokenizer)
    return PROBE_TOOL in text and PROBE_CALL in text


def tool_probe_text(tokenizer: Any) -> str:
    """The template's rendering of one tool (PROBE_TOOL) and one assistant call (to PROBE_CALL); "" when the
    template refuses it. Cached per template: what it says about tools never changes."""
    template = tokenizer.chat_template or ""
    if template not in _PROBE_TEXTS:
        tools = [{"type": "function", "function": {"name": PROBE_TOOL, "parameters": {"type": "object"}}}]
        call = {"id": "call_0", "type": "function", "function": {"name": PROBE_CALL, "arguments": {"x": 1}}}
        probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
        try:
            _PROBE_TEXTS[template] = tokenizer.apply_chat_template(probe, tools=tools, tokenize=False)
        except Exception:  # jinja raises its own error types for what a template refuses
            _PROBE_TEXTS[template] = ""
    return _PROBE_TEXTS[template]


def _tools_as_text(conversation: Any, rendered_messages: list[dict[str, Any]]) -> TemplateInput:
    import json

    out: list[dict[str, Any]] = []
    index: list[int] = []
    if conversation.tools:
        preamble = TOOLS_PREAMBLE.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in conversation.tools))
        first = conversation.messages[0] if conversation.messages else None
        if first is not None and first.role in ("system", "developer"):
            out.append({"role": first.role, "content": f"{first.content or ''}\n\n{preamble}".lstrip()})
        else:
            out.append({"role": "system", "content": preamble})
    for i, (message, rendered) in enumerate(zip(conversation.messages, rendered_messages)):
        if i == 0 and conversation.tools and message.role in ("system", "developer"):
            index.append(0)
            continue
        if message.tool_calls:
            calls = [json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                ensure_ascii=False) for c in rendered["tool_calls"]]
            text = "\n".join(f"<tool_call>\n{c}\n</tool_call>" for c in calls)
            rendered = {"role": "assistant", "content": f"{message.content}\n{text}" if message.content else text}
        elif message.role == "tool":
            rendered = {"role": "user", "content": f"<tool_response>\n{message.content or ''}\n</tool_response>"}
        if rendered["role"] == "user" and out and out[-1]["role"] == "user":  # results of parallel calls: one turn
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + rendered["content"]}
        else:
            out.append(rendered)
        index.append(len(out) - 1)
    return TemplateInput(out, None, index)
