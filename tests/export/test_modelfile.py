"""The Ollama Modelfile's TEMPLATE renders, in Go's text/template (what Ollama runs), the same prompt text as the
run's Jinja chat template, for a multi-turn conversation with a system prompt and one without.

The Go side is rendered by Go itself (a 20-line program on the standard library's text/template) rather than a
Python imitation of Go templates: an imitation would share our own misunderstandings of the syntax, trimming and
`slice`/`index` semantics, which is exactly what this test is there to catch. It skips when `go` is missing."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.training.conftest import family_tokenizer
from tunesmith.export.modelfile import (
    TemplateNotExpressible, adds_bos, derive_role_wrappers, go_template, stop_strings, write_modelfile,
)

GO_RENDER = r'''
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func main() {
	var in struct {
		Template string    `json:"template"`
		Messages []Message `json:"messages"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil { panic(err) }
	t := template.Must(template.New("m").Parse(in.Template))
	if err := t.Execute(os.Stdout, map[string]any{"Messages": in.Messages}); err != nil { panic(err) }
}
'''

CONVERSATION = [
    {"role": "system", "content": "You answer in French."},
    {"role": "user", "content": "Hello!\nHow are you?"},
    {"role": "assistant", "content": "Bonjour ! Ça va bien."},
    {"role": "user", "content": "And \"quotes\" {{ braces }}?"},
]


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    if shutil.which("go") is None:
        pytest.skip("needs Go (apt-get install golang-go): Ollama renders TEMPLATE with Go's text/template")
    root = tmp_path_factory.mktemp("gorender")
    (root / "main.go").write_text(GO_RENDER)
    env = {"GOCACHE": str(root / "cache"), "GOPATH": str(root / "gopath"), "GOFLAGS": "-mod=mod",
           "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(root), "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(root / "render"), str(root / "main.go")], check=True, env=env,
                   cwd=root, timeout=300)

    def render(template: str, messages: list[dict]) -> str:
        done = subprocess.run([str(root / "render")], input=json.dumps({"template": template, "messages": messages}),
                              capture_output=True, text=True, check=True, timeout=60)
        return done.stdout

    return render


@pytest.mark.parametrize("family", ["smollm2", "llama3", "phi3"])
@pytest.mark.parametrize("messages", [CONVERSATION, CONVERSATION[1:]], ids=["with-system", "no-system"])
def test_go_template_renders_what_the_chat_template_renders(go_render, family, messages):
    tokenizer = family_tokenizer(family)
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if adds_bos(tokenizer):  # llama.cpp adds BOS itself from the GGUF's add_bos_token: the template leaves it out
        assert expected.startswith(tokenizer.bos_token)
        expected = expected[len(tokenizer.bos_token):]
    assert go_render(go_template(derive_role_wrappers(tokenizer)), messages) == expected


def test_modelfile_names_the_gguf_and_stops_on_the_end_of_turn_token():
    tokenizer = family_tokenizer("llama3")
    text = write_modelfile(derive_role_wrappers(tokenizer), tokenizer)
    assert text.startswith("FROM ./model.gguf\nTEMPLATE \"\"\"")
    assert 'PARAMETER stop "<|eot_id|>"' in text
    # BOS is written by the template only when the tokenizer (and so llama.cpp) does not add it: never twice
    assert ("<|begin_of_text|>" in text) != adds_bos(tokenizer)
    assert stop_strings(derive_role_wrappers(family_tokenizer("smollm2")), family_tokenizer("smollm2")) == [
        "<|im_end|>", "<|im_start|>"]


def test_a_template_that_folds_the_system_prompt_into_the_user_turn_is_refused():
    with pytest.raises(TemplateNotExpressible, match="Llama 2"):
        derive_role_wrappers(family_tokenizer("llama2"))
