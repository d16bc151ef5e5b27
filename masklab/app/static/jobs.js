// The project page's background work: start import, export and pre-labelling jobs, follow
// their progress (done / total, rate, ETA, errors), cancel them, download what they made.
// Jobs run on the server; this page only polls while one is queued or running.

import * as api from "./api.js";
import { el, toast } from "./app.js";

const ACTIVE = new Set(["queued", "running"]);

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function describe(job) {
  const what = job.kind === "export" ? `export ${job.params.format || "coco"}` :
    job.kind === "prelabel" ? `pre-label (${job.params.source})` :
    job.kind === "import" ? `import ${job.params.folder}` :
    job.kind === "train" ? `train ${job.params.task} ${job.params.model} (${job.params.epochs} epochs)` : job.kind;
  return what;
}

function jobRow(job, onCancel) {
  const pct = job.total ? Math.floor((100 * job.done) / job.total) : 0;
  const bar = el("progress", { max: job.total || 1, value: job.done });
  const bits = [`${job.done.toLocaleString()}${job.total !== null ? " / " + job.total.toLocaleString() : ""}`];
  if (job.state === "running" && job.rate) bits.push(`${job.rate.toFixed(1)}/s`);
  if (job.state === "running" && job.eta_s !== null) bits.push(`ETA ${fmtSeconds(job.eta_s)}`);
  if (job.failed) bits.push(`${job.failed} failed`);
  if (job.kind === "train" && job.state === "running" && job.message) bits.push(job.message);
  const errs = job.errors && job.errors.length ? el("details", {},
    el("summary", { text: `${job.failed} item${job.failed === 1 ? "" : "s"} skipped` }),
    el("ul", { class: "job-errors" }, ...job.errors.map((e) => el("li", { text: e })))) : null;
  const result = job.state === "done" && job.result && job.result.url ?
    el("a", { href: job.result.url, download: job.result.file, class: "job-download", text: `download ${job.result.file}` }) :
    job.state === "done" && job.kind === "prelabel" ? el("span", { class: "muted", text: `${job.result.proposals} proposals` }) :
    job.state === "done" && job.kind === "import" ? el("span", { class: "muted", text: `${job.result.added} added` }) :
    job.state === "done" && job.kind === "train" ? el("span", { class: "muted", text: `model v${job.result.version}, validation ${job.result.score_name} ${job.result.score.toFixed(3)}` }) :
    job.state === "failed" ? el("span", { class: "error", text: job.message }) : null;
  return el("tr", { "data-job": job.id, "data-state": job.state },
    el("td", { text: describe(job) }),
    el("td", { class: `job-${job.state}`, text: job.state + (job.runs > 1 && ACTIVE.has(job.state) ? " (resumed)" : "") }),
    el("td", {}, bar, ` ${pct}%`),
    el("td", { class: "muted", text: bits.join(" · ") }),
    el("td", {}, result, errs,
      ACTIVE.has(job.state) && !job.cancel ? el("button", { class: "job-cancel", text: "cancel", onclick: () => onCancel(job) }) : null));
}

// The jobs panel: `onFinished(job)` runs once for each job this page saw end.
export function jobsPanel(pid, { onFinished } = {}) {
  const table = el("table", { id: "jobs" });
  const box = el("fieldset", { id: "jobs-box" }, el("legend", { text: "Jobs" }), table);
  const seen = new Map();
  let timer = null;
  let shown = false;
  async function refresh() {
    // the page was left (the panel is no longer in it): stop polling
    if (document.body.contains(box)) shown = true;
    else if (shown) return;
    let jobs;
    try { jobs = await api.get(`/api/projects/${pid}/jobs?limit=10`); } catch { jobs = null; }
    if (jobs) {
      table.replaceChildren(...jobs.map((j) => jobRow(j, cancel)));
      box.hidden = jobs.length === 0;
      for (const j of jobs) {
        const before = seen.get(j.id);
        if (before && ACTIVE.has(before) && !ACTIVE.has(j.state) && onFinished) onFinished(j);
        seen.set(j.id, j.state);
      }
    }
    const busy = jobs && jobs.some((j) => ACTIVE.has(j.state));
    clearTimeout(timer);
    timer = setTimeout(refresh, busy ? 700 : 4000);
  }
  async function cancel(job) {
    try { await api.post(`/api/jobs/${job.id}/cancel`); toast(`cancelling ${describe(job)}…`); } catch (e) { toast(e.message); }
    refresh();
  }
  async function start(kind, params, filter) {
    const job = await api.post(`/api/projects/${pid}/jobs`, { kind, params, filter });
    seen.set(job.id, job.state);
    refresh();
    return job;
  }
  setTimeout(refresh, 0);  // once the panel is on the page
  return { box, start, refresh };
}

// The pre-labelling form: the source, its options, and which images (all, or the filter).
export function prelabelForm(project, filterQuery, start) {
  const source = el("select", { name: "prelabel-source" },
    el("option", { value: "text", text: "text classes → detector → masks" }),
    el("option", { value: "everything", text: "segment everything" }),
    el("option", { value: "model", text: "a model of the registry" }));
  const classes = el("input", { name: "prelabel-classes", size: 30, value: project.classes.map((c) => c.name).join(", ") });
  const detector = el("input", { name: "prelabel-detector", size: 22, placeholder: "detector (default: the app's)" });
  const model = el("input", { name: "prelabel-model", size: 22, placeholder: "model name or folder" });
  const klass = el("select", { name: "prelabel-class" }, ...project.classes.map((c) => el("option", { value: c.id, text: c.name })));
  const threshold = el("input", { name: "prelabel-threshold", type: "number", min: 0, max: 1, step: 0.05, size: 4, placeholder: "score ≥" });
  const scope = el("select", { name: "prelabel-scope" },
    el("option", { value: "all", text: "all images" }),
    el("option", { value: "filter", text: "images of the current filter", selected: Boolean(filterQuery) }));
  const rows = {
    text: el("div", { class: "row" }, "classes ", classes, detector),
    everything: el("div", { class: "row" }, "as class ", klass),
    model: el("div", { class: "row" }, model),
  };
  const show = () => { for (const [k, r] of Object.entries(rows)) r.hidden = k !== source.value; };
  source.addEventListener("change", show);
  show();
  const form = el("form", { id: "prelabel", onsubmit: async (e) => {
    e.preventDefault();
    const params = { source: source.value };
    if (source.value === "text") {
      params.classes = classes.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (detector.value.trim()) params.detector = detector.value.trim();
      if (threshold.value) params.box_threshold = +threshold.value;
    } else if (source.value === "everything") params.class_id = +klass.value;
    else { params.model = model.value.trim(); if (threshold.value) params.score_threshold = +threshold.value; }
    const filter = scope.value === "filter" ? Object.fromEntries(new URLSearchParams(filterQuery)) : null;
    if (filter) delete filter.sort;
    try { const j = await start("prelabel", params, filter); toast(`pre-labelling ${j.total} images…`); }
    catch (err) { toast(err.message); }
  } }, el("div", { class: "row" }, source, scope, threshold), rows.text, rows.everything, rows.model,
  el("button", { type: "submit", id: "prelabel-start", text: "Pre-label" }));
  return el("fieldset", {}, el("legend", { text: "Pre-label (proposals to review)" }), form);
}
