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
