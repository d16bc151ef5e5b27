"""Small random models saved as checkpoint folders, and random images, for the batch-verb
tests (loaded back through the same code as real checkpoints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def small_maskrcnn(folder: Path, class_names: list[str] | None = None, size: int = 64
                   ) -> Path:
    """A Mask R-CNN (ResNet-18 FPN, 3 classes) at ``size`` pixels with few proposals."""
    from masklab.models.objects import load_object_model, save_object_checkpoint

    torch.manual_seed(0)
    m = load_object_model("maskrcnn_resnet18_fpn", weights=None, num_classes=3,
                          class_names=class_names,
                          config={"min_size": size, "max_size": size,
                                  "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 20,
                                  "box_detections_per_img": 5})
    save_object_checkpoint(folder, m, {})
    return folder


def random_images(folder: Path, n: int, h: int, w: int, *, ext: str = "jpg", seed: int = 0,
                  digits: int = 1) -> list[Path]:
    from masklab.io.images import write_image

    rng = np.random.default_rng(seed)
    return [write_image(folder / f"{i:0{digits}d}.{ext}",
                        rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for i in range(n)]
