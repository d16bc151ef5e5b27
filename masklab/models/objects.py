"""Object models — detection, instance segmentation, keypoints — behind one result type.

torchvision's Faster R-CNN, RetinaNet, FCOS, Mask R-CNN (v1, v2) and Keypoint R-CNN are
registered with their COCO weights; each returns ``Detections`` (``Boxes`` with scores,
labels and class names, plus ``Masks`` or ``Keypoints`` when the model predicts them).
``load_object_model`` takes a registry name (pretrained weights through
``masklab.weights``), a training checkpoint folder, or a name plus a plain state dict with
``num_classes``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from masklab.errors import InputError
from masklab.models.registry import ModelInfo, get_info, load_weights_into, register
from masklab.types import Boxes, Keypoints, Masks

CHECKPOINT_FORMAT = "masklab-checkpoint-v1"


def _coco_categories() -> tuple[str, ...]:
    from torchvision.models._meta import _COCO_CATEGORIES

    return tuple(_COCO_CATEGORIES)


@dataclass
class Detections:
    """One image's predictions; ``masks``/``keypoints`` are ``None`` for box-only models."""

    boxes: Boxes
    masks: Masks | None = None
    keypoints: Keypoints | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, idx) -> Detections:
        return Detections(self.boxes[idx], None if self.masks is None else self.masks[idx],
                          None if self.keypoints is None else self.keypoints[idx])

    def to_coco_results(self, image_id: int) -> list[dict]:
        """COCO results records (bbox always; segmentation RLE and keypoints when present)."""
        out = []
        rles = self.masks.to_rle() if self.masks is not None else None
        for i in range(len(self)):
            rec = {"image_id": image_id, "category_id": int(self.boxes.labels[i]),
                   "bbox": [float(v) for v in self.boxes.xywh[i]],
                   "score": float(self.boxes.scores[i])}
            if rles is not None:
                rec["segmentation"] = rles[i]
            if self.keypoints is not None:
                rec["keypoints"] = self.keypoints.data[i].reshape(-1).tolist()
            out.append(rec)
        return out


class ObjectModel(nn.Module):
    """A torchvision detection model plus its classes and task."""

    def __init__(self, net: nn.Module, *, name: str, task: str, num_classes: int,
                 class_names: list[str] | None, config: dict | None = None,
                 keypoint_names: list[str] | None = None,
                 skeleton: list[list[int]] | None = None):
        super().__init__()
        self.net, self.name, self.task = net, name, task
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else None
        self.config = dict(config or {})
        self.keypoint_names = list(keypoint_names) if keypoint_names else None
        self.skeleton = [list(e) for e in skeleton] if skeleton else None  # 1-based, as COCO

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], *, score_threshold: float = 0.5,
                classes: list[int] | None = None, max_detections: int = 100,
                mask_threshold: float = 0.5) -> list[Detections]:
        """Predictions for ``(H, W, 3)`` uint8 images (any sizes), best score first."""
        self.eval()
        device = next(self.parameters()).device
        batch = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float()
                 .div(255).to(device) for im in images]
        outputs = self.net(batch)
        return [self._to_detections(o, im.shape[:2], score_threshold, classes,
                                    max_detections, mask_threshold)
                for o, im in zip(outputs, images, strict=True)]

    def _to_detections(self, out: dict, size, score_threshold, classes, max_detections,
                       mask_threshold) -> Detections:
        scores = out["scores"].cpu().numpy().astype(np.float64)
        labels = out["labels"].cpu().numpy().astype(np.int64)
        keep = scores >= score_threshold
        if classes is not None:
            keep &= np.isin(labels, classes)
        idx = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")][:max_detections]
        meta = {"scores": scores[idx], "labels": labels[idx], "class_names": self.class_names}
        boxes = Boxes(out["boxes"].cpu().numpy().astype(np.float64)[idx].reshape(-1, 4),
                      **meta)
        masks = None
        if "masks" in out:
            m = out["masks"].cpu().numpy()[idx, 0] >= mask_threshold
            masks = Masks(m.reshape(len(idx), *size), **meta)
        kps = None
        if "keypoints" in out:
            k = out["keypoints"].cpu().numpy().astype(np.float64)[idx]
            kscore = out.get("keypoints_scores")
            if kscore is not None:  # visibility becomes the keypoint's score
                k[..., 2] = kscore.cpu().numpy()[idx]
            from masklab.types.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON

            names, skeleton = self.keypoint_names, None
            if self.skeleton:
                skeleton = [(a - 1, b - 1) for a, b in self.skeleton]
            if names is None and k.shape[1] == 17:
                names, skeleton = COCO_KEYPOINT_NAMES, COCO_SKELETON
            kps = Keypoints(k.reshape(len(idx), out["keypoints"].shape[1], 3), names=names,
                            skeleton=skeleton,
                            **meta)
        return Detections(boxes, masks, kps)


def _tv_builder(fn_name: str):
    def build(num_classes: int, **kwargs) -> nn.Module:
        import torchvision.models.detection as det

        return getattr(det, fn_name)(weights=None, weights_backbone=None,
                                     num_classes=num_classes, **kwargs)
    build.__name__ = f"build_{fn_name}"
    return build


_TV_LICENSE = "BSD-3-Clause (torchvision)"
for _name, _task, _desc in [
    ("maskrcnn_resnet50_fpn", "instances", "Mask R-CNN ResNet50-FPN"),
    ("maskrcnn_resnet50_fpn_v2", "instances", "Mask R-CNN ResNet50-FPN v2"),
    ("fasterrcnn_resnet50_fpn", "boxes", "Faster R-CNN ResNet50-FPN"),
    ("fasterrcnn_resnet50_fpn_v2", "boxes", "Faster R-CNN ResNet50-FPN v2"),
    ("retinanet_resnet50_fpn", "boxes", "RetinaNet ResNet50-FPN"),
    ("retinanet_resnet50_fpn_v2", "boxes", "RetinaNet ResNet50-FPN v2"),
    ("fcos_resnet50_fpn", "boxes", "FCOS ResNet50-FPN"),
]:
    register(ModelInfo(_name, _task, _tv_builder(_name), weights=f"torchvision/{_name}",
                       dataset="COCO", num_classes=91, input_size=(800, 1333),
                       license=_TV_LICENSE, description=f"{_desc}, torchvision"))
register(ModelInfo("keypointrcnn_resnet50_fpn", "keypoints",
                   _tv_builder("keypointrcnn_resnet50_fpn"),
                   weights="torchvision/keypointrcnn_resnet50_fpn", dataset="COCO keypoints",
                   num_classes=2, class_names=("__background__", "person"),
                   input_size=(800, 1333), license=_TV_LICENSE,
                   description="Keypoint R-CNN ResNet50-FPN (17 COCO keypoints), torchvision"))

def build_maskrcnn_resnet18_fpn(num_classes: int, **kwargs) -> nn.Module:
    """A light Mask R-CNN: ResNet-18 + FPN, trained from scratch (no pretrained weights)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    return MaskRCNN(backbone, num_classes=num_classes, **kwargs)


def build_keypointrcnn_resnet18_fpn(num_classes: int, **kwargs) -> nn.Module:
    """A light Keypoint R-CNN: ResNet-18 + FPN, from scratch (``num_keypoints`` option)."""
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    return KeypointRCNN(backbone, num_classes=num_classes, **kwargs)


register(ModelInfo("keypointrcnn_resnet18_fpn", "keypoints", build_keypointrcnn_resnet18_fpn,
                   num_classes=2, class_names=("__background__", "person"),
                   dataset="COCO keypoints layout (untrained)",
                   license="Apache-2.0 (masklab)",
                   description="Keypoint R-CNN ResNet18-FPN, light, no pretrained weights"))

register(ModelInfo("maskrcnn_resnet18_fpn", "instances", build_maskrcnn_resnet18_fpn,
                   num_classes=91, dataset="COCO layout (untrained)",
                   license="Apache-2.0 (masklab)",
                   description="Mask R-CNN ResNet18-FPN, light, no pretrained weights"))

OBJECT_TASKS = ("instances", "boxes", "keypoints")


def is_object_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path)
    if not (p / "config.json").is_file():
        return False
    cfg = json.loads((p / "config.json").read_text())
    return cfg.get("format") == CHECKPOINT_FORMAT and cfg.get("task") in OBJECT_TASKS


def load_object_model(name_or_path: str | os.PathLike, *, weights: str | os.PathLike | None
                      = "default", num_classes: int | None = None,
                      class_names: list[str] | None = None, device: str = "cpu",
                      config: dict | None = None) -> ObjectModel:
    """A ready ``ObjectModel`` in eval mode.

    ``weights``: ``"default"`` (COCO weights of the registry), ``None`` (random), or a local
    state dict (torchvision's or a plain one; then ``num_classes`` says what it predicts).
    ``config`` passes builder options (``min_size``, ``box_detections_per_img``, ...).
    """
    if is_object_checkpoint(name_or_path):
        return load_object_checkpoint(name_or_path, device=device)
    info = get_info(str(name_or_path))
    if info.task not in OBJECT_TASKS:
        raise InputError(f"model {info.name!r} is a {info.task} model, not an object model")
    if info.builder.__name__ == "build_universal":
        raise InputError(f"model {info.name!r} is a transformers universal model: load it with "
                         "masklab.models.universal.load_universal_model")
    k = num_classes or info.num_classes
    names = class_names
    if names is None and k == info.num_classes:
        names = list(info.class_names) if info.class_names else list(_coco_categories())
    if names is not None and len(names) != k:
        raise InputError(f"{len(names)} class names for {k} classes")
    net = info.builder(k, **(config or {}))
    source = info.weights if weights == "default" else weights
    if source is not None:
        load_weights_into(net, source, info.name, k)
    model = ObjectModel(net, name=info.name, task=info.task, num_classes=k, class_names=names,
                        config=config)
    return model.to(device).eval()


def save_object_checkpoint(folder: str | os.PathLike, model: ObjectModel,
                           extra: dict | None = None) -> Path:
    """``model.safetensors`` + ``config.json`` (name, task, classes, builder options)."""
    from safetensors.torch import save_file

    from masklab.io.atomic import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json(folder / "config.json", {
        "format": CHECKPOINT_FORMAT, "task": model.task, "model": model.name,
        "model_config": model.config, "num_classes": model.num_classes,
        "class_names": model.class_names, "keypoint_names": model.keypoint_names,
        "skeleton": model.skeleton, **(extra or {})}, indent=1)
    return folder


def load_object_checkpoint(folder: str | os.PathLike, device: str = "cpu") -> ObjectModel:
    from masklab.io.coco import read_json
    from masklab.weights import load_state_dict

    folder = Path(folder)
    cfg = read_json(folder / "config.json")
    info = get_info(cfg["model"])
    net = info.builder(cfg["num_classes"], **cfg.get("model_config", {}))
    net.load_state_dict(load_state_dict(folder / "model.safetensors"))
    model = ObjectModel(net, name=info.name, task=cfg["task"], num_classes=cfg["num_classes"],
                        class_names=cfg.get("class_names"), config=cfg.get("model_config"),
                        keypoint_names=cfg.get("keypoint_names"), skeleton=cfg.get("skeleton"))
    return model.to(device).eval()
