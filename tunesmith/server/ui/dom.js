// Building DOM nodes without innerHTML, so text from files and models is never parsed as markup.

/** h("a", {href: "#/x", class: "y", onclick: fn}, "text", childNode, [more]) */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** A table from column headers and rows of cells; numeric columns are right-aligned. */
export function table(headers, rows, { caption, numeric = [] } = {}) {
  return h("div", { class: "table-wrap" }, h("table", {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((t, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c)))))));
}

export const badge = (text) => h("span", { class: `badge ${text}` }, text);
export const message = (text, kind = "") => h("div", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
/** A unix time (seconds) or an ISO string as local date and time. */
export const when = (t) => (t ? new Date(typeof t === "number" ? t * 1000 : t).toLocaleString() : "—");
export const num = (v, digits = 3) => (v === null || v === undefined || v === "" ? "—"
  : typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(digits)) : String(v));

/** Key/value list for small objects. */
export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** A field with its label bound by id (every input in the studio has a visible label). */
export function field(label, input, hint) {
  return h("div", {}, h("label", { for: input.id }, label, hint ? h("span", { class: "hint" }, ` ${hint}`) : null), input);
}
