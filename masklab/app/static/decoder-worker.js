// The browser's prompt decoder, in a Web Worker: onnxruntime-web (WebAssembly; threads when
// the page is cross-origin isolated) runs the SAM-family prompt decoder that the server
// exported from its weights (`masklab export onnx --decoder`), on the image embedding the
// server computed once (fp16 safetensors bytes). Messages: init {url, info} -> ready;
// embedding {imageId, buffer} -> loaded; decode {imageId, coords, labels, maskInput} -> mask.

import * as ort from "./vendor/onnxruntime-web/ort.wasm.min.mjs";

ort.env.wasm.wasmPaths = new URL("./vendor/onnxruntime-web/", import.meta.url).href;
const threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
ort.env.wasm.numThreads = threads;

let session = null;       // a prompt -> masks
let maskSession = null;   // a prompt with a mask (refine) -> masks
let imageSession = null;  // the per-image part, run once per embedding
let info = null;
let image = null;  // { id, feeds, height, width, scale: [sx, sy] }

// fp16 -> fp32 through a table of all 65,536 half-precision values
const HALF = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    t[h] = e === 0 ? s * 2 ** -14 * (m / 1024) : e === 31 ? (m ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + m / 1024);
  }
  return t;
})();

function readSafetensors(buffer) {
  const view = new DataView(buffer);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, n)));
  const base = 8 + n;
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [a, b] = t.data_offsets;
    const bytes = buffer.slice(base + a, base + b);
    let data;
    if (t.dtype === "F16") {
      const h = new Uint16Array(bytes); data = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) data[i] = HALF[h[i]];
    } else if (t.dtype === "F32") data = new Float32Array(bytes);
    else if (t.dtype === "I64") data = new BigInt64Array(bytes);
    else throw new Error(`unexpected tensor type ${t.dtype}`);
    tensors[name] = { data, shape: t.shape };
  }
  return { tensors, meta: header.__metadata__ || {} };
}

async function loadEmbedding(imageId, buffer) {
  const { tensors, meta } = readSafetensors(buffer);
  const [height, width] = JSON.parse(meta.size);
  const input = JSON.parse(meta.input_size);
  const names = Object.keys(tensors).filter((k) => k === "emb" || k.startsWith("emb.")).sort(
    (a, b) => (+(a.split(".")[1] || 0)) - (+(b.split(".")[1] || 0)));
  let feeds = {};
  names.forEach((k, i) => { feeds[`embedding_${i}`] = new ort.Tensor("float32", tensors[k].data, tensors[k].shape); });
  feeds = await imageSession.run(feeds);  // image_embedding, keys0, proj0 (and s1, s0)
  // image pixels -> the model's frame, as the server's SamBackend maps prompts
  let scale = [input[1] / width, input[0] / height];
  const r = tensors.reshaped_input_sizes;
  if (r) scale = [Number(r.data[1]) / width, Number(r.data[0]) / height];
  image = { id: imageId, feeds, height, width, scale };
  return { height, width, scale, bytes: buffer.byteLength };
}

async function decode({ coords, labels, maskInput }) {
  const n = labels.length;
  const [mh, mw] = info.mask_input_size;
  const values = {
    ...image.feeds,
    coords: new ort.Tensor("float32", Float32Array.from(coords), [1, n, 2]),
    labels: new ort.Tensor("int64", BigInt64Array.from(labels.map((v) => BigInt(v))), [1, n]),
    orig_size: new ort.Tensor("int64", BigInt64Array.from([BigInt(image.height), BigInt(image.width)]), [2]),
  };
  if (maskInput) values.mask_input = new ort.Tensor("float32", maskInput, [1, 1, mh, mw]);
  const s = maskInput ? maskSession : session;
  const feeds = {};
  for (const name of s.inputNames) feeds[name] = values[name];
  const out = await s.run(feeds);
  const k = out.iou.data.length;
  let best = 0;
  for (let i = 1; i < k; i++) if (out.iou.data[i] > out.iou.data[best]) best = i;
  const plane = image.height * image.width;
  const bits = out.masks.data.slice(best * plane, (best + 1) * plane);
  return { bits, score: out.iou.data[best] };
}

self.onmessage = async ({ data }) => {
  const reply = (msg, transfer = []) => self.postMessage({ id: data.id, ...msg }, transfer);
  try {
    if (data.type === "init") {
      info = data.info;
      // the graphs come optimized by the server (masklab.interactive.sam_onnx._optimize):
      // onnxruntime-web's own pass breaks on some of the traced Reshapes
      const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" };
      [session, maskSession, imageSession] = await Promise.all([data.url, data.info.mask_url,
        data.info.image_url].map((u) => ort.InferenceSession.create(u, opts)));
      reply({ type: "ready", threads });
    } else if (data.type === "embedding") {
      reply({ type: "loaded", ...(await loadEmbedding(data.imageId, data.buffer)) });
    } else if (data.type === "decode") {
      if (!image || image.id !== data.imageId) throw new Error("the embedding of this image is not loaded");
      const t = performance.now();
      const r = await decode(data);
      reply({ type: "mask", bits: r.bits, score: r.score, ms: performance.now() - t }, [r.bits.buffer]);
    }
  } catch (e) {
    reply({ type: "error", message: String(e && e.message ? e.message : e) });
  }
};
