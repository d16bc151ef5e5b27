// masklab app: routing, log-in, project list, project page. The editor is in editor.js.
// Every name from the server is put on the page as text (textContent), never as markup.

import * as api from "./api.js";
import { openEditor } from "./editor.js";
import { jobsPanel, prelabelForm } from "./jobs.js";
import { trainingPanel } from "./training.js";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
export const me = { user: null, role: null, auth: false };

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function toast(msg, ms = 2500) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast._t);
  toast._t = setTimeout(() => t.classList.remove("show"), ms);
}

export function setCrumbs(...items) {
  crumbs.replaceChildren(...items.map(([text, href]) =>
    href ? el("a", { href, text }) : el("span", { text })));
}

api.onSaveState((state, n) => {
  const s = document.getElementById("save");
  s.dataset.state = state;
  s.textContent = state === "saving" ? `saving… (${n})` : state === "error" ? "not saved — retry" : "saved";
});

window.addEventListener("beforeunload", (e) => {
  if (document.getElementById("save").dataset.state !== "saved") { e.preventDefault(); e.returnValue = ""; }
});

async function route() {
  const hash = location.hash || "#/";
  try {
    if (me.auth && !me.user) return loginPage();
    let m;
    if ((m = hash.match(/^#\/p\/(\d+)(?:\?(.*))?$/))) return await projectPage(+m[1], m[2] || "");
    if ((m = hash.match(/^#\/i\/(\d+)(?:\?.*)?$/))) return await openEditor(view, +m[1]);
    return await projectsPage();
  } catch (e) {
    view.replaceChildren(el("div", { class: "page" }, el("p", { text: `Error: ${e.message}` })));
  }
}

function loginPage() {
  setCrumbs(["log in"]);
  const name = el("input", { name: "user", autocomplete: "username" });
  const pw = el("input", { name: "password", type: "password", autocomplete: "current-password" });
  const form = el("form", { class: "page", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const r = await api.post("/api/login", { name: name.value, password: pw.value });
      api.setCsrf(r.csrf);
      Object.assign(me, { user: r.user, role: r.role });
      showWho(); route();
    } catch (err) { toast(err.message); }
  } }, el("h2", { text: "Log in" }), el("div", { class: "row" }, "User ", name),
  el("div", { class: "row" }, "Password ", pw), el("button", { type: "submit", text: "Log in" }));
  view.replaceChildren(form);
}

function showWho() {
  const w = document.getElementById("who");
  w.replaceChildren();
  if (!me.user) return;
  w.append(el("span", { text: `${me.user} (${me.role})` }));
  if (me.auth) w.append(" ", el("button", { text: "log out", onclick: async () => {
    await api.post("/api/logout"); me.user = null; showWho(); route(); } }));
}

async function projectsPage() {
  setCrumbs(["projects"]);
  const projects = await api.get("/api/projects");
  const rows = projects.map((p) => el("tr", {},
    el("td", {}, el("a", { href: `#/p/${p.id}`, text: p.name, class: "project-link" })),
    el("td", { text: String(p.images) }),
    el("td", { text: p.classes.map((c) => c.name).join(", ") })));
  const name = el("input", { name: "project-name", placeholder: "name" });
  const classes = el("input", { name: "project-classes", placeholder: "classes, comma separated", size: 40 });
  const attrs = el("input", { name: "project-attributes", placeholder: "attributes: occluded:bool, colour:choice(red|blue)", size: 44 });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    try {
      const p = await api.post("/api/projects", { name: name.value,
        classes: classes.value.split(",").map((s) => s.trim()).filter(Boolean),
        attributes: parseAttributes(attrs.value) });
      location.hash = `#/p/${p.id}`;
    } catch (err) { toast(err.message); }
  } }, el("div", { class: "row" }, name, classes), el("div", { class: "row" }, attrs,
    el("button", { type: "submit", id: "create-project", text: "Create project" })));
  view.replaceChildren(el("div", { class: "page" },
    el("h2", { text: "Projects" }),
    el("table", { id: "projects" }, el("tr", {}, el("th", { text: "project" }), el("th", { text: "images" }), el("th", { text: "classes" })), ...rows),
    me.role === "admin" ? el("fieldset", {}, el("legend", { text: "New project" }), form) : null));
}

// "occluded:bool, colour:choice(red|blue), note" -> the attribute schema
export function parseAttributes(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = s.match(/^([^:()]+?)\s*(?::\s*(text|number|bool|choice)\s*(?:\(([^)]*)\))?)?$/);
    if (!m) throw new Error(`attribute "${s}": write name:type, e.g. occluded:bool or colour:choice(red|blue)`);
    const a = { name: m[1].trim(), type: m[2] || "text" };
    if (a.type === "choice") a.values = (m[3] || "").split("|").map((v) => v.trim()).filter(Boolean);
    return a;
  });
}

// the image list's filter lives in the address (#/p/1?status=done&q=cat&offset=100), so that
// the editor's next / previous walk the same list and the back button returns to this page
export function listQuery() {
  const q = location.hash.split("?")[1] || "";
  const params = new URLSearchParams(q);
  params.delete("offset");
  return params.toString();
}

const PAGE = 100;

async function projectPage(pid, query) {
  const params = new URLSearchParams(query);
  const offset = Math.max(0, +(params.get("offset") || 0));
  const [p, info] = await Promise.all([api.get(`/api/projects/${pid}`), api.get("/api/info")]);
  // the project's queue order is the list's (and so the editor's next / previous) default
  if (!params.has("sort") && p.settings && p.settings.order === "uncertain") params.set("sort", "-uncertain");
  const listParams = new URLSearchParams(params);
  listParams.set("offset", offset); listParams.set("limit", PAGE);
  const page = await api.get(`/api/projects/${pid}/images?${listParams}`);
  setCrumbs(["projects", "#/"], [p.name]);
  const filter = new URLSearchParams(params); filter.delete("offset");
  const go = (changes) => {
    const next = new URLSearchParams(filter);
    for (const [k, v] of Object.entries(changes)) { if (v === "" || v === null) next.delete(k); else next.set(k, v); }
    const s = next.toString();
    location.hash = `#/p/${pid}${s ? "?" + s : ""}`;
  };
  const sel = (name, label, options) => {
    const s = el("select", { name, "aria-label": label, onchange: () => go({ [name]: s.value, offset: "" }) },
      ...options.map(([v, text]) => el("option", { value: v, text, selected: (params.get(name) || "") === v })));
    return s;
  };
  const statusCounts = p.status || {};
  const statusSel = sel("status", "status", [["", `any status (${p.images})`],
    ...info.statuses.map((s) => [s, `${s.replace("_", " ")} (${statusCounts[s] || 0})`])]);
  const assigneeOpts = [["", "anyone"], ["none", "unassigned"]];
  if (me.auth) assigneeOpts.push(["me", "assigned to me"]);
  const assigneeSel = sel("assignee", "assignee", assigneeOpts);
  const annotatedSel = sel("annotated", "annotations", [["", "annotated or not"],
    ["true", `annotated (${p.annotated})`], ["false", `not annotated (${p.images - p.annotated})`]]);
  const proposalsSel = sel("proposals", "proposals", [["", "proposals or not"],
    ["true", `with proposals (${p.with_proposals})`], ["false", "without proposals"]]);
  const sortSel = sel("sort", "sort", [["", "by name"], ["-name", "by name, Z–A"],
    ["-updated", "recently changed first"], ["updated", "least recently changed"], ["id", "by import order"],
    ["-uncertain", "least confident first (model)"]]);
  const search = el("input", { name: "q", type: "search", placeholder: "name contains", value: params.get("q") || "" });
  const searchForm = el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); go({ q: search.value.trim(), offset: "" }); } },
    search, el("button", { type: "submit", text: "filter" }));
  const hrefQuery = filter.toString() ? `?${filter}` : "";
  const rows = page.items.map((im) => el("tr", {},
    el("td", {}, el("a", { href: `#/i/${im.id}${hrefQuery}`, class: im.video === null ? "image-link" : "video-link",
      text: im.video === null ? im.file_name : `${im.video} (video, ${page.frames[im.video] || 1} frames)` })),
    el("td", { class: `status-${im.status}`, text: im.status.replace("_", " ") }),
    el("td", { class: "muted", text: `${im.annotations}${im.proposals ? ` + ${im.proposals} proposed` : ""}` }),
    el("td", { class: "muted", text: im.comment || "" }),
    el("td", { class: "muted", text: `${im.width}×${im.height}` })));
  const first = page.total ? offset + 1 : 0;
  const last = offset + page.items.length;
  const pager = el("div", { class: "row", id: "pager" },
    el("button", { id: "page-prev", text: "◀ previous page", disabled: offset <= 0,
      onclick: () => go({ offset: Math.max(0, offset - PAGE) || "" }) }),
    el("span", { id: "page-info", text: `${first.toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()}` }),
    el("button", { id: "page-next", text: "next page ▶", disabled: last >= page.total,
      onclick: () => go({ offset: offset + PAGE }) }));
  const admin = me.role === "admin";
  // imports, exports and pre-labelling run as jobs on the server; the page follows them
  const jobs = jobsPanel(pid, { onFinished: (j) => {
    if (j.state === "done" && j.result && j.result.url) {
      const a = el("a", { href: j.result.url, download: j.result.file }); document.body.append(a); a.click(); a.remove();
      toast(`exported ${j.result.file}`);
    } else if (j.state === "done" && j.kind === "train") {
      toast(`model v${j.result.version} trained: validation ${j.result.score_name} ${j.result.score.toFixed(3)}`);
    } else if (j.state === "done" && (j.kind === "import" || j.kind === "prelabel" || j.kind === "import-coco")) {
      toast(`${j.kind} done${j.failed ? ` (${j.failed} skipped)` : ""}`);
      route();
    } else if (j.state === "failed") toast(`${j.kind} failed: ${j.message}`);
  } });
  const folder = el("input", { name: "folder", placeholder: "folder on the server", size: 50 });
  const files = el("input", { type: "file", name: "files", multiple: true, accept: "image/*,video/*" });
  const importBox = admin ? el("fieldset", {}, el("legend", { text: "Add images" }),
    el("form", { class: "row", onsubmit: async (e) => {
      e.preventDefault();
      try { await jobs.start("import", { folder: folder.value }); toast("importing…"); }
      catch (err) { toast(err.message); }
    } }, folder, el("button", { type: "submit", id: "import", text: "Import folder" })),
    el("form", { class: "row", onsubmit: async (e) => {
      e.preventDefault();
      const fd = new FormData();
      for (const f of files.files) fd.append("files", f);
      try { const r = await api.request("POST", `/api/projects/${pid}/upload`, fd, { form: true });
        toast(`${r.added} images uploaded`); route(); } catch (err) { toast(err.message); }
    } }, files, el("button", { type: "submit", text: "Upload" })),
    annotationImport(info, jobs)) : null;
  const withProposals = el("input", { type: "checkbox", name: "export-proposals" });
  const exportRow = el("div", { class: "row" }, ...info.export_formats.map((f) =>
    el("button", { "data-format": f, text: f, onclick: async () => {
      try { await jobs.start("export", { format: f, proposals: withProposals.checked }); toast(`exporting ${p.images} images as ${f}…`); }
      catch (err) { toast(err.message); }
    } })), el("label", { class: "muted" }, withProposals, " include proposals not yet accepted"));
  const reviewBox = p.with_proposals ? reviewForm(pid, p, () => route()) : null;
  const counts = Object.entries(p.status).map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(" · ");
  view.replaceChildren(el("div", { class: "page" },
    el("h2", { text: p.name }),
    el("p", { class: "muted", id: "counts", text: `${p.images} images${counts ? " — " + counts : ""}; ${p.annotated} annotated, ${p.with_proposals} with proposals; classes: ${p.classes.map((c) => c.name).join(", ")}` }),
    el("div", { class: "row", id: "filters" }, statusSel, assigneeSel, annotatedSel, proposalsSel, sortSel, searchForm),
    el("table", { id: "images" }, el("tr", {}, el("th", { text: "image" }), el("th", { text: "status" }),
      el("th", { text: "annotations" }), el("th", { text: "comment" }), el("th", { text: "size" })), ...rows),
    pager, jobs.box, reviewBox, admin ? prelabelForm(p, filter.toString(), jobs.start) : null,
    admin ? trainingPanel(p, filter.toString(), jobs, { onOrder: () => route() }) : null,
    importBox, el("fieldset", {}, el("legend", { text: "Export" }), exportRow)));
}

// annotations made elsewhere (COCO, labelme, CVAT, Label Studio, VOC, Cityscapes, YOLO, ...)
// with their images, as an import job
function annotationImport(info, jobs) {
  const fmt = el("select", { name: "import-format" }, ...info.import_formats.map((f) => el("option", { value: f, text: f })));
  const src = el("input", { name: "import-annotations", size: 40, placeholder: "annotation file or folder on the server" });
  const imgs = el("input", { name: "import-images", size: 30, placeholder: "their images' folder (optional)" });
  return el("form", { class: "row", id: "import-annotations-form", onsubmit: async (e) => {
    e.preventDefault();
    const params = { coco: src.value.trim(), format: fmt.value };
    if (imgs.value.trim()) params.images_dir = imgs.value.trim();
    try { await jobs.start("import-coco", params); toast(`importing ${fmt.value} annotations…`); }
    catch (err) { toast(err.message); }
  } }, fmt, src, imgs, el("button", { type: "submit", text: "Import annotations" }));
}

// accept or reject the project's proposals in bulk: all of a class, above a score
function reviewForm(pid, p, done) {
  const klass = el("select", { name: "review-class" }, el("option", { value: "", text: "every class" }),
    ...p.classes.map((c) => el("option", { value: c.id, text: c.name })));
  const score = el("input", { name: "review-score", type: "number", min: 0, max: 1, step: 0.05, size: 4, placeholder: "score ≥" });
  const act = (action) => async () => {
    const body = { action };
    if (klass.value) body.class_id = +klass.value;
    if (score.value) body.min_score = +score.value;
    try { const r = await api.post(`/api/projects/${pid}/proposals`, body);
      toast(action === "accept" ? `${r.accepted} accepted` : `${r.rejected} rejected`); done(); }
    catch (err) { toast(err.message); }
  };
  return el("fieldset", { id: "review" }, el("legend", { text: `Proposals on ${p.with_proposals} images` }),
    el("div", { class: "row" }, klass, score,
      el("button", { id: "review-accept", text: "accept", onclick: act("accept") }),
      el("button", { id: "review-reject", text: "reject", onclick: act("reject") }),
      el("a", { href: `#/p/${pid}?proposals=true`, text: "review image by image" })));
}

async function main() {
  const s = await api.session();
  Object.assign(me, { user: s.user, role: s.role, auth: s.auth });
  showWho();
  window.addEventListener("hashchange", route);
  route();
}

main();
