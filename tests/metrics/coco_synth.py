"""Seeded synthetic COCO sets with the cases that break evaluators (shared by tests and bench)."""

from __future__ import annotations

import numpy as np

from masklab import Masks


def _polygon(rng, cx, cy, r, k=None):
    k = k or int(rng.integers(3, 9))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(0.5, 1.0, k)
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).reshape(-1).tolist()


def make_set(seed: int, n_images: int = 40, n_cats: int = 6, gt_per_image: float = 5,
             dt_per_image: float = 12, size=(48, 64), adversarial: bool = True):
    """Ground truth dict and results list (segmentation and bbox) for one seed.

    Adversarial features: quantised scores (ties), crowd RLE regions, images with no ground
    truth or no detections, a category with ground truth only and one with detections only,
    one (image, category) with more than 100 detections, ground truth with id 0, tiny objects
    in every area range and detections of unknown categories.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    cats = [{"id": c * 3 + 1, "name": f"c{c}"} for c in range(n_cats)]
    cat_ids = [c["id"] for c in cats]
    images, anns, results = [], [], []
    next_id = 0 if adversarial else 1
    for i in range(n_images):
        image_id = 1000 + 7 * i
        scale = 1 if i % 3 else 4  # larger images carry medium and large objects
        ih, iw = h * scale, w * scale
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": ih,
                       "width": iw})
        n_gt = 0 if adversarial and i % 9 == 4 else int(rng.poisson(gt_per_image))
        gts = []
        for _ in range(n_gt):
            cat = int(rng.choice(cat_ids[:-1])) if adversarial else int(rng.choice(cat_ids))
            r = rng.uniform(2, min(ih, iw) / 3)
            poly = _polygon(rng, rng.uniform(r, iw - r), rng.uniform(r, ih - r), r)
            crowd = adversarial and rng.random() < 0.1
            m = Masks.from_polygons([[poly]], ih, iw)
            seg = m.to_rle()[0] if crowd else [poly]
            gts.append((cat, m, crowd))
            anns.append({"id": next_id, "image_id": image_id, "category_id": cat,
                         "segmentation": seg, "area": float(m.area[0]),
                         "bbox": m.boxes.xywh[0].tolist(), "iscrowd": int(crowd)})
            next_id += 1
        if adversarial and i % 9 == 7:
            continue  # an image without detections
        dets = []
        for cat, m, _ in gts:  # detections near each object, some duplicated
            for _ in range(int(rng.integers(0, 3))):
                d = np.roll(m.to_dense()[0], tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
                dets.append((cat if rng.random() < 0.85 else int(rng.choice(cat_ids)), d))
        for _ in range(int(rng.poisson(dt_per_image / 3))):  # false positives
            r = rng.uniform(2, min(ih, iw) / 3)
            poly = _polygon(rng, rng.uniform(r, iw - r), rng.uniform(r, ih - r), r)
            cat = int(rng.choice(cat_ids[1:])) if adversarial else int(rng.choice(cat_ids))
            dets.append((cat, Masks.from_polygons([[poly]], ih, iw).to_dense()[0]))
        if adversarial and i == 2:  # > maxDets detections in one (image, category)
            base = dets[0][1] if dets else np.zeros((ih, iw), bool)
            for _ in range(130):
                dets.append((cat_ids[1], np.roll(base, tuple(rng.integers(-5, 6, 2)),
                                                 axis=(0, 1))))
        if adversarial and i == 3:
            dets.append((999, np.ones((ih, iw), bool)))  # unknown category: ignored
        for cat, d in dets:
            m = Masks(d[None])
            score = float(np.round(rng.random(), 1)) if adversarial else float(rng.random())
            results.append({"image_id": image_id, "category_id": cat,
                            "segmentation": m.to_rle()[0], "bbox": m.boxes.xywh[0].tolist(),
                            "score": score})
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, results
