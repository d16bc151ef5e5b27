"""Synthetic datasets made in code: tests and demos need no download."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SHAPE_CLASSES = ["background", "circle", "square", "triangle"]


def shape_mask(kind: int, cx: int, cy: int, r: int, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool mask of a circle (1), square (2) or triangle (3) of radius ``r``."""
    import cv2

    m = np.zeros((height, width), np.uint8)
    if kind == 1:
        cv2.circle(m, (cx, cy), r, 1, -1)
    elif kind == 2:
        cv2.rectangle(m, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
    elif kind == 3:
        cv2.fillPoly(m, [np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]],
                                  np.int32)], 1)
    else:
        raise ValueError(f"shape kind must be 1, 2 or 3, got {kind}")
    return m.astype(bool)


def shapes_image(size: int = 64, seed: int = 0, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An image of coloured shapes on noise and its label map (0 background, 1 circle,
    2 square, 3 triangle); each class has its own hue, shapes may overlap."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 90, (size, size, 3)).astype(np.float64)
    label = np.zeros((size, size), np.uint8)
    hues = {1: (220, 60, 60), 2: (60, 200, 60), 3: (60, 80, 230)}
    for _ in range(n):
        k = int(rng.integers(1, 4))
        r = int(rng.integers(size // 10, size // 4))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        sel = shape_mask(k, cx, cy, r, size, size)
        image[sel] = np.array(hues[k]) + rng.normal(0, 15, (sel.sum(), 3))
        label[sel] = k
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label


def write_shapes_dataset(root: str | os.PathLike, n_train: int = 200, n_val: int = 40,
                         size: int = 64, seed: int = 0) -> Path:
    """``root/{train,val}/{images,labels}`` of shape images (the ``folder`` layout)."""
    from masklab.io.images import write_image, write_label_png

    root = Path(root)
    for split, n, offset in (("train", n_train, 0), ("val", n_val, 10**6)):
        for i in range(n):
            img, lab = shapes_image(size, seed * 10**7 + offset + i)
            write_image(root / split / "images" / f"{i:05d}.png", img)
            write_label_png(root / split / "labels" / f"{i:05d}.png", lab)
    return root


def write_shapes_coco(root: str | os.PathLike, n_train: int = 120, n_val: int = 30,
                      size: int = 128, seed: int = 0, per_image: int = 3) -> Path:
    """``root/{train,val}.json`` + ``root/images/``: non-overlapping shapes as COCO instances
    (categories 1 circle, 2 square, 3 triangle)."""
    from masklab.io.coco import masks_to_annotations, write_coco
    from masklab.io.images import write_image
    from masklab.types import Masks

    root = Path(root)
    rng = np.random.default_rng(seed)
    cats = [{"id": k, "name": n} for k, n in enumerate(SHAPE_CLASSES) if k]
    for split, n in (("train", n_train), ("val", n_val)):
        images, anns = [], []
        for i in range(n):
            image = rng.integers(40, 90, (size, size, 3)).astype(np.float64)
            occupied = np.zeros((size, size), bool)
            masks, labels = [], []
            for _ in range(40):
                if len(masks) == per_image:
                    break
                k = int(rng.integers(1, 4))
                r = int(rng.integers(size // 12, size // 5))
                cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
                m = shape_mask(k, cx, cy, r, size, size)
                if (m & occupied).any():
                    continue
                occupied |= m
                image[m] = rng.integers(120, 256, 3) + rng.normal(0, 8, (m.sum(), 3))
                masks.append(m)
                labels.append(k)
            name = f"{split}_{i:05d}.png"
            write_image(root / "images" / name,
                        np.clip(np.round(image), 0, 255).astype(np.uint8))
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": name, "height": size, "width": size})
            anns += masks_to_annotations(Masks(np.array(masks).reshape(-1, size, size),
                                               labels=labels), image_id,
                                         start_id=len(anns) + 1)
        write_coco(root / f"{split}.json", {"images": images, "annotations": anns,
                                            "categories": cats})
    return root


CORNER_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")


def write_keypoints_coco(root: str | os.PathLike, n_train: int = 120, n_val: int = 30,
                         size: int = 128, seed: int = 0, per_image: int = 2) -> Path:
    """``root/{train,val}.json`` + ``root/images/``: bright squares, each a COCO keypoint
    instance (category 1 "square") whose 4 keypoints are its corners (names
    ``CORNER_NAMES``, a closed skeleton; left/right names so that flips swap them)."""
    from masklab.io.coco import write_coco
    from masklab.io.images import write_image

    root = Path(root)
    rng = np.random.default_rng(seed)
    cats = [{"id": 1, "name": "square", "supercategory": "shape",
             "keypoints": list(CORNER_NAMES), "skeleton": [[1, 2], [2, 3], [3, 4], [4, 1]]}]
    for split, n in (("train", n_train), ("val", n_val)):
        images, anns = [], []
        for i in range(n):
            image = rng.integers(40, 90, (size, size, 3)).astype(np.float64)
            occupied = np.zeros((size, size), bool)
            placed = 0
            image_id = len(images) + 1
            for _ in range(40):
                if placed == per_image:
                    break
                side = int(rng.integers(size // 5, size // 2))
                x0, y0 = (int(v) for v in rng.integers(1, size - side - 1, 2))
                m = np.zeros((size, size), bool)
                m[y0:y0 + side, x0:x0 + side] = True
                if (m & occupied).any():
                    continue
                occupied |= m
                image[m] = rng.integers(120, 256, 3) + rng.normal(0, 8, (m.sum(), 3))
                x1, y1 = x0 + side, y0 + side
                kps = [x0, y0, 2, x1, y0, 2, x1, y1, 2, x0, y1, 2]
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                             "bbox": [x0, y0, side, side], "area": side * side,
                             "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                             "iscrowd": 0, "keypoints": [float(v) for v in kps],
                             "num_keypoints": 4})
                placed += 1
            name = f"{split}_{i:05d}.png"
            write_image(root / "images" / name,
                        np.clip(np.round(image), 0, 255).astype(np.uint8))
            images.append({"id": image_id, "file_name": name, "height": size, "width": size})
        write_coco(root / f"{split}.json", {"images": images, "annotations": anns,
                                            "categories": cats})
    return root
