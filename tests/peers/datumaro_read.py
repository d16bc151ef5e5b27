"""Run by the tests in the peers' environment (``.venv-peers``, which has Datumaro): read a
dataset with Datumaro and print each item's masks as JSON — ``{item id: [[label name,
packed-bits base64, height, width], ...]}`` — for the test to compare with masklab's."""

import base64
import json
import sys

import datumaro as dm
import numpy as np
from datumaro.components.annotation import AnnotationType, Mask, Polygon


def main() -> None:
    path, fmt = sys.argv[1], sys.argv[2]
    ds = dm.Dataset.import_from(path, fmt)
    labels = ds.categories()[AnnotationType.label]
    out = {}
    for item in ds:
        h, w = item.media.size if item.media is not None and item.media.size else (None, None)
        objs = []
        for ann in item.annotations:
            if isinstance(ann, Mask):
                m = np.asarray(ann.image).astype(bool)
            elif isinstance(ann, Polygon):
                import pycocotools.mask as mu

                hh, ww = h, w
                rle = mu.frPyObjects([ann.points], hh, ww)
                m = mu.decode(mu.merge(rle)).astype(bool)
            else:
                continue
            name = labels[ann.label].name if ann.label is not None else None
            objs.append([name, base64.b64encode(np.packbits(m)).decode(), *m.shape])
        out[item.id] = objs
    print(json.dumps(out))


if __name__ == "__main__":
    main()
