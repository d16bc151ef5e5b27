"""The bundled sample project: a few of scikit-image's sample images (shipped inside the
scikit-image package, no download) in a project with a few classes."""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                 "motorcycle_left.png", "coins.png")
SAMPLE_CLASSES = ["person", "cat", "cup", "rocket", "motorcycle", "coin", "other"]


def make_sample(store, *, name: str = "sample") -> dict | None:
    """Create the sample project (images copied into ``DATA/sample-images``) unless the
    store already has projects; returns it, or ``None`` when nothing was made."""
    import shutil

    import skimage

    if store.projects():
        return None
    src = Path(skimage.__file__).parent / "data"
    dest = store.data_dir / "sample-images"
    dest.mkdir(parents=True, exist_ok=True)
    for f in SAMPLE_IMAGES:
        if (src / f).is_file() and not (dest / f).is_file():
            tmp = dest / f".{f}.tmp"
            shutil.copyfile(src / f, tmp)
            os.replace(tmp, dest / f)
    p = store.create_project(name, SAMPLE_CLASSES)
    store.add_images(p["id"], sorted(dest.iterdir()), base=dest)
    return store.project(p["id"])
