"""Run in the peers' environment: build a Datumaro dataset from an .npz of masks
(``masks_<i>``: (N, H, W) bool, ``labels_<i>``: (N,) label index, ``names``: label names)
and export it in a format (with images, which some of its importers need)."""

import sys

import datumaro as dm
import numpy as np
from datumaro.components.annotation import AnnotationType, LabelCategories, Mask
from datumaro.components.media import Image


def main() -> None:
    npz, fmt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    data = np.load(npz)
    names = [str(n) for n in data["names"]]
    items = []
    k = 0
    while f"masks_{k}" in data:
        masks, labels = data[f"masks_{k}"], data[f"labels_{k}"]
        h, w = masks.shape[1:]
        anns = [Mask(image=m.astype(np.uint8), label=int(c), id=j + 1, z_order=j)
                for j, (m, c) in enumerate(zip(masks, labels, strict=True))]
        items.append(dm.DatasetItem(id=f"img{k}", media=Image.from_numpy(
            np.zeros((h, w, 3), np.uint8)), annotations=anns))
        k += 1
    cats = {AnnotationType.label: LabelCategories.from_iterable(names)}
    dm.Dataset.from_iterable(items, categories=cats).export(out, fmt, save_media=True)


if __name__ == "__main__":
    main()
