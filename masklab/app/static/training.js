// The project page's model loop: train a model on the labelled images (a job on the server),
// follow its loss and validation mIoU as a live plot, stop it; the project's model versions
// (metrics, download, ONNX, pre-label the rest with one); the queue order (by name, or least
// confident first as the latest pre-labelling model scored the images).

import * as api from "./api.js";
import { el, toast } from "./app.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) if (c) e.append(c);
  return e;
}

// loss per step (left axis) and the validation figure per epoch (right axis, 0..1)
export function curve(events, metric = "mIoU", width = 420, height = 160) {
  const steps = events.filter((e) => e.event === "step");
  const epochs = events.filter((e) => e.event === "epoch" && e.val !== null && e.val !== undefined);
  const pad = 28;
  const plot = svg("svg", { width, height, id: "train-plot", role: "img",
    "aria-label": `training loss and validation ${metric}` });
  plot.append(svg("rect", { x: pad, y: 6, width: width - 2 * pad, height: height - pad - 6, fill: "#fafafa", stroke: "#ccc" }));
  if (!steps.length) return plot;
  const total = Math.max(...steps.map((s) => s.total_steps || s.step), 1);
  const lmax = Math.max(...steps.map((s) => s.loss), 1e-6);
  const x = (step) => pad + ((width - 2 * pad) * step) / total;
  const yl = (v) => 6 + (height - pad - 6) * (1 - v / lmax);
  const ym = (v) => 6 + (height - pad - 6) * (1 - v);
  plot.append(svg("polyline", { class: "loss", fill: "none", stroke: "#4363d8", "stroke-width": 1.2,
    points: steps.map((s) => `${x(s.step).toFixed(1)},${yl(s.loss).toFixed(1)}`).join(" ") }));
  if (epochs.length) {
    plot.append(svg("polyline", { class: "miou", fill: "none", stroke: "#e6194b", "stroke-width": 2,
      points: epochs.map((e) => `${x(e.step).toFixed(1)},${ym(e.val).toFixed(1)}`).join(" ") }));
    for (const e of epochs) plot.append(svg("circle", { cx: x(e.step), cy: ym(e.val), r: 2.5, fill: "#e6194b" }));
  }
  const label = (tx, ty, text, color, anchor = "start") => {
    const t = svg("text", { x: tx, y: ty, fill: color, "font-size": 10, "text-anchor": anchor });
    t.textContent = text;
    plot.append(t);
  };
  label(2, 14, lmax.toPrecision(2), "#4363d8");
  label(2, height - pad, "0", "#4363d8");
  label(width - 2, 14, "1", "#e6194b", "end");
  label(width - 2, height - pad, "0", "#e6194b", "end");
  const last = epochs[epochs.length - 1];
  label(pad, height - 8, `loss ${steps[steps.length - 1].loss.toFixed(3)} · step ${steps[steps.length - 1].step} / ${total}`, "#4363d8");
  if (last) label(width - pad, height - 8, `validation ${metric} ${last.val.toFixed(3)} (epoch ${last.epoch})`, "#e6194b", "end");
  return plot;
}

export function trainingPanel(project, filterQuery, jobs, { onOrder } = {}) {
  const pid = project.id;
  const task = el("select", { name: "train-task" }, el("option", { value: "semantic", text: "semantic" }),
    el("option", { value: "instances", text: "instances" }));
  const model = el("input", { name: "train-model", size: 22, placeholder: "model (default: unet / maskrcnn_resnet50_fpn_v2)", list: "train-models" });
  const models = el("datalist", { id: "train-models" }, ...["unet", "fcn8s", "segformer-b0-ade",
    "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_resnet18_fpn"].map((m) => el("option", { value: m })));
  const epochs = el("input", { name: "train-epochs", type: "number", min: 1, value: 20, size: 4 });
  const minutes = el("input", { name: "train-minutes", type: "number", min: 0.1, step: 0.5, size: 4, placeholder: "minutes" });
  const threads = el("input", { name: "train-threads", type: "number", min: 1, size: 3, placeholder: "threads" });
  const approvedOnly = el("input", { type: "checkbox", name: "train-approved-only" });
  const options = el("input", { name: "train-options", size: 34,
    placeholder: 'more, as JSON: {"crop": 256, "batch_size": 4, "lr": 0.001}' });
  const scope = el("select", { name: "train-scope" },
    el("option", { value: "all", text: "all labelled images" }),
    el("option", { value: "filter", text: "labelled images of the current filter", selected: Boolean(filterQuery) }));
  const plotBox = el("div", { id: "train-curve" });
  const versions = el("table", { id: "versions" });
  const order = el("select", { name: "queue-order", onchange: async () => {
    try { await api.put(`/api/projects/${pid}/settings`, { order: order.value }); toast(`queue: ${order.selectedOptions[0].text}`); if (onOrder) onOrder(order.value); }
    catch (e) { toast(e.message); }
  } }, el("option", { value: "name", text: "by name" }),
  el("option", { value: "uncertain", text: "least confident first" }));
  order.value = (project.settings && project.settings.order) || "name";

  const form = el("form", { id: "train", onsubmit: async (e) => {
    e.preventDefault();
    let extra = {};
    try { extra = options.value.trim() ? JSON.parse(options.value) : {}; }
    catch { toast("the options are not JSON"); return; }
    const params = { ...extra, task: task.value, epochs: +epochs.value || 20 };
    if (model.value.trim()) params.model = model.value.trim();
    if (minutes.value) params.minutes = +minutes.value;
    if (threads.value) params.threads = +threads.value;
    if (approvedOnly.checked) params.statuses = ["approved"];
    const filter = scope.value === "filter" ? Object.fromEntries(new URLSearchParams(filterQuery)) : null;
    if (filter) { delete filter.sort; delete filter.status; }
    try { const j = await jobs.start("train", params, filter); toast(`training on ${j.total} labelled images…`); follow(j.id, task.value === "semantic" ? "mIoU" : "mask AP"); }
    catch (err) { toast(err.message); }
  } }, el("div", { class: "row" }, task, model, models, " epochs ", epochs, minutes, threads, scope,
    el("label", { class: "muted" }, approvedOnly, " approved only (else done + approved)")),
  el("div", { class: "row" }, options, el("button", { type: "submit", id: "train-start", text: "Train" })));

  let following = null;
  let timer = null;
  async function follow(jobId, metric = "mIoU") {
    following = jobId;
    const events = [];
    let next = 0;
    const tick = async () => {
      if (following !== jobId) return;
      if (!document.body.contains(plotBox) && next > 0) return;  // the page was left
      try {
        const r = await api.get(`/api/jobs/${jobId}/events?after=${next}`);
        events.push(...r.events); next = r.next;
        plotBox.replaceChildren(curve(events, metric));
        const j = await api.get(`/api/jobs/${jobId}`);
        if (j.state === "queued" || j.state === "running") timer = setTimeout(tick, 1000);
        else { if (j.state === "done") listVersions(); }
      } catch { timer = setTimeout(tick, 3000); }
    };
    clearTimeout(timer);
    tick();
  }

  async function listVersions() {
    let ms;
    try { ms = await api.get(`/api/projects/${pid}/models`); } catch { return; }
    versions.replaceChildren(el("tr", {}, ...["version", "model", "validation", "images (train / val)", ""].map((t) => el("th", { text: t }))),
      ...ms.map((m) => el("tr", { "data-model": m.id },
        el("td", { text: `v${m.version}` }),
        el("td", { text: m.arch }),
        el("td", { text: m.metrics.score === null || m.metrics.score === undefined ? "–" : `${m.metrics.score_name} ${m.metrics.score.toFixed(3)}` }),
        el("td", { text: `${m.images.train || 0} / ${m.images.val || 0}` }),
        el("td", {},
          el("a", { href: `/api/models/${m.id}/download`, text: "weights" }), " · ",
          el("a", { href: `/api/models/${m.id}/onnx`, text: "ONNX" }), " · ",
          el("button", { class: "prelabel-with", text: "pre-label new images", onclick: async () => {
            try { const j = await jobs.start("prelabel", { source: "model", model_id: m.id }, { status: "new" });
              toast(`pre-labelling ${j.total} images with v${m.version}…`); }
            catch (err) { toast(err.message); }
          } })))));
  }

  listVersions();
  // follow the latest training job (running or finished) when the page opens
  api.get(`/api/projects/${pid}/jobs?limit=20`).then((js) => {
    const t = js.find((j) => j.kind === "train");
    if (t) follow(t.id, t.params.task === "instances" ? "mask AP" : "mIoU");
  }).catch(() => {});
  return el("fieldset", { id: "training" }, el("legend", { text: "Train a model on the labelled images" }),
    form, plotBox, versions, el("div", { class: "row" }, "queue order ", order));
}
