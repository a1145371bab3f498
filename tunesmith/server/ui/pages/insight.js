// Readiness and cost: what `tunesmith assess` and `tunesmith cost` report, for files and evals on the server.
import { api, listAll } from "../api.js";
import { h, message, num, field } from "../dom.js";

const money = (v) => (v === null || v === undefined ? "—" : `$${v.toLocaleString(undefined, { maximumFractionDigits: 2 })}`);

async function fileSelect(id, selected, { optional = false } = {}) {
  const files = await listAll("/v1/files?purpose=fine-tune");
  return h("select", { id, required: !optional }, optional ? h("option", { value: "" }, "none") : null,
    files.map((f) => h("option", { value: f.id, selected: f.id === selected }, `${f.filename} — ${f.id}`)));
}

async function modelSelect(id, selected) {
  const catalog = await api("/ui-api/catalog");
  return h("select", { id }, catalog.data.map((m) => h("option", { value: m.id, selected: m.id === (selected ?? catalog.default) },
    `${m.id}${m.local ? " (trains here)" : ""}`)));
}

function numberInput(id, placeholder, step = "any") {
  return h("input", { id, type: "number", min: 0, step, placeholder });
}

/** Read a form's filled text inputs and selects into URL query parameters (empty ones left out: the server
 * applies defaults). */
function query(form) {
  const q = new URLSearchParams();
  for (const el of form.querySelectorAll("input:not([type=checkbox]), select")) if (el.value.trim()) q.set(el.id, el.value.trim());
  return q.toString();
}

function costView(c) {
  const cards = [["Examples", num(c.n_examples)], ["Billing tokens", num(c.billing_tokens)], ["Epochs", num(c.n_epochs)],
    ["Trained tokens", num(c.trained_tokens)], ["Training cost", money(c.training_cost)],
    ["Training hours", c.training_hours == null ? "—" : num(c.training_hours, 2)], ["Hosting / month", money(c.hosting_per_month)],
    ["Inference saving / month", money(c.inference_saving_per_month)], ["Net saving / month", money(c.net_saving_per_month)],
    ["Break-even", c.break_even_days == null ? "never / unknown" : `${num(c.break_even_days, 1)} days`]];
  return h("section", { class: "card", id: "cost-result", "aria-label": "Estimate" },
    h("h2", {}, `${c.model} (${c.trains})`),
    h("dl", { class: "stats" }, cards.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
    h("p", { class: "muted" }, `Tokens counted with ${c.token_counting}.`),
    c.sources?.length ? [h("h3", {}, "Sources"), h("ul", {}, c.sources.map((s) => h("li", {}, s)))] : null,
    c.notes?.length ? [h("h3", {}, "Notes"), h("ul", {}, c.notes.map((s) => h("li", {}, s)))] : null);
}

export async function cost(main, params) {
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack", id: "cost-form" },
    field("Training file", await fileSelect("file_id", params.file_id)), field("Model", await modelSelect("model", params.model)),
    field("Epochs", numberInput("n_epochs", "auto", 1)), field("GPU $/hour", numberInput("gpu_hour_price", "local training")),
    field("Requests / day", numberInput("requests_per_day", "e.g. 10000")),
    field("Prompt tokens now", numberInput("prompt_tokens_before", "with few-shot examples")),
    field("Prompt tokens after", numberInput("prompt_tokens_after", "fine-tuned, short prompt")),
    field("Completion tokens", numberInput("completion_tokens", "per request")),
    h("div", {}, h("button", { type: "submit" }, "Estimate")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    out.replaceChildren(message("Counting tokens…"));
    try { out.replaceChildren(costView(await api(`/ui-api/cost?${query(form)}`))); }
    catch (err) { out.replaceChildren(message(err.message, "error")); }
  });
  main.append(h("h1", {}, "Cost"), h("p", { class: "lead" },
    "Training, hosting and the per-request saving of a shorter prompt, as tunesmith cost estimates them. Every figure is an estimate with its source."),
  form, out);
}

const STATUS_CLASS = { ready: "ok", caution: "paused", "not yet": "failed" };
const statusBadge = (status) => h("span", { class: `badge ${STATUS_CLASS[status] ?? ""}` }, status);

function assessmentView(a) {
  return h("div", { id: "assess-result" },
    h("section", { class: "card" }, h("h2", {}, `Fine-tuning ${a.model}: `, statusBadge(a.verdict)),
      h("ul", {}, a.verdict_reasons.map((r) => h("li", {}, r)))),
    a.findings.map((f) => h("section", { class: "card" }, h("h3", {}, f.question, " ", statusBadge(f.status)),
      h("ul", {}, f.reasons.map((r) => h("li", {}, r))),
      f.next_steps.length ? [h("h4", {}, "Next"), h("ul", {}, f.next_steps.map((s) =>
        h("li", {}, s.startsWith("tunesmith ") ? h("code", {}, `$ ${s}`) : s)))] : null)),
    a.cost ? h("p", {}, h("a", { href: "#/cost" }, "Cost details →")) : null);
}

export async function readiness(main, params) {
  const out = h("div", { "aria-live": "polite" });
  const { data: evals } = await api("/ui-api/evals");
  const boxes = evals.map((e) => h("div", {}, h("input", { type: "checkbox", id: `baseline-${e.id}`, value: e.id, class: "baseline" }),
    h("label", { for: `baseline-${e.id}` }, ` ${e.id} — ${e.model} · ${e.strategy ?? ""}`)));
  const form = h("form", { class: "stack", id: "assess-form" },
    h("div", { class: "wide" }, field("Use case", h("textarea", { id: "use_case", rows: 2, placeholder: "What should the model do better than prompting does?" }))),
    field("Training file", await fileSelect("file_id", params.file_id, { optional: true })),
    field("Validation file", await fileSelect("validation_file_id", null, { optional: true })),
    field("Model", await modelSelect("model", params.model)),
    field("Metric", h("input", { id: "metric", placeholder: "grader name, e.g. exact_match" })),
    field("Target", numberInput("target", "good-enough score")),
    h("fieldset", { class: "wide" }, h("legend", {}, "Baselines already run (prompting, RAG)"),
      boxes.length ? boxes : h("p", { class: "muted" }, "No eval runs yet.")),
    h("div", {}, h("button", { type: "submit" }, "Assess")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = new URLSearchParams(query(form));
    const picked = [...form.querySelectorAll("input.baseline:checked")].map((b) => b.value);
    if (picked.length) q.set("baselines", picked.join(","));
    const useCase = form.querySelector("#use_case").value.trim();
    if (useCase) q.set("use_case", useCase);
    out.replaceChildren(message("Assessing…"));
    try { out.replaceChildren(assessmentView(await api(`/ui-api/assess?${q}`))); }
    catch (err) { out.replaceChildren(message(err.message, "error")); }
  });
  main.append(h("h1", {}, "Readiness"), h("p", { class: "lead" },
    "Is fine-tuning the right next step? Azure's four questions, answered from your data, baselines and use case, as tunesmith assess does."),
  form, out);
}
