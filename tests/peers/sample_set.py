"""The small annotation set the peer cross-checks share: three 40 x 30 images, each with a
disc, a two-part object and a ring (a hole), in two categories. numpy and masklab only:
the peers' own environments import it too."""

import numpy as np

from masklab.io.convert import LabeledImage, MaskSet
from masklab.types import Masks


def sample_set(names=("person", "car"), *, folder: str = "", scores=None,
               attributes=None) -> MaskSet:
    yy, xx = np.mgrid[:30, :40]
    items = []
    for i in range(3):
        a = (xx - 10 - i) ** 2 + (yy - 10) ** 2 < 40
        b = np.zeros((30, 40), bool)
        b[18:27, 20:36] = True
        b[3:6, 30:38] = True  # a second part
        c = ((xx - 28) ** 2 + (yy - 10) ** 2 < 20) & ~((xx - 28) ** 2 + (yy - 10) ** 2 < 4)
        items.append(LabeledImage(f"{folder}img{i}.png",
                                  Masks(np.stack([a, b, c]), labels=np.array([1, 2, 1]),
                                        scores=scores), i + 1, attributes=attributes))
    return MaskSet([{"id": 1, "name": names[0]}, {"id": 2, "name": names[1]}], items)
