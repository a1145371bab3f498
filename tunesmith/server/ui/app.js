// Hash router: each page module renders into <main> and may return a function that stops its polling.
import { getApiKey, setApiKey } from "./api.js";
import { message } from "./dom.js";
import * as data from "./pages/data.js";
import * as evals from "./pages/evals.js";
import * as jobs from "./pages/jobs.js";
import * as models from "./pages/models.js";
import * as playground from "./pages/playground.js";
import * as insight from "./pages/insight.js";
import * as curves from "./pages/curves.js";

const ROUTES = [
  [/^data$/, data.list, "Data"],
  [/^data\/(?<id>[^/]+)$/, data.report, "Data"],
  [/^evals$/, evals.list, "Evaluations"],
  [/^evals\/compare$/, evals.compare, "Evaluations"],
  [/^jobs$/, jobs.list, "Jobs"],
  [/^jobs\/(?<id>[^/]+)$/, jobs.detail, "Jobs"],
  [/^models$/, models.list, "Models"],
  [/^playground$/, playground.render, "Playground"],
  [/^readiness$/, insight.readiness, "Readiness"],
  [/^cost$/, insight.cost, "Cost"],
  [/^curves$/, curves.list, "Curves"],
  [/^curves\/(?<id>[^/]+)$/, curves.detail, "Curves"],
];

let stop = null;

async function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  if (!path) { location.replace("#/data"); return; }
  if (stop) { stop(); stop = null; }
  const main = document.getElementById("main");
  const params = Object.fromEntries(new URLSearchParams(query));
  for (const [pattern, page, section] of ROUTES) {
    const m = pattern.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll("nav a")) {
      if (a.textContent === section) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    document.title = `${section} · tunesmith studio`;
    main.replaceChildren();
    try {
      const groups = Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]));
      stop = (await page(main, { ...params, ...groups })) || null;
    } catch (err) {
      main.append(message(err.message, "error"));
    }
    // Move focus to the new content so keyboard and screen-reader users land on it.
    if (document.activeElement?.closest("nav")) main.focus();
    return;
  }
  main.replaceChildren(message(`No page at #/${path}`, "error"));
}

document.getElementById("api-key").value = getApiKey();
document.getElementById("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setApiKey(document.getElementById("api-key").value.trim());
  route();
});
window.addEventListener("hashchange", route);
route();
