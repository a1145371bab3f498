// Playground: a chat with two models side by side. Each message goes to both; each pane keeps its own
// conversation, so each model sees its own earlier replies, as in a real chat.
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

/** Streamed `tool_calls` fragments joined by index into whole calls, as the openai SDK joins them. */
function mergeToolCalls(calls, fragments) {
  for (const f of fragments) {
    const call = (calls[f.index ?? 0] ??= { id: null, type: "function", function: { name: "", arguments: "" } });
    if (f.id) call.id = f.id;
    if (f.function?.name) call.function.name = f.function.name;
    if (f.function?.arguments) call.function.arguments += f.function.arguments;
  }
  return calls;
}

const callText = (call) => `calls ${call.function.name}(${call.function.arguments})`;

/** One transcript entry: a visible role label, then the text. */
function bubble(role, label, ...body) {
  return h("li", { class: `bubble ${role}` }, h("span", { class: "role" }, label), ...body);
}

/** The meta line under a finished reply: token counts, timings and the finish reason. */
function replyMeta({ usage, first, started, ended, finish }) {
  return [usage ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens` : null,
    first ? `first token ${((first - started) / 1000).toFixed(2)} s` : null, `${((ended - started) / 1000).toFixed(2)} s`,
    // Decode speed after the first token, so model loading and prompt processing do not dilute it.
    usage?.completion_tokens > 1 && first ? `${((usage.completion_tokens - 1) / ((ended - first) / 1000)).toFixed(1)} tokens/s` : null,
    finish ? `finish: ${finish}` : null].filter(Boolean).join(" · ");
}

/** Keep the newest text in view unless the reader has scrolled up to read earlier turns. */
function followBottom(transcript, wasAtBottom) {
  if (wasAtBottom) transcript.scrollTop = transcript.scrollHeight;
}
const atBottom = (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 24;

/**
 * Stream one model's reply into a new assistant bubble of its pane. Returns the assistant message to append
 * to that pane's history (what arrived, also when stopped), or null when the request failed.
 */
async function streamReply(pane, messages, options, signal) {
  const model = pane.select.value;
  const text = h("div", { class: "reply", "aria-live": "polite" });
  const calls = h("ul", { class: "tool-calls", "aria-label": "Tool calls" });
  const meta = h("p", { class: "meta muted" }, "streaming…");
  const item = bubble("assistant", model, text, calls, meta);
  item.setAttribute("aria-busy", "true");  // screen readers announce the reply once it is complete
  pane.transcript.append(item);
  followBottom(pane.transcript, true);
  const started = performance.now(), toolCalls = [];
  let first = null, usage = null, finish = null;
  try {
    for await (const chunk of streamChat({ model, messages, ...options }, signal)) {
      const follow = atBottom(pane.transcript);
      if (chunk.text) { first ??= performance.now(); text.textContent += chunk.text; }
      if (chunk.toolCalls) {
        first ??= performance.now();
        calls.replaceChildren(...mergeToolCalls(toolCalls, chunk.toolCalls).map((c) => h("li", { class: "mono" }, callText(c))));
      }
      usage = chunk.usage ?? usage;
      finish = chunk.finish ?? finish;
      followBottom(pane.transcript, follow);
    }
    meta.textContent = replyMeta({ usage, first, started, ended: performance.now(), finish });
  } catch (err) {
    if (err.name !== "AbortError") {
      item.classList.add("failed");
      meta.replaceChildren(message(`${err.message} — this turn is left out of the conversation.`, "error"));
      return null;
    }
    item.classList.add("stopped");
    meta.textContent = `stopped after ${((performance.now() - started) / 1000).toFixed(2)} s — what arrived is kept`;
  } finally {
    item.removeAttribute("aria-busy");
  }
  const result = { role: "assistant", content: text.textContent || (toolCalls.length ? null : "") };
  if (toolCalls.length) result.tool_calls = toolCalls;
  return result;
}

/** A pane: its model, its transcript and its own history of user/assistant turns (the system message is added per request). */
function chatPane(n, models, selected) {
  const select = modelSelect(`model-${n}`, models, selected);
  // Only the replies are live regions (the user typed their own turns); tabindex lets keyboards scroll it.
  const transcript = h("ol", { class: "transcript", tabindex: 0, "aria-label": `Conversation with model ${n}` });
  const node = h("section", { class: "chat-pane", "aria-label": `Model ${n}`, id: `pane-${n}` },
    field(`Model ${n}`, select, "(changing it starts a new chat)"), transcript);
  return { n, node, select, transcript, history: [] };
}

export async function render(main, { model }) {
  const models = (await api("/v1/models")).data;
  if (!models.length) { main.append(h("h1", {}, "Playground"), message("No models are available.", "error")); return; }
  const right = model ?? models.find((m) => kindOf(m.id) === "fine-tuned")?.id ?? models[0].id;
  const left = baseOf(right, models) ?? models[0].id;
  const panes = [chatPane("A", models, left), chatPane("B", models, right)];
  const system = h("textarea", { id: "system-prompt", rows: 2, placeholder: "Use the system message you trained with." });
  const prompt = h("textarea", { id: "user-prompt", rows: 3, required: true });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, max: 4096, value: 128 });
  const notice = h("div", { id: "chat-notice", role: "status" });
  let controller = null;

  const send = h("button", { type: "submit" }, "Send to both");
  const stopBtn = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller?.abort() }, "Stop");
  const newChat = h("button", { type: "button", class: "secondary", onclick: () => {
    clear();
    notice.replaceChildren(message("New chat: both conversations are empty.", "ok"));
    prompt.focus();
  } }, "New chat");

  function clear() {
    for (const p of panes) { p.history = []; p.transcript.replaceChildren(); delete p.node.dataset.done; }
  }
  function setBusy(busy) {
    send.disabled = busy; newChat.disabled = busy; stopBtn.disabled = !busy;
    for (const p of panes) p.select.disabled = busy;  // a model change mid-reply would split the conversation
  }
  for (const p of panes) {
    p.select.addEventListener("change", () => {
      if (!panes.some((q) => q.history.length)) return;
      clear();
      notice.replaceChildren(message(`Model ${p.n} is now ${p.select.value}: started a new chat.`, "ok"));
    });
  }

  const form = h("form", { class: "stack", id: "playground-form", onsubmit: async (e) => {
    e.preventDefault();
    if (controller) return;
    const user = { role: "user", content: prompt.value };
    const head = system.value.trim() ? [{ role: "system", content: system.value }] : [];
    const options = { temperature: parseFloat(temperature.value), max_tokens: parseInt(maxTokens.value, 10) };
    controller = new AbortController();
    setBusy(true);
    notice.replaceChildren();
    prompt.value = "";
    await Promise.all(panes.map(async (p) => {
      delete p.node.dataset.done;
      const asked = bubble("user", "You", h("div", { class: "text" }, user.content));
      p.transcript.append(asked);
      p.history.push(user);
      const reply = await streamReply(p, [...head, ...p.history], options, controller.signal);
      if (reply) p.history.push(reply);
      else {  // no reply: drop the question too, so the history keeps alternating user / assistant
        p.history.pop();
        asked.classList.add("failed");
        asked.querySelector(".role").append(" (left out of the conversation)");
      }
      p.node.dataset.done = "true";
    }));
    controller = null;
    setBusy(false);
  } },
  h("div", { class: "wide" }, field("Message", prompt, "(Ctrl+Enter sends)")),
  h("div", { class: "actions wide" }, send, stopBtn, newChat),
  h("div", { class: "wide" }, field("System message", system, "(optional; sent first in every request)")),
  field("Temperature", temperature), field("Max tokens", maxTokens));
  prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });
  main.append(h("h1", {}, "Playground"),
    h("p", { class: "lead" }, "Chat with two models side by side: each message goes to both, and each model sees its own earlier replies."),
    h("div", { class: "pair" }, ...panes.map((p) => p.node)), notice, form);
  return () => controller?.abort();  // leaving the page stops the streams
}
