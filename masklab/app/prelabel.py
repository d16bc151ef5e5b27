"""Pre-labelling a project: proposals for many images as a background job.

Sources (``params["source"]``):

- ``text``: the ``masklab label`` pipeline (same code: ``grounding.label.Labeller``) — text
  classes (default: the project's), a detector (default: the app's ``--detector``), a
  segmenter (SAM when the app has it, else GrabCut in each box); ``boxes_from``: a COCO file
  of boxes instead of a detector;
- ``everything``: segment-everything (SAM's point grid, or superpixel regions without SAM), all
  as one class (``class_id``);
- ``model``: an instance, semantic or panoptic (Mask2Former, OneFormer, DETR) model of the
  registry (``weights``: local weights for it) or a checkpoint folder; its class names are
  matched to the project's by name (any case), the others are left out.

Proposals are stored as annotations flagged ``proposal`` (with their source and score), left
out of exports until accepted. They never replace or repeat what is there: a proposal that
overlaps an annotation of the same class (IoU >= ``DUPLICATE_IOU``) is dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from masklab.app.queue import diverse_order, pool_layout, priorities
from masklab.errors import InputError

DUPLICATE_IOU = 0.5
SOURCES = ("text", "everything", "model")
BACKGROUND = ("background", "__background__", "_background_")


def check_params(params: dict, project: dict, store) -> dict:
    """The job's parameters, checked before it is queued (a bad source fails the request,
    not the job later)."""
    p = dict(params)
    source = p.get("source", "text")
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}")
    p["source"] = source
    names = {c["name"].lower(): c["id"] for c in project["classes"]}
    if source == "text":
        classes = p.get("classes") or [c["name"] for c in project["classes"]]
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        unknown = [c for c in classes if c.lower() not in names]
        if unknown:
            raise InputError(f"classes not in the project: {', '.join(unknown)}")
        if not classes:
            raise InputError("the project has no classes to look for")
        p["classes"] = list(classes)
        if p.get("boxes_from"):
            p["boxes_from"] = str(store.confine(p["boxes_from"]))
        if p.get("detector"):
            p["detector"] = _server_path(store, p["detector"])
    elif source == "everything":
        if int(p.get("class_id") or 0) not in {c["id"] for c in project["classes"]}:
            raise InputError("segment-everything proposals need a class_id of the project")
    elif p.get("model_id") not in (None, ""):  # a model trained on this project
        m = store.model(int(p["model_id"]))
        if m["project_id"] != project["id"]:
            raise InputError(f"model {m['id']} was trained on another project")
        p.update(model_id=m["id"], model=m["path"], source_name=f"model v{m['version']}")
    else:
        if not p.get("model"):
            raise InputError("source 'model' needs a model (a registry name or folder) or "
                             "model_id (a version trained on the project)")
        p["model"] = _server_path(store, p["model"])
        if p.get("weights"):  # a registry model's local weights (a folder or file)
            p["weights"] = str(store.confine(p["weights"]))
    return p


def _server_path(store, name: str) -> str:
    """A model given by name or folder: a folder below an import root (absolute, or relative
    to the first root) when one is there, else the name (the registry's)."""
    name = str(name)
    path = Path(name).expanduser()
    if path.is_absolute() or (store.roots and (store.roots[0] / path).is_dir()):
        return str(store.confine(path))  # 403 outside the roots
    return name


class Proposer:
    """``(image array, image record) -> [{class_id, mask, score}]`` for one source; models
    are loaded once, when made."""

    def __init__(self, params: dict, project: dict, seg=None, cfg=None):
        self.params, self.seg = params, seg
        self.uncertainty: float | None = None  # of the last image (model sources)
        self.features: np.ndarray | None = None  # its layout (app/queue.py), likewise
        self.by_name = {c["name"].lower(): c["id"] for c in project["classes"]}
        self.source = params["source"]
        self.skipped_classes: set[str] = set()
        device = getattr(cfg, "device", "cpu") if cfg is not None else "cpu"
        if self.source == "text":
            from masklab.grounding.label import Labeller, LabelSettings

            sam = seg is not None and seg.is_sam
            settings = LabelSettings(
                classes=list(params["classes"]),
                detector=str(params.get("detector") or getattr(cfg, "detector",
                                                                "grounding-dino-tiny")),
                segmenter=str(params.get("segmenter") or ("sam" if sam else "grabcut")),
                box_threshold=params.get("box_threshold"))
            segmenter = seg.backend if (sam and not params.get("segmenter")) else None
            self.labeller = Labeller(settings, segmenter=segmenter, device=device,
                                     boxes_from=params.get("boxes_from"))
        elif self.source == "model":
            self._load_model(str(params["model"]), params.get("weights"), device)

    def _load_model(self, name: str, weights, device: str) -> None:
        """An instance, semantic or panoptic model: a checkpoint folder, or a registry name
        (with ``weights``: local weights for it)."""
        from masklab.models import get_info
        from masklab.models.objects import is_object_checkpoint, load_object_model
        from masklab.models.semantic import is_checkpoint, load_semantic_model
        from masklab.models.universal import is_universal

        w = weights or "default"
        if is_object_checkpoint(name):
            self.task, self.model = "instances", load_object_model(name, device=device)
        elif is_checkpoint(name):
            self.task, self.model = "semantic", load_semantic_model(name, device=device)
        elif is_universal(name):
            from masklab.tasks.panoptic import load_panoptic_predictor

            self.task = "panoptic"
            self.model = load_panoptic_predictor(
                name, weights=weights, device=device,
                threshold=float(self.params.get("score_threshold", 0.8)))
        elif get_info(name).task == "semantic":
            self.task, self.model = "semantic", load_semantic_model(name, weights=w,
                                                                    device=device)
        else:
            self.task, self.model = "instances", load_object_model(name, weights=w,
                                                                   device=device)

    def _class(self, name: str) -> int | None:
        cid = self.by_name.get(str(name).lower())
        if cid is None:
            self.skipped_classes.add(str(name))
        return cid

    def __call__(self, image: np.ndarray, record: dict) -> list[dict]:
        self.uncertainty = self.features = None
        if self.source == "text":
            out = []
            for mask, cat, score, _mask_score, _prompt in self.labeller.find(
                    image, name=record["file_name"]):
                cid = self._class(self.labeller.settings.classes[cat - 1])
                if cid is not None:
                    out.append({"class_id": cid, "mask": mask, "score": score})
            return out
        if self.source == "everything":
            masks = self.seg.everything(record["sha256"], record["path"],
                                        points_per_side=int(self.params.get(
                                            "points_per_side", 16)),
                                        limit=int(self.params.get("limit", 50)))
            dense = masks.to_dense()
            scores = masks.scores if masks.scores is not None else np.ones(len(dense))
            return [{"class_id": int(self.params["class_id"]), "mask": m, "score": float(s)}
                    for m, s in zip(dense, scores, strict=True)]
        return self._model(image)

    def _model(self, image: np.ndarray) -> list[dict]:
        thr = float(self.params.get("score_threshold", 0.5))
        if self.task == "panoptic":  # every segment, things and stuff, by category name
            ids, segments = self.model.predict_panoptic([image])[0]
            names = {c["id"]: c["name"] for c in self.model.categories()}
            out = []
            for s in segments:
                cid = self._class(names.get(s["category_id"], str(s["category_id"])))
                m = ids == s["id"]
                if cid is not None and m.any():
                    out.append({"class_id": cid, "mask": m, "score": s.get("score")})
            return out
        if self.task == "semantic":
            from masklab.tasks.semantic import predict_probabilities

            probs = predict_probabilities(self.model, image)  # (K, H, W)
            probs = probs.numpy() if hasattr(probs, "numpy") else np.asarray(probs)
            self.uncertainty = mean_entropy(probs)
            self.features = pool_layout(probs)
            labels = probs.argmax(0)
            names = self.model.class_names or [str(k) for k in range(self.model.num_classes)]
            out = []
            for k in np.unique(labels):
                if int(k) >= len(names) or names[int(k)].lower() in BACKGROUND:
                    continue
                cid = self._class(names[int(k)])
                if cid is not None:
                    m = labels == k
                    out.append({"class_id": cid, "mask": m,
                                "score": float(probs[int(k)][m].mean())})
            return out
        det = self.model.predict([image], score_threshold=min(thr, LOW_SCORE))[0]
        if det.masks is not None:
            self.uncertainty = borderline(det.masks.scores)
            self.features = self._instance_layout(det)
            det = det[np.flatnonzero(np.asarray(det.masks.scores) >= thr)]
        if det.masks is None or not len(det):
            return []
        masks = det.masks.to_dense()
        names = det.masks.names or [str(k) for k in det.masks.labels]
        out = []
        for k in range(len(det)):
            cid = self._class(names[k])
            if cid is not None and masks[k].any():
                out.append({"class_id": cid, "mask": masks[k],
                            "score": float(det.masks.scores[k])})
        return out

    def _instance_layout(self, det) -> np.ndarray:
        """Where which project class is seen: per class, the best score over each pixel of
        the detections (score >= ``LOW_SCORE``), pooled on the queue's grid."""
        h, w = det.masks.size
        slots = {cid: j for j, cid in enumerate(sorted(set(self.by_name.values())))}
        maps = np.zeros((len(slots) + 1, h, w), np.float32)  # + classes not in the project
        if len(det):
            dense = det.masks.to_dense()
            names = det.masks.names or [str(k) for k in det.masks.labels]
            for m, name, score in zip(dense, names, det.masks.scores, strict=True):
                j = slots.get(self.by_name.get(str(name).lower()), len(slots))
                np.maximum(maps[j], m * np.float32(score), out=maps[j])
        return pool_layout(maps)


LOW_SCORE = 0.05  # detections from this score on count for an image's uncertainty


def mean_entropy(probs: np.ndarray) -> float:
    """A semantic prediction's uncertainty: the mean pixel entropy of the class
    probabilities (K, H, W), divided by log K (0: sure everywhere, 1: uniform)."""
    k = probs.shape[0]
    if k < 2:
        return 0.0
    p = np.clip(probs.astype(np.float32, copy=False), 1e-8, 1.0)
    return float(-(p * np.log(p)).sum(0).mean() / np.log(k))


def borderline(scores) -> float:
    """An instance prediction's uncertainty: the mean over its detections (score >=
    ``LOW_SCORE``) of ``1 - |2 s - 1|`` (1 at s = 0.5, 0 at 0 or 1); 1.0 without any (the
    model sees nothing there: worth a look)."""
    s = np.asarray(scores if scores is not None else [], np.float64)
    s = s[s >= LOW_SCORE]
    return 1.0 if not len(s) else float((1 - np.abs(2 * s - 1)).mean())


def drop_duplicates(existing: list[tuple[int, np.ndarray]], proposals: list[dict]
                    ) -> list[dict]:
    """Proposals that overlap none of ``existing`` ``(class_id, mask)`` of their class (nor
    one kept before them) by IoU >= ``DUPLICATE_IOU``."""
    kept, seen = [], list(existing)
    for p in proposals:
        m = p["mask"]
        area = m.sum()
        dup = False
        for cid, e in seen:
            if cid != p["class_id"]:
                continue
            inter = np.logical_and(m, e).sum()
            union = area + e.sum() - inter
            if union and inter / union >= DUPLICATE_IOU:
                dup = True
                break
        if not dup:
            kept.append(p)
            seen.append((p["class_id"], m))
    return kept


class _Committer:
    """Writes one image's proposals with its item's "done" (and the job's progress) in one
    transaction; counts what it added and dropped."""

    def __init__(self, ctx, source: str):
        self.ctx, self.store, self.source = ctx, ctx.store, source
        self.added = self.dropped = 0
        self.scored: list[tuple[int, float, np.ndarray]] = []  # (image, uncertainty, layout)

    def failed(self, seq: int, name: str, why: str) -> None:
        with self.store.transaction() as s:
            if self.store.finish_item(s, self.ctx.id, seq, "failed"):
                self.ctx.progress(add=1, errors=[f"{name}: {why}"], s=s)

    def done(self, seq: int, image_id: int, height: int, width: int, proposals,
             uncertainty: float | None = None, features=None) -> None:
        from sqlalchemy import select

        from masklab import rle as _rle
        from masklab.app import db

        store = self.store
        with store.transaction() as s:
            if not store.finish_item(s, self.ctx.id, seq):
                return  # another run did it
            rows = s.execute(select(db.Annotation.class_id, db.Annotation.rle).where(
                db.Annotation.image_id == image_id)).all()
            existing = [(c, _rle.decode([{"size": [height, width], "counts": r}])[0])
                        for c, r in rows]
            kept = drop_duplicates(existing, proposals)
            self.dropped += len(proposals) - len(kept)
            if kept:
                recs = [{"class_id": p["class_id"], "mask": _rle.encode(p["mask"])[0],
                         "score": p["score"]} for p in kept]
                self.added += len(store.add_annotations(s, image_id, recs, source=self.source,
                                                        proposal=True,
                                                        user=self.ctx.job["created_by"]))
            if uncertainty is not None:  # its priority until the job's queue is made
                store.set_uncertainty(s, image_id, uncertainty)
                if features is not None:  # float16: a 100k-image job holds ~40 MB of them
                    self.scored.append((image_id, float(uncertainty),
                                        np.asarray(features, np.float16)))
            self.ctx.progress(add=1, s=s)

    def make_queue(self) -> None:
        """The images scored in this run, ordered for labelling (``app/queue.py``): their
        priorities, written in one transaction."""
        if len(self.scored) < 2:
            return
        ids, u, feats = zip(*self.scored, strict=True)
        order = diverse_order(u, np.stack(feats).astype(np.float32))
        with self.store.transaction() as s:
            self.store.set_priorities(s, dict(zip(ids, priorities(u, order).tolist(),
                                                  strict=True)))


def run_prelabel_job(ctx) -> dict:
    """The ``prelabel`` job: each pending item's proposals, committed with its "done" — in
    the job worker, or on a Ray cluster with ``--engine ray`` (results committed here as
    they arrive)."""
    store = ctx.store
    project = store.project(ctx.job["project_id"], counts=False)
    source = ctx.params["source"]
    commit = _Committer(ctx, str(ctx.params.get("source_name") or source)[:20])
    skipped: set[str] = set()
    if ctx.cfg is not None and getattr(ctx.cfg, "engine", "local") == "ray":
        skipped = _run_on_ray(ctx, project, commit)
    else:
        skipped = _run_here(ctx, project, commit)
    commit.make_queue()
    out = {"proposals": commit.added, "duplicates_dropped": commit.dropped}
    if skipped:
        out["classes_not_in_project"] = sorted(skipped)
    return out


def _run_here(ctx, project: dict, commit: _Committer) -> set[str]:
    from masklab.app.jobs import BAD_ITEM
    from masklab.io.images import read_image

    store = ctx.store
    proposer = Proposer(ctx.params, project, ctx.seg, ctx.cfg)
    while True:
        items = store.pending_items(ctx.id, 16)
        if not items:
            return proposer.skipped_classes
        for seq, image_id in items:
            ctx.check()
            name = f"image {image_id}"
            try:
                record = {**store.image(image_id), "path": store.image_path(image_id)}
                name = record["file_name"]
                proposals = proposer(read_image(record["path"]), record)
            except BAD_ITEM as e:  # one bad image: recorded, skipped
                commit.failed(seq, name, str(e).splitlines()[0])
                continue
            commit.done(seq, image_id, record["height"], record["width"], proposals,
                        proposer.uncertainty, proposer.features)


def _run_on_ray(ctx, project: dict, commit: _Committer) -> set[str]:
    from masklab import rle as _rle
    from masklab.scale.ray_engine import propose

    store, cfg = ctx.store, ctx.cfg
    items, meta = [], {}
    for seq, image_id in store.pending_items(ctx.id, 10**9):
        img = store.image(image_id)
        meta[seq] = img
        items.append({"index": seq, "path": str(store.image_path(image_id)),
                      "file_name": img["file_name"], "sha256": img["sha256"]})
    skipped: set[str] = set()
    backend = str(ctx.seg.requested if ctx.seg is not None and ctx.seg.requested != "auto"
                  else (ctx.seg.current_name if ctx.seg is not None else "grabcut"))

    def on_record(seq: int, rec: dict) -> None:
        ctx.check()
        img = meta[seq]
        if "error" in rec:
            commit.failed(seq, img["file_name"], rec["error"])
            return
        skipped.update(rec.get("skipped_classes", []))
        proposals = [{"class_id": p["class_id"], "score": p["score"],
                      "mask": _rle.decode([p["mask"]])[0]} for p in rec["proposals"]]
        feats = rec.get("features")
        commit.done(seq, img["id"], img["height"], img["width"], proposals,
                    rec.get("uncertainty"),
                    None if feats is None else np.asarray(feats, np.float32))

    propose(items, ctx.params, project, backend=backend, device=getattr(cfg, "device", "cpu"),
            workers=cfg.ray_workers, address=cfg.address, gpus_per_worker=cfg.ray_gpus,
            on_record=on_record)
    return skipped
