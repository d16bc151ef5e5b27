"""Panoptic = semantic + instance: fuse an instance prediction and a semantic map into
COCO-panoptic segments (the combine step of Kirillov et al. 2019, as panopticapi's and
Detectron2's ``combine_semantic_and_instance_outputs``).

Instances are pasted best score first; one overlapping already-pasted segments by more than
``overlap_threshold`` of its area is dropped, otherwise only its free pixels are kept. Stuff
classes of the semantic map then fill the pixels still free, each class one segment if its
area reaches ``stuff_area``. Pixels left over are VOID (0).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab.types import Masks, SemanticMap


def fuse_panoptic(instances: Masks, semantic: SemanticMap, *, stuff_map: dict[int, int],
                  thing_map: dict[int, int] | None = None, overlap_threshold: float = 0.5,
                  stuff_area: int = 4096, score_threshold: float = 0.5
                  ) -> tuple[np.ndarray, list[dict]]:
    """``(ids, segments_info)``: an ``(H, W)`` int32 segment-id map and COCO-panoptic
    segment records (``id``, ``category_id``, ``isthing``, ``area``, ``bbox``, ``score``).

    ``stuff_map`` maps semantic labels to panoptic stuff category ids (labels not in it —
    things, background — are never pasted as stuff); ``thing_map`` maps instance labels to
    category ids (identity when ``None``).
    """
    if instances.size != semantic.size:
        raise ValueError(f"instances {instances.size} and semantic map {semantic.size} differ")
    ids = np.zeros(semantic.size, np.int32)
    segments: list[dict] = []
    scores = instances.scores if instances.scores is not None else np.ones(len(instances))
    labels = instances.labels if instances.labels is not None else np.ones(len(instances),
                                                                            np.int64)
    dense = instances.to_dense()
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < score_threshold:
            break
        cat = int(labels[i]) if thing_map is None else thing_map.get(int(labels[i]))
        if cat is None:  # a class the panoptic categories do not hold
            continue
        mask = dense[i]
        area = int(mask.sum())
        if area == 0:
            continue
        taken = mask & (ids > 0)
        overlap = int(taken.sum())
        if overlap / area > overlap_threshold:
            continue
        if overlap:
            mask = mask & (ids == 0)
        seg_id = len(segments) + 1
        ids[mask] = seg_id
        segments.append({"id": seg_id, "category_id": cat, "isthing": 1,
                         "score": float(scores[i]), "instance": int(i)})
    for label in np.unique(semantic.labels):
        cat = stuff_map.get(int(label))
        if cat is None:
            continue
        mask = (semantic.labels == label) & (ids == 0)
        if int(mask.sum()) < stuff_area:
            continue
        seg_id = len(segments) + 1
        ids[mask] = seg_id
        segments.append({"id": seg_id, "category_id": cat, "isthing": 0})
    for s in segments:  # areas and boxes of what each segment finally holds
        m = ids == s["id"]
        s["area"] = int(m.sum())
        s["bbox"] = Masks(m[None]).boxes.xywh[0].tolist()
        s["iscrowd"] = 0
    return ids, segments


def write_panoptic_predictions(out_dir: str | os.PathLike, items: list[tuple[dict, np.ndarray,
                                                                            list[dict]]],
                               categories: list[dict]) -> Path:
    """COCO-panoptic prediction files: ``panoptic/<stem>.png`` and ``panoptic.json``.

    ``items``: ``(image record with id/file_name, ids map, segments)`` per image.
    """
    from masklab.io.panoptic import write_panoptic

    out = Path(out_dir)
    anns, pngs = [], {}
    for image, ids, segments in items:
        name = f"{Path(image['file_name']).stem}.png"
        pngs[name] = ids
        anns.append({"image_id": image["id"], "file_name": name,
                     "segments_info": [{k: v for k, v in s.items() if k != "instance"}
                                       for s in segments]})
    data = {"images": [it[0] for it in items], "annotations": anns, "categories": categories}
    return write_panoptic(out / "panoptic.json", out / "panoptic", data, pngs)


_NOT_A_CLASS = {"__background__", "background", "n/a", "void", "unlabeled", "unlabelled",
                "ignore"}


class PanopticFusion:
    """Any instance model + any semantic model → panoptic segments (``fuse_panoptic``).

    Thing categories are the instance model's labels (same ids); every semantic class whose
    name is not a thing name (nor background/void) is a stuff category numbered after the
    things: ``stuff id = first_stuff + semantic label``.
    """

    def __init__(self, instance_model, semantic_model, *, score_threshold: float = 0.5,
                 overlap_threshold: float = 0.5, stuff_area: int = 4096,
                 semantic_options: dict | None = None):
        self.instance_model, self.semantic_model = instance_model, semantic_model
        self.score_threshold, self.overlap_threshold = score_threshold, overlap_threshold
        self.stuff_area = stuff_area
        self.semantic_options = dict(semantic_options or {})
        inames = instance_model.class_names or [str(k) for k in
                                                range(instance_model.num_classes)]
        self.things = {k: n for k, n in enumerate(inames)
                       if k > 0 and n.lower() not in _NOT_A_CLASS}
        snames = semantic_model.class_names or [str(k) for k in
                                                range(semantic_model.num_classes)]
        thing_names = {n.lower() for n in self.things.values()}
        self.first_stuff = max(self.things, default=0) + 1
        self.stuff_map = {k: self.first_stuff + k for k, n in enumerate(snames)
                          if n.lower() not in _NOT_A_CLASS and n.lower() not in thing_names}
        self._stuff_names = {self.first_stuff + k: snames[k] for k in self.stuff_map}

    def categories(self) -> list[dict]:
        return ([{"id": k, "name": n, "isthing": 1} for k, n in self.things.items()] +
                [{"id": k, "name": n, "isthing": 0} for k, n in self._stuff_names.items()])

    def predict_panoptic(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, list[dict]]]:
        from masklab.tasks.semantic import predict_semantic

        dets = self.instance_model.predict(images, score_threshold=self.score_threshold)
        out = []
        for image, det in zip(images, dets, strict=True):
            sem = predict_semantic(self.semantic_model, image, **self.semantic_options)
            masks = det.masks if det.masks is not None else Masks(
                np.zeros((0, *image.shape[:2]), bool))
            out.append(fuse_panoptic(masks, sem, stuff_map=self.stuff_map,
                                     thing_map={k: k for k in self.things},
                                     overlap_threshold=self.overlap_threshold,
                                     stuff_area=self.stuff_area,
                                     score_threshold=self.score_threshold))
        return out


def map_categories(segments: list[dict], categories: list[dict], target: list[dict],
                   source: str | os.PathLike | None = None) -> tuple[list[dict], dict[int, int]]:
    """Renumber ``segments`` from ``categories`` to the ``target`` categories (a dataset's,
    matched by name, case-insensitive). Returns the kept segments and the id mapping; a
    segment whose class the target lacks is dropped (its pixels become VOID)."""
    from masklab.errors import InputError

    by_name = {c["name"].lower(): c for c in target}
    mapping = {c["id"]: by_name[c["name"].lower()]["id"] for c in categories
               if c["name"].lower() in by_name}
    if not mapping:
        raise InputError("no category name of the model is in the categories file", source)
    kept = []
    for s in segments:
        if s["category_id"] in mapping:
            kept.append({**s, "category_id": mapping[s["category_id"]]})
    return kept, mapping


def load_panoptic_predictor(model: str, *, weights=None, semantic_model: str | None = None,
                            semantic_weights=None, device: str = "cpu", threshold: float = 0.8,
                            overlap: float = 0.8, stuff_area: int = 4096,
                            things: int | None = None):
    """What ``segment panoptic`` runs: a universal panoptic model (Mask2Former, OneFormer,
    DETR) with its thresholds, or an instance model fused with a semantic model."""
    from masklab.errors import InputError
    from masklab.models.universal import is_universal, load_universal_model

    if semantic_model:
        from masklab.models.objects import load_object_model
        from masklab.models.semantic import load_semantic_model

        inst = (load_universal_model(model, weights=weights or "default", device=device)
                if is_universal(model) else
                load_object_model(model, weights=weights or "default", device=device))
        sem = load_semantic_model(semantic_model, weights=semantic_weights or "default",
                                  device=device)
        return PanopticFusion(inst, sem, stuff_area=stuff_area, score_threshold=threshold,
                              overlap_threshold=overlap)
    if not is_universal(model):
        raise InputError(f"{model} is not a panoptic model; add --semantic-model to fuse an "
                         "instance model with a semantic one")
    from functools import partial
    from types import SimpleNamespace

    m = load_universal_model(model, weights=weights or "default", device=device, things=things)
    return SimpleNamespace(categories=m.categories, predict_panoptic=partial(
        m.predict_panoptic, threshold=threshold, overlap_threshold=overlap))


def panoptic_categories(predictor, categories: list[dict] | None) -> list[dict]:
    """The categories written: the predictor's, or those of ``categories`` it predicts."""
    own = predictor.categories()
    if categories is None:
        return own
    names = {c["name"].lower() for c in own}
    return [c for c in categories if c["name"].lower() in names]


def panoptic_one_file(predictor, f: Path, image_id: int, out: Path, *,
                      categories: list[dict] | None = None,
                      categories_source: str | os.PathLike | None = None,
                      classes: list[int] | None = None, overlay: bool = True) -> dict:
    """One image: ``panoptic/<stem>.png`` (and the overlay) written; its image record and
    ``panoptic.json`` annotation returned."""
    from masklab import viz
    from masklab.io.images import read_image, write_image
    from masklab.io.panoptic import id2rgb

    own = predictor.categories()
    cats = panoptic_categories(predictor, categories)
    img = read_image(f)
    ids, segments = predictor.predict_panoptic([img])[0]
    if categories is not None:
        segments, _ = map_categories(segments, own, categories, categories_source)
    if classes is not None:
        segments = [s for s in segments if s["category_id"] in classes]
    if categories is not None or classes is not None:  # dropped segments become VOID
        keep_ids = np.array([s["id"] for s in segments], np.int32)
        ids = np.where(np.isin(ids, keep_ids), ids, 0).astype(np.int32)
    name = f"{Path(f).stem}.png"
    write_image(out / "panoptic" / name, id2rgb(ids))
    if overlay:
        names = {c["id"]: c["name"] for c in cats}
        top = max(names, default=0) + 1
        dense = np.stack([ids == s["id"] for s in segments]) if segments else \
            np.zeros((0, *ids.shape), bool)
        masks = Masks(dense, labels=[s["category_id"] for s in segments],
                      class_names=[names.get(k, str(k)) for k in range(top)])
        viz.save(out / f"{Path(f).stem}_overlay.png",
                 viz.overlay_masks(img, masks, boxes=False, color_by="instance"))
    return {"image": {"id": image_id, "file_name": Path(f).name, "height": img.shape[0],
                      "width": img.shape[1]},
            "annotation": {"image_id": image_id, "file_name": name, "segments_info": [
                {k: v for k, v in s.items() if k != "instance"} for s in segments]}}


def write_panoptic_json(out: Path, rows: list[dict], categories: list[dict]) -> Path:
    """``panoptic.json`` from the per-image rows of ``panoptic_one_file`` (input order)."""
    from masklab.io.atomic import write_json

    return write_json(out / "panoptic.json", {
        "images": [r["image"] for r in rows], "annotations": [r["annotation"] for r in rows],
        "categories": categories})


def segment_panoptic_files(predictor, files: list[Path], out_dir: str | os.PathLike, *,
                           categories: list[dict] | None = None,
                           categories_source: str | os.PathLike | None = None,
                           classes: list[int] | None = None,
                           coco_gt: str | os.PathLike | None = None, overlay: bool = True,
                           quiet: bool | None = None, manifest=None) -> list[Path]:
    """COCO-panoptic predictions for image files: ``panoptic.json`` + ``panoptic/*.png``
    (+ overlays). ``predictor`` has ``predict_panoptic`` and ``categories`` (a
    ``UniversalModel`` or a ``PanopticFusion``); ``categories`` renumbers to a dataset's;
    ``classes`` keeps only these category ids (after renumbering). Each image's PNG is
    written as it is done (memory stays flat); with a ``masklab.manifest.RunManifest`` a
    stopped run started again resumes."""
    from masklab.manifest import META, key, run_pending
    from masklab.tasks.instances import _image_ids

    out = Path(out_dir)
    ids_for = _image_ids(files, coco_gt)
    keys = [key(f) for f in files]
    cats = panoptic_categories(predictor, categories)
    if manifest is not None and META not in manifest.done:
        manifest.record(META, {"categories": cats})
    rows = run_pending(keys, lambda i: panoptic_one_file(
        predictor, files[i], ids_for[i], out, categories=categories,
        categories_source=categories_source, classes=classes, overlay=overlay),
        manifest, desc="segment panoptic", quiet=quiet)
    written = [out / "panoptic" / f"{Path(f).stem}.png" for f in files]
    if overlay:
        written += [out / f"{Path(f).stem}_overlay.png" for f in files]
    written.append(write_panoptic_json(out, rows, cats))
    return written
