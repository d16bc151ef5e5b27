"""Query-based "universal" segmenters from transformers: Mask2Former, OneFormer, DETR panoptic.

One network gives panoptic, instance and semantic output. Pre- and post-processing are the
model family's own image processor (resize, normalise, pad; panoptic merging with
``overlap_mask_area_threshold`` and stuff fusion), so results match the reference pipeline on
the same weights. masklab's side is the rest: the registry and weight resolver, one result
type (``Detections`` with ``Masks``; COCO-panoptic ``ids`` + segments), label numbering and
``things``.

Labels: Mask2Former and OneFormer number classes ``0..K-1``; masklab shifts them by one so that
label ``0`` is the background, as for every other object model (``class_names[0] ==
"__background__"``). DETR panoptic checkpoints already use COCO category ids (0 is "N/A") and
keep them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from masklab.errors import InputError, WeightsError
from masklab.models.registry import ModelInfo, get_info, register
from masklab.types import Boxes, Masks, SemanticMap

FAMILIES = ("mask2former", "oneformer", "detr")


def _classes(family: str):
    try:
        import transformers as T
    except ImportError:
        raise WeightsError(f"{family} needs transformers: pip install 'masklab[hf]'") from None
    return {"mask2former": (T.Mask2FormerForUniversalSegmentation, T.Mask2FormerImageProcessor),
            "oneformer": (T.OneFormerForUniversalSegmentation, T.OneFormerImageProcessor),
            "detr": (T.DetrForSegmentation, T.DetrImageProcessor)}[family]


def _swin(variant: str):
    from transformers import SwinConfig

    out = ["stage1", "stage2", "stage3", "stage4"]
    if variant == "tiny":
        return SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                          window_size=7, out_features=out)
    if variant == "large":
        return SwinConfig(image_size=384, embed_dim=192, depths=[2, 2, 18, 2],
                          num_heads=[6, 12, 24, 48], window_size=12, out_features=out)
    raise InputError(f"unknown Swin variant {variant!r}")


def build_universal(num_classes: int, family: str = "mask2former", backbone: str = "tiny",
                    num_queries: int = 100, things: int | None = None, **overrides
                    ) -> nn.Module:
    """A randomly initialised network of the family (for training or for counting parameters;
    pretrained checkpoints are loaded with their own config). ``things`` is metadata."""
    model_cls, _ = _classes(family)
    labels = {"id2label": {i: str(i) for i in range(num_classes)},
              "label2id": {str(i): i for i in range(num_classes)}}
    if family == "mask2former":
        from transformers import Mask2FormerConfig

        cfg = Mask2FormerConfig(backbone_config=overrides.pop("backbone_config", None)
                                or _swin(backbone), num_queries=num_queries, **labels,
                                **overrides)
    elif family == "oneformer":
        from transformers import OneFormerConfig

        cfg = OneFormerConfig(backbone_config=overrides.pop("backbone_config", None)
                              or _swin(backbone), num_queries=num_queries, **labels,
                              **overrides)
    else:
        from transformers import DetrConfig, ResNetConfig

        backbone_config = overrides.pop("backbone_config", None) or ResNetConfig(
            depths=[3, 4, 6, 3], out_features=["stage1", "stage2", "stage3", "stage4"])
        cfg = DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False,
                         backbone_config=backbone_config, num_queries=num_queries, **labels,
                         **overrides)
    return model_cls(cfg)


class UniversalModel(nn.Module):
    """A transformers universal segmenter plus its processor, classes and thing classes."""

    def __init__(self, net: nn.Module, processor, *, name: str, family: str,
                 class_names: list[str], things: set[int], tokenizer=None, task: str =
                 "panoptic"):
        super().__init__()
        self.net, self.processor, self.tokenizer = net, processor, tokenizer
        self.name, self.family, self.task = name, family, task
        self.class_names = list(class_names)  # indexed by masklab label
        self.num_classes = len(self.class_names)
        self.things = set(things)  # masklab labels that are things
        self.offset = 0 if family == "detr" else 1  # masklab label = network label + offset

    # --- the network -------------------------------------------------------------------
    def _forward(self, images: list[np.ndarray], task: str):
        device = next(self.net.parameters()).device
        inputs = self.processor(images=[np.ascontiguousarray(im) for im in images],
                                return_tensors="pt")
        kwargs = {"pixel_values": inputs["pixel_values"].to(device)}
        if "pixel_mask" in inputs:
            kwargs["pixel_mask"] = inputs["pixel_mask"].to(device)
        if self.family == "oneformer":
            if self.tokenizer is None:
                raise WeightsError(f"{self.name}: OneFormer needs its tokenizer files")
            n = int(self.net.config.task_seq_len)
            tok = self.tokenizer([f"the task is {task}"] * len(images), padding="max_length",
                                 max_length=n, truncation=True, return_tensors="pt")
            kwargs["task_inputs"] = tok["input_ids"].to(device)
        return self.net(**kwargs)

    # --- outputs -----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: list[np.ndarray], *, score_threshold: float = 0.5,
                classes: list[int] | None = None, max_detections: int = 100,
                mask_threshold: float = 0.5):
        """Instance predictions as ``Detections`` (boxes are the masks' tight boxes)."""
        from masklab.models.objects import Detections

        self.eval()
        outputs = self._forward(images, "instance")
        sizes = [im.shape[:2] for im in images]
        kw = {"threshold": score_threshold, "mask_threshold": mask_threshold,
              "target_sizes": sizes}
        if self.family == "mask2former":
            kw["return_binary_maps"] = True  # overlapping masks, as Mask2Former's own eval
        if self.family == "oneformer":
            kw["task_type"] = "instance"
        results = self.processor.post_process_instance_segmentation(outputs, **kw)
        dets = []
        for res, size in zip(results, sizes, strict=True):
            seg = res["segmentation"]
            infos = res["segments_info"]
            if seg is None or not infos:
                dense = np.zeros((0, *size), bool)
            elif seg.ndim == 3:
                dense = seg.cpu().numpy().astype(bool)[:len(infos)]
            else:
                seg = seg.cpu().numpy()
                dense = np.stack([seg == s["id"] for s in infos]).reshape(-1, *size)
            scores = np.array([s["score"] for s in infos], np.float64)
            labels = np.array([s["label_id"] + self.offset for s in infos], np.int64)
            keep = scores >= score_threshold
            if classes is not None:
                keep &= np.isin(labels, classes)
            idx = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]
            idx = idx[:max_detections]
            meta = {"scores": scores[idx], "labels": labels[idx],
                    "class_names": self.class_names}
            masks = Masks(dense[idx].reshape(len(idx), *size), **meta)
            dets.append(Detections(Boxes(masks.boxes.xyxy, **meta), masks))
        return dets

    @torch.no_grad()
    def predict_panoptic(self, images: list[np.ndarray], *, threshold: float = 0.8,
                         mask_threshold: float = 0.5, overlap_threshold: float = 0.8
                         ) -> list[tuple[np.ndarray, list[dict]]]:
        """``(ids, segments)`` per image: an ``(H, W)`` int32 map (0 is VOID) and
        COCO-panoptic segment records with masklab labels as ``category_id``."""
        self.eval()
        outputs = self._forward(images, "panoptic")
        sizes = [im.shape[:2] for im in images]
        stuff = {k - self.offset for k in range(self.num_classes)
                 if k not in self.things and k - self.offset >= 0}
        results = self.processor.post_process_panoptic_segmentation(
            outputs, threshold=threshold, mask_threshold=mask_threshold,
            overlap_mask_area_threshold=overlap_threshold, label_ids_to_fuse=stuff,
            target_sizes=sizes)
        out = []
        for res in results:
            seg = res["segmentation"].cpu().numpy().astype(np.int64)
            ids = np.zeros(seg.shape, np.int32)
            segments = []
            firsts = {}  # a fused stuff class is listed once per query, under one id
            for s in res["segments_info"]:
                firsts.setdefault(s["id"], s)
            for s in firsts.values():
                m = seg == s["id"]
                area = int(m.sum())
                if area == 0:
                    continue
                new_id = len(segments) + 1
                ids[m] = new_id
                label = int(s["label_id"]) + self.offset
                segments.append({"id": new_id, "category_id": label,
                                 "isthing": int(label in self.things), "score":
                                 float(s.get("score", 1.0)), "area": area,
                                 "bbox": Masks(m[None]).boxes.xywh[0].tolist(), "iscrowd": 0})
            out.append((ids, segments))
        return out

    @torch.no_grad()
    def predict_semantic(self, images: list[np.ndarray]) -> list[SemanticMap]:
        """Per-pixel classes (the semantic inference of Mask2Former / OneFormer)."""
        self.eval()
        outputs = self._forward(images, "semantic")
        maps = self.processor.post_process_semantic_segmentation(
            outputs, target_sizes=[im.shape[:2] for im in images])
        return [SemanticMap(m.cpu().numpy().astype(np.int32) + self.offset,
                            class_names=self.class_names) for m in maps]

    def categories(self) -> list[dict]:
        """COCO-panoptic category records for this model's labels."""
        return [{"id": k, "name": n, "isthing": int(k in self.things)}
                for k, n in enumerate(self.class_names)
                if k >= self.offset and n not in ("__background__", "N/A")]


# --- loading ---------------------------------------------------------------------------
def _family_of(config) -> str:
    kind = getattr(config, "model_type", "")
    if kind not in FAMILIES:
        raise WeightsError(f"model type {kind!r} is not one of {', '.join(FAMILIES)}")
    return kind


def _things_for(family: str, names: list[str], n_things: int | None) -> set[int]:
    """Thing labels (masklab numbering): the first ``n_things`` network classes when given
    (COCO panoptic: 80), DETR's COCO ids 1..90, otherwise every class."""
    offset = 0 if family == "detr" else 1
    if family == "detr" and len(names) == 250:
        return {k for k in range(1, 91) if names[k] != "N/A"}
    k = len(names) - offset if n_things is None else n_things
    return set(range(offset, offset + k))


def load_universal_model(name_or_path: str | os.PathLike, *,
                         weights: str | os.PathLike | None = "default", device: str = "cpu",
                         num_classes: int | None = None, things: int | None = None
                         ) -> UniversalModel:
    """A ready ``UniversalModel``: a registry name (its pretrained source, or ``weights``: a
    local transformers folder), or such a folder directly. ``weights=None`` builds a random
    network of the registered architecture with ``num_classes`` classes. ``things``: how many
    leading classes are things (default: the registry's, else all)."""
    from masklab.weights import resolve

    path = Path(name_or_path)
    if path.is_dir():
        info, source = None, path
    else:
        info = get_info(str(name_or_path))
        if info.builder is not build_universal:
            raise InputError(f"model {info.name!r} is not a Mask2Former/OneFormer/DETR model")
        source = info.weights if weights == "default" else weights
    n_things = things if things is not None else (info.config.get("things") if info else None)
    if source is None:
        k = num_classes or info.num_classes
        net = build_universal(k, **info.config)
        family = info.config.get("family", "mask2former")
        _, proc_cls = _classes(family)
        processor, tokenizer = proc_cls(), None
    else:
        folder = resolve(source)
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(str(folder))
        except (OSError, ValueError) as e:
            raise WeightsError(f"{folder}: not a transformers checkpoint "
                               f"({str(e).splitlines()[0]})") from None
        family = _family_of(config)
        model_cls, proc_cls = _classes(family)
        try:
            net = model_cls.from_pretrained(str(folder))
        except ImportError as e:  # DETR's timm backbone, for one
            raise WeightsError(f"{folder}: {str(e).splitlines()[0]}") from None
        # OneFormer's processor would fetch a class-info JSON from the Hub; masklab keeps
        # its own thing list, so the processor runs offline without it
        extra = {"class_info_file": None} if family == "oneformer" else {}
        processor = (proc_cls.from_pretrained(str(folder), **extra)
                     if _has_processor(folder) else proc_cls())
        tokenizer = None
        if family == "oneformer":
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder))
            except (OSError, ValueError) as e:
                raise WeightsError(f"{folder}: OneFormer tokenizer files are missing "
                                   f"({str(e).splitlines()[0]})") from None
    if family == "oneformer":
        processor.class_info_file = processor.class_info_file or ""
    cfg = net.config
    net_names = [str(cfg.id2label.get(i, cfg.id2label.get(str(i), i)))
                 for i in range(cfg.num_labels)]
    names = net_names if family == "detr" else ["__background__", *net_names]
    model = UniversalModel(net, processor, name=info.name if info else path.name,
                           family=family, class_names=names,
                           things=_things_for(family, names, n_things), tokenizer=tokenizer,
                           task=info.task if info else "panoptic")
    return model.to(device).eval()


for _name, _task, _family, _backbone, _k, _q, _desc in [
    ("mask2former-swin-tiny-coco-panoptic", "panoptic", "mask2former", "tiny", 133, 100,
     "Mask2Former Swin-T, COCO panoptic (transformers)"),
    ("mask2former-swin-large-coco-panoptic", "panoptic", "mask2former", "large", 133, 200,
     "Mask2Former Swin-L, COCO panoptic (transformers)"),
    ("mask2former-swin-tiny-coco-instance", "instances", "mask2former", "tiny", 80, 100,
     "Mask2Former Swin-T, COCO instances (transformers)"),
    ("oneformer-swin-large-coco", "panoptic", "oneformer", "large", 133, 150,
     "OneFormer Swin-L, COCO panoptic/instance/semantic (transformers)"),
    ("detr-resnet50-panoptic", "panoptic", "detr", "r50", 250, 100,
     "DETR ResNet-50 panoptic, COCO (transformers; needs timm)"),
]:
    register(ModelInfo(_name, _task, build_universal, weights=f"hf/{_name}",
                       dataset="COCO panoptic" if _task == "panoptic" else "COCO",
                       num_classes=_k, license="Apache-2.0" if _family != "oneformer"
                       else "MIT", description=_desc,
                       config={"family": _family, "backbone": _backbone, "num_queries": _q,
                               **({"things": 80} if _k == 133 else {})}))


def is_universal(name_or_path: str | os.PathLike) -> bool:
    """A registered universal model, or a transformers folder of one of the families."""
    p = Path(name_or_path)
    if p.is_dir():
        import json

        cfg = p / "config.json"
        if not cfg.is_file():
            return False
        try:
            return json.loads(cfg.read_text()).get("model_type") in FAMILIES
        except (OSError, ValueError):
            return False
    from masklab.models.registry import list_models

    return any(m.name == str(name_or_path) and m.builder is build_universal
               for m in list_models())


def _has_processor(folder) -> bool:
    """A saved (image) processor: ``preprocessor_config.json`` or transformers 5's
    ``processor_config.json``."""
    from pathlib import Path

    return any((Path(folder) / n).is_file()
               for n in ("preprocessor_config.json", "processor_config.json"))
