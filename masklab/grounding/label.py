"""Auto-labelling: a folder of images and a list of class names → a COCO / YOLO-seg dataset.

For each image: the text detector finds boxes for the classes (each synonym maps to its
category), then per-class score thresholds, class-aware NMS, class-agnostic NMS across the
prompts (one object, one label: the higher score wins), the segmenter turns every kept box
into a mask (SAM family: one image embedding, all boxes in batched decoder calls; GrabCut
with no weights; ``box``: the box itself), each mask is clipped to its box (holes kept), and
masks under ``min_area`` pixels are dropped.

The output folder holds ``settings.json`` (what the run is), ``progress.jsonl`` (one line per
finished or failed image, appended as each is done), ``parts/<id>.json`` (that image's
annotations), ``overlays/``, and — rebuilt from the parts at the end of every run —
``annotations.json`` (COCO instances; every annotation keeps its ``score``, ``source`` and
``prompt``) and ``yolo/`` (``labels/*.txt`` + ``data.yaml``). Run the same command again and
it labels only the images not yet in ``progress.jsonl``; a different command on the same
folder is refused with what differs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from masklab.errors import InputError, MasklabError
from masklab.grounding.detectors import Detections, check_classes

FORMAT = "masklab-label-v1"
PER_IMAGE = 1000  # annotation id = image id x 1000 + k: stable across runs and reviews


@dataclass
class LabelSettings:
    """What a labelling run is; a run folder only accepts the same settings again."""

    classes: list[str]  # the categories, in id order (1..K)
    detector: str
    segmenter: str
    synonyms: dict[str, str] = field(default_factory=dict)  # prompt -> category
    box_threshold: float | None = None
    text_threshold: float | None = None
    class_thresholds: dict[str, float] = field(default_factory=dict)
    nms_iou: float = 0.5  # class-aware
    agnostic_iou: float = 0.7  # across classes: one object, one label
    min_area: int = 16
    polygons: bool = False
    captioner: str | None = None  # --classes auto: the classes come from its captions
    exemplars: dict[str, list] = field(default_factory=dict)  # SAM 3: class -> boxes+label

    def prompts(self) -> list[str]:
        """The texts the detector is prompted with: every category and synonym."""
        return list(dict.fromkeys([*self.classes, *self.synonyms]))

    def category(self, prompt: str) -> str:
        return self.synonyms.get(prompt, prompt)


def parse_classes_file(path: str | os.PathLike) -> tuple[list[str], dict[str, str]]:
    """``person: man, woman, child`` lines (or a bare ``cat``) → categories and synonyms."""
    path = Path(path)
    classes, synonyms = [], {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the classes file ({e.__class__.__name__})", path) \
            from None
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name:
            raise InputError(f"line {n}: no class name before ':'", path)
        if name in classes or name in synonyms:
            raise InputError(f"line {n}: {name!r} is already a class or a synonym", path)
        classes.append(name)
        for s in (v.strip() for v in rest.split(",")):
            if s:
                if s in synonyms or s in classes:
                    raise InputError(f"line {n}: {s!r} already names a class", path)
                synonyms[s] = name
    if not classes:
        raise InputError("the classes file lists no class", path)
    return classes, synonyms


class CocoBoxes:
    """A "detector" that returns the boxes of an existing COCO file (matched by file name):
    segment a box-annotated dataset, or check the box → mask path against ground truth."""

    needs_name = True
    exact = True  # given boxes are distinct objects: no NMS

    def __init__(self, path: str | os.PathLike):
        from masklab.io.coco import load_coco

        self.path = Path(path)
        self.name = f"boxes:{self.path.name}"
        ds = load_coco(self.path)
        self.categories = {c["id"]: c["name"] for c in ds.categories}
        self.by_name: dict[str, list[dict]] = {}
        for img in ds.images:
            self.by_name[Path(img["file_name"]).name] = []
        files = {img["id"]: Path(img["file_name"]).name for img in ds.images}
        for a in ds.annotations:
            if not a.get("iscrowd", 0):
                self.by_name[files[a["image_id"]]].append(a)

    def detect(self, image: np.ndarray, classes: list[str], name: str = "") -> Detections:
        anns = [a for a in self.by_name.get(Path(name).name, [])
                if self.categories[a["category_id"]] in classes]
        if not anns:
            return Detections.empty(classes)
        xywh = np.array([a["bbox"] for a in anns], np.float64)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        labels = np.array([classes.index(self.categories[a["category_id"]]) for a in anns])
        return Detections(boxes, np.ones(len(anns)), labels, list(classes))


def load_segmenter(name: str, device: str = "cpu"):
    """``box`` (the box itself), ``grabcut`` (GrabCut in each box, no weights), another
    classical backend, or a SAM-family name or folder (``sam`` = SAM 2.1 Hiera-T)."""
    if name in ("box", "grabcut"):
        return name
    from masklab.interactive.session import make_backend

    return make_backend(name, device=device)


def segment_boxes(image: np.ndarray, boxes: np.ndarray, segmenter) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """One mask per box ``(N, H, W)`` and its score (SAM's predicted IoU, else 1)."""
    from masklab.types import Prompts

    h, w = image.shape[:2]
    n = len(boxes)
    if n == 0:
        return np.zeros((0, h, w), bool), np.zeros(0)
    if segmenter == "box":
        masks = np.zeros((n, h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(_pixel_boxes(boxes, h, w)):
            masks[i, y0:y1, x0:x1] = True
        return masks, np.ones(n)
    if segmenter == "grabcut":
        masks = np.stack([grabcut_box(image, b) for b in boxes])
        return masks, np.ones(n)
    state = segmenter.set_image(image)
    if hasattr(segmenter, "predict_boxes"):  # SAM: all boxes on one embedding, batched
        return segmenter.predict_boxes(state, boxes)
    masks, scores = np.zeros((n, h, w), bool), np.ones(n)
    for i, b in enumerate(boxes):
        m, s, _ = segmenter.predict(state, Prompts(box=np.asarray(b, float)), multimask=False)
        masks[i], scores[i] = np.asarray(m, bool).reshape(-1, h, w)[0], float(s[0])
    return masks, scores


def grabcut_box(image: np.ndarray, box, iterations: int = 5, min_fill: float = 0.2
                ) -> np.ndarray:
    """GrabCut (Rother et al. 2004) initialised with the box, on a crop around it at full
    resolution (small objects keep their pixels): outside the box is background. When
    GrabCut keeps less than ``min_fill`` of the box, the ellipse inscribed in the box."""
    import cv2

    h, w = image.shape[:2]
    x0, y0, x1, y1 = _pixel_boxes(np.asarray(box)[None], h, w)[0]
    out = np.zeros((h, w), bool)
    bw, bh = x1 - x0, y1 - y0
    if bw < 2 or bh < 2:
        out[y0:y1, x0:x1] = True
        return out
    m = max(8, int(0.15 * max(bw, bh)))
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    crop = cv2.cvtColor(np.ascontiguousarray(image[cy0:cy1, cx0:cx1, :3]), cv2.COLOR_RGB2BGR)
    mask = np.zeros(crop.shape[:2], np.uint8)
    rect = (int(x0 - cx0), int(y0 - cy0), int(bw), int(bh))
    if rect[2] >= crop.shape[1] and rect[3] >= crop.shape[0]:  # the box is the whole image
        mask[:] = cv2.GC_PR_FGD
        mask[[0, -1], :] = cv2.GC_PR_BGD
        mask[:, [0, -1]] = cv2.GC_PR_BGD
        mode, rect = cv2.GC_INIT_WITH_MASK, None
    else:
        mode = cv2.GC_INIT_WITH_RECT
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(crop, mask, rect, bgd, fgd, iterations, mode)
    except cv2.error:  # a flat crop: no colour model to fit
        out[y0:y1, x0:x1] = True
        return out
    fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    out[cy0:cy1, cx0:cx1] = fg
    if out.sum() < min_fill * bw * bh:  # GrabCut lost the object (its colours are the
        out[:] = False                  # surroundings'): the ellipse inscribed in the box
        yy, xx = np.ogrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = (((xx + 0.5 - (x0 + x1) / 2) / (bw / 2)) ** 2 +
                             ((yy + 0.5 - (y0 + y1) / 2) / (bh / 2)) ** 2) <= 1
    return out


def _pixel_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Boxes rounded outwards to whole pixels inside the image: ``x0, y0, x1, y1`` ints."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.stack([np.floor(b[:, 0]), np.floor(b[:, 1]), np.ceil(b[:, 2]), np.ceil(b[:, 3])],
                   1)
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    return out.astype(np.int64)


def postprocess(det: Detections, settings: LabelSettings, nms_on: bool = True) -> Detections:
    """Prompts → categories, per-class thresholds, class-aware then class-agnostic NMS
    (``nms_on=False`` for boxes that are distinct objects by construction)."""
    import torch
    from torchvision.ops import batched_nms, nms

    if not len(det):
        return Detections.empty(settings.classes)
    cats = np.array([settings.classes.index(settings.category(det.classes[k]))
                     for k in det.labels], np.int64)
    keep = np.array([det.scores[i] >= settings.class_thresholds.get(settings.classes[c], 0.0)
                     for i, c in enumerate(cats)], bool)
    boxes = torch.as_tensor(det.boxes[keep], dtype=torch.float64)
    scores = torch.as_tensor(det.scores[keep], dtype=torch.float64)
    cats, prompts = cats[keep], det.labels[keep]
    if nms_on:
        k1 = batched_nms(boxes, scores, torch.as_tensor(cats), settings.nms_iou)
        k2 = k1[nms(boxes[k1], scores[k1], settings.agnostic_iou)]
    else:
        k2 = torch.arange(len(scores))
    k2 = k2[torch.argsort(scores[k2], descending=True, stable=True)].numpy()
    masks = None if det.masks is None else det.masks[np.flatnonzero(keep)[k2]]
    return Detections(boxes[k2].numpy(), scores[k2].numpy(), cats[k2], list(settings.classes),
                      [det.classes[k] for k in prompts[k2]], masks)


@dataclass
class LabelResult:
    done: int  # images labelled by this run
    skipped: int  # already labelled by an earlier run
    failed: int  # images that could not be read (listed in progress.jsonl with the reason)
    annotations: int  # in annotations.json
    out: Path


def label_images(images: list[Path], out: str | os.PathLike, settings: LabelSettings, *,
                 detector=None, segmenter=None, device: str = "cpu", overlays: bool = True,
                 quiet: bool | None = None, boxes_from: str | os.PathLike | None = None,
                 runner=None, captioner=None) -> LabelResult:
    """Label ``images`` into ``out`` (see the module docstring); resumable.

    ``runner``: None labels in this process; otherwise an object with ``label(todo, out,
    settings, ...)`` and ``caption(todo, captioner, ...)`` that does the work elsewhere
    (``masklab.scale.ray_engine.LabelRunner``: one detector + segmenter per Ray worker,
    ``boxes_from`` read there); each image keeps the id an in-process run gives it, so the
    dataset is the in-process one. With ``settings.captioner`` (``--classes auto``) the
    classes come from captions (``caption_classes``; ``captioner``: a loaded one, any object
    with ``caption(image)``)."""
    from masklab.io.atomic import atomic_open

    if not images:
        raise InputError("no images to label")
    out = Path(out)
    root = _common_root(images)
    names = [p.resolve().relative_to(root).as_posix() for p in images]  # symlinks too
    if len(set(names)) != len(names):
        raise InputError("two inputs have the same path")
    prompts_of = None
    if settings.captioner:
        settings, prompts_of = caption_classes(
            images, names, out, settings, device=device, quiet=quiet, captioner=captioner,
            runner=runner)
    check_classes(settings.classes)
    done = _check_run(out, settings)
    next_id = max((d["id"] for d in done.values()), default=0) + 1
    todo = [(p, n, next_id + j) for j, (p, n) in
            enumerate((p, n) for p, n in zip(images, names, strict=True) if n not in done)]
    records = []
    labeller = None
    if todo and runner is None:  # a model that fails to load leaves no run folder behind
        labeller = Labeller(settings, detector=detector, segmenter=segmenter, device=device,
                            boxes_from=boxes_from)
    _start_run(out, settings)
    if runner is not None:
        records = runner.label(
            todo, out, settings, boxes_from=boxes_from, device=device, overlays=overlays,
            on_record=lambda r: _append(out / "progress.jsonl", r), prompts_of=prompts_of)
    elif todo:
        from masklab.progress import progress

        for path, name, image_id in progress(todo, desc="label", quiet=quiet, unit="image"):
            rec = labeller(path, name, image_id, out, overlays,
                           prompts=None if prompts_of is None else prompts_of[name])
            _append(out / "progress.jsonl", rec)
            records.append(rec)
    total = _assemble(out, settings)
    with atomic_open(out / "README.txt", "w", encoding="utf-8") as f:
        f.write(f"masklab label: {len(settings.classes)} classes, detector "
                f"{settings.detector}, segmenter {settings.segmenter}\n")
    n_done = sum(r["status"] == "done" for r in records)
    return LabelResult(n_done, len(images) - len(todo), len(records) - n_done, total, out)


class Labeller:
    """One image at a time: detector boxes → masks → ``parts/<id>.json`` (+ overlay); the
    models are loaded once (in-process, or once per Ray worker)."""

    def __init__(self, settings: LabelSettings, *, detector=None, segmenter=None,
                 device: str = "cpu", boxes_from: str | os.PathLike | None = None):
        from masklab.grounding.detectors import load_detector

        if detector is None and boxes_from is not None:
            detector = CocoBoxes(boxes_from)
        self.settings = settings
        self.det = detector if detector is not None else load_detector(
            settings.detector, device=device, **_detector_options(settings))
        self.seg = segmenter if segmenter is not None else (
            None if hasattr(self.det, "segment_text") or getattr(self.det, "gives_masks",
                                                                  False) else
            load_segmenter(settings.segmenter, device))
        self.source = f"{getattr(self.det, 'name', settings.detector)}+{settings.segmenter}"
        self.prompts = settings.prompts()

    def __call__(self, path: Path, name: str, image_id: int, out: Path, overlays: bool,
                 prompts: list[str] | None = None) -> dict:
        """Label one image; its ``progress.jsonl`` record (done, or failed with why).
        ``prompts``: this image's texts (``--classes auto``), else every class and synonym."""
        from masklab.io.atomic import write_json
        from masklab.io.images import read_image, write_image
        from masklab.types import Masks

        settings = self.settings
        try:
            image = read_image(path)
        except (MasklabError, OSError, ValueError) as e:
            return {"image": name, "id": image_id, "status": "failed",
                    "reason": str(e).splitlines()[0]}
        h, w = image.shape[:2]
        anns = self.find(image, prompts, name)
        part = {"image": {"id": image_id, "file_name": name, "height": h, "width": w},
                "path": str(Path(path).resolve()),
                "annotations": []}
        if anns:
            mk = Masks(np.stack([a[0] for a in anns]), labels=[a[1] for a in anns])
            segs = mk.to_polygons() if settings.polygons else mk.to_rle()
            for k, a in enumerate(anns):
                part["annotations"].append({
                    "id": image_id * PER_IMAGE + k, "category_id": a[1],
                    "segmentation": segs[k], "area": int(mk.area[k]),
                    "bbox": [float(v) for v in mk.boxes.xywh[k]], "iscrowd": 0,
                    "score": a[2], "mask_score": a[3], "source": self.source,
                    "prompt": a[4]})
        write_json(out / "parts" / f"{image_id:07d}.json", part)
        if overlays:
            from masklab import viz

            shown = Masks(np.stack([a[0] for a in anns]), labels=[a[1] for a in anns],
                          scores=[a[2] for a in anns], class_names=settings.classes) \
                if anns else Masks(np.zeros((0, h, w), bool))
            write_image(out / "overlays" / (Path(name).with_suffix(".jpg")),
                        viz.overlay_masks(image, shown))
        return {"image": name, "id": image_id, "status": "done", "annotations": len(anns)}


    def find(self, image: np.ndarray, prompts: list[str] | None = None, name: str = ""
             ) -> list[tuple[np.ndarray, int, float, float, str]]:
        """The objects of one image: ``(mask, category id, score, mask score, prompt)`` each,
        best first, masks clipped to their box (holes kept), under ``min_area`` dropped.
        ``prompts``: this image's texts (``--classes auto``), else every class and synonym."""
        settings, det = self.settings, self.det
        h, w = image.shape[:2]
        prompts = self.prompts if prompts is None else list(prompts)
        if not prompts:  # its caption names nothing
            return []
        if hasattr(det, "segment_text"):  # text → masks directly (CLIPSeg)
            found, masks, mask_scores = _text_masks(det, image, prompts, settings)
        else:
            kw = {"name": name} if getattr(det, "needs_name", False) else {}
            found = postprocess(det.detect(image, prompts, **kw), settings,
                                nms_on=not getattr(det, "exact", False))
            found = found.select(np.arange(min(len(found), PER_IMAGE - 1)))
            if found.masks is not None:  # text → instance masks (SAM 3)
                masks, mask_scores = found.masks, found.scores
            else:
                masks, mask_scores = segment_boxes(image, found.boxes, self.seg)
        anns = []
        for i, (x0, y0, x1, y1) in enumerate(_pixel_boxes(found.boxes, h, w)):
            m = np.zeros((h, w), bool)
            m[y0:y1, x0:x1] = masks[i, y0:y1, x0:x1]  # clipped to its box; holes kept
            if m.sum() >= settings.min_area:
                anns.append((m, int(found.labels[i]) + 1, float(found.scores[i]),
                             float(mask_scores[i]), found.prompts[i]))
        return anns


def _text_masks(det, image: np.ndarray, prompts: list[str], settings: LabelSettings):
    """A text → mask model's masks as one detection per category (synonyms merged), with
    the mask's box; per-class thresholds apply to the mask's mean probability."""
    h, w = image.shape[:2]
    masks, scores = det.segment_text(image, prompts)
    merged: dict[int, tuple[np.ndarray, float, str]] = {}
    for k, p in enumerate(prompts):
        if not masks[k].any():
            continue
        c = settings.classes.index(settings.category(p))
        if c in merged:
            m, s0, p0 = merged[c]
            merged[c] = (m | masks[k], max(s0, float(scores[k])),
                         p0 if s0 >= scores[k] else p)
        else:
            merged[c] = (masks[k], float(scores[k]), p)
    keep = [(c, v) for c, v in sorted(merged.items())
            if v[1] >= settings.class_thresholds.get(settings.classes[c], 0.0)]
    if not keep:
        return Detections.empty(settings.classes), np.zeros((0, h, w), bool), np.zeros(0)
    boxes = []
    for _, (m, _, _) in keep:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    found = Detections(np.array(boxes, np.float64), np.array([v[1] for _, v in keep]),
                       np.array([c for c, _ in keep]), list(settings.classes),
                       [v[2] for _, v in keep])
    return found, np.stack([v[0] for _, v in keep]), found.scores.copy()


def caption_classes(images: list[Path], names: list[str], out: Path, settings: LabelSettings,
                    *, captioner=None, device: str = "cpu", quiet: bool | None = None,
                    runner=None) -> tuple[LabelSettings, dict[str, list[str]]]:
    """``--classes auto``: caption every image not captioned yet (``OUT/captions.jsonl``, one
    line per image, resumable like the labels), take each caption's categories
    (``masklab.grounding.captions``); the run's classes are every category in input order,
    each image is prompted with its own. With a ``runner`` (``label_images``) the captions are
    made where it runs them (each record is logged as it arrives)."""
    from dataclasses import replace

    from masklab.grounding.captions import classes_from_caption, load_captioner

    log = out / "captions.jsonl"
    if out.exists() and any(out.iterdir()) and not log.is_file():
        raise InputError("the output folder is not empty and holds no masklab label run", out)
    out.mkdir(parents=True, exist_ok=True)
    have = {}
    for rec in _read_log(log):
        if rec.get("captioner") != settings.captioner:
            raise InputError(f"this folder holds captions by {rec.get('captioner')!r}, not "
                             f"{settings.captioner!r}; use another --out or delete it", out)
        have[rec["image"]] = rec
    todo = [(p, n) for p, n in zip(images, names, strict=True) if n not in have]

    def keep(rec: dict) -> None:
        _append(log, rec)
        have[rec["image"]] = rec

    if todo and runner is not None and captioner is None:
        runner.caption(todo, settings.captioner, device=device, on_record=keep)
    elif todo:
        from masklab.progress import progress

        cap = captioner if captioner is not None else load_captioner(settings.captioner,
                                                                     device)
        for path, name in progress(todo, desc="caption", quiet=quiet, unit="image"):
            keep(caption_record(cap, settings.captioner, path, name))
    prompts_of = {n: classes_from_caption(have[n]["caption"]) if have[n]["caption"] else []
                  for n in names}
    classes = list(dict.fromkeys(c for n in names for c in prompts_of[n]))
    if not classes:
        raise InputError("the captions name no object: give the classes (--classes)", out)
    return replace(settings, classes=classes), prompts_of


def caption_record(cap, captioner: str, path, name: str) -> dict:
    """One line of ``captions.jsonl``: the image's caption, or why there is none (the
    labelling then logs the image as failed)."""
    from masklab.io.images import read_image

    rec = {"image": name, "captioner": captioner, "caption": None}
    try:
        rec["caption"] = cap.caption(read_image(path))
    except (MasklabError, OSError, ValueError) as e:
        rec["reason"] = str(e).splitlines()[0]
    return rec


def _read_log(path: Path) -> list[dict]:
    """The records of a JSON-lines log; a last line cut by an interruption is dropped (and
    cut off the file, so the next append starts clean)."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(raw.rfind(b"\n") + 1)
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _detector_options(s: LabelSettings) -> dict:
    opts = {}
    if s.box_threshold is not None:
        opts["box_threshold"] = s.box_threshold
    if s.text_threshold is not None:
        opts["text_threshold"] = s.text_threshold
    if s.exemplars:
        opts["exemplars"] = s.exemplars
    return opts


def _common_root(images: list[Path]) -> Path:
    parents = [p.resolve().parent for p in images]
    return Path(os.path.commonpath([str(p) for p in parents]))


def _append(path: Path, record: dict) -> None:
    """One JSON line, flushed to disk before the next image starts."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _check_run(out: Path, settings: LabelSettings) -> dict[str, dict]:
    """Check that ``out`` holds this run, or nothing yet (``_start_run`` makes it, once the
    models have loaded); the images already done."""
    wanted = {"format": FORMAT, **asdict(settings)}
    sfile = out / "settings.json"
    if sfile.is_file():
        try:
            have = json.loads(sfile.read_text(encoding="utf-8"))
        except ValueError:
            raise InputError("settings.json is not JSON: not a masklab label run", sfile) \
                from None
        diff = [k for k in wanted if have.get(k) != wanted[k]]
        if diff:
            k = diff[0]
            raise InputError(f"this folder holds a run with other settings ({k}: "
                             f"{have.get(k)!r} there, {wanted[k]!r} now); use another --out "
                             "or delete it", out)
    elif out.exists() and {p.name for p in out.iterdir()} - {"captions.jsonl"}:
        raise InputError("the output folder is not empty and holds no masklab label run", out)
    # a line cut by an interruption: that image is done again
    return {rec["image"]: rec for rec in _read_log(out / "progress.jsonl")}


def _start_run(out: Path, settings: LabelSettings) -> None:
    """The run folder and its ``settings.json``, unless they are there already."""
    from masklab.io.atomic import write_json

    if not (out / "settings.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "settings.json", {"format": FORMAT, **asdict(settings)}, indent=1)


def _assemble(out: Path, settings: LabelSettings) -> int:
    """``annotations.json`` and ``yolo/`` from every part (atomic writes)."""
    from masklab.io.atomic import atomic_open
    from masklab.io.coco import write_coco
    from masklab.io.yolo import masks_to_lines, write_dataset_yaml
    from masklab.types import Masks

    images, anns = [], []
    index = {k: k - 1 for k in range(1, len(settings.classes) + 1)}
    for part_file in sorted((out / "parts").glob("*.json")):
        part = json.loads(part_file.read_text(encoding="utf-8"))
        img = part["image"]
        images.append(img)
        lines = []
        for a in part["annotations"]:
            anns.append({"image_id": img["id"], **a})
        if part["annotations"]:
            mk = Masks.from_rle([_as_rle(a["segmentation"], img["height"], img["width"])
                                 for a in part["annotations"]],
                                labels=[a["category_id"] for a in part["annotations"]])
            lines = masks_to_lines(mk, index)
        with atomic_open(out / "yolo" / "labels" / Path(img["file_name"]).with_suffix(".txt"),
                         "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
    cats = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in
            enumerate(settings.classes)]
    write_coco(out / "annotations.json", {"images": images, "annotations": anns,
                                          "categories": cats})
    write_dataset_yaml(out / "yolo" / "data.yaml", settings.classes)
    return len(anns)


def _as_rle(seg, h: int, w: int) -> dict:
    from masklab.io.coco import annotation_rle

    return annotation_rle({"segmentation": seg}, h, w)
