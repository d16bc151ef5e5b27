// Clicks decoded in the browser: the server sends each image's embedding once (fp16, binary)
// and the ONNX prompt decoder exported from its model; a Web Worker runs it (see
// decoder-worker.js). Where that cannot run (no WebAssembly, classical backends, a worker
// that fails to load) the editor sends prompts to the server, and `status()` says which
// path is in use.

import * as api from "./api.js";

let worker = null;
let pending = new Map();
let seq = 0;
const state = { path: "server", reason: "starting", info: null, key: null, threads: 0, imageId: null, loading: null };

function call(type, payload = {}, transfer = []) {
  return new Promise((resolve, reject) => {
    const id = ++seq;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...payload }, transfer);
  });
}

function fail(reason) {
  state.path = "server"; state.reason = reason; state.imageId = null;
  if (worker) { worker.terminate(); worker = null; }
  for (const p of pending.values()) p.reject(new Error(reason));
  pending = new Map();
}

// Set up (or keep) the worker for the model answering now; false: clicks go to the server.
export async function prepare() {
  if (typeof WebAssembly !== "object" || typeof Worker !== "function") { fail("this browser has no WebAssembly workers"); return false; }
  // a person (or a benchmark) may keep clicks on the server: localStorage["masklab.decoder"] = "server"
  try { if (localStorage.getItem("masklab.decoder") === "server") { fail("browser decoding turned off here"); return false; } } catch { /* no storage */ }
  let info;
  try { info = await api.get("/api/decoder"); } catch (e) { fail(e.message); return false; }
  if (!info.available) { fail(info.reason); return false; }
  if (worker && state.key === info.key && state.path === "browser") return true;
  fail("loading the decoder");
  try {
    worker = new Worker(new URL("./decoder-worker.js", import.meta.url), { type: "module" });
    worker.onmessage = ({ data }) => {
      const p = pending.get(data.id);
      if (!p) return;
      pending.delete(data.id);
      if (data.type === "error") p.reject(new Error(data.message)); else p.resolve(data);
    };
    worker.onerror = (e) => fail(`the decoder worker failed (${e.message || "no WebAssembly?"})`);
    const r = await call("init", { url: info.url, info });
    Object.assign(state, { path: "browser", reason: "", info, key: info.key, threads: r.threads });
    return true;
  } catch (e) { fail(`the browser decoder did not load (${e.message})`); return false; }
}

// Load an image's embedding into the worker (once per image); false: use the server.
export async function open(imageId) {
  if (state.path !== "browser") return false;
  if (state.imageId === imageId) return true;
  if (state.loading && state.loading.imageId === imageId) return state.loading.promise;
  const promise = (async () => {
    const r = await fetch(`/api/images/${imageId}/embedding`, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`embedding: ${r.status}`);
    if (r.headers.get("X-Model") !== state.info.model) throw new Error("the model changed");
    const buffer = await r.arrayBuffer();
    const got = await call("embedding", { imageId, buffer }, [buffer]);
    state.imageId = imageId; state.bytes = got.bytes; state.scale = got.scale;
    state.size = [got.height, got.width];
    return true;
  })().catch((e) => { state.imageId = null; state.reason = e.message; return false; })
    .finally(() => { state.loading = null; });
  state.loading = { imageId, promise };
  return promise;
}

export function ready(imageId) { return state.path === "browser" && state.imageId === imageId; }

export function status() {
  if (state.path === "browser") return { path: "browser", text: `clicks decoded in this browser (WebAssembly, ${state.threads} thread${state.threads === 1 ? "" : "s"})` };
  return { path: "server", text: `clicks decoded on the server${state.reason ? ` (${state.reason})` : ""}` };
}

// Python's round(): halves to even (the server's mask prompt uses it)
function roundEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// A mask (row-major 0/1, h x w) as the decoder's low-res mask prompt: resized into the model's
// frame (a quarter of it) with bilinear weights at pixel centres as OpenCV does, +-10 logits
function maskPrompt(bits, h, w) {
  const [mh, mw] = state.info.mask_input_size;
  const [sx, sy] = state.scale;
  const nw = Math.max(1, roundEven((w * sx) / 4)), nh = Math.max(1, roundEven((h * sy) / 4));
  const out = new Float32Array(mh * mw).fill(-10);
  const fx = w / nw, fy = h / nh;
  for (let y = 0; y < Math.min(nh, mh); y++) {
    let syf = (y + 0.5) * fy - 0.5, y0 = Math.floor(syf), b = syf - y0;
    if (y0 < 0) { y0 = 0; b = 0; }
    if (y0 >= h - 1) { y0 = h - 1; b = 0; }
    const y1 = Math.min(h - 1, y0 + 1);
    for (let x = 0; x < Math.min(nw, mw); x++) {
      let sxf = (x + 0.5) * fx - 0.5, x0 = Math.floor(sxf), a = sxf - x0;
      if (x0 < 0) { x0 = 0; a = 0; }
      if (x0 >= w - 1) { x0 = w - 1; a = 0; }
      const x1 = Math.min(w - 1, x0 + 1);
      const v = (1 - b) * ((1 - a) * bits[y0 * w + x0] + a * bits[y0 * w + x1]) +
        b * ((1 - a) * bits[y1 * w + x0] + a * bits[y1 * w + x1]);
      if (v > 0.5) out[y * mw + x] = 10;
    }
  }
  return out;
}

// Prompts (image pixels) -> { bits (row-major 0/1), score, ms }: clicks, a box, a mask prompt
export async function decode(imageId, { points = [], labels = [], box = null, mask = null }) {
  if (!ready(imageId)) throw new Error("the browser decoder is not ready for this image");
  const [sx, sy] = state.scale;
  const coords = [], lab = [];
  points.forEach(([x, y], i) => { coords.push(x * sx, y * sy); lab.push(labels[i]); });
  if (box) { coords.push(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy); lab.push(2, 3); }
  if (!box || state.info.pad_with_box) { coords.push(0, 0); lab.push(-1); }
  const [h, w] = state.size;
  const maskInput = mask ? maskPrompt(mask, h, w) : null;
  const r = await call("decode", { imageId, coords, labels: lab, maskInput }, maskInput ? [maskInput.buffer] : []);
  return { bits: r.bits, score: r.score, ms: r.ms };
}

export function embeddingBytes() { return state.bytes || 0; }
