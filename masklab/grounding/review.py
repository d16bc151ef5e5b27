"""Reviewing an auto-labelled dataset: a contact sheet, then corrections applied to it.

``write_review(run)`` writes ``run/review.html`` and ``run/review/<id>.jpg``: one card per
annotation — a crop around it with its mask drawn, its id, category, score, the prompt that
found it and its image — sorted by lowest score first, where the mistakes are.

``apply_review(run, corrections)`` reads a text file of corrections, one per line::

    reject 3001 3004        # drop these annotations
    relabel 5002 dog        # this annotation is a dog

checks every line first (unknown ids or categories are errors naming the line), then
rewrites the affected image parts atomically, appends what it did to ``review.jsonl`` and
rebuilds ``annotations.json`` and ``yolo/``. Annotation ids are stable (image id × 1000 +
k), so a correction file stays valid across runs.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError


def _run(run: str | os.PathLike):
    from masklab.grounding.label import LabelSettings

    run = Path(run)
    sfile = run / "settings.json"
    if not sfile.is_file():
        raise InputError("not a masklab label run (no settings.json)", run)
    raw = json.loads(sfile.read_text(encoding="utf-8"))
    raw.pop("format", None)
    return run, LabelSettings(**raw)


def _parts(run: Path) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text(encoding="utf-8")))
            for p in sorted((run / "parts").glob("*.json"))]


def write_review(run: str | os.PathLike, *, limit: int | None = None, margin: float = 0.25,
                 quiet: bool | None = None) -> Path:
    """The contact sheet (see the module docstring); ``limit``: the lowest-scored only."""
    import cv2

    from masklab import rle as _rle
    from masklab.io.atomic import atomic_open
    from masklab.io.coco import annotation_rle
    from masklab.io.images import read_image, write_image
    from masklab.progress import progress

    run, settings = _run(run)
    cards = []
    for _, part in _parts(run):
        for a in part["annotations"]:
            cards.append((a["score"], a, part))
    cards.sort(key=lambda c: (c[0], c[1]["id"]))
    if limit is not None:
        cards = cards[:limit]
    cache: dict[str, np.ndarray] = {}
    rows = []
    for _, a, part in progress(cards, desc="review", quiet=quiet, unit="annotation"):
        img = part["image"]
        src = part.get("path")
        if src not in cache:
            cache.clear()  # one image decoded at a time
            cache[src] = read_image(src) if src and Path(src).is_file() else None
        image = cache[src]
        thumb = f"review/{a['id']}.jpg"
        if image is not None:
            m = _rle.decode([annotation_rle(a, img["height"], img["width"])])[0]
            x, y, w, h = a["bbox"]
            mx, my = margin * w + 4, margin * h + 4
            x0, y0 = max(0, int(x - mx)), max(0, int(y - my))
            x1 = min(img["width"], int(np.ceil(x + w + mx)))
            y1 = min(img["height"], int(np.ceil(y + h + my)))
            crop = image[y0:y1, x0:x1].copy()
            mc = m[y0:y1, x0:x1].astype(np.uint8)
            tint = crop.astype(np.float32)
            tint[mc > 0] = 0.55 * tint[mc > 0] + 0.45 * np.array([255, 64, 32])
            crop = tint.astype(np.uint8)
            contours, _ = cv2.findContours(mc, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(crop, contours, -1, (255, 255, 0), 1)
            s = 160 / max(crop.shape[:2])
            if s < 1:
                crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)),
                                         max(1, round(crop.shape[0] * s))),
                                  interpolation=cv2.INTER_AREA)
            write_image(run / thumb, crop)
        cat = settings.classes[a["category_id"] - 1]
        rows.append(f'<figure><img src="{html.escape(thumb)}" alt=""><figcaption>'
                    f'<b>{a["id"]}</b> {html.escape(cat)} {a["score"]:.3f}<br>'
                    f'<small>“{html.escape(str(a.get("prompt", "")))}” · '
                    f'{html.escape(img["file_name"])}</small></figcaption></figure>')
    page = f"""<!doctype html><meta charset="utf-8"><title>masklab review</title>
<style>body{{font:13px sans-serif;margin:1em}}figure{{display:inline-block;margin:4px;
width:170px;vertical-align:top}}img{{max-width:160px;max-height:160px;display:block}}</style>
<h1>{len(rows)} annotations, lowest score first</h1>
<p>Write corrections to a text file — <code>reject ID ID…</code> or
<code>relabel ID CATEGORY</code>, one per line (categories: {html.escape(", ".join(
        settings.classes))}) — and run
<code>masklab label --apply-review FILE --out {html.escape(str(run))}</code>.</p>
{"".join(rows)}
"""
    with atomic_open(run / "review.html", "w", encoding="utf-8") as f:
        f.write(page)
    return run / "review.html"


def parse_corrections(path: str | os.PathLike, classes: list[str], ids: set[int]
                      ) -> tuple[set[int], dict[int, str]]:
    """``(rejected ids, {id: new category})``; every line checked."""
    path = Path(path)
    reject: set[int] = set()
    relabel: dict[int, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        verb, args = words[0].lower(), words[1:]
        try:
            if verb == "reject" and args:
                targets = [int(v.strip(",")) for v in args]
            elif verb == "relabel" and len(args) >= 2:
                targets, cat = [int(args[0])], " ".join(args[1:])
                if cat not in classes:
                    raise InputError(f"line {n}: {cat!r} is not one of the categories "
                                     f"({', '.join(classes)})", path)
            else:
                raise InputError(f"line {n}: expected 'reject ID…' or 'relabel ID CATEGORY'",
                                 path)
        except ValueError:
            raise InputError(f"line {n}: annotation ids are integers", path) from None
        for t in targets:
            if t not in ids:
                raise InputError(f"line {n}: no annotation {t} in this run", path)
        if verb == "reject":
            reject.update(targets)
        else:
            relabel[targets[0]] = cat
    return reject, relabel


def apply_review(run: str | os.PathLike, corrections: str | os.PathLike) -> dict:
    """Apply a corrections file (see the module docstring); returns the counts."""
    from datetime import datetime, timezone

    from masklab.grounding.label import _append, _assemble
    from masklab.io.atomic import write_json

    run, settings = _run(run)
    parts = _parts(run)
    ids = {a["id"] for _, p in parts for a in p["annotations"]}
    reject, relabel = parse_corrections(corrections, settings.classes, ids)
    done = {"rejected": 0, "relabelled": 0}
    for path, part in parts:
        touched = False
        kept = []
        for a in part["annotations"]:
            if a["id"] in reject:
                done["rejected"] += 1
                touched = True
                continue
            if a["id"] in relabel:
                new = settings.classes.index(relabel[a["id"]]) + 1
                if new != a["category_id"]:
                    a["category_id"] = new
                    a["reviewed"] = True
                    done["relabelled"] += 1
                    touched = True
            kept.append(a)
        if touched:
            part["annotations"] = kept
            write_json(path, part)
    _append(run / "review.jsonl", {"time": datetime.now(timezone.utc).isoformat(),
                                   "file": str(Path(corrections).resolve()),
                                   "reject": sorted(reject),
                                   "relabel": {str(k): v for k, v in relabel.items()}, **done})
    done["annotations"] = _assemble(run, settings)
    return done
