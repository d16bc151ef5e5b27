// COCO run-length encoding (column-major, compressed counts string), as pycocotools.
// Masks in the browser are row-major Uint8Array(h * w) bitmaps.

export function stringToCounts(s) {
  const cnts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2];
    cnts.push(x);
  }
  return cnts;
}

export function countsToString(cnts) {
  let out = "";
  for (let i = 0; i < cnts.length; i++) {
    let x = cnts[i];
    if (i > 2) x -= cnts[i - 2];
    let more = 1;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

// {size: [h, w], counts} -> Uint8Array(h * w), row-major
export function decode(rle) {
  const [h, w] = rle.size;
  const cnts = typeof rle.counts === "string" ? stringToCounts(rle.counts) : rle.counts;
  const out = new Uint8Array(h * w);
  let i = 0;
  for (let r = 0; r < cnts.length; r++) {
    const n = cnts[r];
    if (r % 2 === 1) {
      for (let j = i; j < i + n; j++) {
        const x = (j / h) | 0, y = j - x * h;
        out[y * w + x] = 1;
      }
    }
    i += n;
  }
  return out;
}

// Uint8Array(h * w) row-major -> {size, counts: string}
export function encode(bits, h, w) {
  const cnts = [];
  let cur = 0, run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = bits[y * w + x] ? 1 : 0;
      if (v !== cur) { cnts.push(run); run = 0; cur = v; }
      run++;
    }
  }
  cnts.push(run);
  return { size: [h, w], counts: countsToString(cnts) };
}

// the bounding box [x0, y0, x1, y1) of the set pixels, or null
export function bounds(bits, h, w) {
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (bits[row + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
}
