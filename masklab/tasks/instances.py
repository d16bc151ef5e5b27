"""Object prediction over files: COCO results JSON, the matching images JSON, overlays."""

from __future__ import annotations

import os
from pathlib import Path

from masklab.models.objects import Detections, ObjectModel


def _image_ids(files: list[Path], coco_gt: str | os.PathLike | None) -> list[int]:
    """Image ids from a ground-truth JSON (matched by file name), else 1..N."""
    if coco_gt is None:
        return list(range(1, len(files) + 1))
    from masklab.errors import InputError
    from masklab.io.coco import load_coco

    ds = load_coco(coco_gt)
    by_name = {Path(im["file_name"]).name: im["id"] for im in ds.images}
    missing = [f.name for f in files if f.name not in by_name]
    if missing:
        raise InputError(f"image {missing[0]} is not in the ground truth", coco_gt)
    return [by_name[f.name] for f in files]


def segment_object_files(model: ObjectModel, files: list[Path], out_dir: str | os.PathLike,
                         *, score_threshold: float = 0.5, classes: list[int] | None = None,
                         max_detections: int = 100, batch_size: int = 2,
                         overlay: bool = True, coco_gt: str | os.PathLike | None = None,
                         quiet: bool | None = None, manifest=None) -> list[Path]:
    """Run ``model`` on image files; write ``results.json`` (COCO results: boxes, RLE masks,
    keypoints), ``images.json`` (the COCO image and category records) and overlays. With a
    ``masklab.manifest.RunManifest`` the images it lists as done are skipped and every
    finished one is recorded, so a stopped run started again resumes."""
    from masklab import viz
    from masklab.io.images import read_image
    from masklab.manifest import META, key
    from masklab.progress import progress

    out = Path(out_dir)
    ids = _image_ids(files, coco_gt)
    keys = [key(f) for f in files]
    todo = manifest.pending(keys) if manifest is not None else list(range(len(files)))
    if manifest is not None and META not in manifest.done:
        manifest.record(META, {"classes": [model.class_names, model.num_classes]})
    results, images = [], []
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    for batch in progress(batches, desc=f"segment {model.task}", quiet=quiet):
        imgs = [read_image(files[i]) for i in batch]
        dets = model.predict(imgs, score_threshold=score_threshold, classes=classes,
                             max_detections=max_detections)
        for i, img, det in zip(batch, imgs, dets, strict=True):
            rec = {"id": ids[i], "file_name": files[i].name, "height": img.shape[0],
                   "width": img.shape[1]}
            res = det.to_coco_results(ids[i])
            if overlay:
                viz.save(out / f"{files[i].stem}_overlay.png", render(img, det))
            if manifest is not None:
                manifest.record(keys[i], {"image": rec, "results": res})
            else:
                images.append(rec)
                results += res
    if manifest is not None:
        rows = manifest.rows(keys)
        images = [r["image"] for r in rows]
        results = [x for r in rows for x in r["results"]]
    written = [out / f"{f.stem}_overlay.png" for f in files] if overlay else []
    return written + write_object_outputs(out, results, images, model.class_names,
                                          model.num_classes)


def write_object_outputs(out: Path, results: list, images: list, class_names,
                         num_classes: int) -> list[Path]:
    """``results.json`` (COCO results) and ``images.json`` (images and categories)."""
    from masklab.io.atomic import write_json

    names = class_names or [str(k) for k in range(num_classes)]
    cats = [{"id": k, "name": n} for k, n in enumerate(names)
            if k > 0 and n not in ("__background__", "N/A")]
    return [write_json(out / "results.json", results),
            write_json(out / "images.json", {"images": images, "categories": cats}, indent=1)]


def render(image, det: Detections):
    """Overlay of masks (or boxes) and keypoints with class names and scores."""
    from masklab import viz

    if det.masks is not None:
        out = viz.overlay_masks(image, det.masks, color_by="label")
    else:
        out = viz.draw_boxes(image, det.boxes)
    if det.keypoints is not None:
        out = viz.draw_keypoints(out, det.keypoints, min_visibility=0.0)
    return out
