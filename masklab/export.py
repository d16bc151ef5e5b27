"""ONNX export of object models, with a parity check against the PyTorch output.

torchvision's detection models export through PyTorch's TorchScript-based exporter (the
``torch.export`` one cannot trace their data-dependent post-processing). The graph takes one
``(3, H, W)`` float image in [0, 1] and returns boxes, labels, scores (and mask
probabilities or keypoints); ``check_parity`` runs it in ONNX Runtime beside PyTorch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from masklab.errors import MasklabError
from masklab.models.objects import ObjectModel

_OUTPUTS = {"boxes": ["boxes", "labels", "scores"],
            "instances": ["boxes", "labels", "scores", "masks"],
            "keypoints": ["boxes", "labels", "scores", "keypoints", "keypoints_scores"]}


def export_onnx(model: ObjectModel, path: str | os.PathLike, *, height: int = 480,
                width: int = 640, opset: int = 17) -> Path:
    """Write ``model`` as ONNX (dynamic image size; traced at ``height × width``)."""
    from masklab.io.atomic import atomic_path

    path = Path(path)
    model = model.cpu().eval()
    names = _OUTPUTS[model.task]
    dummy = torch.rand(3, height, width)
    dynamic = {"image": {1: "height", 2: "width"}} | {n: {0: "detections"} for n in names}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes
        try:
            torch.onnx.export(model.net, ([dummy],), str(tmp), dynamo=False,
                              opset_version=opset, input_names=["image"], output_names=names,
                              dynamic_axes=dynamic, do_constant_folding=True)
        except Exception as e:  # the exporter raises many types
            raise MasklabError(f"ONNX export of {model.name} failed: "
                               f"{str(e).splitlines()[0]}") from None
    return path


@dataclass
class Parity:
    """Largest absolute differences between ONNX Runtime and PyTorch outputs."""

    detections_torch: int
    detections_onnx: int
    max_abs_diff: dict[str, float]

    @property
    def ok(self) -> bool:
        tol = {"boxes": 1e-2, "scores": 1e-4, "masks": 1e-3, "keypoints": 1e-2,
               "keypoints_scores": 1e-3, "labels": 0.0}
        return self.detections_torch == self.detections_onnx and all(
            v <= tol.get(k, 1e-3) for k, v in self.max_abs_diff.items())


def check_parity(model: ObjectModel, path: str | os.PathLike, image: np.ndarray) -> Parity:
    """Run one ``(H, W, 3)`` uint8 image through PyTorch and ONNX Runtime and compare the
    detections as sets (``match_detections``): detections with tied scores may come out in
    another order."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MasklabError("the parity check needs onnxruntime: pip install "
                           "'masklab[onnx]'") from None
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        ref = model.net.cpu().eval()([x])[0]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"image": x.numpy()})
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, outs, strict=True))
    ref = {k: ref[k].numpy() for k in names}
    return Parity(len(ref["scores"]), len(got["scores"]), match_detections(ref, got))


def match_detections(ref: dict, got: dict) -> dict[str, float]:
    """Largest absolute difference of each output over a one-to-one matching of the
    detections in ``ref`` and ``got`` (dicts of arrays with one row per detection, ``boxes``
    and ``scores`` at least), or ``{}`` when their counts differ.

    The matching minimises the summed L∞ box difference plus the score difference, never
    pairing different labels (Hungarian assignment), so a reordering of tied scores costs
    nothing while a real difference still shows.
    """
    from scipy.optimize import linear_sum_assignment

    n = len(ref["scores"])
    if n != len(got["scores"]):
        return {}
    if n == 0:
        return {k: 0.0 for k in ref}
    rb, gb = (np.asarray(d["boxes"], np.float64).reshape(n, 4) for d in (ref, got))
    cost = np.abs(rb[:, None] - gb[None]).max(axis=2)
    cost += np.abs(np.asarray(ref["scores"], np.float64)[:, None]
                   - np.asarray(got["scores"], np.float64)[None])
    if "labels" in ref and "labels" in got:
        cost += 1e9 * (np.asarray(ref["labels"])[:, None] != np.asarray(got["labels"])[None])
    rows, cols = linear_sum_assignment(cost)
    return {k: float(np.abs(np.asarray(ref[k], np.float64)[rows]
                            - np.asarray(got[k], np.float64)[cols]).max())
            if np.asarray(ref[k]).size else 0.0 for k in ref if k in got}


class _SemanticGraph(torch.nn.Module):
    """A semantic model with its normalisation: ``(1, 3, H, W)`` uint8-range float image →
    ``(1, K, H, W)`` logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(self.model.normalize(image))


def export_semantic_onnx(model, path: str | os.PathLike, *, height: int = 480,
                         width: int = 640, opset: int = 17) -> Path:
    """Write a ``SemanticModel`` as ONNX: input ``image`` (1, 3, H, W) float32 pixel values
    0..255 (RGB; dynamic H and W), output ``logits`` (1, K, H, W); the class of a pixel is
    the argmax over K (``model.class_names`` in that order)."""
    from masklab.io.atomic import atomic_path

    path = Path(path)
    graph = _SemanticGraph(model.cpu().eval()).eval()
    dummy = torch.rand(1, 3, height, width) * 255
    dynamic = {"image": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}}
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(graph, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes=dynamic, do_constant_folding=True)
        except Exception as e:
            raise MasklabError(f"ONNX export of {model.name} failed: "
                               f"{str(e).splitlines()[0]}") from None
    return path


def check_semantic_parity(model, path: str | os.PathLike, image: np.ndarray) -> dict:
    """One ``(H, W, 3)`` uint8 image through PyTorch and ONNX Runtime: the largest logit
    difference and the share of pixels whose class agrees (``ok``: ≥ 99.9 %)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MasklabError("the parity check needs onnxruntime: pip install "
                           "'masklab[onnx]'") from None
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        ref = _SemanticGraph(model.cpu().eval())(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.numpy()})[0]
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    return {"max_abs_diff": float(np.abs(ref - got).max()), "pixels_agree": agree,
            "ok": agree >= 0.999}
