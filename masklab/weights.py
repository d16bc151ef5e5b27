"""Model weights: one resolver from a name (or a local path) to verified files in a cache.

A ``WeightSource`` is data: download URLs with a SHA-256 (full, or the prefix that
torchvision publishes in its file names), or a Hugging Face repo id at a revision. Files are
cached under ``$MASKLAB_HOME`` (default ``~/.cache/masklab``). With ``MASKLAB_OFFLINE=1``, or
when the network is unreachable, a missing file is a ``OfflineError`` that names the file to
fetch and where to put it. State dicts load only through safetensors or
``torch.load(weights_only=True)``: no pickled code ever runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from masklab.errors import OfflineError, WeightsError
from masklab.io.atomic import atomic_path


@dataclass(frozen=True)
class WeightSource:
    """Where a named set of weights comes from, and what it is."""

    name: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None  # full hex digest, or a prefix of at least 8 hex digits
    filename: str | None = None  # cache file name (default: the URL's last part)
    hf_repo: str | None = None
    hf_revision: str = "main"
    hf_files: tuple[str, ...] = ()  # glob patterns of the files needed (empty: all)
    license: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if bool(self.urls) == bool(self.hf_repo):
            raise ValueError(f"{self.name}: give either urls or hf_repo")
        if self.urls and (self.sha256 is None or len(self.sha256) < 8):
            raise ValueError(f"{self.name}: URL sources need a sha256 (at least 8 hex digits)")

    @property
    def cache_name(self) -> str:
        return self.filename or self.urls[0].rsplit("/", 1)[-1]

    @property
    def location(self) -> str:
        return self.urls[0] if self.urls else f"hf://{self.hf_repo}@{self.hf_revision}"


_REGISTRY: dict[str, WeightSource] = {}


def register(source: WeightSource, *, replace: bool = False) -> WeightSource:
    """Add a source to the registry (``replace=True`` to overwrite a name)."""
    if source.name in _REGISTRY and not replace:
        raise ValueError(f"weights {source.name!r} are already registered")
    _REGISTRY[source.name] = source
    return source


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def list_sources() -> list[WeightSource]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_source(name: str) -> WeightSource:
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `masklab weights list`"
        raise WeightsError(f"unknown weights {name!r} (not a file either){hint}") from None


def home() -> Path:
    """The cache root: ``$MASKLAB_HOME`` or ``~/.cache/masklab``."""
    return Path(os.environ.get("MASKLAB_HOME") or Path.home() / ".cache" / "masklab")


def is_offline() -> bool:
    return os.environ.get("MASKLAB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def cached_path(source: WeightSource) -> Path:
    """Where a URL source's file lives in the cache (whether or not it is there)."""
    if not source.urls:
        return home() / "hf" / source.hf_repo.replace("/", "--")
    return home() / "weights" / source.cache_name


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _matches(digest: str, expected: str) -> bool:
    return digest.lower().startswith(expected.lower())


def resolve(name_or_path: str | os.PathLike, *, progress: bool = True) -> Path:
    """A local file or folder for a registered name, downloading and verifying if needed.

    An existing path is returned as is (a user's own checkpoint).
    """
    p = Path(name_or_path)
    if p.exists():
        return p
    source = get_source(str(name_or_path))
    if source.hf_repo:
        return _resolve_hf(source)
    target = cached_path(source)
    if target.is_file():
        if _verified(target, source.sha256):
            return target
        raise WeightsError(f"{target}: cached file fails its sha256 check (expected "
                           f"{source.sha256}...); delete it to download again")
    if is_offline():
        raise OfflineError(_offline_message(source, target, "MASKLAB_OFFLINE is set"))
    errors = []
    for url in source.urls:
        try:
            _download(url, target, source.sha256, progress=progress)
            return target
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
    raise OfflineError(_offline_message(source, target, "download failed: " + "; ".join(errors)))


def _offline_message(source: WeightSource, target: Path, why: str) -> str:
    return (f"weights {source.name!r} are not in the cache and cannot be fetched ({why}); "
            f"download {source.urls[0]} and save it as {target}, or pass a local path")


def _verified(path: Path, expected: str | None) -> bool:
    """Check a cached file once; a ``.sha256`` sidecar remembers a file that passed."""
    if expected is None:
        return True
    stamp = path.with_name(path.name + ".sha256")
    st = path.stat()
    key = f"{st.st_size} {st.st_mtime_ns}"
    if stamp.is_file():
        recorded = stamp.read_text().split("\n")
        if len(recorded) >= 2 and recorded[0] == key and _matches(recorded[1], expected):
            return True
    digest = sha256_file(path)
    if not _matches(digest, expected):
        return False
    stamp.write_text(f"{key}\n{digest}\n")
    return True


def _download(url: str, target: Path, expected: str, *, progress: bool) -> None:
    from tqdm import tqdm

    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with atomic_path(target) as tmp, open(tmp, "wb") as f, \
                tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                     disable=not progress) as bar:
            while block := resp.read(1 << 20):
                f.write(block)
                h.update(block)
                bar.update(len(block))
            f.flush()
            digest = h.hexdigest()
            if not _matches(digest, expected):
                raise WeightsError(f"{url}: sha256 {digest[:16]}... does not match the "
                                   f"expected {expected}...; the file was not saved")
    _verified(target, expected)


def _resolve_hf(source: WeightSource) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise WeightsError(f"weights {source.name!r} come from the Hugging Face hub: "
                           "pip install 'masklab[hf]'") from None
    try:
        return Path(snapshot_download(
            source.hf_repo, revision=source.hf_revision, cache_dir=home() / "hf",
            allow_patterns=list(source.hf_files) or None, local_files_only=is_offline()))
    except Exception as e:  # the hub raises many types; all mean "not available"
        raise OfflineError(
            f"weights {source.name!r} ({source.hf_repo}@{source.hf_revision}) are not "
            f"available ({type(e).__name__}); download the repo with "
            f"`huggingface-cli download {source.hf_repo}` while online, set "
            f"MASKLAB_HOME to the cache that holds it, or pass a local folder") from None


def verify(name: str) -> tuple[bool, str]:
    """Is a named source cached and intact? Returns ``(ok, message)``; never downloads."""
    source = get_source(name)
    target = cached_path(source)
    if source.hf_repo:
        snap = target.parent / f"models--{source.hf_repo.replace('/', '--')}"
        return (snap.is_dir(), f"{snap} {'present' if snap.is_dir() else 'not cached'}")
    if not target.is_file():
        return False, f"{target} not cached"
    if _verified(target, source.sha256):
        return True, f"{target} ok"
    return False, f"{target} sha256 mismatch"


def remove(name: str) -> None:
    """Delete a cached file (and its verification stamp)."""
    source = get_source(name)
    target = cached_path(source)
    if target.is_dir():
        shutil.rmtree(target)
    for p in (target, target.with_name(target.name + ".sha256")):
        if p.is_file():
            p.unlink()


def load_state_dict(path: str | os.PathLike) -> dict:
    """Load tensors from ``.safetensors`` or a torch file with ``weights_only=True``.

    A checkpoint that wraps its weights (``{"state_dict": ...}``, ``{"model": ...}``) is
    unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: cannot load as weights-only torch file ({first})") \
            from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


# --- the built-in catalogue ------------------------------------------------------------------
_TV = "https://download.pytorch.org/models/"
for _name, _file, _desc in [
    ("torchvision/fcn_resnet50", "fcn_resnet50_coco-1167a1af.pth", "FCN-ResNet50, VOC classes"),
    ("torchvision/fcn_resnet101", "fcn_resnet101_coco-7ecb50ca.pth",
     "FCN-ResNet101, VOC classes"),
    ("torchvision/deeplabv3_resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth",
     "DeepLabV3-ResNet50, VOC classes"),
    ("torchvision/deeplabv3_resnet101", "deeplabv3_resnet101_coco-586e9e4e.pth",
     "DeepLabV3-ResNet101, VOC classes"),
    ("torchvision/deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large-fc3c493d.pth",
     "DeepLabV3-MobileNetV3-Large, VOC classes"),
    ("torchvision/lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large-d234d4ea.pth",
     "LR-ASPP-MobileNetV3-Large, VOC classes"),
    ("torchvision/maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
     "Mask R-CNN ResNet50-FPN, COCO"),
    ("torchvision/maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
     "Mask R-CNN ResNet50-FPN v2, COCO"),
    ("torchvision/fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
     "Faster R-CNN ResNet50-FPN, COCO"),
    ("torchvision/fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
     "Faster R-CNN ResNet50-FPN v2, COCO"),
    ("torchvision/retinanet_resnet50_fpn", "retinanet_resnet50_fpn_coco-eeacb38b.pth",
     "RetinaNet ResNet50-FPN, COCO"),
    ("torchvision/retinanet_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth",
     "RetinaNet ResNet50-FPN v2, COCO"),
    ("torchvision/fcos_resnet50_fpn", "fcos_resnet50_fpn_coco-99b0c9b7.pth",
     "FCOS ResNet50-FPN, COCO"),
    ("torchvision/keypointrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
     "Keypoint R-CNN ResNet50-FPN, COCO person keypoints"),
]:
    register(WeightSource(_name, urls=(_TV + _file,), sha256=_file.rsplit("-", 1)[1][:-4],
                          license="BSD-3-Clause (torchvision)", description=_desc))

for _name, _repo, _lic, _desc in [
    ("hf/sam-vit-base", "facebook/sam-vit-base", "Apache-2.0", "Segment Anything ViT-B"),
    ("hf/sam-vit-large", "facebook/sam-vit-large", "Apache-2.0", "Segment Anything ViT-L"),
    ("hf/sam-vit-huge", "facebook/sam-vit-huge", "Apache-2.0", "Segment Anything ViT-H"),
    ("hf/sam-hq-vit-base", "syscv-community/sam-hq-vit-base", "Apache-2.0", "SAM-HQ ViT-B"),
    *[(f"hf/sam2.1-hiera-{v}", f"facebook/sam2.1-hiera-{v}", "Apache-2.0",
       f"SAM 2.1 Hiera-{v}") for v in ("tiny", "small", "base-plus", "large")],
    ("hf/edgetam", "yonigozlan/EdgeTAM-hf", "Apache-2.0",
     "EdgeTAM (transformers conversion of facebook/EdgeTAM)"),
    *[(f"hf/segformer-{v}-ade",
       f"nvidia/segformer-{v}-finetuned-ade-{'640-640' if v == 'b5' else '512-512'}",
       "NVIDIA Source Code License", f"SegFormer-{v.upper()}, ADE20K 150 classes")
      for v in ("b0", "b1", "b2", "b3", "b4", "b5")],
    *[(f"hf/segformer-{v}-cityscapes", f"nvidia/segformer-{v}-finetuned-cityscapes-1024-1024",
       "NVIDIA Source Code License", f"SegFormer-{v.upper()}, Cityscapes 19 classes")
      for v in ("b0", "b1", "b2", "b3", "b4", "b5")],
    ("hf/grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", "Apache-2.0",
     "Grounding DINO Swin-T (text → boxes)"),
    ("hf/grounding-dino-base", "IDEA-Research/grounding-dino-base", "Apache-2.0",
     "Grounding DINO Swin-B (text → boxes)"),
    ("hf/mm-grounding-dino-tiny", "openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det",
     "Apache-2.0", "MM Grounding DINO Swin-T, O365+GoldG+V3Det (text → boxes)"),
    ("hf/mm-grounding-dino-base", "openmmlab-community/mm_grounding_dino_base_o365v1_goldg_v3det",
     "Apache-2.0", "MM Grounding DINO Swin-B, O365+GoldG+V3Det (text → boxes)"),
    ("hf/mm-grounding-dino-large",
     "openmmlab-community/mm_grounding_dino_large_o365v2_oiv6_goldg", "Apache-2.0",
     "MM Grounding DINO Swin-L, O365v2+OIv6+GoldG (text → boxes)"),
    ("hf/llmdet-tiny", "iSEE-Laboratory/llmdet_tiny", "Apache-2.0",
     "LLMDet Swin-T (MM Grounding DINO co-trained with an LLM; text → boxes)"),
    ("hf/llmdet-base", "iSEE-Laboratory/llmdet_base", "Apache-2.0",
     "LLMDet Swin-B (text → boxes)"),
    ("hf/llmdet-large", "iSEE-Laboratory/llmdet_large", "Apache-2.0",
     "LLMDet Swin-L (text → boxes)"),
    ("hf/sam3", "facebook/sam3", "SAM License (Meta; gated on the hub)",
     "SAM 3 (text / exemplar → instance masks)"),
    ("hf/omdet-turbo-swin-tiny", "omlab/omdet-turbo-swin-tiny-hf", "Apache-2.0",
     "OmDet-Turbo Swin-T (real-time open-vocabulary detection; text → boxes)"),
    ("hf/owlv2-base-patch16-ensemble", "google/owlv2-base-patch16-ensemble", "Apache-2.0",
     "OWLv2 ViT-B/16 (text → boxes)"),
    ("hf/owlv2-large-patch14-ensemble", "google/owlv2-large-patch14-ensemble", "Apache-2.0",
     "OWLv2 ViT-L/14 (text → boxes)"),
    ("hf/owlvit-base-patch32", "google/owlvit-base-patch32", "Apache-2.0",
     "OWL-ViT ViT-B/32 (text → boxes)"),
    ("hf/florence-2-base", "florence-community/Florence-2-base", "MIT",
     "Florence-2 base, 0.23 B (open-vocabulary detection, phrase grounding, captions)"),
    ("hf/florence-2-large", "florence-community/Florence-2-large", "MIT",
     "Florence-2 large, 0.77 B (open-vocabulary detection, phrase grounding, captions)"),
    ("hf/blip-image-captioning-base", "Salesforce/blip-image-captioning-base", "BSD-3-Clause",
     "BLIP ViT-B image captioning (--classes auto)"),
    ("hf/blip-image-captioning-large", "Salesforce/blip-image-captioning-large",
     "BSD-3-Clause", "BLIP ViT-L image captioning (--classes auto)"),
    ("hf/clipseg-rd64-refined", "CIDAS/clipseg-rd64-refined", "Apache-2.0",
     "CLIPSeg rd64 refined (text → coarse masks)"),
    ("hf/vitmatte-small", "hustvl/vitmatte-small-composition-1k", "Apache-2.0",
     "ViTMatte-S, Composition-1k"),
    ("hf/vitmatte-base", "hustvl/vitmatte-base-composition-1k", "Apache-2.0",
     "ViTMatte-B, Composition-1k"),
    ("hf/mask2former-swin-tiny-coco-panoptic", "facebook/mask2former-swin-tiny-coco-panoptic",
     "Apache-2.0", "Mask2Former Swin-T, COCO panoptic"),
    ("hf/mask2former-swin-large-coco-panoptic",
     "facebook/mask2former-swin-large-coco-panoptic", "Apache-2.0",
     "Mask2Former Swin-L, COCO panoptic"),
    ("hf/mask2former-swin-tiny-coco-instance", "facebook/mask2former-swin-tiny-coco-instance",
     "Apache-2.0", "Mask2Former Swin-T, COCO instances"),
    ("hf/detr-resnet50-panoptic", "facebook/detr-resnet-50-panoptic", "Apache-2.0",
     "DETR ResNet-50, COCO panoptic"),
]:
    register(WeightSource(_name, hf_repo=_repo, license=_lic, description=_desc,
                          hf_files=("*.json", "*.safetensors", "*.txt")))
register(WeightSource("hf/oneformer-swin-large-coco", hf_repo="shi-labs/oneformer_coco_swin_large",
                      license="MIT", description="OneFormer Swin-L, COCO (weights + tokenizer)",
                      hf_files=("*.json", "*.safetensors", "*.bin", "*.txt")))
