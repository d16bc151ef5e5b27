import copy
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from masklab import Masks
from masklab.errors import InputError
from masklab.io.coco import load_coco, load_results, masks_to_annotations, write_coco
from masklab.io.images import write_image
from tests.conftest import shared_path

VALID = {
    "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 12}],
    "categories": [{"id": 1, "name": "thing"}],
    "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                     "segmentation": [[1, 1, 6, 1, 6, 4, 1, 4]], "bbox": [1, 1, 5, 3],
                     "area": 15}],
}


def _write(tmp_path, data, name="d.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def _broken(mutate):
    d = copy.deepcopy(VALID)
    mutate(d)
    return d


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("images"), "missing top-level key 'images'"),
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 1"),
    (lambda d: d["images"][0].pop("height"), "image at index 0: missing key 'height'"),
    (lambda d: d["categories"].append({"id": 1, "name": "x"}), "duplicate category id 1"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate annotation id 5"),
    (lambda d: d["annotations"][0].update(image_id=9), "annotation 5: unknown image_id 9"),
    (lambda d: d["annotations"][0].update(category_id=3), "unknown category_id 3"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]),
     "polygon 0 has 5 coordinates"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [9, 12], "counts": "0"}),
     r"RLE size \[9, 12\] differs from image size \[10, 12\]"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [10, 12], "counts": [3, 4]}),
     "must be non-negative and sum to h\\*w = 120"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, -1, 2]), "negative width"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "iscrowd must be 0 or 1"),
])
def test_validation_errors_name_file_and_fault(tmp_path, mutate, message):
    p = _write(tmp_path, _broken(mutate))
    with pytest.raises(InputError, match=message) as e:
        load_coco(p)
    assert str(e.value).startswith(str(p))
    assert "\n" not in str(e.value)


def test_invalid_json_and_image_size_mismatch(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"images": [}')
    with pytest.raises(InputError, match="bad.json: invalid JSON at line 1 column 13"):
        load_coco(p)
    good = _write(tmp_path, VALID)
    write_image(tmp_path / "a.png", np.zeros((10, 13), np.uint8))
    with pytest.raises(InputError, match="JSON says 12x10 but the file is 13x10"):
        load_coco(good, images_dir=tmp_path)
    write_image(tmp_path / "a.png", np.zeros((10, 12), np.uint8))
    assert len(load_coco(good, images_dir=tmp_path).images) == 1


def test_masks_and_write_round_trip(tmp_path):
    ds = load_coco(_write(tmp_path, VALID))
    m = ds.masks(1)
    assert m.labels.tolist() == [1] and m.track_ids.tolist() == [5] and m.area.tolist() == [15]
    anns = masks_to_annotations(m, 1)
    out = write_coco(tmp_path / "o.json", {**VALID, "annotations": anns})
    again = load_coco(out).masks(1)
    np.testing.assert_array_equal(again.to_dense(), m.to_dense())
    with pytest.raises(InputError, match="unknown category_id"):
        write_coco(tmp_path / "x.json", {**VALID, "annotations": [{**anns[0], "category_id": 9}]})
    assert not (tmp_path / "x.json").exists()


def test_real_coco_subset_matches_pycocotools():
    path = shared_path("data", "coco_tiny", "annotations", "instances_val2017.json")
    ds = load_coco(path)
    ref = COCO(str(path))
    crowd_seen = 0
    for image_id in ds.image_ids[:30]:
        m = ds.masks(image_id)
        anns = ref.loadAnns(ref.getAnnIds(imgIds=[image_id]))
        assert len(m) == len(anns)
        for i, ann in enumerate(anns):
            crowd_seen += ann["iscrowd"]
            np.testing.assert_array_equal(m.to_dense()[i], ref.annToMask(ann).astype(bool))
        boxes = ds.boxes(image_id)
        np.testing.assert_allclose(boxes.xywh, [a["bbox"] for a in anns])
    assert crowd_seen > 0  # the subset has crowd RLEs; they decoded identically


def test_results_validation(tmp_path):
    ds = load_coco(_write(tmp_path, VALID))
    good = [{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 2, 2]}]
    assert load_results(_write(tmp_path, good, "r.json"), iou_type="bbox", gt=ds) == good
    with pytest.raises(InputError, match="missing key 'segmentation'"):
        load_results(_write(tmp_path, good, "r.json"), iou_type="segm")
    with pytest.raises(InputError, match="image_id 7 is not in the ground truth"):
        load_results(_write(tmp_path, [{**good[0], "image_id": 7}], "r.json"),
                     iou_type="bbox", gt=ds)
    rle = Masks(np.ones((1, 10, 12), bool)).to_rle()[0]
    seg = [{"image_id": 1, "category_id": 1, "score": 1.0, "segmentation": rle}]
    assert load_results(_write(tmp_path, seg, "s.json"), gt=ds)[0]["segmentation"] == rle


def test_rle_faults_are_reported_in_file_order(tmp_path):
    """RLE strings are checked together after the records; the first fault in the file is
    still the one named (an RLE at index 1 before a bbox at index 2, and the other way)."""
    ds = load_coco(_write(tmp_path, VALID))
    ok = Masks(np.ones((1, 10, 12), bool)).to_rle()[0]
    short = {"size": [10, 12], "counts": Masks(np.ones((1, 10, 11), bool)).to_rle()[0]["counts"]}
    det = {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": ok,
           "bbox": [0, 0, 2, 2]}
    dets = [det, {**det, "segmentation": short}, {**det, "bbox": [0, 0, 1]}]
    with pytest.raises(InputError, match="detection at index 1: RLE counts sum to 110, "
                                         "expected h\\*w = 120"):
        load_results(_write(tmp_path, dets, "r.json"), iou_type="segm", gt=ds)
    bad = [{**det, "segmentation": {"size": [10, 12], "counts": "0Q"}}]
    with pytest.raises(InputError, match="index 0: bad RLE counts string \\(truncated"):
        load_results(_write(tmp_path, bad, "r.json"), gt=ds)
    d = copy.deepcopy(VALID)
    d["annotations"][0]["segmentation"] = short
    d["annotations"].append({**d["annotations"][0], "id": 6, "bbox": [0, 0, -1, 1]})
    with pytest.raises(InputError, match="annotation 5: RLE counts sum to 110"):
        load_coco(_write(tmp_path, d))
    d["annotations"][0]["segmentation"] = ok
    d["annotations"][0]["bbox"] = [0, 0, 1]
    d["annotations"][1]["segmentation"] = short
    with pytest.raises(InputError, match="annotation 5: bbox must be"):
        load_coco(_write(tmp_path, d))
