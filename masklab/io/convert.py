"""Conversion between annotation formats through one in-memory form, ``MaskSet``.

Formats: ``coco`` (instances JSON), ``labels`` (semantic label PNGs: pixel = category id),
``instances`` (instance-id PNGs: pixel = instance id, with ``classes.json`` giving each
instance's category), ``yolo`` (YOLO-seg ``.txt`` + ``data.yaml``), ``davis`` (DAVIS
palette-PNG sequences of object ids), ``labelme`` (``masklab.io.labelme``) and ``cvat`` /
``cvat-video`` (CVAT for images / video 1.1 XML, ``masklab.io.cvat``), ``labelstudio``
(Label Studio's JSON tasks, ``masklab.io.labelstudio``), ``voc`` (Pascal VOC segmentation,
``masklab.io.voc``) and ``cityscapes`` (``gtFine``, ``masklab.io.cityscapes``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.io import coco as _coco
from masklab.io import davis as _davis
from masklab.io import yolo as _yolo
from masklab.io.atomic import write_json
from masklab.io.images import IMAGE_EXTENSIONS, image_size, read_label_png, write_label_png
from masklab.types import Masks, SemanticMap

FORMATS = ("coco", "labels", "instances", "yolo", "davis", "labelme", "cvat", "cvat-video",
           "labelstudio", "voc", "cityscapes")


@dataclass
class LabeledImage:
    """One image's objects: ``masks.labels`` are category ids, ``track_ids`` object ids."""

    file_name: str
    masks: Masks
    image_id: int | None = None
    # per object, where the format has them: attributes (CVAT's occluded, z_order and
    # <attribute> values; Label Studio's choices), written back by formats that hold them
    attributes: list[dict] | None = None


@dataclass
class MaskSet:
    """Categories (``{"id", "name"}`` dicts) and the labelled images."""

    categories: list[dict]
    items: list[LabeledImage] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return _coco.names_by_id(self.categories)


# --- readers ---------------------------------------------------------------------------------
def read_coco(path: str | os.PathLike) -> MaskSet:
    ds = _coco.load_coco(path)
    items = [LabeledImage(img["file_name"], ds.masks(img["id"]), img["id"]) for img in ds.images]
    cats = [{"id": c["id"], "name": c["name"]} for c in ds.categories]
    return MaskSet(cats, items)


def _label_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    files = sorted(folder.glob("*.png"))
    if not files:
        raise InputError("no PNG label files", folder)
    return files


def _image_name(stem: str, images_dir: Path | None, default_ext: str = ".jpg") -> str:
    if images_dir is not None:
        for ext in IMAGE_EXTENSIONS:
            for cand in (images_dir / (stem + ext), images_dir / (stem + ext.upper())):
                if cand.is_file():
                    return cand.name
    return stem + default_ext


def _categories_from(ids, names: list[str] | None) -> list[dict]:
    cats = []
    for i in sorted({int(v) for v in ids}):
        name = names[i] if names is not None and i < len(names) and names[i] else f"class_{i}"
        cats.append({"id": i, "name": name})
    return cats


def read_labels(folder: str | os.PathLike, *, images_dir: str | os.PathLike | None = None,
                class_names: list[str] | None = None, background: int | None = 0,
                ignore_index: int | None = 255) -> MaskSet:
    """Semantic label PNGs: one instance per class present (``background`` and
    ``ignore_index`` pixels excluded)."""
    folder = Path(folder)
    images = None if images_dir is None else Path(images_dir)
    items, seen = [], set()
    for i, f in enumerate(_label_files(folder)):
        lab = read_label_png(f)
        ids = [v for v in np.unique(lab) if v != background and v != ignore_index]
        seen.update(int(v) for v in ids)
        ids_arr = np.asarray(ids, dtype=np.int64)
        masks = Masks(lab[None] == ids_arr[:, None, None], labels=ids_arr)
        items.append(LabeledImage(_image_name(f.stem, images), masks, i + 1))
    return MaskSet(_categories_from(seen, class_names), items)


def read_instances(folder: str | os.PathLike, *, images_dir: str | os.PathLike | None = None
                   ) -> MaskSet:
    """Instance-id PNGs; ``classes.json`` (``{"categories": [...], "instances": {stem:
    {id: category_id}}}``) gives categories, else every instance is category 1 ``object``."""
    folder = Path(folder)
    images = None if images_dir is None else Path(images_dir)
    meta_file = folder / "classes.json"
    meta = _coco.read_json(meta_file) if meta_file.is_file() else None
    cats = meta["categories"] if meta else [{"id": 1, "name": "object"}]
    items = []
    for i, f in enumerate(_label_files(folder)):
        masks = Masks.from_label_map(read_label_png(f))
        inst = (meta or {}).get("instances", {}).get(f.stem, {})
        try:
            labels = [int(inst.get(str(t), 1)) if meta else 1 for t in masks.track_ids]
        except (TypeError, ValueError):
            raise InputError(f"instances[{f.stem!r}] must map ids to integer categories",
                             meta_file) from None
        masks.labels = np.asarray(labels, np.int64)
        items.append(LabeledImage(_image_name(f.stem, images), masks, i + 1))
    return MaskSet(cats, items)


def read_yolo(folder: str | os.PathLike, *, images_dir: str | os.PathLike) -> MaskSet:
    """YOLO-seg label ``.txt`` files; image sizes come from the images in ``images_dir``."""
    folder, images = Path(folder), Path(images_dir)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    yaml_file = folder / "data.yaml"
    names = _yolo.read_dataset_yaml(yaml_file) if yaml_file.is_file() else None
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError("no YOLO .txt label files", folder)
    items, seen = [], set()
    for i, f in enumerate(files):
        name = _image_name(f.stem, images, default_ext="")
        if not (images / name).is_file():
            raise InputError(f"no image for label file {f.name} in {images}", f)
        h, w = image_size(images / name)
        masks, classes = _yolo.read_label_file(f, h, w)
        # YOLO class k is category k + 1 in COCO terms (COCO reserves 0 for background)
        masks.labels = np.asarray(classes, np.int64) + 1
        seen.update(int(c) + 1 for c in classes)
        items.append(LabeledImage(name, masks, i + 1))
    if names is not None:
        cats = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
        for c in seen - {c["id"] for c in cats}:
            raise InputError(f"class {c - 1} is not named in data.yaml", yaml_file)
    else:
        cats = [{"id": c, "name": f"class_{c - 1}"} for c in sorted(seen)]
    return MaskSet(cats, items)


def read_davis(root: str | os.PathLike, *, resolution: str = "480p") -> MaskSet:
    """DAVIS sequences: every frame is an image ``<seq>/<frame>.jpg``; object ids become
    ``track_ids`` and all objects category 1 ``object``."""
    items = []
    for seq in _davis.list_sequences(root, resolution):
        names, frames = _davis.read_sequence(_davis.annotations_dir(root, resolution) / seq)
        for name, ids in zip(names, frames, strict=True):
            masks = Masks.from_label_map(np.where(ids == 255, 0, ids))
            masks.labels = np.ones(len(masks), np.int64)
            items.append(LabeledImage(f"{seq}/{name}.jpg", masks, len(items) + 1))
    return MaskSet([{"id": 1, "name": "object"}], items)


# --- writers ---------------------------------------------------------------------------------
def write_coco(ms: MaskSet, path: str | os.PathLike, *, polygons: bool = False) -> list[Path]:
    """The set as one COCO JSON, streamed: images go to the file and annotations to a
    temporary file as the items come, so memory stays flat however many images there are;
    the file appears whole (renamed into place) or not at all."""
    import json
    import shutil
    import tempfile

    from masklab.io.atomic import atomic_open

    seen: set[int] = set()
    n_ann = 0
    with atomic_open(path, "w", encoding="utf-8") as f, \
            tempfile.TemporaryFile("w+", encoding="utf-8") as anns:
        f.write('{"images": [')
        for i, item in enumerate(ms.items):
            image_id = item.image_id if item.image_id is not None else i + 1
            if image_id in seen:
                raise InputError(f"image id {image_id} appears twice", path)
            seen.add(image_id)
            h, w = item.masks.size
            f.write((", " if i else "") + json.dumps(
                {"id": image_id, "file_name": item.file_name, "height": h, "width": w}))
            recs = _coco.masks_to_annotations(item.masks, image_id, start_id=n_ann + 1,
                                              polygons=polygons)
            if item.masks.track_ids is not None:
                for rec, t in zip(recs, item.masks.track_ids, strict=True):
                    rec["track_id"] = int(t)
            if item.attributes:  # as CVAT's COCO export keeps them
                for rec, a in zip(recs, item.attributes, strict=True):
                    rec["attributes"] = a
            for rec in recs:
                anns.write((", " if n_ann else "") + json.dumps(rec, allow_nan=False))
                n_ann += 1
        f.write('], "annotations": [')
        anns.seek(0)
        shutil.copyfileobj(anns, f)
        f.write('], "categories": ' + json.dumps(ms.categories) + "}")
    return [Path(path)]


def write_labels(ms: MaskSet, folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    out = []
    for item in ms.items:
        sem = SemanticMap.from_masks(item.masks, background=0)
        out.append(write_label_png(folder / (Path(item.file_name).stem + ".png"), sem.labels))
    return out


def write_instances(ms: MaskSet, folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    out, instances = [], {}
    for item in ms.items:
        stem = Path(item.file_name).stem
        ids = np.arange(1, len(item.masks) + 1)
        lm = np.zeros(item.masks.size, np.uint16 if len(ids) > 255 else np.uint8)
        dense = item.masks.to_dense()
        for i in np.argsort(-item.masks.area, kind="stable"):  # small objects on top
            lm[dense[i]] = ids[i]
        labels = item.masks.labels if item.masks.labels is not None else np.ones(len(ids))
        instances[stem] = {str(int(t)): int(c) for t, c in zip(ids, labels, strict=True)}
        out.append(write_label_png(folder / f"{stem}.png", lm, palette=False))
    out.append(write_json(folder / "classes.json",
                          {"categories": ms.categories, "instances": instances}, indent=1))
    return out


def write_yolo(ms: MaskSet, folder: str | os.PathLike) -> list[Path]:
    from masklab.io.atomic import write_text

    folder = Path(folder)
    cats = sorted(ms.categories, key=lambda c: c["id"])
    index = {c["id"]: k for k, c in enumerate(cats)}
    out = []
    for item in ms.items:
        lines = _yolo.masks_to_lines(item.masks, index)
        out.append(write_text(folder / (Path(item.file_name).stem + ".txt"),
                              "".join(line + "\n" for line in lines)))
    out.append(_yolo.write_dataset_yaml(folder / "data.yaml", [c["name"] for c in cats]))
    return out


def write_davis(ms: MaskSet, root: str | os.PathLike, *, resolution: str = "480p") -> list[Path]:
    ann_dir = _davis.annotations_dir(root, resolution)
    out = []
    for item in ms.items:
        p = Path(item.file_name)
        # frames of one sequence share a folder; a lone image becomes a one-frame sequence
        seq, frame = (p.parent.name, p.stem) if p.parent.name else (p.stem, "00000")
        masks = item.masks
        ids = masks.track_ids if masks.track_ids is not None else np.arange(1, len(masks) + 1)
        if len(ids) and (ids.min() < 1 or ids.max() > 254):
            ids = np.arange(1, len(masks) + 1)
        if len(ids) > 254:
            raise InputError(f"{item.file_name}: {len(ids)} objects, DAVIS holds at most 254")
        lm = np.zeros(masks.size, np.uint8)
        dense = masks.to_dense()
        for i in np.argsort(-masks.area, kind="stable"):
            lm[dense[i]] = ids[i]
        out.append(_davis.write_frame(ann_dir / seq / f"{frame}.png", lm))
    return out


def _lazy(module: str, name: str, **fixed) -> Callable:
    """``masklab.io.<module>.<name>``, imported on first call (the interchange formats'
    modules load only when used)."""
    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"masklab.io.{module}"), name)(
            *args, **fixed, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


read_cvat, write_cvat = _lazy("cvat", "read_cvat"), _lazy("cvat", "write_cvat")
write_cvat_video = _lazy("cvat", "write_cvat", video=True)
read_labelstudio = _lazy("labelstudio", "read_labelstudio")
write_labelstudio = _lazy("labelstudio", "write_labelstudio")
read_voc, write_voc = _lazy("voc", "read_voc"), _lazy("voc", "write_voc")
read_cityscapes = _lazy("cityscapes", "read_cityscapes")
write_cityscapes = _lazy("cityscapes", "write_cityscapes")
read_labelme, write_labelme = _lazy("labelme", "read_labelme"), _lazy("labelme", "write_labelme")


READERS: dict[str, Callable[..., MaskSet]] = {
    "coco": read_coco, "labels": read_labels, "instances": read_instances, "yolo": read_yolo,
    "davis": read_davis, "labelme": read_labelme, "cvat": read_cvat, "cvat-video": read_cvat,
    "labelstudio": read_labelstudio, "voc": read_voc, "cityscapes": read_cityscapes,
}
WRITERS: dict[str, Callable[..., list[Path]]] = {
    "coco": write_coco, "labels": write_labels, "instances": write_instances,
    "yolo": write_yolo, "davis": write_davis, "labelme": write_labelme, "cvat": write_cvat,
    "cvat-video": write_cvat_video, "labelstudio": write_labelstudio, "voc": write_voc,
    "cityscapes": write_cityscapes,
}


def guess_format(path: str | os.PathLike) -> str | None:
    """``coco`` for a ``.json`` file, ``davis`` for a folder with ``Annotations/``, ``yolo`` for
    a folder of ``.txt`` files; ``None`` when it cannot tell (label vs instance PNGs)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        return _json_format(p)
    if p.suffix.lower() == ".xml":
        return "cvat"
    if p.is_dir():
        first = next((f for f in sorted(p.rglob("*.json")) if f.name != "classes.json"), None)
        if first is not None:
            import json as _json

            try:
                doc = _json.loads(first.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                doc = None
            if isinstance(doc, dict) and "shapes" in doc:
                return "labelme"
    if (p / "SegmentationClass").is_dir() or any((p / v / "SegmentationClass").is_dir()
                                                 for v in ("VOC2012", "VOC2007")):
        return "voc"
    if (p / "gtFine").is_dir():
        return "cityscapes"
    if (p / "Annotations").is_dir():
        return "davis"
    if p.is_dir() and any(p.glob("*.txt")):
        return "yolo"
    return None


def _json_format(p: Path) -> str:
    """``labelstudio`` for a list of tasks (their start says so), else ``coco``."""
    try:
        with open(p, encoding="utf-8") as fh:
            head = fh.read(4096).lstrip()
    except OSError:
        return "coco"
    if head.startswith("[") and ('"data"' in head or head.rstrip() in ("[", "[]")):
        return "labelstudio"
    return "coco"


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, src_format: str | None = None,
            dst_format: str | None = None, images_dir: str | os.PathLike | None = None,
            class_names: list[str] | None = None, polygons: bool = False) -> list[Path]:
    """Convert annotations between formats; returns the files written."""
    src_format = src_format or guess_format(src)
    dst_format = dst_format or {".json": "coco", ".xml": "cvat"}.get(Path(dst).suffix.lower())
    if src_format not in FORMATS:
        raise InputError(f"cannot tell the source format; pass one of {', '.join(FORMATS)}",
                         src)
    if dst_format not in FORMATS:
        raise InputError(f"cannot tell the target format; pass one of {', '.join(FORMATS)}",
                         dst)
    kwargs: dict = {}
    if src_format in ("labels", "instances", "yolo"):
        if src_format == "yolo" and images_dir is None:
            raise InputError("reading YOLO labels needs the images folder (image sizes)", src)
        kwargs["images_dir"] = images_dir
    if src_format in ("labelme", "voc"):
        kwargs["images_dir"] = images_dir
    if src_format in ("labels", "labelme", "labelstudio", "cvat", "cvat-video"):
        kwargs["class_names"] = class_names
    ms = READERS[src_format](src, **kwargs)
    if dst_format == "coco":
        return write_coco(ms, dst, polygons=polygons)
    if dst_format == "labelme":
        return write_labelme(ms, dst, images_dir=images_dir)
    return WRITERS[dst_format](ms, dst)
