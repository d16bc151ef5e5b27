import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from masklab.cli import main
from masklab.errors import InputError
from masklab.grounding.detectors import Detections
from masklab.grounding.label import (
    LabelSettings,
    label_images,
    parse_classes_file,
    postprocess,
)
from masklab.io.images import write_image

COCO = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_tiny"
GT = COCO / "annotations" / "instances_val2017.json"


def _as_results(labelled: Path, gt: dict) -> list[dict]:
    """Our annotations as COCO results against the ground truth's image and category ids."""
    d = json.loads((labelled / "annotations.json").read_text())
    cat = {c["name"]: c["id"] for c in gt["categories"]}
    ours = {c["id"]: c["name"] for c in d["categories"]}
    img = {i["file_name"]: i["id"] for i in gt["images"]}
    mine = {i["id"]: i["file_name"] for i in d["images"]}
    return [{"image_id": img[mine[a["image_id"]]], "category_id": cat[ours[a["category_id"]]],
             "segmentation": a["segmentation"], "bbox": a["bbox"], "score": a["score"]}
            for a in d["annotations"]]


@pytest.mark.skipif(not GT.is_file(), reason="../shared/data/coco_tiny is absent")
def test_ground_truth_boxes_through_the_box_to_mask_path(tmp_path):
    """Real COCO images: ids, categories and formats are right (boxes come back exactly),
    and GrabCut masks from the true boxes beat the boxes themselves as masks."""
    from masklab.metrics.coco import coco_evaluate

    gt_all = json.loads(GT.read_text())
    files = sorted((COCO / "val2017").glob("*.jpg"))[:10]
    keep = {i["id"] for i in gt_all["images"] if i["file_name"] in {f.name for f in files}}
    gt = {**gt_all, "images": [i for i in gt_all["images"] if i["id"] in keep],
          "annotations": [a for a in gt_all["annotations"] if a["image_id"] in keep]}
    ap = {}
    for seg in ("box", "grabcut"):
        r = CliRunner().invoke(main, ["--quiet", "label", *map(str, files), "--boxes-from",
                                      str(GT), "--segmenter", seg, "--out",
                                      str(tmp_path / seg)])
        assert r.exit_code == 0, r.output
        res = _as_results(tmp_path / seg, gt)
        assert len(res) == sum(1 for a in gt["annotations"] if not a["iscrowd"])
        ap[seg] = coco_evaluate(gt, res, "segm").stats[0]
        if seg == "box":
            assert coco_evaluate(gt, res, "bbox").stats[1] > 0.99  # AP50 of the boxes
        lines = sum(len(p.read_text().splitlines()) for p in
                    (tmp_path / seg / "yolo" / "labels").glob("*.txt"))
        assert lines >= len(res)  # one line per polygon (a part each)
        names = (tmp_path / seg / "yolo" / "data.yaml").read_text()
        assert "toothbrush" in names and "person" in names
    assert ap["grabcut"] > ap["box"] + 0.05, ap


class _Fixed:
    """A detector returning fixed boxes (the pipeline's other parts are under test)."""

    name = "fixed"

    def __init__(self, boxes, scores, labels):
        self.boxes, self.scores, self.labels = boxes, scores, labels
        self.calls = 0

    def detect(self, image, classes):
        self.calls += 1
        return Detections(np.array(self.boxes, float), np.array(self.scores, float),
                          np.array(self.labels), list(classes))


def test_postprocess_synonyms_thresholds_and_one_label_per_object():
    s = LabelSettings(classes=["person", "dog"], detector="x", segmenter="box",
                      synonyms={"man": "person"}, class_thresholds={"dog": 0.5})
    prompts = s.prompts()
    assert prompts == ["person", "dog", "man"]
    det = Detections(np.array([[0, 0, 10, 10], [0, 0, 10, 10.5], [20, 20, 30, 30],
                               [40, 40, 50, 50], [0, 0, 10, 10]], float),
                     np.array([0.6, 0.9, 0.4, 0.7, 0.3]), np.array([1, 2, 1, 0, 0]), prompts)
    out = postprocess(det, s)
    # box 0 (dog 0.6) and box 1 (man → person 0.9) are one object: person wins; box 2 is a
    # dog under its class threshold; box 4 is the same object again
    assert out.labels.tolist() == [0, 0] and out.scores.tolist() == [0.9, 0.7]
    assert out.prompts == ["man", "person"]


def test_classes_file(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("person: man, woman , child\n# comment\ndog\n")
    assert parse_classes_file(f) == (["person", "dog"], {"man": "person", "woman": "person",
                                                         "child": "person"})
    f.write_text("person: dog\ndog\n")
    with pytest.raises(InputError, match="line 2"):
        parse_classes_file(f)


def test_resume_refusal_and_failed_images(tmp_path):
    imgs = []
    for k in range(5):
        p = tmp_path / "in" / f"im{k}.png"
        write_image(p, np.full((40, 60, 3), 40 * k, np.uint8))
        imgs.append(p)
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    s = LabelSettings(classes=["cat"], detector="fixed", segmenter="box")
    det = _Fixed([[5, 5, 30, 25]], [0.9], [0])
    r1 = label_images(imgs[:3], tmp_path / "out", s, detector=det, quiet=True)
    assert (r1.done, r1.skipped, r1.annotations) == (3, 0, 3)
    r2 = label_images([*imgs, tmp_path / "in" / "broken.png"], tmp_path / "out", s,
                      detector=det, quiet=True)
    assert (r2.done, r2.skipped, r2.failed, r2.annotations) == (2, 3, 1, 5)
    assert det.calls == 5  # no image was labelled twice
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == [f"im{k}.png" for k in range(5)]
    assert len({a["id"] for a in coco["annotations"]}) == 5
    a = coco["annotations"][0]
    assert a["bbox"] == [5.0, 5.0, 25.0, 20.0] and a["area"] == 500
    assert a["source"] == "fixed+box" and a["prompt"] == "cat" and a["score"] == 0.9
    failed = [json.loads(x) for x in (tmp_path / "out" / "progress.jsonl").read_text()
              .splitlines() if '"failed"' in x]
    assert failed[0]["image"] == "broken.png" and failed[0]["reason"]
    other = LabelSettings(classes=["cat"], detector="fixed", segmenter="box", min_area=50)
    with pytest.raises(InputError, match="min_area: 16 there, 50 now"):
        label_images(imgs, tmp_path / "out", other, detector=det, quiet=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        label_images(imgs, tmp_path / "foreign", s, detector=det, quiet=True)


def test_label_cli_with_a_text_detector(tmp_path):
    from tests.grounding import tiny

    tiny.grounding_dino(tmp_path / "gd")
    for k in range(2):
        write_image(tmp_path / "in" / f"{k}.jpg",
                    np.random.default_rng(k).integers(0, 255, (70, 100, 3), dtype=np.uint8))
    (tmp_path / "classes.txt").write_text("cat: dog\ntraffic light\n")
    args = ["--quiet", "label", str(tmp_path / "in"), "--classes-file",
            str(tmp_path / "classes.txt"), "--detector", str(tmp_path / "gd"),
            "--segmenter", "box", "--box-threshold", "0.3", "--out", str(tmp_path / "out")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat", "traffic light"]
    assert coco["annotations"] and all(a["category_id"] in (1, 2) and a["prompt"] in
                                       ("cat", "dog", "traffic light")
                                       for a in coco["annotations"])
    assert (tmp_path / "out" / "overlays" / "0.jpg").is_file()
    again = CliRunner().invoke(main, [*args[1:3], *args[3:]])
    assert again.exit_code == 0
    changed = CliRunner().invoke(main, [a if a != "box" else "grabcut" for a in args])
    assert changed.exit_code == 2 and "other settings (segmenter" in changed.output
    empty = CliRunner().invoke(main, ["label", str(tmp_path / "in"), "--classes", "a,,b",
                                      "--out", str(tmp_path / "o3")])
    assert empty.exit_code == 2 and "empty class name" in empty.output


def test_label_with_sam3_uses_its_masks(tmp_path):
    """``--detector`` a SAM 3 folder: its instance masks are the annotations (no segmenter),
    each clipped to its box, with the score, source and prompt kept."""
    from masklab.grounding import load_detector
    from masklab.grounding.detectors import check_classes
    from masklab.rle import decode
    from tests.grounding import tiny

    tiny.sam3(tmp_path / "s3")
    img = np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8)
    write_image(tmp_path / "in" / "a.png", img)
    r = CliRunner().invoke(main, ["--quiet", "label", str(tmp_path / "in"), "--classes",
                                  "cat", "--detector", str(tmp_path / "s3"), "--box-threshold",
                                  "0.2", "--min-area", "1", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    anns = coco["annotations"]
    assert anns and all(a["prompt"] == "cat" and a["source"].startswith("s3+") for a in anns)
    det = load_detector(tmp_path / "s3", box_threshold=0.2).detect(img, check_classes(["cat"]))
    best = int(np.argmax(det.scores))
    x0, y0, x1, y1 = np.floor(det.boxes[best]).astype(int).clip(0)
    top = max(anns, key=lambda a: a["score"])
    assert top["score"] == pytest.approx(det.scores[best], rel=1e-6)
    got = decode([top["segmentation"]])[0].astype(bool)
    assert not got[:, :max(0, x0)].any() and not got[:max(0, y0)].any()  # clipped to its box
    inside = det.masks[best][y0:y1 + 1, x0:x1 + 1]
    assert got.sum() <= inside.sum() + 1
    # exemplar boxes: recorded in the run's settings, given to the model
    ex = CliRunner().invoke(main, ["--quiet", "label", str(tmp_path / "in"), "--classes",
                                   "cat", "--detector", str(tmp_path / "s3"), "--exemplar",
                                   "cat=10,5,40,30", "--exemplar", "cat=50,20,70,45,neg",
                                   "--box-threshold", "0.2", "--min-area", "1", "--out",
                                   str(tmp_path / "ex")])
    assert ex.exit_code == 0, ex.output
    settings = json.loads((tmp_path / "ex" / "settings.json").read_text())
    assert settings["exemplars"] == {"cat": [[10, 5, 40, 30, 1], [50, 20, 70, 45, 0]]}
    want = load_detector(tmp_path / "s3", box_threshold=0.2).detect(
        img, ["cat"], exemplars=settings["exemplars"])
    got_scores = sorted(a["score"] for a in json.loads(
        (tmp_path / "ex" / "annotations.json").read_text())["annotations"])
    assert got_scores and set(np.round(got_scores, 6)) <= set(np.round(want.scores, 6))
    for bad, why in [(["--exemplar", "cat=1,2,3"], "not CLASS=X0"),
                     (["--exemplar", "dog=1,2,3,4"], "not one of the classes"),
                     (["--exemplar", "cat=1,2,30,40", "--detector", "box"], "SAM 3 prompt")]:
        args = ["label", str(tmp_path / "in"), "--classes", "cat", "--detector",
                str(tmp_path / "s3"), "--out", str(tmp_path / "bad"), *bad]
        if "box" in bad:
            tiny.grounding_dino(tmp_path / "gd")
            args[args.index("box")] = str(tmp_path / "gd")
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and why in r.output, r.output
        assert not (tmp_path / "bad" / "settings.json").exists()  # nothing left behind
