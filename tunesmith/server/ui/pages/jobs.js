// Jobs: create a fine-tuning job, list jobs, and follow one live (curves, events, checkpoints, controls).
import { api, listAll } from "../api.js";
import { h, table, badge, message, when, num, field, kv } from "../dom.js";
import { lineChart } from "../charts.js";

const ACTIVE = new Set(["validating_files", "queued", "running"]);
const POLL_MS = 1500;

function hyperparameter(id, label, hint, attrs) {
  return field(label, h("input", { id, name: id, inputmode: "decimal", placeholder: "auto", ...attrs }), hint);
}

/** "auto" for an empty box, else the number typed. */
function autoOr(value, parse) {
  const v = value.trim();
  if (!v || v === "auto") return "auto";
  const n = parse(v);
  if (!Number.isFinite(n)) throw new Error(`"${v}" is not a number`);
  return n;
}

async function createForm(preset) {
  const [catalog, files] = await Promise.all([api("/ui-api/catalog"), listAll("/v1/files?purpose=fine-tune")]);
  const models = h("select", { id: "job-model", name: "model", required: true },
    h("optgroup", { label: "Trains here" }, catalog.data.filter((m) => m.local).map((m) =>
      h("option", { value: m.id, selected: m.id === (preset.model ?? catalog.default) }, `${m.id}${m.params ? ` (${m.params})` : ""}`))),
    h("optgroup", { label: "Trains with the provider's API" }, catalog.data.filter((m) => !m.local).map((m) => h("option", { value: m.id }, m.id))));
  const fileOptions = (selected) => files.map((f) => h("option", { value: f.id, selected: f.id === selected }, `${f.filename} — ${f.id}`));
  const training = h("select", { id: "job-training-file", required: true }, fileOptions(preset.training_file));
  const validation = h("select", { id: "job-validation-file" }, h("option", { value: "" }, "none"), fileOptions(null));
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack", id: "create-job" },
    field("Base model", models), field("Training file", training), field("Validation file", validation, "(optional)"),
    hyperparameter("n_epochs", "Epochs", "(auto: from the number of examples)", { inputmode: "numeric" }),
    hyperparameter("batch_size", "Batch size", "", { inputmode: "numeric" }),
    hyperparameter("learning_rate_multiplier", "Learning-rate multiplier", ""),
    field("Suffix", h("input", { id: "job-suffix", maxlength: 64, placeholder: "e.g. support-bot" }), "(in the model name)"),
    field("Seed", h("input", { id: "job-seed", inputmode: "numeric", placeholder: "random" })),
    h("div", {}, h("button", { type: "submit", disabled: !files.length }, "Create job")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const hp = {
        n_epochs: autoOr(form.n_epochs.value, (v) => parseInt(v, 10)),
        batch_size: autoOr(form.batch_size.value, (v) => parseInt(v, 10)),
        learning_rate_multiplier: autoOr(form.learning_rate_multiplier.value, parseFloat),
      };
      const body = { model: models.value, training_file: training.value, method: { type: "supervised", supervised: { hyperparameters: hp } } };
      if (validation.value) body.validation_file = validation.value;
      const suffix = form.querySelector("#job-suffix").value.trim();
      if (suffix) body.suffix = suffix;
      const seed = form.querySelector("#job-seed").value.trim();
      if (seed) body.seed = parseInt(seed, 10);
      const job = await api("/v1/fine_tuning/jobs", { method: "POST", body });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      status.replaceChildren(message(`Could not create the job: ${err.message}`, "error"));
    }
  });
  return h("section", { class: "card", "aria-labelledby": "create-h" }, h("h2", { id: "create-h" }, "New fine-tuning job"),
    files.length ? null : message(h("span", {}, "Upload a training file first on the ", h("a", { href: "#/data" }, "Data"), " page.")),
    form, status);
}

function jobsTable(jobs) {
  return jobs.length ? table(["Job", "Model", "Status", "Fine-tuned model", "Trained tokens", "Created"], jobs.map((j) => [
    h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.id), j.model, badge(j.status), j.fine_tuned_model ?? "—",
    num(j.trained_tokens), when(j.created_at)]), { numeric: [4] }) : message("No jobs yet.");
}

export async function list(main, params) {
  main.append(h("h1", {}, "Jobs"), await createForm(params));
  const listing = h("div", {});
  main.append(h("section", { "aria-labelledby": "jobs-h" }, h("h2", { id: "jobs-h" }, "All jobs"), listing));
  let timer = null;
  const refresh = async () => {
    const jobs = (await api("/v1/fine_tuning/jobs?limit=100")).data;
    listing.replaceChildren(jobsTable(jobs));
    if (jobs.some((j) => ACTIVE.has(j.status))) timer = setTimeout(refresh, POLL_MS * 2);
  };
  await refresh();
  return () => clearTimeout(timer);
}

/** Training and validation series of one metric from results.csv rows (DPO's rewards/* have no train_ prefix). */
function curves(rows, metric, trainPrefix = "train_") {
  const series = (col) => rows.map((r) => [r.step, r[col] ?? null]);
  return [
    { name: "training", points: series(`${trainPrefix}${metric}`) },
    { name: "validation (batch)", points: series(`valid_${metric}`), dashed: true },
    { name: "validation (full)", points: series(`full_valid_${metric}`) },
  ].filter((s) => s.name === "training" || s.points.some(([, y]) => y !== null));
}

/** A DPO run's rewards (beta x log-ratio to the reference, TRL's names) and how often the preferred one wins. */
function dpoCharts(rows) {
  const series = (col) => rows.map((r) => [r.step, r[col] ?? null]);
  return [
    lineChart([{ name: "chosen", points: series("rewards/chosen") }, { name: "rejected", points: series("rewards/rejected") },
      { name: "margin", points: series("rewards/margins"), dashed: true }], { title: "Rewards", yLabel: "reward" }),
    lineChart(curves(rows, "rewards/accuracies", ""), { title: "Reward accuracy (preferred > non-preferred)", yLabel: "accuracy" }),
  ];
}

function controls(job, onChange) {
  const act = (verb) => async () => {
    try { onChange(await api(`/v1/fine_tuning/jobs/${encodeURIComponent(job.id)}/${verb}`, { method: "POST" })); }
    catch (err) { alert(`${verb} failed: ${err.message}`); }
  };
  return h("div", { class: "actions" },
    ACTIVE.has(job.status) || job.status === "paused" ? h("button", { class: "danger", onclick: act("cancel") }, "Cancel") : null,
    job.status === "running" || job.status === "queued" ? h("button", { class: "secondary", onclick: act("pause") }, "Pause") : null,
    job.status === "paused" ? h("button", { class: "secondary", onclick: act("resume") }, "Resume") : null,
    job.fine_tuned_model ? h("a", { href: `#/playground?model=${encodeURIComponent(job.fine_tuned_model)}` }, "Try it in the playground →") : null);
}

/** The last epoch's highest-loss training examples: a line far above its peers is likely mislabelled. */
function lossyExamples(body) {
  if (!body.rows.length) return message("Per-example losses appear when the first epoch ends.");
  const outliers = body.rows.filter((r) => r.outlier).length;
  return table(["Line", "Mean loss", "z", "Trained tokens", "User", "Assistant"], body.rows.map((r) => [
    r.line, num(r.mean_loss), r.outlier ? h("strong", {}, num(r.z, 1)) : num(r.z, 1), num(r.trained_tokens),
    r.user ?? "—", r.assistant ?? "—"]), { numeric: [0, 1, 2, 3], caption: `Epoch ${body.epoch}: ${outliers
    ? `${outliers} example(s) with robust z above ${body.z_threshold} (bold): check them for labelling errors`
    : `no example with robust z above ${body.z_threshold}`}. Lines are the training file's.` });
}

export async function detail(main, { id }) {
  const path = `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`;
  const head = h("div", {}), charts = h("div", { class: "grid", id: "curves" }), events = h("div", {}), ckpts = h("div", {}), lossy = h("div", {});
  main.append(h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")), head,
    h("section", { "aria-labelledby": "curves-h" }, h("h2", { id: "curves-h" }, "Training curves"), charts),
    h("div", { class: "grid" },
      h("section", { "aria-labelledby": "events-h" }, h("h2", { id: "events-h" }, "Events"), events),
      h("section", { "aria-labelledby": "ckpt-h" }, h("h2", { id: "ckpt-h" }, "Checkpoints"), ckpts)),
    h("section", { "aria-labelledby": "lossy-h" }, h("h2", { id: "lossy-h" }, "Highest-loss training examples"), lossy));

  let timer = null, stopped = false, settled = false, lossyEpoch = null;
  const showJob = (job) => {
    const hp = job.method?.dpo?.hyperparameters ?? job.method?.supervised?.hyperparameters ?? job.hyperparameters ?? {};
    head.replaceChildren(h("div", {}, h("h1", {}, job.id, " ", badge(job.status)), controls(job, (j) => { settled = false; showJob(j); poll(); }),
      job.error?.message ? message(`${job.error.code ?? "error"}: ${job.error.message}`, "error") : null,
      kv([["base model", job.model], ["fine-tuned model", job.fine_tuned_model ?? "—"],
        ["training file", h("a", { href: `#/data/${job.training_file}` }, job.training_file)],
        ["validation file", job.validation_file ? h("a", { href: `#/data/${job.validation_file}` }, job.validation_file) : "—"],
        ["hyperparameters", `epochs ${hp.n_epochs ?? "auto"}, batch size ${hp.batch_size ?? "auto"}, LR multiplier ${hp.learning_rate_multiplier ?? "auto"}${job.method?.type === "dpo" ? `, DPO beta ${hp.beta ?? "auto"}` : ""}`],
        ["trained tokens", num(job.trained_tokens)], ["created", when(job.created_at)], ["finished", when(job.finished_at)],
        ["result files", (job.result_files ?? []).join(", ") || "—"]])));
  };
  const poll = async () => {
    clearTimeout(timer);
    const [job, metrics, ev, ck] = await Promise.all([api(path), api(`/ui-api/jobs/${encodeURIComponent(id)}/metrics`),
      api(`${path}/events?limit=100`), api(`${path}/checkpoints?limit=100`)]);
    if (stopped) return;
    showJob(job);
    const rows = metrics.rows;
    const progress = metrics.state?.total_steps ? ` — step ${metrics.state.step ?? rows.at(-1)?.step ?? 0} of ${metrics.state.total_steps}` : "";
    charts.replaceChildren(
      lineChart(curves(rows, "loss"), { title: `Loss${progress}`, yLabel: "loss" }),
      ...(rows.some((r) => r["rewards/margins"] != null) ? dpoCharts(rows)
        : [lineChart(curves(rows, "mean_token_accuracy"), { title: "Mean token accuracy", yLabel: "accuracy" })]));
    events.replaceChildren(ev.data.length ? h("ol", { class: "events" }, ev.data.map((e) =>
      h("li", { class: e.level }, h("time", { class: "muted" }, new Date(e.created_at * 1000).toLocaleTimeString()), " ", e.message)))
      : message("No events yet."));
    ckpts.replaceChildren(ck.data.length ? table(["Step", "Model", "Train loss", "Valid loss"], ck.data.map((c) => [
      c.step_number, h("a", { href: `#/playground?model=${encodeURIComponent(c.fine_tuned_model_checkpoint)}` }, c.fine_tuned_model_checkpoint),
      num(c.metrics?.train_loss), num(c.metrics?.valid_loss ?? c.metrics?.full_valid_loss)]), { numeric: [0, 2, 3] })
      : message("No checkpoints yet."));
    const epoch = metrics.state?.epoch ?? 0;  // example_losses.csv changes only when an epoch ends
    if (epoch !== lossyEpoch) {
      const body = await api(`/ui-api/jobs/${encodeURIComponent(id)}/example-losses?top=20`);
      lossyEpoch = epoch;  // set once fetched: a failed fetch is tried again on the next poll
      lossy.replaceChildren(lossyExamples(body));
    }
    // One more poll after the job stops: its last events and checkpoint land just after the status changes.
    const again = ACTIVE.has(job.status) || !settled;
    settled = !ACTIVE.has(job.status);
    if (again) timer = setTimeout(() => poll().catch(() => { timer = setTimeout(poll, POLL_MS * 2); }), POLL_MS);
  };
  await poll();
  return () => { stopped = true; clearTimeout(timer); };
}
