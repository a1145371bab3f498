// Playground: one prompt to two models side by side, both streaming at once.
import { api, streamChat } from "../api.js";
import { h, message, field } from "../dom.js";
import { kindOf } from "./models.js";

function modelSelect(id, models, selected) {
  return h("select", { id }, models.map((m) => h("option", { value: m.id, selected: m.id === selected }, m.id)));
}

/** The base model a fine-tuned id names (ft:<base>:<suffix>:<id>), if the server lists it. */
function baseOf(id, models) {
  const base = id.startsWith("ft:") ? id.split(":")[1] : null;
  return models.find((m) => m.id === base)?.id ?? models.find((m) => kindOf(m.id) === "base")?.id;
}

async function streamInto(pane, model, messages, options, signal) {
  const out = pane.querySelector(".reply"), meta = pane.querySelector(".meta");
  out.textContent = "";
  meta.textContent = "streaming…";
  const started = performance.now();
  let first = null, usage = null, finish = null;
  try {
    for await (const chunk of streamChat({ model, messages, ...options }, signal)) {
      if (chunk.text) { first ??= performance.now(); out.textContent += chunk.text; }
      usage = chunk.usage ?? usage;
      finish = chunk.finish ?? finish;
    }
    const secs = (performance.now() - started) / 1000;
    meta.textContent = [usage ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens` : null,
      first ? `first token ${((first - started) / 1000).toFixed(2)} s` : null, `${secs.toFixed(2)} s`,
      // Decode speed after the first token, so model loading and prompt processing do not dilute it.
      usage?.completion_tokens > 1 && first ? `${((usage.completion_tokens - 1) / ((performance.now() - first) / 1000)).toFixed(1)} tokens/s` : null,
      finish ? `finish: ${finish}` : null].filter(Boolean).join(" · ");
  } catch (err) {
    if (err.name === "AbortError") { meta.textContent = "stopped"; return; }
    meta.replaceChildren(message(err.message, "error"));
  }
  pane.dataset.done = "true";
}

export async function render(main, { model }) {
  const models = (await api("/v1/models")).data;
  if (!models.length) { main.append(h("h1", {}, "Playground"), message("No models are available.", "error")); return; }
  const right = model ?? models.find((m) => kindOf(m.id) === "fine-tuned")?.id ?? models[0].id;
  const left = baseOf(right, models) ?? models[0].id;
  const pane = (n, selected) => h("section", { class: "chat-pane", "aria-label": `Model ${n}`, id: `pane-${n}` },
    field(`Model ${n}`, modelSelect(`model-${n}`, models, selected)),
    h("h3", {}, "Reply"), h("div", { class: "reply", "aria-live": "polite" }), h("p", { class: "meta muted" }));
  const a = pane("A", left), b = pane("B", right);
  const system = h("textarea", { id: "system-prompt", rows: 2, placeholder: "Use the system message you trained with." });
  const prompt = h("textarea", { id: "user-prompt", rows: 3, required: true });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, max: 4096, value: 128 });
  let controller = null;
  const send = h("button", { type: "submit" }, "Send to both");
  const stopBtn = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller?.abort() }, "Stop");
  const form = h("form", { class: "stack", id: "playground-form", onsubmit: async (e) => {
    e.preventDefault();
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value });
    messages.push({ role: "user", content: prompt.value });
    const options = { temperature: parseFloat(temperature.value), max_tokens: parseInt(maxTokens.value, 10) };
    controller = new AbortController();
    send.disabled = true; stopBtn.disabled = false;
    for (const p of [a, b]) delete p.dataset.done;
    await Promise.all([[a, "A"], [b, "B"]].map(([p, n]) =>
      streamInto(p, p.querySelector(`#model-${n}`).value, messages, options, controller.signal)));
    send.disabled = false; stopBtn.disabled = true;
  } },
  h("div", { class: "wide" }, field("System message", system, "(optional)")),
  h("div", { class: "wide" }, field("Prompt", prompt)),
  field("Temperature", temperature), field("Max tokens", maxTokens),
  h("div", { class: "actions" }, send, stopBtn));
  prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });
  main.append(h("h1", {}, "Playground"), h("p", { class: "lead" }, "The same prompt to two models, streamed side by side. Ctrl+Enter sends."),
    form, h("div", { class: "pair" }, a, b));
}
