"""ViTMatte (Yao et al., 2024), a learned trimap-based matting model, through transformers.

Weights come through the resolver (``hf/vitmatte-small``, ``hf/vitmatte-base`` or a local
transformers folder). The model's own image processor prepares the input (RGB normalised,
the trimap as a fourth channel, padded to a multiple of 32); the predicted alpha is cropped
back, and the trimap's known pixels keep their value. Large images are processed in
overlapping tiles (``tile``), since the ViT's memory grows with the pixel count; or use
coarse-to-fine matting with ``solver="vitmatte"``.
"""

from __future__ import annotations

import numpy as np

from masklab.errors import WeightsError
from masklab.matting.trimap import split_trimap

DEFAULT_WEIGHTS = "hf/vitmatte-small"
_CACHE: dict = {}


class VitMatte:
    """A ViTMatte model + processor; ``source``: a weights name or a local folder."""

    def __init__(self, source=DEFAULT_WEIGHTS, device: str = "cpu"):
        try:
            import transformers
        except ImportError:
            raise WeightsError("ViTMatte needs transformers: pip install 'masklab[hf]'") \
                from None
        import json
        from pathlib import Path

        from masklab.weights import resolve

        folder = Path(resolve(source))
        cfg = folder / "config.json"
        if not cfg.is_file() or json.loads(cfg.read_text()).get("model_type") != "vitmatte":
            raise WeightsError(f"{folder}: not a transformers ViTMatte checkpoint")
        self.model = transformers.VitMatteForImageMatting.from_pretrained(str(folder))
        self.model = self.model.to(device).eval()
        has_proc = (folder / "preprocessor_config.json").is_file()
        self.processor = transformers.VitMatteImageProcessor.from_pretrained(str(folder)) \
            if has_proc else transformers.VitMatteImageProcessor()
        self.device = device

    def predict(self, image: np.ndarray, trimap: np.ndarray, tile: int = 1536,
                overlap: int = 128) -> np.ndarray:
        """Alpha ``(H, W)`` float64 in [0, 1]; tiles of ``tile`` pixels beyond that size."""
        img = np.asarray(image)
        if img.dtype != np.uint8:
            f = img.astype(np.float64)
            img = np.round(np.clip(f if f.max() > 1.0 else f * 255.0, 0, 255)).astype(np.uint8)
        img = np.ascontiguousarray(img[..., :3])
        fg, bg, unknown = split_trimap(trimap)
        tri = np.where(fg, 255, np.where(bg, 0, 128)).astype(np.uint8)
        h, w = tri.shape
        if img.shape[:2] != (h, w):
            raise ValueError(f"image {img.shape[:2]} and trimap {(h, w)} differ")
        alpha = fg.astype(np.float64)
        if not unknown.any():
            return alpha
        if max(h, w) <= tile:
            out = self._run(img, tri)
        else:
            out = alpha.copy()
            step = tile - overlap
            for y0 in range(0, max(1, h - overlap), step):
                for x0 in range(0, max(1, w - overlap), step):
                    y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
                    if not unknown[y0:y1, x0:x1].any():
                        continue
                    part = self._run(img[y0:y1, x0:x1], tri[y0:y1, x0:x1])
                    # keep each tile's centre: skip half the overlap on inner edges
                    my = overlap // 2 if y0 > 0 else 0
                    mx = overlap // 2 if x0 > 0 else 0
                    out[y0 + my:y1, x0 + mx:x1] = part[my:, mx:]
        alpha[unknown] = np.clip(out[unknown], 0.0, 1.0)
        return alpha

    def _run(self, img: np.ndarray, tri: np.ndarray) -> np.ndarray:
        import torch

        inputs = self.processor(images=img, trimaps=tri, return_tensors="pt")
        with torch.no_grad():
            alphas = self.model(pixel_values=inputs["pixel_values"].to(self.device)).alphas
        return alphas[0, 0, :img.shape[0], :img.shape[1]].float().cpu().numpy().astype(
            np.float64)


def vitmatte_alpha(image: np.ndarray, trimap: np.ndarray, *, weights=DEFAULT_WEIGHTS,
                   device: str = "cpu", tile: int = 1536) -> np.ndarray:
    """Alpha by ViTMatte; the model is loaded once per ``(weights, device)`` and kept."""
    key = (str(weights), device)
    if key not in _CACHE:
        _CACHE[key] = VitMatte(weights, device)
    return _CACHE[key].predict(image, trimap, tile=tile)
