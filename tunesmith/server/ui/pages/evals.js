// Evaluations: the eval runs on disk, and a side-by-side comparison of two or more of them.
import { api } from "../api.js";
import { h, table, badge, message, num, when } from "../dom.js";
import { ciBars } from "../charts.js";

const label = (e) => `${e.model} · ${e.strategy ?? "zero-shot"}`;

export async function list(main) {
  const { data: evals, roots } = await api("/ui-api/evals");
  main.append(h("h1", {}, "Evaluations"), h("p", { class: "lead" },
    "Eval runs written by tunesmith eval (baselines and fine-tuned models). Tick two or more to compare; the first ticked is the baseline."));
  if (!evals.length) {
    main.append(message(h("span", {}, "No evaluations yet. Run ", h("code", {}, "tunesmith eval MODEL DATA --output-dir …"),
      ` under ${roots.join(" or ")}.`)));
    return;
  }
  const picked = [];
  const button = h("button", { type: "submit", disabled: true }, "Compare selected");
  const graders = [...new Set(evals.flatMap((e) => Object.keys(e.graders ?? {})))];
  const rows = evals.map((e) => {
    const box = h("input", { type: "checkbox", id: `pick-${e.id}`, value: e.id, "aria-label": `Select ${e.id}`, onchange: () => {
      if (box.checked) picked.push(e.id); else picked.splice(picked.indexOf(e.id), 1);
      button.disabled = picked.length < 2;
      button.textContent = picked.length >= 2 ? `Compare ${picked.length} (baseline: ${picked[0]})` : "Compare selected";
    } });
    return [box, h("label", { for: box.id }, e.id), e.model, e.strategy ?? "—", num(e.n),
      ...graders.map((g) => (e.graders?.[g] ? `${num(e.graders[g].mean)} [${num(e.graders[g].ci95?.[0])}, ${num(e.graders[g].ci95?.[1])}]` : "—")),
      when(e.created_at)];
  });
  main.append(h("form", { id: "eval-list", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/evals/compare?ids=${picked.map(encodeURIComponent).join(",")}`;
  } }, table(["", "Eval", "Model", "Strategy", "Items", ...graders.map((g) => `${g} (95% CI)`), "Created"], rows, { numeric: [4] }),
  h("div", { class: "actions" }, button)));
}

function questionOf(item) {
  const asked = (item.messages ?? []).filter((m) => m.role === "user").map((m) => String(m.content ?? "")).pop() ?? "";
  return asked.length > 80 ? `${asked.slice(0, 77)}…` : asked || `Item ${item.id}`;
}

function itemBlock(item, evals, outcome) {
  const prompt = (item.messages ?? []).filter((m) => m.role !== "assistant").map((m) => `${m.role}: ${m.content}`).join("\n");
  const ownId = evals.map((e) => item.outputs[e.id]?.id).find((id) => id) ?? item.id;  // the baseline's item id
  return h("article", { class: "card", "data-item": ownId, "data-key": item.id },
    // items pair by question (a hash of it): name them by the question itself, each eval's own id beside its output
    h("h4", {}, `${questionOf(item)} `, h("span", { class: `badge ${outcome === "fixed" ? "Improved" : "Degraded"}` }, outcome)),
    h("div", { class: "pair" },
      h("div", { class: "out" }, h("h4", {}, "Prompt"), h("pre", {}, prompt || "—")),
      h("div", { class: "out" }, h("h4", {}, "Reference"), h("pre", {}, item.reference ?? "—")),
      evals.map((e) => {
        const o = item.outputs[e.id];
        return h("div", { class: "out" }, h("h4", {}, `${e.id} — ${label(e)}${o?.id ? ` · item ${o.id}` : ""}`),
          h("pre", {}, o?.output ?? "(no output)"),
          o ? h("p", { class: "muted" }, Object.entries(o.scores ?? {}).map(([g, s]) => `${g}: ${num(s)}`).join(", ")) : null);
      })));
}

// Mean prompt tokens per item, baseline → candidate, and the saving, as the CLI report writes it: "590 → 60 (89.8% fewer)"
function promptTokens(cmp) {
  if (cmp.baseline_prompt_tokens == null || cmp.candidate_prompt_tokens == null) return "—";
  const text = `${Math.round(cmp.baseline_prompt_tokens)} → ${Math.round(cmp.candidate_prompt_tokens)}`;
  const s = cmp.prompt_token_saving;
  return s == null ? text : `${text} (${(Math.abs(s) * 100).toFixed(1)}% ${s >= 0 ? "fewer" : "more"})`;
}

export async function compare(main, { ids }) {
  const c = await api(`/ui-api/compare?ids=${encodeURIComponent(ids ?? "")}`);
  const byId = Object.fromEntries(c.evals.map((e) => [e.id, e]));
  main.append(h("p", {}, h("a", { href: "#/evals" }, "← All evaluations")), h("h1", {}, "Comparison"),
    // a worse fine-tuned model is the alarm; a weaker prompt strategy is context
    // a run that does not pair says so in its own comparison below, once
    ...c.warnings.filter((w) => !c.comparisons.some((cmp) => cmp.problem && w.includes(cmp.problem)))
      .map((w) => message(w, w.startsWith("FINE-TUNED") ? "error" : "")),
    h("p", { class: "lead" }, `Baseline ${c.evals[0].id} (${label(c.evals[0])}) against ${c.evals.slice(1).map((e) => `${e.id} (${label(e)})`).join(", ")}.`));
  main.append(h("section", { class: "card", id: "score-bars" }, ciBars(c.graders.map((g) => ({ label: g, bars: c.evals.map((e) => ({
    name: e.id, value: e.graders?.[g]?.mean ?? 0, ci: e.graders?.[g]?.ci95 ?? null })) })), { title: "Mean score per grader, with 95% confidence intervals" })));
  for (const cmp of c.comparisons) {
    const cand = byId[cmp.candidate];
    const sec = h("section", { "aria-label": `${cmp.candidate} against ${cmp.baseline}`, class: "comparison" },
      h("h2", {}, `${cmp.candidate} against ${cmp.baseline}`),
      // how many items paired, and why there is no verdict when too few do: first, not among the warnings
      cmp.problem ? message(`Does not pair: ${cmp.problem}. No verdict.`, "error") : null,
      h("p", { class: "pairing" }, `Paired ${cmp.paired} items by ${cmp.pair_by}: ${cmp.only_in_baseline} only in the baseline, ${cmp.only_in_candidate} only in the candidate.`),
      table(["Grader", "Items", "Baseline", "Candidate", "Delta", "Prompt tokens", "95% CI of delta", "p", "Test", "Verdict", "Fixed", "Broken"],
        cmp.graders.map((g) => [g.grader, num(g.n), num(g.baseline_mean), num(g.treatment_mean), (g.delta > 0 ? "+" : "") + num(g.delta),
          promptTokens(cmp), `[${num(g.ci95[0])}, ${num(g.ci95[1])}]`, num(g.p_value), g.test, badge(g.verdict),
          num(g.n_fixed), num(g.n_broken)]), { numeric: [1, 2, 3, 4, 7, 10, 11] }),
      cmp.graders.length ? null : h("p", { class: "pairing" }, `Prompt tokens per item: ${promptTokens(cmp)}.`),
      cmp.only_in_baseline || cmp.only_in_candidate ? h("p", { class: "muted" }, cmp.pairing) : null);
    for (const g of cmp.graders) {
      for (const outcome of ["fixed", "broken"]) {
        const ids = g[outcome], total = g[`n_${outcome}`];
        if (!ids.length) continue;
        const shown = ids.slice(0, 20);
        sec.append(h("details", { open: outcome === "broken" || null, class: outcome },
          h("summary", {}, `${g.grader}: ${total} item(s) ${outcome} by ${cand.id}${total > shown.length ? ` (first ${shown.length} shown)` : ""}`),
          shown.map((id) => itemBlock(c.items[id], [byId[cmp.baseline], cand], outcome))));
      }
    }
    main.append(sec);
  }
}
