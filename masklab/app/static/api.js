// The REST client of the front end: JSON in and out, the CSRF header on every change,
// a save indicator fed by the count of unfinished changes.

let csrf = null;
let pending = 0;
let failed = false;
const listeners = [];

export function onSaveState(fn) { listeners.push(fn); }
function emit() {
  const state = failed ? "error" : pending ? "saving" : "saved";
  for (const fn of listeners) fn(state, pending);
}

export class ApiError extends Error {
  constructor(status, detail, body) { super(detail); this.status = status; this.body = body; }
}

export async function session() {
  const s = await request("GET", "/api/session");
  csrf = s.csrf || null;
  return s;
}

export function setCsrf(token) { csrf = token; }

export async function request(method, url, body, { form = false } = {}) {
  const changes = method !== "GET";
  const headers = {};
  if (changes && csrf) headers["X-CSRF-Token"] = csrf;
  let payload;
  if (form) payload = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  if (changes) { pending++; emit(); }
  try {
    const r = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    const isJson = (r.headers.get("content-type") || "").includes("json");
    const data = isJson ? await r.json() : await r.text();
    if (!r.ok) {
      const err = new ApiError(r.status, (data && data.detail) || r.statusText, data);
      if (changes && r.status >= 500) failed = true;
      throw err;
    }
    if (changes) failed = false;
    return data;
  } catch (e) {
    if (changes && !(e instanceof ApiError)) failed = true;  // network down
    throw e;
  } finally {
    if (changes) { pending--; emit(); }
  }
}

export const get = (u) => request("GET", u);
export const post = (u, b) => request("POST", u, b === undefined ? {} : b);
export const put = (u, b) => request("PUT", u, b);
export const patch = (u, b) => request("PATCH", u, b);
export const del = (u) => request("DELETE", u);
