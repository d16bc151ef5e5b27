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
    """Run one ``(H, W, 3)`` uint8 image through PyTorch and ONNX Runtime and compare."""
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
    diffs = {}
    n_ref, n_got = len(ref["scores"]), len(got["scores"])
    if n_ref == n_got:
        for k in names:
            a = ref[k].numpy().astype(np.float64)
            b = np.asarray(got[k], np.float64)
            diffs[k] = float(np.abs(a - b).max()) if a.size else 0.0
    return Parity(n_ref, n_got, diffs)
