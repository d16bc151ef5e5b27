// The annotation editor: one image, its objects, the tools. Masks are RLE on the server and
// bitmaps here; each object is drawn from a canvas the size of its bounding box, so zoom and
// pan only re-composite a few canvases (smooth on 4K images).

import * as api from "./api.js";
import { el, listQuery, me, setCrumbs, toast } from "./app.js";
import * as decoder from "./decoder.js";
import * as rle from "./rle.js";

const TOOLS = [
  ["select", "v", "Select / pan (v): click an object, drag to pan"],
  ["sam", "s", "Click (s): click the object, shift- or right-click the background; Enter keeps it, Esc drops it"],
  ["box", "b", "Box (b): drag a box around the object; Enter keeps it"],
  ["scribble", "k", "Scribble (k): draw over the object (shift: background); Enter keeps it"],
  ["polygon", "p", "Polygon (p): click vertices, drag a vertex to move it, Backspace removes the last, Enter closes"],
  ["brush", "r", "Brush (r): paint onto the selected object ([ and ] size)"],
  ["eraser", "e", "Eraser (e): erase from the selected object ([ and ] size)"],
  ["everything", "g", "Everything (g): proposals for the whole image; click one to keep it"],
  ["text", "t", "Text (t): type what to find; click a proposal to keep it"],
  ["matte", "m", "Matte (m): alpha of the selected object; paint the trimap, then Solve"],
];
const KEYS = Object.fromEntries(TOOLS.map(([t, k]) => [k, t]));

let E = null;  // the open editor's state
window.masklabTimings = [];  // click -> mask drawn, ms (read by the browser tests)
window.masklabDrawTimes = [];  // ms per redraw (zoom, pan, edits): the benchmark reads them
window.masklabEditor = {  // for tests and scripts: image pixels <-> page coordinates
  toPage(x, y) {
    const r = E.canvas.getBoundingClientRect();
    return [r.left + E.tx + x * E.zoom, r.top + E.ty + y * E.zoom];
  },
  // the pending prompts and the mask they gave (RLE), for tests
  pending() { return E ? { points: E.pending.points, labels: E.pending.labels, box: E.pending.box, refine: E.refine } : null; },
  preview() {
    const P = E && E.pending;
    if (!P || !P.preview) return null;
    return P.preview.mask || rle.encode(P.preview.bits, E.image.height, E.image.width);
  },
  objects() { return E ? E.anns.map((a) => ({ id: a.id, class_id: a.class_id, area: a.area, source: a.source, attributes: a.attributes, proposal: a.proposal, score: a.score })) : null; },
  imageId() { return E ? E.image.id : null; },
};

function hexRgb(c) { return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)); }

function classOf(id) { return E.project.classes.find((c) => c.id === id) || { name: `class ${id}`, color: "#888888" }; }

// --- mask canvases -----------------------------------------------------------------------
function maskCanvas(bits, h, w, color, alpha = 110) {
  const b = rle.bounds(bits, h, w);
  if (!b) return null;
  const [x0, y0, x1, y1] = b;
  const cw = x1 - x0, ch = y1 - y0;
  const c = document.createElement("canvas");
  c.width = cw; c.height = ch;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(cw, ch);
  const [r, g, bl] = hexRgb(color);
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const gi = (y + y0) * w + (x + x0);
      if (!bits[gi]) continue;
      const edge = x + x0 === 0 || y + y0 === 0 || x + x0 === w - 1 || y + y0 === h - 1 ||
        !bits[gi - 1] || !bits[gi + 1] || !bits[gi - w] || !bits[gi + w];
      const o = 4 * (y * cw + x);
      img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = bl; img.data[o + 3] = edge ? 255 : alpha;
    }
  }
  ctx.putImageData(img, 0, 0);
  return { canvas: c, x: x0, y: y0 };
}

function prepare(a) {
  const { height: h, width: w } = E.image;
  a.bits = rle.decode(a.mask);
  a.draw = maskCanvas(a.bits, h, w, classOf(a.class_id).color);
  return a;
}

// --- opening an image --------------------------------------------------------------------
export async function openEditor(view, imageId) {
  if (E) E.close();
  const data = await api.get(`/api/images/${imageId}/annotations`);
  const image = data.image;
  const [project, frames] = await Promise.all([api.get(`/api/projects/${image.project_id}?counts=false`),
    api.get(`/api/images/${imageId}/frames`)]);
  const query = listQuery();
  setCrumbs(["projects", "#/"], [project.name, `#/p/${project.id}${query ? "?" + query : ""}`], [image.file_name]);
  E = { image, project, query, frames, version: image.version, anns: [], selected: null,
    tool: "sam", classId: project.classes.length ? project.classes[0].id : null,
    zoom: 1, tx: 0, ty: 0, pending: emptyPending(), polygon: [], polyEdit: null,
    proposals: [], brush: 12, stroke: null, matte: { band: 8, kind: "unknown", strokes: [] }, refine: null, seq: 0, dirty: true, close: null };
  E.anns = data.annotations.map(prepare);
  buildUi(view);
  const img = new Image();
  img.decoding = "async";
  img.src = `/api/images/${imageId}/file`;
  await img.decode().catch(() => toast("cannot show this image"));
  E.img = img;
  fit();
  redraw();
  api.post(`/api/images/${imageId}/embed`).then((r) => hint(`ready (${r.backend})`)).catch(() => {});
  watchModel(imageId);
  useBrowserDecoder(imageId);
}

// --- where clicks are decoded: in this browser when it can, else on the server --------------
async function useBrowserDecoder(imageId) {
  if (await decoder.prepare()) await decoder.open(imageId);
  if (!E || E.image.id !== imageId) return;
  showDecoder();
}

function showDecoder() {
  const line = document.getElementById("decoder");
  if (!line) return;
  const s = decoder.status();
  line.textContent = s.text;
  line.dataset.path = s.path;
  window.masklabDecoder = { path: decoder.ready(E.image.id) ? "browser" : "server", bytes: decoder.embeddingBytes() };
}

// --- the click model: while SAM loads (or downloads) the server answers with GrabCut -----
async function watchModel(imageId) {
  let waited = false;
  while (E && E.image.id === imageId) {
    let s;
    try { s = await api.get("/api/segmenter"); } catch { return; }
    const line = document.getElementById("model");
    if (line) {
      line.textContent = s.message || `clicks: ${s.backend}`;
      line.dataset.state = s.state;
    }
    if (s.state !== "loading") {
      // SAM has just become ready: embed this image now, so the next click is quick
      if (waited && s.sam) {
        api.post(`/api/images/${imageId}/embed`).catch(() => {});
        useBrowserDecoder(imageId);
      }
      return;
    }
    waited = true;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function emptyPending() { return { points: [], labels: [], box: null, scribbles: [], preview: null, score: null }; }

function buildUi(view) {
  const canvas = el("canvas", { id: "canvas" });
  const stage = el("div", { id: "stage" }, canvas, el("div", { id: "hint" }), el("div", { id: "model" }),
    el("div", { id: "decoder", "data-path": "server", text: "clicks decoded on the server" }));
  const tools = el("div", { id: "tools" }, ...TOOLS.map(([t, k, help]) =>
    el("button", { "data-tool": t, title: help, text: k.toUpperCase(), onclick: () => setTool(t) })));
  const classSel = el("select", { id: "class", onchange: () => { E.classId = +classSel.value; if (E.selected) changeClass(E.selected, E.classId); } },
    ...E.project.classes.map((c, i) => el("option", { value: c.id, text: `${i + 1}. ${c.name}` })));
  const list = el("ul", { id: "objects" });
  const status = el("section", { id: "status" });
  const nav = el("section", { class: "row" },
    el("button", { id: "prev", text: "◀ prev (a)", onclick: () => go(-1) }),
    el("button", { id: "next", text: "next (d) ▶", onclick: () => go(1) }),
    el("button", { id: "undo", text: "undo", title: "Ctrl+Z", onclick: undo }),
    el("button", { id: "redo", text: "redo", title: "Ctrl+Shift+Z", onclick: redo }));
  const toolBox = el("section", { id: "toolbox" });
  const videoBox = E.frames.length ? videoPanel() : null;
  const attrBox = el("section", { id: "attrs" });
  const side = el("div", { id: "side" }, nav, videoBox, el("section", {}, el("label", {}, "Class ", classSel)),
    attrBox, toolBox, list, status);
  view.replaceChildren(el("div", { id: "editor" }, tools, stage, side));
  E.toolBox = toolBox; E.attrBox = attrBox;
  E.canvas = canvas; E.stage = stage; E.list = list; E.statusBox = status; E.classSel = classSel;
  const ro = new ResizeObserver(() => { sizeCanvas(); redraw(); });
  ro.observe(stage);
  canvas.addEventListener("mousedown", onDown);
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  document.addEventListener("keydown", onKey);
  E.close = () => {
    ro.disconnect();
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    document.removeEventListener("keydown", onKey);
    E = null;
  };
  window.addEventListener("hashchange", () => { if (E && !location.hash.startsWith(`#/i/${E.image.id}`)) E.close(); }, { once: true });
  sizeCanvas();
  setTool("sam");
  renderList();
  renderStatus();
}

function videoPanel() {
  const k = E.frames.findIndex((f) => f.id === E.image.id);
  const label = el("span", { id: "frame-label", text: `frame ${E.frames[k].frame} of ${E.frames.length}` });
  const slider = el("input", { id: "frame-slider", type: "range", min: 0, max: E.frames.length - 1, value: k,
    oninput: () => { label.textContent = `frame ${E.frames[+slider.value].frame} of ${E.frames.length}`; },
    onchange: () => { location.hash = `#/i/${E.frames[+slider.value].id}${E.query ? "?" + E.query : ""}`; } });
  return el("section", { id: "video" }, el("div", { class: "row" }, label), slider,
    el("div", { class: "row" },
      el("button", { id: "track-back", text: "◀ track", title: "track the selected object backwards", onclick: () => track("backward") }),
      el("button", { id: "track", text: "track ▶", title: "track the selected object forwards (T)", onclick: () => track("forward") })));
}

async function track(direction) {
  if (!E.selected) { toast("select an object to track"); return; }
  hint(`tracking ${direction}…`);
  try {
    const r = await api.post(`/api/annotations/${E.selected}/track`, { direction, frames: 50 });
    hint(`tracked through ${r.frames.length} frames in ${r.seconds} s` +
      (r.stopped_at !== null ? `; stopped at corrected frame ${r.stopped_at}` : ""));
    await reload();
  } catch (e) { toast(e.message); }
}

function sizeCanvas() {
  const dpr = window.devicePixelRatio || 1;
  const r = E.stage.getBoundingClientRect();
  E.canvas.width = Math.max(1, Math.round(r.width * dpr));
  E.canvas.height = Math.max(1, Math.round(r.height * dpr));
  E.canvas.style.width = `${r.width}px`;
  E.canvas.style.height = `${r.height}px`;
}

function fit() {
  const r = E.stage.getBoundingClientRect();
  E.zoom = Math.min(r.width / E.image.width, r.height / E.image.height);
  E.tx = (r.width - E.image.width * E.zoom) / 2;
  E.ty = (r.height - E.image.height * E.zoom) / 2;
}

function hint(text) { const h = document.getElementById("hint"); if (h) h.textContent = text; }

function setTool(t) {
  if (!E) return;
  E.tool = t;
  for (const b of document.querySelectorAll("#tools button")) b.classList.toggle("active", b.dataset.tool === t);
  hint(TOOLS.find((x) => x[0] === t)[2]);
  if (t === "everything" && !E.proposals.length) everything();
  E.toolBox.replaceChildren(...toolPanel(t));
  if (t === "text") document.getElementById("text-prompt").focus();
  redraw();
}

function toolPanel(t) {
  if (t === "text") {
    const input = el("input", { id: "text-prompt", placeholder: E.project.classes.map((c) => c.name).join(", "), size: 22 });
    const find = async () => {
      hint("looking…");
      try {
        const r = await api.post(`/api/images/${E.image.id}/text`, { text: input.value });
        setProposals(r.proposals, "text");
        hint(`${r.proposals.length} proposals from "${input.value || "the classes"}" — click one to keep it`);
      } catch (e) { toast(e.message); hint(""); }
    };
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); find(); } });
    return [el("div", { class: "row" }, input, el("button", { id: "find", text: "Find", onclick: find })),
      el("div", { class: "row" }, el("button", { id: "accept-all", text: "Keep all", onclick: acceptAll }))];
  }
  if (t === "matte") {
    const a = E.anns.find((x) => x.id === E.selected);
    if (!a) return [el("div", { class: "muted", text: "select an object first (v, then click it)" })];
    const band = el("input", { id: "band", type: "number", min: 1, max: 200, value: E.matte.band, size: 4,
      onchange: () => { E.matte.band = +band.value; } });
    const kind = el("select", { id: "trimap-kind", onchange: () => { E.matte.kind = kind.value; } },
      ...["unknown", "fg", "bg"].map((k) => el("option", { value: k, text: `brush: ${k}`, selected: k === E.matte.kind })));
    const img = el("img", { id: "cutout", alt: "" });
    const link = el("a", { id: "alpha-link", text: "" });
    const solve = async () => {
      hint("solving the matte…");
      try {
        const r = await api.post(`/api/annotations/${a.id}/matte`, { band: E.matte.band, strokes: E.matte.strokes });
        img.src = `${r.cutout}?t=${Date.now()}`;
        link.href = r.url; link.download = `alpha_${a.id}.png`; link.textContent = "alpha PNG";
        hint(`matte in ${r.seconds} s, ${r.partial_pixels} partial pixels`);
      } catch (e) { toast(e.message); }
    };
    return [el("div", { class: "row" }, "band ", band, " px", kind),
      el("div", { class: "row" }, el("button", { id: "solve", text: "Solve", onclick: solve }),
        el("button", { text: "clear strokes", onclick: () => { E.matte.strokes = []; redraw(); } }), link),
      el("div", { class: "checker" }, img)];
  }
  return [];
}

function setProposals(list, source) {
  E.proposals = list.map((p) => {
    const bits = rle.decode(p.mask);
    const color = p.class_id ? classOf(p.class_id).color : "#ffffff";
    return { ...p, source, bits, area: bits.reduce((s, v) => s + v, 0), draw: maskCanvas(bits, E.image.height, E.image.width, color, 70) };
  });
  redraw();
}

async function acceptAll() {
  for (const p of [...E.proposals]) await keepProposal(p);
}

// --- drawing -------------------------------------------------------------------------------
let frame = 0;
function redraw(after) {
  if (frame) { if (after) requestAnimationFrame(after); return; }
  frame = requestAnimationFrame(() => {
    frame = 0;
    const t0 = performance.now();
    draw();
    window.masklabDrawTimes.push(performance.now() - t0);
    if (window.masklabDrawTimes.length > 1000) window.masklabDrawTimes.splice(0, 500);
    if (after) after();
  });
}

function draw() {
  if (!E || !E.canvas) return;
  const dpr = window.devicePixelRatio || 1;
  const ctx = E.canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, E.canvas.width, E.canvas.height);
  ctx.setTransform(dpr * E.zoom, 0, 0, dpr * E.zoom, dpr * E.tx, dpr * E.ty);
  ctx.imageSmoothingEnabled = E.zoom < 2;
  if (E.img) ctx.drawImage(E.img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  for (const a of E.anns) {
    if (!a.visible || !a.draw || a.id === E.refine) continue;
    // a proposal (a model's, not yet reviewed) is fainter until selected
    ctx.globalAlpha = E.selected === a.id ? 1 : a.proposal ? 0.45 : 0.85;
    ctx.drawImage(a.draw.canvas, a.draw.x, a.draw.y);
  }
  ctx.globalAlpha = 1;
  for (const p of E.proposals) if (p.draw) { ctx.globalAlpha = 0.6; ctx.drawImage(p.draw.canvas, p.draw.x, p.draw.y); }
  ctx.globalAlpha = 1;
  const P = E.pending;
  if (P.preview && P.preview.draw) ctx.drawImage(P.preview.draw.canvas, P.preview.draw.x, P.preview.draw.y);
  const px = 1 / E.zoom;
  if (P.box) {
    ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2 * px;
    const [x0, y0, x1, y1] = P.box; ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  if (E.drag && E.drag.kind === "box") {
    ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2 * px; ctx.setLineDash([6 * px, 4 * px]);
    const { x0, y0, x1, y1 } = E.drag; ctx.strokeRect(x0, y0, x1 - x0, y1 - y0); ctx.setLineDash([]);
  }
  for (const s of [...P.scribbles, ...(E.stroke && E.tool === "scribble" ? [E.stroke] : [])]) {
    ctx.strokeStyle = s.positive ? "#00e676" : "#ff1744"; ctx.lineWidth = s.width; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); s.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke();
  }
  if (E.tool === "matte") {
    const colour = { unknown: "rgba(160,160,160,.8)", fg: "rgba(255,255,255,.85)", bg: "rgba(0,0,0,.85)" };
    for (const s of [...E.matte.strokes, ...(E.stroke ? [E.stroke] : [])]) {
      ctx.strokeStyle = colour[s.kind]; ctx.lineWidth = s.width; ctx.lineCap = "round"; ctx.lineJoin = "round";
      ctx.beginPath(); s.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke();
    }
  }
  if (E.stroke && (E.tool === "brush" || E.tool === "eraser")) {
    ctx.fillStyle = E.tool === "brush" ? "rgba(0,230,118,.6)" : "rgba(255,23,68,.6)";
    for (const [x, y] of E.stroke.points) { ctx.beginPath(); ctx.arc(x, y, E.brush, 0, 2 * Math.PI); ctx.fill(); }
  }
  P.points.forEach(([x, y], i) => {
    ctx.fillStyle = P.labels[i] ? "#00e676" : "#ff1744"; ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5 * px;
    ctx.beginPath(); ctx.arc(x, y, 5 * px, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
  });
  if (E.polygon.length) {
    ctx.strokeStyle = "#ffeb3b"; ctx.lineWidth = 2 * px; ctx.fillStyle = "rgba(255,235,59,.25)";
    ctx.beginPath(); E.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath(); ctx.fill(); ctx.stroke();
    ctx.fillStyle = "#ffeb3b";
    for (const [x, y] of E.polygon) ctx.fillRect(x - 3 * px, y - 3 * px, 6 * px, 6 * px);
  }
}

// --- mouse ---------------------------------------------------------------------------------
function toImage(e) {
  const r = E.canvas.getBoundingClientRect();
  return [(e.clientX - r.left - E.tx) / E.zoom, (e.clientY - r.top - E.ty) / E.zoom];
}
function inside([x, y]) { return x >= 0 && y >= 0 && x < E.image.width && y < E.image.height; }

function onDown(e) {
  if (!E) return;
  const p = toImage(e);
  const t0 = performance.now();
  if (e.button === 1 || E.space || (E.tool === "select" && e.button === 0 && !hit(p))) {
    E.drag = { kind: "pan", sx: e.clientX, sy: e.clientY, tx: E.tx, ty: E.ty };
    if (E.tool === "select") select(null);
    return;
  }
  if (E.tool === "select") { select(hit(p)); return; }
  if (E.tool === "box") {  // a box may start on the margin: it is clipped to the image
    E.drag = { kind: "box", x0: p[0], y0: p[1], x1: p[0], y1: p[1] };
    return;
  }
  if (!inside(p)) return;
  const negative = e.button === 2 || e.shiftKey;
  if (E.tool === "sam") {
    E.pending.points.push(p); E.pending.labels.push(negative ? 0 : 1);
    runSegment(t0);
  } else if (E.tool === "scribble") {
    E.stroke = { points: [p], width: Math.max(3, E.brush / 2), positive: !negative };
  } else if (E.tool === "brush" || E.tool === "eraser") {
    if (E.tool === "eraser" && !E.selected) { toast("select an object to erase from"); return; }
    E.stroke = { points: [p] };
    redraw();
  } else if (E.tool === "polygon") {
    const k = E.polygon.findIndex(([x, y]) => Math.hypot(x - p[0], y - p[1]) * E.zoom < 7);
    if (k >= 0) E.drag = { kind: "vertex", k };
    else { E.polygon.push(p); redraw(); }
  } else if (E.tool === "everything" || E.tool === "text") {
    acceptProposal(p);
  } else if (E.tool === "matte") {
    E.stroke = { points: [p], width: Math.max(2, E.brush), kind: E.matte.kind };
  }
}

function onMove(e) {
  if (!E || !E.canvas) return;
  if (E.drag && E.drag.kind === "pan") {
    E.tx = E.drag.tx + e.clientX - E.drag.sx; E.ty = E.drag.ty + e.clientY - E.drag.sy; redraw();
    return;
  }
  const p = toImage(e);
  if (E.drag && E.drag.kind === "box") { E.drag.x1 = p[0]; E.drag.y1 = p[1]; redraw(); }
  else if (E.drag && E.drag.kind === "vertex") { E.polygon[E.drag.k] = p; redraw(); }
  else if (E.stroke) { E.stroke.points.push(p); redraw(); }
}

function onUp() {
  if (!E) return;
  const d = E.drag; E.drag = null;
  if (d && d.kind === "box") {
    const { width: w, height: h } = E.image;
    const box = [Math.max(0, Math.min(d.x0, d.x1)), Math.max(0, Math.min(d.y0, d.y1)),
      Math.min(w, Math.max(d.x0, d.x1)), Math.min(h, Math.max(d.y0, d.y1))];
    if (box[2] - box[0] > 2 && box[3] - box[1] > 2) { E.pending.box = box; runSegment(performance.now()); }
    else if (Math.abs(d.x1 - d.x0) > 2 && Math.abs(d.y1 - d.y0) > 2) toast("the box lies outside the image");
    redraw();
  }
  if (E.stroke) {
    const s = E.stroke; E.stroke = null;
    if (E.tool === "scribble") { E.pending.scribbles.push(s); runSegment(performance.now()); }
    else if (E.tool === "matte") { E.matte.strokes.push(s); redraw(); }
    else if (E.tool === "brush" || E.tool === "eraser") paint(s.points, E.tool === "brush");
  }
}

function onWheel(e) {
  e.preventDefault();
  const r = E.canvas.getBoundingClientRect();
  const mx = e.clientX - r.left, my = e.clientY - r.top;
  zoomAt(Math.exp(-e.deltaY * 0.0015), mx, my);
}

function zoomAt(f, mx, my) {
  const z = Math.min(64, Math.max(0.02, E.zoom * f));
  E.tx = mx - (mx - E.tx) * (z / E.zoom); E.ty = my - (my - E.ty) * (z / E.zoom); E.zoom = z;
  redraw();
}

function hit([x, y]) {
  if (!inside([x, y])) return null;
  const i = Math.floor(y) * E.image.width + Math.floor(x);
  const order = [...E.anns].sort((a, b) => b.z - a.z || b.id - a.id);
  const a = order.find((a) => a.visible && a.bits[i]);
  return a ? a.id : null;
}

// --- prompts -> masks ------------------------------------------------------------------------
async function runSegment(t0) {
  const P = E.pending;
  const seq = ++E.seq;
  const body = { points: P.points, labels: P.labels, box: P.box, scribbles: P.scribbles };
  if (E.refine) body.mask = E.anns.find((a) => a.id === E.refine).mask;
  redraw();
  // the browser's decoder (scribbles go to the server, which samples points along them)
  if (!P.scribbles.length && decoder.ready(E.image.id)) {
    try {
      const refine = E.refine ? E.anns.find((a) => a.id === E.refine).bits : null;
      const r = await decoder.decode(E.image.id, { points: P.points, labels: P.labels, box: P.box, mask: refine });
      if (!E || seq !== E.seq) return;
      const color = E.classId ? classOf(E.classId).color : "#00e5ff";
      P.preview = { mask: null, bits: r.bits, draw: maskCanvas(r.bits, E.image.height, E.image.width, color, 150) };
      P.score = r.score;
      P.source = "sam";
      window.masklabLastDecode = { path: "browser", ms: r.ms };
      redraw(() => { window.masklabTimings.push(performance.now() - t0); });
      hint(`mask ${r.score.toFixed(2)} in ${r.ms.toFixed(0)} ms in this browser — Enter keeps it, Esc drops it`);
      return;
    } catch (e) {
      toast(`browser decoder: ${e.message}; using the server`);
      showDecoder();
    }
  }
  try {
    const r = await api.request("POST", `/api/images/${E.image.id}/segment`, body);
    if (!E || seq !== E.seq) return;  // a newer prompt is on its way
    const m = r.masks[0];
    const bits = rle.decode(m.mask);
    const color = E.classId ? classOf(E.classId).color : "#00e5ff";
    P.preview = { mask: m.mask, bits, draw: maskCanvas(bits, E.image.height, E.image.width, color, 150) };
    P.score = m.score;
    P.source = r.backend === "grabcut" || r.backend === "graphcut" ? r.backend : "sam";
    window.masklabLastDecode = { path: "server", ms: r.ms };
    redraw(() => { window.masklabTimings.push(performance.now() - t0); });
    hint(`mask ${m.score.toFixed(2)} in ${r.ms} ms — Enter keeps it, Esc drops it`);
  } catch (e) { toast(e.message); }
}

function clearPending() { E.pending = emptyPending(); E.refine = null; E.polygon = []; E.polyEdit = null; redraw(); }

async function accept() {
  if (E.polygon.length >= 3) return acceptPolygon();
  const P = E.pending;
  if (!P.preview) return;
  if (!P.preview.mask) P.preview.mask = rle.encode(P.preview.bits, E.image.height, E.image.width);
  if (E.refine) {
    const id = E.refine;
    await change(() => api.patch(`/api/annotations/${id}`, { version: E.version, mask: P.preview.mask, source: P.source }));
  } else {
    if (!E.classId) { toast("the project has no classes"); return; }
    await change(() => api.post(`/api/images/${E.image.id}/annotations`, { version: E.version,
      class_id: E.classId, mask: P.preview.mask, source: P.source, score: P.score }));
  }
  clearPending();
}

// every change: send the version read, take the new one; 409 reloads the image's objects.
// Changes go one after another, so each is sent with the version the previous one returned.
let queue = Promise.resolve();
function change(fn) {
  const run = queue.then(() => applyChange(fn));
  queue = run.catch(() => {});
  return run;
}

async function applyChange(fn) {
  try {
    const r = await fn();
    E.version = r.version;
    if (E.image.status === "new") { E.image.status = "in_progress"; renderStatus(); }
    if (r.annotation) {
      const a = prepare(r.annotation);
      const k = E.anns.findIndex((x) => x.id === a.id);
      if (k >= 0) E.anns[k] = a; else E.anns.push(a);
      E.selected = a.id;
    }
    if (r.deleted) { E.anns = E.anns.filter((a) => a.id !== r.deleted); E.selected = null; }
    renderList(); redraw();
    return r;
  } catch (e) {
    if (e.status === 409) { toast("this image was changed elsewhere — reloaded"); await reload(); }
    else toast(e.message);
    return null;
  }
}

async function reload() {
  const data = await api.get(`/api/images/${E.image.id}/annotations`);
  E.image = data.image; E.version = data.image.version;
  E.anns = data.annotations.map(prepare);
  if (!E.anns.find((a) => a.id === E.selected)) E.selected = null;
  renderList(); renderStatus(); redraw();
}

// undo / redo go through the same queue as edits (a burst of Ctrl+Z is applied in order)
function undo() { return change(async () => { const r = await api.post(`/api/images/${E.image.id}/undo`, { version: E.version }); await reload(); return r; }); }
function redo() { return change(async () => { const r = await api.post(`/api/images/${E.image.id}/redo`, { version: E.version }); await reload(); return r; }); }

function rasterPolygon(pts) {
  const { height: h, width: w } = E.image;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.max(0, Math.floor(Math.min(...xs))), y0 = Math.max(0, Math.floor(Math.min(...ys)));
  const x1 = Math.min(w, Math.ceil(Math.max(...xs)) + 1), y1 = Math.min(h, Math.ceil(Math.max(...ys)) + 1);
  const c = document.createElement("canvas"); c.width = Math.max(1, x1 - x0); c.height = Math.max(1, y1 - y0);
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x - x0, y - y0) : ctx.moveTo(x - x0, y - y0)));
  ctx.closePath(); ctx.fill();
  const data = ctx.getImageData(0, 0, c.width, c.height).data;
  const bits = new Uint8Array(h * w);
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
    if (data[4 * (y * c.width + x) + 3] >= 128) bits[(y + y0) * w + (x + x0)] = 1;
  }
  return bits;
}

async function acceptPolygon() {
  const bits = rasterPolygon(E.polygon);
  if (!rle.bounds(bits, E.image.height, E.image.width)) { toast("the polygon covers no pixel"); return; }
  const mask = rle.encode(bits, E.image.height, E.image.width);
  if (E.polyEdit) {
    const id = E.polyEdit;
    await change(() => api.patch(`/api/annotations/${id}`, { version: E.version, mask, source: "hand" }));
  } else {
    await change(() => api.post(`/api/images/${E.image.id}/annotations`, { version: E.version, class_id: E.classId, mask, source: "hand" }));
  }
  clearPending();
}

async function editVertices() {
  if (!E.selected) { toast("select an object first"); return; }
  const r = await api.get(`/api/annotations/${E.selected}/polygons?detail=1.5`);
  const outer = r.polygons.filter((p) => !p.hole);
  if (outer.length !== 1 || r.polygons.length !== 1) { toast("only a single polygon without holes can be edited as vertices"); return; }
  E.polygon = outer[0].points; E.polyEdit = E.selected; setTool("polygon");
}

async function paint(points, add) {
  const { height: h, width: w } = E.image;
  const target = E.anns.find((a) => a.id === E.selected);
  const bits = target ? new Uint8Array(target.bits) : new Uint8Array(h * w);
  const r = E.brush, r2 = r * r;
  for (const [cx, cy] of points) {
    for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(h - 1, Math.ceil(cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(w - 1, Math.ceil(cx + r)); x++) {
        if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r2) bits[y * w + x] = add ? 1 : 0;
      }
    }
  }
  if (!rle.bounds(bits, h, w)) {
    if (target) await change(() => api.del(`/api/annotations/${target.id}?version=${E.version}`));
    redraw(); return;
  }
  const mask = rle.encode(bits, h, w);
  if (target) await change(() => api.patch(`/api/annotations/${target.id}`, { version: E.version, mask }));
  else await change(() => api.post(`/api/images/${E.image.id}/annotations`, { version: E.version, class_id: E.classId, mask, source: "hand" }));
}

async function everything() {
  hint("finding proposals…");
  try {
    const r = await api.post(`/api/images/${E.image.id}/everything`);
    if (!E) return;
    setProposals(r.proposals, "everything");
    hint(`${E.proposals.length} proposals — click one to keep it, Esc clears them`);
  } catch (e) { toast(e.message); }
}

async function acceptProposal([x, y]) {
  const i = Math.floor(y) * E.image.width + Math.floor(x);
  const hits = E.proposals.filter((p) => p.bits[i]).sort((a, b) => a.area - b.area);
  if (hits.length) await keepProposal(hits[0]);
}

async function keepProposal(p) {
  const r = await change(() => api.post(`/api/images/${E.image.id}/annotations`, { version: E.version,
    class_id: p.class_id || E.classId, mask: p.mask, source: p.source || "everything", score: p.score }));
  if (r) { E.proposals = E.proposals.filter((q) => q !== p); redraw(); }
}

// --- objects list, status, navigation ----------------------------------------------------------
function select(id) {
  E.selected = id;
  const a = E.anns.find((x) => x.id === id);
  if (a) { E.classId = a.class_id; E.classSel.value = a.class_id; }
  if (E.tool === "matte") { E.matte.strokes = []; E.toolBox.replaceChildren(...toolPanel("matte")); }
  renderList(); redraw();
}

async function changeClass(id, classId) {
  await change(() => api.patch(`/api/annotations/${id}`, { version: E.version, class_id: classId }));
}

function renderAttrs() {
  const a = E.anns.find((x) => x.id === E.selected);
  const schema = E.project.attributes || [];
  if (!a || !schema.length) { E.attrBox.replaceChildren(); return; }
  const values = a.attributes || {};
  const save = async (name, value) => {
    await change(() => api.patch(`/api/annotations/${a.id}`, { version: E.version, attributes: { [name]: value } }));
  };
  E.attrBox.replaceChildren(...schema.map((at) => {
    let input;
    if (at.type === "bool") {
      input = el("input", { type: "checkbox", "data-attr": at.name, checked: values[at.name] === true,
        onchange: () => save(at.name, input.checked) });
    } else if (at.type === "choice") {
      input = el("select", { "data-attr": at.name, onchange: () => save(at.name, input.value || null) },
        el("option", { value: "", text: "—" }),
        ...at.values.map((v) => el("option", { value: v, text: v, selected: values[at.name] === v })));
    } else {
      input = el("input", { "data-attr": at.name, type: at.type === "number" ? "number" : "text", size: 12,
        value: values[at.name] ?? "", onchange: () => save(at.name, at.type === "number" ? Number(input.value) : input.value) });
    }
    return el("div", { class: "row" }, el("label", {}, `${at.name} `, input));
  }));
}

function renderList() {
  if (!E) return;
  renderAttrs();
  const order = [...E.anns].sort((a, b) => b.z - a.z || b.id - a.id);
  const nProposals = E.anns.filter((a) => a.proposal).length;
  const head = nProposals ? [el("li", { class: "proposals-head" },
    el("span", { text: `${nProposals} proposed` }),
    el("button", { id: "accept-all", title: "accept every proposal of this image (Shift+Y)", text: "accept all", onclick: () => reviewAll("accept") }),
    el("button", { id: "reject-all", title: "reject every proposal of this image (Shift+N)", text: "reject all", onclick: () => reviewAll("reject") }))] : [];
  E.list.replaceChildren(...head, ...order.map((a) => {
    const c = classOf(a.class_id);
    const sw = el("span", { class: "swatch" }); sw.style.background = c.color;
    const cls = [a.id === E.selected ? "selected" : null, a.proposal ? "proposal" : null].filter(Boolean).join(" ") || null;
    const review = a.proposal ? [
      el("button", { class: "accept", title: "accept (y)", text: "✓", onclick: (e) => { e.stopPropagation(); accept1(a.id); } }),
      el("button", { class: "reject", title: "reject (n)", text: "✗", onclick: (e) => { e.stopPropagation(); remove(a.id); } })] : [];
    return el("li", { class: cls, "data-id": a.id, onclick: () => select(a.id) },
      sw, el("span", { class: "name", text: `${c.name} #${a.id}` }),
      el("span", { class: "muted", text: a.proposal ? `proposed (${a.source}${a.score != null ? " " + a.score.toFixed(2) : ""})` : a.source }),
      ...review,
      el("button", { title: "show / hide (h)", text: a.visible ? "◉" : "○", onclick: (e) => { e.stopPropagation(); toggle(a); } }),
      el("button", { title: "bring forward", text: "▲", onclick: (e) => { e.stopPropagation(); raise(a); } }),
      el("button", { title: "delete (Del)", text: "✕", onclick: (e) => { e.stopPropagation(); remove(a.id); } }));
  }));
}

async function toggle(a) { await change(() => api.patch(`/api/annotations/${a.id}`, { version: E.version, visible: !a.visible })); }
async function raise(a) { const top = Math.max(...E.anns.map((x) => x.z)); await change(() => api.patch(`/api/annotations/${a.id}`, { version: E.version, z: top + 1 })); }
async function remove(id) { await change(() => api.del(`/api/annotations/${id}?version=${E.version}`)); }
async function accept1(id) { await change(() => api.patch(`/api/annotations/${id}`, { version: E.version, proposal: false })); }
// accept / reject every proposal of this image (one request; the objects are then reloaded)
function reviewAll(action) {
  return change(async () => {
    const r = await api.post(`/api/projects/${E.project.id}/proposals`, { action, image_id: E.image.id });
    await reload();
    toast(`${action === "accept" ? r.accepted + " accepted" : r.rejected + " rejected"}`);
    return { version: E.version };
  });
}

function renderStatus() {
  const im = E.image;
  const setStatus = async (status, comment = "") => {
    try { E.image = await api.put(`/api/images/${im.id}/status`, { status, comment }); renderStatus(); toast(`marked ${status}`); }
    catch (e) { toast(e.message); }
  };
  const reviewer = me.role === "reviewer" || me.role === "admin";
  E.statusBox.replaceChildren(...[
    el("div", {}, "Status: ", el("b", { id: "image-status", class: `status-${E.image.status}`, text: E.image.status.replace("_", " ") })),
    E.image.comment ? el("div", { class: "muted", id: "image-comment", text: E.image.comment }) : null,
    el("div", { class: "row" },
      el("button", { id: "mark-done", text: "Done", onclick: () => setStatus("done") }),
      reviewer ? el("button", { id: "approve", text: "Approve", onclick: () => setStatus("approved") }) : null,
      reviewer ? el("button", { id: "reject", text: "Reject…", onclick: () => {
        const c = prompt("What needs fixing?"); if (c) setStatus("rejected", c); } }) : null),
  ].filter(Boolean));
}

// next / previous: the server finds the neighbour in the project page's list (same filter and
// order), so this stays one small request however large the project is
async function go(step) {
  const q = new URLSearchParams(E.query); q.set("step", step);
  const from = E.image.id;
  const r = await api.get(`/api/images/${from}/neighbour?${q}`).catch((e) => { toast(e.message); return null; });
  if (!r || !E || E.image.id !== from) return;
  if (!r.image) { toast(step > 0 ? "this is the last image of the list" : "this is the first image of the list"); return; }
  location.hash = `#/i/${r.image.id}${E.query ? "?" + E.query : ""}`;
}

function onKey(e) {
  if (!E || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const k = e.key;
  if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "z") { e.preventDefault(); (e.shiftKey ? redo : undo)(); return; }
  if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "y") { e.preventDefault(); redo(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (k === " ") { E.space = true; e.preventDefault(); document.addEventListener("keyup", () => { if (E) E.space = false; }, { once: true }); return; }
  if (k === "T" && E.frames.length) { track("forward"); return; }
  if (KEYS[k]) { setTool(KEYS[k]); return; }
  if (k === "Enter") { accept(); return; }
  if (k === "Escape") { clearPending(); E.proposals = []; redraw(); return; }
  if (k === "Backspace" && E.polygon.length) { E.polygon.pop(); redraw(); return; }
  if (k === "Delete" && E.selected) { remove(E.selected); return; }
  const sel = E.selected && E.anns.find((a) => a.id === E.selected);
  if (k === "y" && sel && sel.proposal) { accept1(sel.id); return; }
  if (k === "n" && sel && sel.proposal) { remove(sel.id); return; }
  if (k === "Y" && E.anns.some((a) => a.proposal)) { reviewAll("accept"); return; }
  if (k === "N" && E.anns.some((a) => a.proposal)) { reviewAll("reject"); return; }
  if (k === "d" || k === "ArrowRight") { go(1); return; }
  if (k === "a" || k === "ArrowLeft") { go(-1); return; }
  if (k === "f" && E.selected) { E.refine = E.selected; E.pending = emptyPending(); setTool("sam"); hint("refine: click to add or remove parts, Enter keeps it"); return; }
  if (k === "o") { editVertices(); return; }
  if (k === "h" && E.selected) { toggle(E.anns.find((a) => a.id === E.selected)); return; }
  if (k === "[") { E.brush = Math.max(1, E.brush / 1.25); hint(`brush ${E.brush.toFixed(0)} px`); return; }
  if (k === "]") { E.brush = Math.min(500, E.brush * 1.25); hint(`brush ${E.brush.toFixed(0)} px`); return; }
  if (k === "+" || k === "=") { const r = E.canvas.getBoundingClientRect(); zoomAt(1.25, r.width / 2, r.height / 2); return; }
  if (k === "-") { const r = E.canvas.getBoundingClientRect(); zoomAt(0.8, r.width / 2, r.height / 2); return; }
  if (k === "0") { fit(); redraw(); return; }
  if (/^[1-9]$/.test(k)) {
    const c = E.project.classes[+k - 1];
    if (c) { E.classId = c.id; E.classSel.value = c.id; if (E.selected) changeClass(E.selected, c.id); }
  }
}
