"""Semantic segmentation datasets: image + label-map pairs in the common layouts.

- ``folder``: ``images/`` and ``labels/`` (or ``annotations/``) paired by file stem, with
  optional ``train``/``val`` sub-folders;
- ``camvid``: the SegNet CamVid layout (``train.txt`` / ``val.txt`` listing pairs, 11 classes,
  11 = void);
- ``ade20k``: ``images/{training,validation}`` + ``annotations/...``; ``reduce_zero_label``;
- ``coco``: a COCO instances JSON + image folder, painted into category maps (0 background,
  categories renumbered 1..K in id order).

Splits can be joined (``"train+val"``) and narrowed to file-name prefixes (``sequences``), which
gives video-disjoint splits of datasets cut from videos (CamVid's frames are named after theirs).

Augmentations (``train_transform``) come from torchvision's transforms v2, which move masks
with their images: random scale, crop (padding the label with the ignore index), flip, and
photometric changes (brightness, contrast, saturation, hue, gamma).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.io.images import IMAGE_EXTENSIONS, read_image, read_label_png

CAMVID_CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol",
                  "fence", "car", "pedestrian", "bicyclist"]


@dataclass
class DatasetSpec:
    """What a layout says about its labels."""

    num_classes: int | None
    class_names: list[str] | None
    ignore_index: int
    reduce_zero_label: bool = False


class SegmentationDataset:
    """``(image uint8 H×W×3, label int64 H×W)`` pairs, optionally transformed to tensors."""

    def __init__(self, pairs: list[tuple[Path, Path]], spec: DatasetSpec, transform=None):
        if not pairs:
            raise InputError("no image/label pairs found")
        self.pairs, self.spec, self.transform = pairs, spec, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, lab_path = self.pairs[i]
        image = read_image(img_path)
        label = read_label_png(lab_path).astype(np.int64)
        if label.shape != image.shape[:2]:
            raise InputError(f"label is {label.shape[1]}x{label.shape[0]}, image "
                             f"{image.shape[1]}x{image.shape[0]}", lab_path)
        if self.spec.reduce_zero_label:
            label = np.where(label == 0, 255, label - 1)
            label[label == 254] = 255
        return image, label

    def __getitem__(self, i: int):
        image, label = self.load(i)
        if self.transform is None:
            return image, label
        return self.transform(image, label)

    def pixel_counts(self) -> np.ndarray:
        """Labelled pixels per class over the whole dataset (for class weights)."""
        k = self.spec.num_classes
        counts = np.zeros(k, np.int64)
        for i in range(len(self)):
            lab = self.load(i)[1]
            lab = lab[(lab >= 0) & (lab < k)]
            counts += np.bincount(lab, minlength=k)
        return counts


def _stems(folder: Path, exts) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in exts}


def _pair_folders(images: Path, labels: Path) -> list[tuple[Path, Path]]:
    imgs = _stems(images, IMAGE_EXTENSIONS)
    labs = _stems(labels, (".png",))
    missing = sorted(set(imgs) - set(labs))
    if missing:
        raise InputError(f"no label PNG for image {missing[0]} (and {len(missing) - 1} more)",
                         labels)
    return [(imgs[s], labs[s]) for s in sorted(imgs)]


def detect_layout(root: str | os.PathLike) -> str:
    root = Path(root)
    if root.suffix.lower() == ".json":
        return "coco"
    if (root / "train.txt").is_file() and (root / "trainannot").is_dir():
        return "camvid"
    if (root / "images" / "training").is_dir() and (root / "annotations" / "training").is_dir():
        return "ade20k"
    if (root / "images").is_dir() or (root / "train" / "images").is_dir():
        return "folder"
    raise InputError("cannot tell the dataset layout (expected images/ + labels/, CamVid, "
                     "ADE20K or a COCO .json)", root)


def open_dataset(root: str | os.PathLike, split: str = "train", *, layout: str = "auto",
                 images_dir: str | os.PathLike | None = None, num_classes: int | None = None,
                 class_names: list[str] | None = None, ignore_index: int = 255,
                 sequences: list[str] | None = None, transform=None) -> SegmentationDataset:
    """Open a dataset split in any supported layout.

    ``split`` is ``train``, ``val`` or several joined by ``+`` (``"train+val"``).
    ``sequences`` keeps only the images whose file name starts with one of these prefixes:
    CamVid names each frame after its video (``0006R0_f02370.png``), so
    ``split="train+val", sequences=["0006R0"]`` is a validation set from a video that
    ``sequences=["0016E5", "0001TP"]`` never shows the model.
    """
    if "+" in split:
        parts = [open_dataset(root, s, layout=layout, images_dir=images_dir,
                              num_classes=num_classes, class_names=class_names,
                              ignore_index=ignore_index, sequences=None, transform=transform)
                 for s in split.split("+")]
        ds = parts[0]
        ds.pairs = [p for part in parts for p in part.pairs]
        return _only_sequences(ds, sequences, root, split)
    return _only_sequences(_open_split(root, split, layout=layout, images_dir=images_dir,
                                       num_classes=num_classes, class_names=class_names,
                                       ignore_index=ignore_index, transform=transform),
                           sequences, root, split)


def _only_sequences(ds: SegmentationDataset, sequences, root, split: str) -> SegmentationDataset:
    if not sequences:
        return ds
    prefixes = tuple(sequences)
    ds.pairs = [p for p in ds.pairs if p[0].name.startswith(prefixes)]
    if not ds.pairs:
        raise InputError(f"no image of split {split!r} starts with "
                         f"{', '.join(prefixes)}", root)
    return ds


def _open_split(root: str | os.PathLike, split: str, *, layout: str,
                images_dir: str | os.PathLike | None, num_classes: int | None,
                class_names: list[str] | None, ignore_index: int,
                transform) -> SegmentationDataset:
    root = Path(root)
    if not root.exists():
        raise InputError("no such dataset", root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "camvid":
        listing = root / f"{split}.txt"
        if not listing.is_file():
            raise InputError(f"no {split}.txt", root)
        pairs = []
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            parts = line.split()
            if len(parts) != 2:
                continue
            img, lab = (root / p.lstrip("/").split("CamVid/")[-1] for p in parts)
            if not img.is_file() or not lab.is_file():
                raise InputError(f"line {n}: {img.name} or {lab.name} not found", listing)
            pairs.append((img, lab))
        spec = DatasetSpec(11, CAMVID_CLASSES, 11)
    elif layout == "ade20k":
        sub = "training" if split == "train" else "validation"
        pairs = _pair_folders(root / "images" / sub, root / "annotations" / sub)
        spec = DatasetSpec(150, class_names, 255, reduce_zero_label=True)
    elif layout == "folder":
        base = root / split if (root / split / "images").is_dir() else root
        lab_dir = base / "labels" if (base / "labels").is_dir() else base / "annotations"
        pairs = _pair_folders(base / "images", lab_dir)
        spec = DatasetSpec(num_classes, class_names, ignore_index)
    elif layout == "coco":
        return CocoSemanticDataset(root, images_dir, transform=transform)
    else:
        raise InputError(f"unknown layout {layout!r} (folder, camvid, ade20k, coco)", root)
    if num_classes is not None:
        spec.num_classes = num_classes
    if class_names is not None:
        spec.class_names = list(class_names)
    return SegmentationDataset(pairs, spec, transform)


class CocoSemanticDataset(SegmentationDataset):
    """COCO instances painted into semantic maps (larger objects first, small on top)."""

    def __init__(self, json_path, images_dir, transform=None):
        from masklab.io.coco import load_coco

        if images_dir is None:
            raise InputError("a COCO dataset needs --images (the image folder)", json_path)
        self.coco = load_coco(json_path)
        self.images_dir = Path(images_dir)
        cats = sorted(self.coco.categories, key=lambda c: c["id"])
        self.remap = {c["id"]: i + 1 for i, c in enumerate(cats)}
        spec = DatasetSpec(len(cats) + 1, ["background"] + [c["name"] for c in cats], 255)
        pairs = [(self.images_dir / im["file_name"], Path(str(im["id"])))
                 for im in self.coco.images]
        super().__init__(pairs, spec, transform)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from masklab.types import SemanticMap

        img_path, image_id = self.pairs[i]
        image = read_image(img_path)
        masks = self.coco.masks(int(image_id.name))
        masks.labels = np.array([self.remap[c] for c in masks.labels], np.int64)
        label = SemanticMap.from_masks(masks, background=0).labels.astype(np.int64)
        return image, label


def train_transform(crop: tuple[int, int] | None, *, scale=(0.5, 2.0), flip: bool = True,
                    jitter: float = 0.2, hue: float = 0.0, gamma: tuple[float, float] | None = None,
                    ignore_index: int = 255):
    """Random scale → (padded) random crop → flip → photometric changes; returns
    ``(image uint8 tensor 3×H×W, label int64 tensor H×W)``.

    Photometric: brightness, contrast and saturation each scaled by a factor in
    ``[1 - jitter, 1 + jitter]``, hue shifted by up to ``hue`` of a turn, and a gamma drawn
    log-uniformly from ``gamma`` (``I ** g``: dusk, overcast and over-exposed frames), in a
    random order.
    """
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    steps = []
    if scale is not None and tuple(scale) != (1.0, 1.0):
        steps.append(_RandomScale(scale))
    if crop is not None:
        steps.append(v2.RandomCrop(crop, pad_if_needed=True,
                                   fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    photometric = []
    if jitter or hue:
        photometric.append(v2.ColorJitter(jitter, jitter, jitter, hue))
    if gamma is not None and tuple(gamma) != (1.0, 1.0):
        photometric.append(_RandomGamma(gamma))
    if len(photometric) > 1:
        steps.append(v2.RandomOrder(photometric))
    else:
        steps += photometric
    pipeline = v2.Compose(steps) if steps else (lambda img, lab: (img, lab))

    def apply(image: np.ndarray, label: np.ndarray):
        img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
        lab = tv_tensors.Mask(torch.from_numpy(label))
        img, lab = pipeline(img, lab)
        return img.as_subclass(torch.Tensor), lab.as_subclass(torch.Tensor).long()

    return apply


def eval_transform():
    import torch

    def apply(image: np.ndarray, label: np.ndarray):
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                torch.from_numpy(label).long())

    return apply


class _RandomScale:
    """Resize by a factor drawn uniformly from ``scale`` (bilinear image, nearest label)."""

    def __init__(self, scale):
        self.lo, self.hi = scale

    def __call__(self, img, lab):
        import torch
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as TF

        f = float(torch.empty(()).uniform_(self.lo, self.hi))  # seeded by torch
        h, w = img.shape[-2:]
        size = [max(1, round(h * f)), max(1, round(w * f))]
        return TF.resize(img, size, antialias=True), TF.resize(
            lab, size, interpolation=v2.InterpolationMode.NEAREST)


class _RandomGamma:
    """``255 · (I / 255) ** g`` with ``log g`` uniform in ``log gamma`` (images only)."""

    def __init__(self, gamma):
        lo, hi = gamma
        if not 0 < lo <= hi:
            raise InputError(f"gamma range must be 0 < lo <= hi, got {lo}, {hi}")
        self.lo, self.hi = lo, hi

    def __call__(self, img, *rest):
        import math

        import torch
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        g = math.exp(float(torch.empty(()).uniform_(math.log(self.lo), math.log(self.hi))))
        out = tv_tensors.wrap(TF.adjust_gamma(img.as_subclass(torch.Tensor), g), like=img)
        return (out, *rest) if rest else out
