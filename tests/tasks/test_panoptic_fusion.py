import numpy as np
import pytest

from masklab import Masks, SemanticMap
from masklab.metrics.panoptic import panoptic_evaluate
from masklab.tasks.panoptic import fuse_panoptic, write_panoptic_predictions


def _sq(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_overlaps_resolved_by_score_and_stuff_fills_the_rest():
    h, w = 20, 20
    inst = Masks(np.stack([_sq(h, w, 0, 10, 0, 10),    # score 0.9: pasted first
                           _sq(h, w, 5, 15, 5, 15),    # 0.8: overlaps 25/100 -> kept, clipped
                           _sq(h, w, 0, 8, 0, 8),      # 0.7: 100% inside -> dropped
                           _sq(h, w, 18, 20, 18, 20)]),  # 0.3: below the score threshold
                 scores=[0.9, 0.8, 0.7, 0.3], labels=[1, 2, 1, 1])
    sem = np.full((h, w), 7, np.int64)  # stuff class 7 everywhere ...
    sem[:, 15:] = 8  # ... and class 8 on a 5-wide strip (100 px)
    ids, segs = fuse_panoptic(inst, SemanticMap(sem, ignore_index=None),
                              stuff_map={7: 107, 8: 108}, stuff_area=60)
    by_id = {s["id"]: s for s in segs}
    assert [s["category_id"] for s in segs] == [1, 2, 107, 108]
    assert by_id[1]["area"] == 100 and by_id[2]["area"] == 75
    assert by_id[2]["bbox"] == [5.0, 5.0, 10.0, 10.0]
    assert (ids > 0).all()  # stuff filled every free pixel
    ids2, segs2 = fuse_panoptic(inst, SemanticMap(sem, ignore_index=None), stuff_map={7: 107,
                                                                                     8: 108},
                                stuff_area=101)
    assert [s["category_id"] for s in segs2] == [1, 2, 107]  # class 8 area 100 < 101
    assert (ids2[:, 15:] == 0).sum() > 0  # left VOID


def test_fused_output_evaluates_to_pq_one_against_itself(tmp_path):
    h, w = 30, 40
    inst = Masks(np.stack([_sq(h, w, 2, 12, 2, 12), _sq(h, w, 15, 28, 20, 35)]),
                 scores=[0.9, 0.95], labels=[1, 1])
    sem = SemanticMap(np.where(np.arange(h)[:, None] < 15, 0, 1).repeat(w, 1),
                      ignore_index=None)
    cats = [{"id": 1, "name": "person", "isthing": 1}, {"id": 100, "name": "sky",
                                                        "isthing": 0},
            {"id": 101, "name": "road", "isthing": 0}]
    ids, segs = fuse_panoptic(inst, sem, stuff_map={0: 100, 1: 101}, stuff_area=10)
    image = {"id": 5, "file_name": "a.jpg", "height": h, "width": w}
    write_panoptic_predictions(tmp_path / "gt", [(image, ids, segs)], cats)
    write_panoptic_predictions(tmp_path / "pred", [(image, ids, segs)], cats)
    r = panoptic_evaluate(tmp_path / "gt" / "panoptic.json", tmp_path / "gt" / "panoptic",
                          tmp_path / "pred" / "panoptic.json", tmp_path / "pred" / "panoptic",
                          quiet=True)
    assert r.all["pq"] == pytest.approx(1.0) and r.things["n"] == 1 and r.stuff["n"] == 2
