"""The click benchmark over image files: every object of every mask PNG through the standard
click simulator (``masklab.metrics.interactive``) with a ``Session`` backend.

Shards of images are evaluated separately (the backend loaded once per shard) and the
``InteractiveEvaluator`` accumulators merged in order, so a ``runner`` (``--engine ray``)
gives the in-process figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from masklab.errors import InputError


def mask_objects(mask_file: str | Path) -> list[np.ndarray]:
    """Each distinct non-zero value of a mask PNG is one object."""
    from masklab.io.images import read_label_png

    lab = read_label_png(mask_file)
    if lab.ndim == 3:
        lab = lab[..., 0]
    return [lab == v for v in np.unique(lab) if v != 0]


def _shard(pairs: list, backend: str, device: str, thresholds: tuple, max_clicks: int,
           quiet):
    from masklab.interactive import Session
    from masklab.io.images import read_image
    from masklab.metrics.interactive import InteractiveEvaluator
    from masklab.progress import progress

    ev = InteractiveEvaluator(thresholds, max_clicks)
    for f, m in progress(pairs, desc="eval interactive", quiet=quiet):
        img = read_image(f)
        session = Session(img, backend, device=device)
        for obj in mask_objects(m):
            if obj.shape != img.shape[:2]:
                raise InputError(f"mask is {obj.shape}, image {img.shape[:2]}", m)

            def predict(clicks, session=session):
                out = session.predict(points=[c[:2] for c in clicks],
                                      point_labels=[int(c[2]) for c in clicks])
                return out.to_dense()[0]

            ev.evaluate(predict, obj)
    return ev


def evaluate_interactive_files(images_dir, masks_dir, backend: str = "grabcut", *,
                               device: str = "cpu", thresholds=(0.85, 0.90),
                               max_clicks: int = 20, quiet: bool | None = None,
                               runner=None):
    """NoC / NoF / mIoU per click of ``backend`` on the images of ``images_dir`` with the
    objects of the same-named PNGs in ``masks_dir``."""
    from masklab.io.images import find_images
    from masklab.metrics._shards import merged
    from masklab.metrics.interactive import InteractiveEvaluator

    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    pairs = []
    for f in find_images([images_dir]):
        m = masks_dir / f"{f.stem}.png"
        if not m.is_file():
            raise InputError(f"no mask {f.stem}.png for this image", f)
        pairs.append((str(f), str(m)))
    if not pairs:
        raise InputError("no images", images_dir)
    InteractiveEvaluator(thresholds, max_clicks)  # bad settings fail before any work
    return merged(_shard, pairs, backend, device, tuple(thresholds), max_clicks, quiet,
                  runner=runner)
