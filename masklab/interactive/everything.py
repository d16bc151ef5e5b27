"""Segment everything: every object and region of an image as ``Masks``, no prompt needed.

SAM-style (Kirillov et al. 2023, ``SamAutomaticMaskGenerator``): a regular grid of
``points_per_side``² single-point prompts is run in batches on the cached embedding; each
point gives three masks (whole / part / subpart); masks are kept when their predicted IoU
reaches ``pred_iou_thresh`` and their stability score — IoU of the mask thresholded at
``+offset`` and at ``-offset`` logits — reaches ``stability_score_thresh``; duplicates are
removed by box NMS at ``box_nms_thresh`` (best predicted IoU first); ``crop_n_layers=1`` also
runs the grid on 2×2 overlapping crops (more small objects); holes and islands smaller than
``min_region_area`` are removed.

Classical mode (no weights): superpixels (``slic`` or ``felzenszwalb``) merged greedily on a
region adjacency graph while neighbouring mean colours differ by less than
``merge_threshold``; each resulting region is one mask.
"""

from __future__ import annotations

import numpy as np
import torch

from masklab.types import Masks

CLASSICAL_MODES = ("slic", "felzenszwalb")


def point_grid(points_per_side: int) -> np.ndarray:
    """``(n², 2)`` points in ``[0, 1]²`` at the centres of an ``n × n`` grid (SAM's grid)."""
    c = (np.arange(points_per_side) + 0.5) / points_per_side
    xs, ys = np.meshgrid(c, c)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU between the masks at ``threshold + offset`` and ``threshold - offset``."""
    inter = (logits > threshold + offset).flatten(-2).sum(-1, dtype=torch.int64)
    union = (logits > threshold - offset).flatten(-2).sum(-1, dtype=torch.int64)
    return inter.double() / union.clamp(min=1).double()


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Fill holes and drop islands smaller than ``min_area`` pixels."""
    import cv2

    if min_area <= 0:
        return mask
    out = mask.copy()
    for fill in (True, False):  # holes: components of the background; then islands
        work = (~out if fill else out).astype(np.uint8)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
        small = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] < min_area]
        if small:
            out = out | np.isin(lab, small) if fill else out & ~np.isin(lab, small)
    return out


def _crop_boxes(h: int, w: int, n_layers: int, overlap: float = 512 / 1500):
    """``(x0, y0, x1, y1, layer)``: the whole image (layer 0) plus, per layer ``k``, a
    ``2^k × 2^k`` grid of overlapping crops (SAM)."""
    boxes = [(0, 0, w, h, 0)]
    for layer in range(1, n_layers + 1):
        n = 2 ** layer
        ov = int(overlap * min(h, w) / n)
        cw, ch = -(-(w + ov * (n - 1)) // n), -(-(h + ov * (n - 1)) // n)
        for i in range(n):
            for j in range(n):
                x0, y0 = j * (cw - ov), i * (ch - ov)
                boxes.append((x0, y0, min(x0 + cw, w), min(y0 + ch, h), layer))
    return boxes


def segment_everything(image: np.ndarray, backend="slic", *, points_per_side: int = 32,
                       points_per_batch: int = 64, pred_iou_thresh: float = 0.88,
                       stability_score_thresh: float = 0.95, stability_offset: float = 1.0,
                       box_nms_thresh: float = 0.7, crop_n_layers: int = 0,
                       min_region_area: int = 0, n_segments: int = 400,
                       merge_threshold: float = 30.0, device: str = "cpu",
                       quiet: bool | None = None) -> Masks:
    """All masks of ``image``: a SAM-family backend (name, folder or ``SamBackend``) or a
    classical mode (``"slic"``, ``"felzenszwalb"``). Sorted by score (predicted IoU; region
    area for the classical modes)."""
    if isinstance(backend, str) and backend in CLASSICAL_MODES:
        return _superpixel_regions(image, backend, n_segments, merge_threshold,
                                   min_region_area)
    from masklab.interactive.session import make_backend
    from masklab.progress import progress

    sam = make_backend(backend, device=device)
    if not hasattr(sam, "predict_points"):
        raise ValueError(f"backend {getattr(sam, 'name', backend)!r} cannot segment "
                         f"everything; use a SAM model or one of {CLASSICAL_MODES}")
    h, w = image.shape[:2]
    all_masks, all_scores = [], []
    grid = point_grid(points_per_side)
    crops = _crop_boxes(h, w, crop_n_layers)
    for k, (x0, y0, x1, y1, layer) in enumerate(crops):
        crop = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
        state = sam.set_image(crop)
        # deeper crop layers use sparser grids (SAM's point_grids scale by 2^layer)
        pts = point_grid(max(1, points_per_side // (2 ** layer))) if layer else grid
        pts = pts * np.array([x1 - x0, y1 - y0])
        batches = sam.predict_points(state, pts, points_per_batch)
        for low, iou in progress(batches, total=-(-len(pts) // points_per_batch),
                                 desc=f"everything {k + 1}/{len(crops)}", quiet=quiet):
            low, iou = low.flatten(0, 1), iou.flatten()
            keep = iou >= pred_iou_thresh  # cheap, at low resolution: before upscaling
            if not keep.any():
                continue
            logits = sam.upscale(state, low[keep])
            iou = iou[keep]
            stable = stability_score(logits, 0.0, stability_offset) >= stability_score_thresh
            if not stable.any():
                continue
            m = (logits[stable] > 0).numpy()
            full = np.zeros((len(m), h, w), bool)
            full[:, y0:y1, x0:x1] = m
            all_masks.append(full)
            all_scores.append(iou[stable].numpy().astype(np.float64))
    if not all_masks:
        return Masks(np.zeros((0, h, w), bool), scores=np.zeros(0))
    masks = np.concatenate(all_masks)
    scores = np.concatenate(all_scores)
    if min_region_area:
        masks = np.stack([remove_small_regions(m, min_region_area) for m in masks])
    nonempty = masks.reshape(len(masks), -1).any(1)
    result = Masks(masks[nonempty], scores=scores[nonempty])
    return _box_nms(result, box_nms_thresh)


def _box_nms(masks: Masks, iou_threshold: float) -> Masks:
    from torchvision.ops import nms

    if len(masks) == 0:
        return masks
    boxes = torch.as_tensor(masks.boxes.xyxy, dtype=torch.float32)
    keep = nms(boxes, torch.as_tensor(masks.scores, dtype=torch.float32), iou_threshold)
    return masks[keep.numpy()]  # torchvision's nms returns best score first


def _superpixel_regions(image: np.ndarray, mode: str, n_segments: int,
                        merge_threshold: float, min_region_area: int) -> Masks:
    from skimage import graph
    from skimage.segmentation import felzenszwalb, slic

    img = np.ascontiguousarray(image[..., :3])
    if mode == "slic":
        sp = slic(img, n_segments=n_segments, compactness=10, start_label=0)
    else:
        # light smoothing: more leaves mixed-colour rims along boundaries as regions
        sp = felzenszwalb(img, scale=100, sigma=0.3, min_size=20)
    rag = graph.rag_mean_color(img, sp)

    def weight(g, src, dst, n):
        diff = g.nodes[dst]["mean color"] - g.nodes[n]["mean color"]
        return {"weight": float(np.linalg.norm(diff))}

    def merge(g, src, dst):
        g.nodes[dst]["total color"] += g.nodes[src]["total color"]
        g.nodes[dst]["pixel count"] += g.nodes[src]["pixel count"]
        g.nodes[dst]["mean color"] = g.nodes[dst]["total color"] / g.nodes[dst]["pixel count"]

    labels = graph.merge_hierarchical(sp, rag, thresh=merge_threshold, rag_copy=False,
                                      in_place_merge=True, merge_func=merge,
                                      weight_func=weight)
    ids, areas = np.unique(labels, return_counts=True)
    keep = ids[areas >= max(1, min_region_area)]
    masks = np.stack([labels == i for i in keep]) if len(keep) else \
        np.zeros((0, *labels.shape), bool)
    area = masks.reshape(len(masks), -1).sum(1).astype(np.float64)
    order = np.argsort(-area, kind="stable")
    return Masks(masks[order], scores=area[order] / labels.size)


# --- over files -------------------------------------------------------------------------------
def load_everything_backend(backend: str = "slic", device: str = "cpu"):
    """A classical mode as it is, or the SAM-family backend loaded once for many images."""
    if backend in CLASSICAL_MODES:
        return backend
    from masklab.interactive.session import make_backend

    return make_backend(backend, device=device)


def everything_one_file(backend, f, image_id: int, out, *, overlay: str | None = None,
                        quiet: bool | None = True, **options) -> dict:
    """One image: its overlay written (``overlay`` names it, ``{stem}`` filled in); its
    image record and COCO annotations (RLE, with ``score``) returned."""
    from pathlib import Path

    from masklab import viz
    from masklab.io.coco import masks_to_annotations
    from masklab.io.images import read_image

    img = read_image(f)
    masks = segment_everything(img, backend, quiet=quiet, **options)
    anns = masks_to_annotations(masks, image_id)
    for a, s in zip(anns, masks.scores, strict=True):
        a["score"] = float(s)
    if overlay:
        viz.save(Path(out) / overlay.format(stem=Path(f).stem),
                 viz.overlay_masks(img, masks, boxes=False))
    h, w = img.shape[:2]
    return {"image": {"id": image_id, "file_name": Path(f).name, "height": h, "width": w},
            "annotations": anns}


def write_everything_json(out, rows: list[dict]):
    """``masks.json``: every image's masks (category ``object``), annotation ids 1..N in
    input order."""
    from pathlib import Path

    from masklab.io.coco import write_coco

    anns = []
    for r in rows:
        for a in r["annotations"]:
            anns.append({**a, "id": len(anns) + 1})
    return write_coco(Path(out) / "masks.json", {
        "images": [r["image"] for r in rows], "annotations": anns,
        "categories": [{"id": 1, "name": "object"}]})


def segment_everything_files(files: list, out, backend: str = "slic", *,
                             device: str = "cpu", overlay: str | None = "{stem}_overlay.png",
                             quiet: bool | None = None, manifest=None, **options) -> list:
    """``segment_everything`` on image files: ``masks.json`` (image ids 1..N in input order)
    and an overlay per image; resumable with a ``masklab.manifest.RunManifest``."""
    from pathlib import Path

    from masklab.manifest import key, run_pending

    out = Path(out)
    keys = [key(f) for f in files]
    n_todo = len(manifest.pending(keys)) if manifest is not None else len(files)
    sam = []  # loaded on the first image to do

    def work(i):
        if not sam:
            sam.append(load_everything_backend(backend, device))
        return everything_one_file(sam[0], files[i], i + 1, out, overlay=overlay,
                                   quiet=quiet if n_todo == 1 else True, **options)

    rows = run_pending(keys, work, manifest, desc="everything", quiet=quiet, unit="img")
    written = [out / overlay.format(stem=Path(f).stem) for f in files] if overlay else []
    return [*written, write_everything_json(out, rows)]
