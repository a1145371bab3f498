// Learning curves (`tunesmith curve`): the list, and one curve with its plot, verdict and points. Read-only.
import { api } from "../api.js";
import { h, table, message, num } from "../dom.js";

const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);

export async function list(main) {
  main.append(h("h1", {}, "Learning curves"),
    h("p", { class: "lead" }, "How much data, which model: each curve trains on nested subsets of a training file and scores every point on the same test items. Make one with ",
      h("code", {}, "tunesmith curve … --output <data dir>/curves/NAME"), "."));
  const { data, roots } = await api("/ui-api/curves");
  if (!data.length) { main.append(message(`No curves yet under ${roots.join(", ")}.`)); return; }
  main.append(table(["Curve", "Model", "Metric", "Points", "Test items", "Verdict"], data.map((c) => [
    h("a", { href: `#/curves/${encodeURIComponent(c.id)}` }, c.id), c.model ?? "—", c.metric ?? "—",
    num(c.n_points), num(c.n_test_items), c.error ? message(c.error, "error") : c.verdict?.message ?? "—"]),
  { numeric: [3, 4] }));
}

export async function detail(main, { id }) {
  const c = await api(`/ui-api/curves/${encodeURIComponent(id)}`);
  main.append(h("h1", {}, `Learning curve: ${id}`),
    message(c.verdict.message, c.verdict.kind === "rising" ? "ok" : ""),
    c.plot_png_base64 ? h("img", { src: `data:image/png;base64,${c.plot_png_base64}`, class: "chart",
      alt: `${c.metric} against training examples (log scale), with 95% band, baselines and projection` }) : null);
  const rows = [
    ...(c.baselines ?? []).map((b) => [b.label, "0", pct(b.score), `${pct(b.ci_low)} – ${pct(b.ci_high)}`, "—"]),
    ...c.points.map((p) => [p.model, num(p.examples), pct(p.score), `${pct(p.ci_low)} – ${pct(p.ci_high)}`, num(p.seconds, 0)]),
    ...(c.projection ?? []).map((p) => ["projection (extrapolated)", num(p.examples), pct(p.score), `${pct(p.low)} – ${pct(p.high)}`, `≈ ${num(p.seconds_estimate, 0)}`]),
  ];
  main.append(table(["Model", "Examples", c.metric, "95% CI", "Seconds"], rows, { numeric: [1, 2, 4] }));
  const last = c.last_doubling;
  if (last && last.delta !== undefined) {
    main.append(h("p", {}, `Last doubling (${last.from} → ${last.to} examples): ${(last.delta * 100).toFixed(1)} points, ${last.fixed} fixed, ${last.broken} broken, p = ${num(last.p)} (${last.verdict}).`));
  }
  if (c.fit?.formula) main.append(h("p", { class: "muted" }, `Fit: ${c.fit.formula} · ${num(c.points_seconds ?? c.wall_seconds, 0)} s of training and evaluation on ${c.cpu ?? "?"}`));
}
