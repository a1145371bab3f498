// Data: upload a training file and read its validation report before spending anything on training.
import { api, listAll } from "../api.js";
import { h, table, badge, message, when, num, field, kv } from "../dom.js";
import { histogram } from "../charts.js";

export async function list(main) {
  const input = h("input", { id: "upload-file", type: "file", accept: ".jsonl,.json,.csv,.parquet", required: true });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    const file = input.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("purpose", "fine-tune");
    body.append("file", file, file.name);
    status.replaceChildren(message(`Uploading ${file.name}…`));
    try {
      const uploaded = await api("/v1/files", { method: "POST", form: body });
      location.hash = `#/data/${encodeURIComponent(uploaded.id)}`;
    } catch (err) {
      status.replaceChildren(message(`Upload failed: ${err.message}`, "error"));
    }
  } }, field("Training or validation file", input, "(JSONL chat format; validated on upload)"),
  h("div", {}, h("button", { type: "submit" }, "Upload")));

  main.append(h("h1", {}, "Data"), h("p", { class: "lead" },
    "Upload a file with purpose fine-tune and read its report: errors by line, warnings, token counts, and what training would bill."),
  h("section", { class: "card", "aria-labelledby": "upload-h" }, h("h2", { id: "upload-h" }, "Upload"), form, status));

  const files = (await listAll("/v1/files?purpose=fine-tune")).sort((a, b) => b.created_at - a.created_at);
  main.append(h("section", { "aria-labelledby": "files-h" }, h("h2", { id: "files-h" }, "Files"),
    files.length ? table(["File", "Name", "Size", "Status", "Uploaded"], files.map((f) => [
      h("a", { href: `#/data/${encodeURIComponent(f.id)}` }, f.id), f.filename, `${num(f.bytes)} B`,
      badge(f.status ?? "uploaded"), when(f.created_at)]), { numeric: [2] })
      : message("No files yet.")));
}

const issueRows = (issues) => issues.map((i) => [i.line ?? "—", h("code", {}, i.code), i.field ?? "", i.message]);

export async function report(main, { id, model }) {
  const file = await api(`/v1/files/${encodeURIComponent(id)}`);
  main.append(h("p", {}, h("a", { href: "#/data" }, "← All files")),
    h("h1", {}, file.filename, " ", badge(file.status ?? "uploaded")),
    kv([["id", h("code", {}, file.id)], ["size", `${num(file.bytes)} bytes`], ["uploaded", when(file.created_at)],
      ["purpose", file.purpose]]));
  if (file.status_details) main.append(message(file.status_details, file.status === "error" ? "error" : ""));

  const catalog = await api("/ui-api/catalog");
  const tokenizer = h("select", { id: "report-model", onchange: () => {
    location.hash = `#/data/${encodeURIComponent(id)}?model=${encodeURIComponent(tokenizer.value)}`;
  } }, catalog.data.filter((m) => m.local).map((m) => h("option", { value: m.id, selected: m.id === (model ?? catalog.default) }, m.id)));
  main.append(h("div", { class: "narrow" }, field("Count tokens with", tokenizer, "(the model you will fine-tune)")));
  const wait = message("Validating and counting tokens…");
  main.append(wait);
  const q = model ? `?model=${encodeURIComponent(model)}` : "";
  const r = await api(`/ui-api/files/${encodeURIComponent(id)}/report${q}`);
  wait.remove();
  const s = r.stats ?? {}, t = s.tokens ?? {};
  main.append(h("section", { class: "card", "aria-labelledby": "summary-h", id: "report" },
    h("h2", { id: "summary-h" }, r.ok ? "Ready to train" : "Not ready to train", " ", badge(r.ok ? "ok" : "failed")),
    h("dl", { class: "stats" }, [
      ["Examples", num(r.n_examples)], ["Errors", num(r.errors.length)], ["Warnings", num(r.warnings.length)],
      ["Billing tokens / epoch", num(s.billing_tokens_per_epoch)], ["Default epochs", num(s.default_n_epochs)],
      ["Billing tokens", num(s.billing_tokens)], ["Over context", num(s.n_over_context)],
      ["Tokens min", num(t.min)], ["mean", num(t.mean, 1)], ["p50", num(t.p50)], ["p95", num(t.p95)], ["max", num(t.max)],
      ["Trained tokens mean", num(s.assistant_tokens?.mean, 1)],
    ].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
    r.tokenizer ? h("p", { class: "muted" }, `Tokens counted with ${r.tokenizer}'s tokenizer.`) : null));

  if (r.token_histogram?.counts?.length) {
    main.append(h("section", { class: "card" }, histogram(r.token_histogram.edges, r.token_histogram.counts,
      { title: "Tokens per example" })));
  }
  main.append(h("section", { "aria-labelledby": "errors-h" }, h("h2", { id: "errors-h" }, `Errors (${r.errors.length})`),
    r.errors.length ? table(["Line", "Code", "Field", "Message"], issueRows(r.errors), { numeric: [0] })
      : message("No errors.", "ok")));
  main.append(h("section", { "aria-labelledby": "warnings-h" }, h("h2", { id: "warnings-h" }, `Warnings (${r.warnings.length})`),
    r.warnings.length ? table(["Line", "Code", "Field", "Message"], issueRows(r.warnings), { numeric: [0] })
      : message("No warnings.")));
  if (r.ok) main.append(h("p", {}, h("a", { href: `#/jobs?training_file=${encodeURIComponent(id)}` }, "Fine-tune on this file →")));
}
