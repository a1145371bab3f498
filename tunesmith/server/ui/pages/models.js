// Models: what /v1/models serves — base models, fine-tuned models and their checkpoints; delete fine-tuned ones.
import { api } from "../api.js";
import { h, table, message, when } from "../dom.js";

/** "base" | "fine-tuned" | "checkpoint" from the id's shape (ft:<base>:<suffix>:<id>[:ckpt-step-N]). */
export function kindOf(id) {
  if (/:ckpt-step-\d+$/.test(id) || id.startsWith("ftckpt")) return "checkpoint";
  if (id.startsWith("ft:")) return "fine-tuned";
  return "base";
}

export async function list(main) {
  main.append(h("h1", {}, "Models"), h("p", { class: "lead" }, "Everything the server can chat with. Fine-tuned models are LoRA adapters over their base."));
  const status = h("div", { "aria-live": "polite" });
  const body = h("div", {});
  main.append(status, body);
  const refresh = async () => {
    const models = (await api("/v1/models")).data;
    const sections = ["base", "fine-tuned", "checkpoint"].map((kind) => {
      const these = models.filter((m) => kindOf(m.id) === kind);
      const title = { base: "Base models", "fine-tuned": "Fine-tuned models", checkpoint: "Checkpoints" }[kind];
      return h("section", { "aria-label": title }, h("h2", {}, `${title} (${these.length})`),
        these.length ? table(["Model", "Tuned from", "Owned by", "Created", ""], these.map((m) => [
          h("code", {}, m.id), m.parent ?? "—", m.owned_by ?? "—", when(m.created),
          h("div", { class: "actions" },
            h("a", { href: `#/playground?model=${encodeURIComponent(m.id)}` }, "Playground"),
            // Only fine-tuned models can be deleted (as with OpenAI); checkpoints go with their job's run.
            kind !== "fine-tuned" ? null : h("button", { class: "danger", "aria-label": `Delete ${m.id}`, onclick: async () => {
              if (!confirm(`Delete ${m.id}?`)) return;
              try {
                await api(`/v1/models/${encodeURIComponent(m.id)}`, { method: "DELETE" });
                await refresh();  // the list first, so "Deleted" is only said once the row is gone
                status.replaceChildren(message(`Deleted ${m.id}.`, "ok"));
              } catch (err) { status.replaceChildren(message(`Could not delete ${m.id}: ${err.message}`, "error")); }
            } }, "Delete"))])) : message(kind === "base" ? "No base models available." : "None yet."));
    });
    body.replaceChildren(...sections);
  };
  await refresh();
}
