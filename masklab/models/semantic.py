"""Semantic segmentation models: ours (FCN, U-Net), torchvision's and SegFormer, one wrapper.

Every model becomes a ``SemanticModel``: input a normalised ``(B, 3, H, W)`` batch, output
logits ``(B, K, H, W)`` at the input size. ``load_semantic_model`` takes a registry name
(pretrained weights through ``masklab.weights``), a training checkpoint folder, or a name plus
a local weights file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from masklab.errors import InputError, WeightsError
from masklab.models.registry import ModelInfo, get_info, load_weights_into, register

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
CHECKPOINT_FORMAT = "masklab-checkpoint-v1"


class SemanticModel(nn.Module):
    """A network plus what it needs to be used: classes, normalisation, its registry name."""

    def __init__(self, net: nn.Module, *, name: str, num_classes: int,
                 class_names: list[str] | None, mean, std, config: dict | None = None,
                 output: str = "tensor"):
        super().__init__()
        self.net = net
        self.name, self.num_classes = name, num_classes
        self.class_names = list(class_names) if class_names else None
        self.config = dict(config or {})
        self.output = output  # how the net returns logits: tensor, dict["out"], hf
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 (or float in [0, 255]) → the network's input."""
        return (images.float() / 255.0 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.output == "dict":
            out = self.net(x)["out"]
        elif self.output == "hf":
            out = self.net(pixel_values=x).logits
        else:
            out = self.net(x)
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out


# --- builders ----------------------------------------------------------------------------
def build_fcn(num_classes: int, variant: str = "8s", width: int = 32) -> nn.Module:
    from masklab.nn.fcn import FCN

    return FCN(num_classes, variant, width)


def build_unet(num_classes: int, depth: int = 4, width: int = 32,
               upsampling: str = "bilinear", norm: str = "batch", lcn: bool = False
               ) -> nn.Module:
    from masklab.nn.unet import UNet

    return UNet(num_classes, depth, width, upsampling, norm=norm, lcn=lcn)


def _tv(fn_name: str):
    def build(num_classes: int, aux_loss: bool = True) -> nn.Module:
        import torchvision.models.segmentation as seg

        return getattr(seg, fn_name)(weights=None, weights_backbone=None,
                                     num_classes=num_classes, aux_loss=aux_loss)
    build.__name__ = f"build_{fn_name}"
    return build


def build_lraspp(num_classes: int) -> nn.Module:
    import torchvision.models.segmentation as seg

    return seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                         num_classes=num_classes)


def build_segformer(num_classes: int, variant: str = "b0", **overrides) -> nn.Module:
    """A randomly initialised SegFormer of the given size (pretrained ones load from disk)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    sizes = {"b0": ([32, 64, 160, 256], [2, 2, 2, 2], 256),
             "b1": ([64, 128, 320, 512], [2, 2, 2, 2], 256),
             "b2": ([64, 128, 320, 512], [3, 4, 6, 3], 768),
             "b3": ([64, 128, 320, 512], [3, 4, 18, 3], 768),
             "b4": ([64, 128, 320, 512], [3, 8, 27, 3], 768),
             "b5": ([64, 128, 320, 512], [3, 6, 40, 3], 768)}
    hidden, depths, dec = sizes[variant]
    kwargs = {"hidden_sizes": hidden, "depths": depths, "decoder_hidden_size": dec,
              "num_labels": num_classes, **overrides}
    cfg = SegformerConfig(**kwargs)
    return SegformerForSemanticSegmentation(cfg)


# --- registry entries ------------------------------------------------------------------------
_OURS = "Apache-2.0 (masklab)"
register(ModelInfo("fcn8s", "semantic", build_fcn, config={"variant": "8s"},
                   description="FCN-8s on a VGG-like encoder (ours, no pretrained weights)",
                   license=_OURS))
register(ModelInfo("fcn16s", "semantic", build_fcn, config={"variant": "16s"},
                   description="FCN-16s (ours)", license=_OURS))
register(ModelInfo("fcn32s", "semantic", build_fcn, config={"variant": "32s"},
                   description="FCN-32s (ours)", license=_OURS))
register(ModelInfo("unet", "semantic", build_unet,
                   description="U-Net, configurable depth/width/upsampling (ours)",
                   license=_OURS))
for _name, _fn, _desc in [
    ("fcn_resnet50", "fcn_resnet50", "FCN-ResNet50"),
    ("fcn_resnet101", "fcn_resnet101", "FCN-ResNet101"),
    ("deeplabv3_resnet50", "deeplabv3_resnet50", "DeepLabV3-ResNet50"),
    ("deeplabv3_resnet101", "deeplabv3_resnet101", "DeepLabV3-ResNet101"),
    ("deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
     "DeepLabV3-MobileNetV3-Large"),
]:
    register(ModelInfo(_name, "semantic", _tv(_fn), weights=f"torchvision/{_name}",
                       dataset="COCO (VOC classes)", num_classes=21, class_names=VOC_CLASSES,
                       input_size=(520, 520), license="BSD-3-Clause (torchvision)",
                       description=f"{_desc}, torchvision"))
register(ModelInfo("lraspp_mobilenet_v3_large", "semantic", build_lraspp,
                   weights="torchvision/lraspp_mobilenet_v3_large", dataset="COCO (VOC classes)",
                   num_classes=21, class_names=VOC_CLASSES, input_size=(520, 520),
                   license="BSD-3-Clause (torchvision)",
                   description="LR-ASPP-MobileNetV3-Large, torchvision"))
_HF_MEAN, _HF_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
for _v in ("b0", "b1", "b2", "b3", "b4", "b5"):
    _ade = "640-640" if _v == "b5" else "512-512"
    register(ModelInfo(f"segformer-{_v}-ade", "semantic", build_segformer,
                       weights=f"hf/segformer-{_v}-ade", dataset="ADE20K", num_classes=150,
                       input_size=(512, 512) if _v != "b5" else (640, 640),
                       license="NVIDIA Source Code License (non-commercial)",
                       description=f"SegFormer-{_v.upper()}, ADE20K (transformers)",
                       config={"variant": _v}))
    register(ModelInfo(f"segformer-{_v}-cityscapes", "semantic", build_segformer,
                       weights=f"hf/segformer-{_v}-cityscapes", dataset="Cityscapes",
                       num_classes=19, input_size=(1024, 1024),
                       license="NVIDIA Source Code License (non-commercial)",
                       description=f"SegFormer-{_v.upper()}, Cityscapes (transformers)",
                       config={"variant": _v}))


def _output_kind(info: ModelInfo) -> str:
    if info.builder is build_segformer:
        return "hf"
    if info.weights and info.weights.startswith("torchvision/"):
        return "dict"
    return "tensor"


# --- loading and saving --------------------------------------------------------------------
def is_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / "config.json").is_file() and (p / "model.safetensors").is_file() and \
        json.loads((p / "config.json").read_text()).get("format") == CHECKPOINT_FORMAT


def load_semantic_model(name_or_path: str | os.PathLike, *, weights: str | os.PathLike | None
                        = "default", num_classes: int | None = None,
                        class_names: list[str] | None = None, device: str = "cpu",
                        config: dict | None = None) -> SemanticModel:
    """A ready ``SemanticModel`` in eval mode.

    ``name_or_path``: a registry name, or a folder written by ``save_checkpoint``.
    ``weights``: ``"default"`` (the registry's pretrained source, if any), ``None`` (random
    initialisation), or a local file/folder (a torchvision state dict, an HF folder, or a
    plain state dict of our own models). ``num_classes`` overrides the class count;
    ``config`` overrides builder options (``{"depth": 3, "width": 16}`` for U-Net).
    """
    if is_checkpoint(name_or_path):
        return load_checkpoint(name_or_path, device=device)
    info = get_info(str(name_or_path))
    if info.task != "semantic":
        raise InputError(f"model {info.name!r} is a {info.task} model, not semantic")
    source = info.weights if weights == "default" else weights
    k = num_classes or info.num_classes
    if k is None:
        raise InputError(f"model {info.name!r} has no pretrained classes: pass num_classes")
    names = class_names or (list(info.class_names) if info.class_names and k ==
                            info.num_classes else None)
    if source is not None and info.builder is build_segformer:
        net = _load_hf_segformer(source)
        k = net.config.num_labels
        names = names or [net.config.id2label[i] for i in range(k)]
    else:
        net = info.builder(k, **{**info.config, **(config or {})})
        if source is not None:
            load_weights_into(net, source, info.name, k)
    model = SemanticModel(net, name=info.name, num_classes=k, class_names=names,
                          mean=info.mean, std=info.std, config={**info.config, **(config or {})},
                          output=_output_kind(info))
    return model.to(device).eval()


def _load_hf_segformer(source) -> nn.Module:
    from masklab.weights import resolve

    try:
        from transformers import SegformerForSemanticSegmentation
    except ImportError:
        raise WeightsError("SegFormer needs transformers: pip install 'masklab[hf]'") from None
    folder = resolve(source)
    try:
        return SegformerForSemanticSegmentation.from_pretrained(str(folder), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{folder}: not a SegFormer checkpoint ({str(e).splitlines()[0]})") \
            from None


def save_checkpoint(folder: str | os.PathLike, model: SemanticModel, extra: dict | None = None
                    ) -> Path:
    """``model.safetensors`` + ``config.json`` (name, config, classes, normalisation)."""
    from safetensors.torch import save_file

    from masklab.io.atomic import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json(folder / "config.json", {
        "format": CHECKPOINT_FORMAT, "task": "semantic", "model": model.name,
        "model_config": model.config, "num_classes": model.num_classes,
        "class_names": model.class_names, "mean": model.mean.flatten().tolist(),
        "std": model.std.flatten().tolist(), "output": model.output, **(extra or {})},
        indent=1)
    return folder


def load_checkpoint(folder: str | os.PathLike, device: str = "cpu") -> SemanticModel:
    from masklab.io.coco import read_json
    from masklab.weights import load_state_dict

    folder = Path(folder)
    cfg = read_json(folder / "config.json")
    if cfg.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a masklab checkpoint (format {cfg.get('format')!r})",
                         folder / "config.json")
    info = get_info(cfg["model"])
    config = {**info.config, **cfg.get("model_config", {})}
    net = info.builder(cfg["num_classes"], **config)
    net.load_state_dict(load_state_dict(folder / "model.safetensors"))
    model = SemanticModel(net, name=info.name, num_classes=cfg["num_classes"],
                          class_names=cfg.get("class_names"), mean=cfg["mean"], std=cfg["std"],
                          config=config, output=cfg.get("output", "tensor"))
    return model.to(device).eval()
