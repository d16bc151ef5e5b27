"""``make demo`` / ``masklab demo``: the main jobs on sample images that need no download.

Each capability of masklab adds its part here; every part writes into one output folder and
returns the paths it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab import viz
from masklab.data.synthetic import SHAPE_CLASSES, shape_mask
from masklab.io import convert as _convert
from masklab.io import write_image
from masklab.io.atomic import write_json
from masklab.io.coco import masks_to_annotations, masks_to_results, write_coco
from masklab.progress import progress
from masklab.types import Alpha, Masks, SemanticMap


def synthetic_shapes(height: int = 240, width: int = 320, n: int = 6, seed: int = 0
                     ) -> tuple[np.ndarray, Masks]:
    """An image of non-overlapping coloured shapes on a textured background, and its masks
    (labels 1 circle, 2 square, 3 triangle)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    image = np.stack([60 + 40 * np.sin(xx / 17.0), 70 + 30 * np.cos(yy / 13.0),
                      np.full((height, width), 90.0)], axis=-1)
    image += rng.normal(0, 6, image.shape)
    occupied = np.zeros((height, width), bool)
    masks, labels = [], []
    for _ in range(200):
        if len(masks) == n:
            break
        kind = int(rng.integers(1, 4))
        r = int(rng.integers(14, 36))
        cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
        m = shape_mask(kind, cx, cy, r, height, width)
        if (m & cv2.dilate(occupied.astype(np.uint8), np.ones((5, 5))).astype(bool)).any():
            continue
        occupied |= m
        color = rng.integers(120, 256, 3)
        image[m] = color + rng.normal(0, 6, (m.sum(), 3))
        masks.append(m)
        labels.append(kind)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, Masks(np.array(masks), labels=labels, class_names=SHAPE_CLASSES)


def coin_masks(image: np.ndarray) -> Masks:
    """Classical instance segmentation of scikit-image's ``coins``: watershed of the Sobel
    elevation map from dark (background) and bright (coin) markers, holes filled, one
    instance per connected component larger than 150 pixels."""
    from scipy import ndimage as ndi
    from skimage import filters, segmentation

    markers = np.zeros(image.shape, np.int32)
    markers[image < 30] = 1
    markers[image > 150] = 2
    fg = segmentation.watershed(filters.sobel(image), markers) == 2
    fg = ndi.binary_fill_holes(fg)
    lab, n = ndi.label(fg)
    areas = ndi.sum(fg, lab, index=np.arange(1, n + 1))
    keep = np.flatnonzero(areas > 150) + 1
    return Masks(lab[None] == keep[:, None, None], labels=np.ones(len(keep), np.int64),
                 class_names=["background", "coin"])


def demo_foundation(out: Path, quiet: bool = False) -> list[Path]:
    """Masks, COCO JSON, conversions and overlays on synthetic shapes and ``coins``."""
    from skimage import data

    written: list[Path] = []
    shapes_img, shapes = synthetic_shapes()
    coins_gray = data.coins()
    coins = coin_masks(coins_gray)
    coins_img = np.repeat(coins_gray[..., None], 3, axis=2)
    samples = [("shapes.png", shapes_img, shapes), ("coins.png", coins_img, coins)]

    images, anns, results = [], [], []
    for image_id, (name, img, masks) in enumerate(progress(samples, desc="demo", quiet=quiet),
                                                  1):
        written.append(write_image(out / "images" / name, img))
        images.append({"id": image_id, "file_name": name, "height": img.shape[0],
                       "width": img.shape[1]})
        offset = 0 if name == "shapes.png" else 10  # coins get category 11
        labelled = Masks(masks.to_dense(), labels=masks.labels + offset, scores=masks.scores)
        anns += masks_to_annotations(labelled, image_id, start_id=len(anns) + 1)
        results += masks_to_results(labelled, image_id)
        overlay = viz.overlay_masks(img, masks, color_by="instance")
        written.append(viz.save(out / f"{Path(name).stem}_overlay.png", overlay))

    categories = [{"id": i, "name": n} for i, n in enumerate(SHAPE_CLASSES) if i] + \
        [{"id": 11, "name": "coin"}]
    coco_path = out / "instances.json"
    written.append(write_coco(coco_path, {"images": images, "annotations": anns,
                                          "categories": categories}))
    written.append(write_json(out / "results.json", results))

    # the same annotations in the other formats, through `masklab convert`'s code path
    for fmt in ("labels", "yolo"):
        written += _convert.convert(coco_path, out / fmt, dst_format=fmt)

    semantic = SemanticMap.from_masks(shapes)
    soft = Alpha(np.clip(_blur(shapes.to_dense().any(axis=0).astype(np.float32), 3), 0, 1))
    panel = viz.side_by_side(
        [shapes_img, viz.overlay_semantic(shapes_img, semantic),
         viz.alpha_on_checkerboard(soft, shapes_img)],
        ["image", "semantic map", "soft alpha"])
    written.append(viz.save(out / "shapes_panel.png", panel))
    return written


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(a, sigma)


def demo_semantic(out: Path, quiet: bool = False) -> list[Path]:
    """Train a small U-Net on synthetic shapes for a few seconds, segment held-out images,
    and evaluate them with the metrics engine."""
    import torch

    from masklab.data.synthetic import write_shapes_dataset
    from masklab.io.images import find_images
    from masklab.metrics.semantic import semantic_evaluate_dirs
    from masklab.models.semantic import load_semantic_model
    from masklab.tasks.semantic import TrainConfig, segment_files, train_semantic

    torch.manual_seed(0)
    data = write_shapes_dataset(out / "semantic" / "shapes", 96, 8, size=64, seed=2)
    result = train_semantic(TrainConfig(
        data=str(data), out=str(out / "semantic" / "run"), model="unet",
        model_config={"depth": 3, "width": 8}, num_classes=4, epochs=12, val_every=4,
        batch_size=8, crop=None, scale=(1.0, 1.0), lr=5e-3, workers=0, quiet=quiet,
        tensorboard=False, class_names=["background", "circle", "square", "triangle"]))
    model = load_semantic_model(result.best_checkpoint)
    pred = out / "semantic" / "pred"
    written = segment_files(model, find_images([data / "val" / "images"]), pred, quiet=quiet,
                            areas_csv=True)
    r = semantic_evaluate_dirs(data / "val" / "labels", pred, 4, quiet=quiet)
    from masklab.io.atomic import write_json

    written.append(write_json(out / "semantic" / "metrics.json", r.to_dict(), indent=1))
    return [result.best_checkpoint / "model.safetensors", *written]


def run_demo(out: str | os.PathLike = "demo_out", *, quiet: bool = False) -> list[Path]:
    """Run every demo part into ``out``; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return demo_foundation(out, quiet=quiet) + demo_semantic(out, quiet=quiet)
