"""Run in the FiftyOne environment (``make peers``: .venv-fiftyone, masklab on PYTHONPATH):
masklab's MaskSet → ``fo.Dataset`` (instances and semantic) → FiftyOne's own checks and
renderers → back. Prints one JSON line of findings; the test in test_fiftyone.py judges.

    python fiftyone_check.py WORKDIR
"""

import json
import sys
from pathlib import Path

import numpy as np

from masklab.io.ecosystem import from_fiftyone, to_fiftyone
from masklab.io.images import write_image

work = Path(sys.argv[1])
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_set import sample_set  # noqa: E402

ms = sample_set(folder="sub/", scores=[0.9, 0.8, 0.7], attributes=[{"occluded": True}, {}, {}])
items = ms.items
for i in range(3):
    write_image(work / "images" / "sub" / f"img{i}.png", np.full((30, 40, 3), 40 * i, np.uint8))
out = {}

ds = to_fiftyone(ms, work / "images")
ds.compute_metadata()  # FiftyOne reads the images itself
out["samples"] = len(ds)
out["objects"] = ds.count("ground_truth.detections")
out["labels"] = sorted(ds.distinct("ground_truth.detections.label"))
out["schema_type"] = type(ds.get_field("ground_truth")).__name__ + ":" + \
    ds.get_field("ground_truth").document_type.__name__
out["sizes"] = sorted({(s.metadata.width, s.metadata.height) for s in ds})
# FiftyOne's own renderer of an instance mask into the frame vs ours
same_render = True
for s, item in zip(ds.sort_by("filepath"), sorted(items, key=lambda t: t.file_name),
                   strict=True):
    for d, m in zip(s.ground_truth.detections, item.masks.to_dense(), strict=True):
        seg = d.to_segmentation(frame_size=(40, 30), target=1)
        same_render &= bool(np.array_equal(seg.get_mask() > 0, m))
out["fiftyone_renders_the_same"] = same_render
out["occluded_kept"] = ds.count_values("ground_truth.detections.occluded").get(True, 0)
back = from_fiftyone(ds)
same = [bool(np.array_equal(a.masks.to_dense(), b.masks.to_dense())
             and list(a.masks.labels) == list(b.masks.labels)
             and np.allclose(a.masks.scores, b.masks.scores))
        for a, b in zip(sorted(items, key=lambda t: t.file_name),
                        sorted(back.items, key=lambda t: t.file_name), strict=True)]
out["round_trip_equal"] = all(same) and [c["name"] for c in back.categories] == \
    ["person", "car"]
out["names_back"] = sorted(i.file_name for i in back.items)

sem = to_fiftyone(ms, work / "images", mode="semantic")
out["semantic_type"] = type(sem.first().ground_truth).__name__
out["mask_targets"] = {str(k): v for k, v in sem.mask_targets["ground_truth"].items()}
# FiftyOne's own conversion of the segmentation into per-class detections
out["fiftyone_segmentation_to_detections"] = len(
    sem.first().ground_truth.to_detections(mask_targets=sem.mask_targets["ground_truth"])
    .detections)
back_sem = from_fiftyone(sem)
want = []
for item in items:
    lab = np.zeros((30, 40), np.int64)
    for m, c in zip(item.masks.to_dense(), item.masks.labels, strict=True):
        lab[m] = c
    want.append(lab)
got = []
for item in sorted(back_sem.items, key=lambda t: t.file_name):
    lab = np.zeros((30, 40), np.int64)
    names = {c["id"]: c["name"] for c in back_sem.categories}
    ids = {"person": 1, "car": 2}
    for m, c in zip(item.masks.to_dense(), item.masks.labels, strict=True):
        lab[m] = ids[names[int(c)]]
    got.append(lab)
out["semantic_round_trip_equal"] = all(np.array_equal(a, b) for a, b in zip(want, got,
                                                                             strict=True))
ds.delete()
sem.delete()
print(json.dumps(out))
