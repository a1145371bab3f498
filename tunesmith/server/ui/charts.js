// Small inline-SVG charts: line charts for training curves, bars with confidence intervals, a histogram.
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["var(--c0)", "var(--c1)", "var(--c2)", "var(--c3)", "var(--c4)"];
const W = 640, H = 260, PAD = { l: 52, r: 14, t: 12, b: 34 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** About five round tick values covering [lo, hi]. */
function ticks(lo, hi, n = 5) {
  if (hi === lo) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(10));
  return out;
}

const fmt = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString() : +v.toPrecision(3) + "");

function frame(svg, xs, ys, xLabel, yLabel) {
  const [x0, x1] = xs, [y0, y1] = ys;
  const sx = (v) => PAD.l + ((v - x0) / (x1 - x0 || 1)) * (W - PAD.l - PAD.r);
  const sy = (v) => H - PAD.b - ((v - y0) / (y1 - y0 || 1)) * (H - PAD.t - PAD.b);
  for (const t of ticks(y0, y1)) {
    svg.append(el("line", { class: "gridline", x1: PAD.l, x2: W - PAD.r, y1: sy(t), y2: sy(t) }));
    svg.append(el("text", { x: PAD.l - 6, y: sy(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  svg.append(el("line", { class: "axis", x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b }));
  svg.append(el("line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b }));
  if (xLabel) svg.append(el("text", { x: (PAD.l + W - PAD.r) / 2, y: H - 4, "text-anchor": "middle" }, xLabel));
  if (yLabel) svg.append(el("text", { x: 12, y: (PAD.t + H - PAD.b) / 2, "text-anchor": "middle",
    transform: `rotate(-90 12 ${(PAD.t + H - PAD.b) / 2})` }, yLabel));
  return { sx, sy };
}

function legend(names) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  names.forEach(({ name, dashed }, i) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = dashed ? `repeating-linear-gradient(90deg, ${COLORS[i % 5]} 0 4px, transparent 4px 7px)` : COLORS[i % 5];
    li.append(sw, name);
    ul.append(li);
  });
  return ul;
}

/**
 * Line chart. series: [{name, points: [[x, y], ...], dashed?}]; points with null y are skipped.
 * Returns a <figure> with an SVG whose <title>/<desc> summarise it for screen readers.
 */
export function lineChart(series, { title, xLabel = "step", yLabel = "", yMin } = {}) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  const shown = series.map((s) => ({ ...s, points: s.points.filter(([, y]) => y !== null && Number.isFinite(y)) }));
  const all = shown.flatMap((s) => s.points);
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.append(el("title", {}, title));
  const last = shown.filter((s) => s.points.length).map((s) => `${s.name} ${fmt(s.points.at(-1)[1])} at ${xLabel} ${s.points.at(-1)[0]}`);
  svg.append(el("desc", {}, all.length ? `Latest: ${last.join("; ")}` : "No points yet"));
  if (!all.length) {
    svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no points yet"));
  } else {
    const xv = all.map((p) => p[0]), yv = all.map((p) => p[1]);
    let y0 = yMin ?? Math.min(...yv), y1 = Math.max(...yv);
    if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
    const x0 = Math.min(...xv), x1 = Math.max(...xv) === x0 ? x0 + 1 : Math.max(...xv);
    const { sx, sy } = frame(svg, [x0, x1], [y0, y1], xLabel, yLabel);
    for (const t of ticks(x0, x1, 6)) svg.append(el("text", { x: sx(t), y: H - PAD.b + 14, "text-anchor": "middle" }, fmt(t)));
    shown.forEach((s, i) => {
      if (!s.points.length) return;
      const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
      svg.append(el("path", { d, fill: "none", stroke: COLORS[i % 5], "stroke-width": 2,
        "stroke-dasharray": s.dashed ? "5 3" : "none", "data-series": s.name, "data-points": s.points.length }));
      // Sparse series (per-epoch full validation) need visible markers to be seen at all.
      if (s.points.length < 30) for (const [x, y] of s.points) svg.append(el("circle", { cx: sx(x), cy: sy(y), r: 3, fill: COLORS[i % 5] }));
    });
  }
  fig.append(cap, legend(series), svg);
  return fig;
}

/**
 * Grouped bars with 95% confidence intervals. groups: [{label, bars: [{name, value, ci: [lo, hi] | null}]}].
 * Values are assumed in [0, 1] (grader scores) unless a larger value appears.
 */
export function ciBars(groups, { title, yLabel = "score" } = {}) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.append(el("title", {}, title));
  svg.append(el("desc", {}, groups.map((g) => `${g.label}: ` + g.bars.map((b) =>
    `${b.name} ${fmt(b.value)}${b.ci ? ` (95% CI ${fmt(b.ci[0])} to ${fmt(b.ci[1])})` : ""}`).join(", ")).join("; ")));
  const top = Math.max(1, ...groups.flatMap((g) => g.bars.flatMap((b) => [b.value, b.ci?.[1] ?? 0])));
  const { sy } = frame(svg, [0, 1], [0, top], "", yLabel);
  const names = groups[0]?.bars.map((b) => ({ name: b.name })) ?? [];
  const gw = (W - PAD.l - PAD.r) / Math.max(1, groups.length);
  const bw = Math.min(48, (gw * 0.8) / Math.max(1, names.length));
  groups.forEach((g, gi) => {
    const gx = PAD.l + gi * gw + (gw - bw * g.bars.length) / 2;
    g.bars.forEach((b, bi) => {
      const x = gx + bi * bw;
      svg.append(el("rect", { x: x + 2, y: sy(b.value), width: bw - 4, height: Math.max(0, sy(0) - sy(b.value)),
        fill: COLORS[bi % 5], opacity: 0.85 }));
      if (b.ci) {
        const cx = x + bw / 2;
        svg.append(el("path", { d: `M${cx},${sy(b.ci[0])}V${sy(b.ci[1])}M${cx - 6},${sy(b.ci[0])}h12M${cx - 6},${sy(b.ci[1])}h12`,
          stroke: "var(--fg)", "stroke-width": 1.5, fill: "none" }));
      }
    });
    svg.append(el("text", { x: PAD.l + gi * gw + gw / 2, y: H - PAD.b + 16, "text-anchor": "middle" }, g.label));
  });
  fig.append(cap, legend(names), svg);
  return fig;
}

/** Histogram from bin edges and counts (edges.length === counts.length + 1). */
export function histogram(edges, counts, { title, xLabel = "tokens per example" } = {}) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.append(el("title", {}, title));
  svg.append(el("desc", {}, counts.map((c, i) => `${fmt(edges[i])}–${fmt(edges[i + 1])}: ${c}`).join(", ")));
  const { sx, sy } = frame(svg, [edges[0], edges.at(-1)], [0, Math.max(1, ...counts)], xLabel, "examples");
  counts.forEach((c, i) => {
    svg.append(el("rect", { x: sx(edges[i]) + 1, y: sy(c), width: Math.max(1, sx(edges[i + 1]) - sx(edges[i]) - 2),
      height: sy(0) - sy(c), fill: COLORS[0], "data-count": c }));
  });
  for (const t of ticks(edges[0], edges.at(-1), 6)) svg.append(el("text", { x: sx(t), y: H - PAD.b + 14, "text-anchor": "middle" }, fmt(t)));
  fig.append(cap, svg);
  return fig;
}
