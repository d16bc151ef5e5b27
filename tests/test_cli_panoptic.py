import json

import numpy as np
import pytest
import torch

from masklab.io.images import write_image
from masklab.io.panoptic import load_panoptic
from tests.test_cli import run


def _images(folder, n=2, h=50, w=70):
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(folder / f"{i}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _consistent(out):
    """Every segment of panoptic.json is in its PNG with its area, and nothing else is."""
    data = json.loads((out / "panoptic.json").read_text())
    ds = load_panoptic(out / "panoptic.json", out / "panoptic")
    cats = {c["id"] for c in data["categories"]}
    n = 0
    for ann in data["annotations"]:
        ids = ds.read_ids(ann["image_id"])
        assert set(np.unique(ids)) - {0} == {s["id"] for s in ann["segments_info"]}
        for s in ann["segments_info"]:
            assert s["area"] == int((ids == s["id"]).sum()) and s["category_id"] in cats
            n += 1
    return data, n


def test_segment_panoptic_with_mask2former_then_eval(tmp_path):
    pytest.importorskip("transformers")
    from tests.models.test_universal_models import _save

    _save("mask2former", tmp_path / "m2f")
    _images(tmp_path / "img")
    out = run("-q", "segment", "panoptic", tmp_path / "img", "--model", tmp_path / "m2f",
              "--threshold", 0.1, "--overlap", 0.2, "--things", 3, "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    data, n = _consistent(tmp_path / "out")
    assert n > 0 and (tmp_path / "out" / "0_overlay.png").is_file()
    assert {c["name"]: c["isthing"] for c in data["categories"]} == {
        "c0": 1, "c1": 1, "c2": 1, "c3": 0, "c4": 0}
    ev = run("eval", "panoptic", "--gt-json", tmp_path / "out" / "panoptic.json", "--gt-dir",
             tmp_path / "out" / "panoptic", "--pred-json", tmp_path / "out" / "panoptic.json",
             "--pred-dir", tmp_path / "out" / "panoptic", "--json", tmp_path / "pq.json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "pq.json").read_text())["All"]["pq"] == pytest.approx(1.0)

    # renumbered to a dataset's categories by name; a class it lacks becomes VOID
    cats = [{"id": 100 + k, "name": f"C{k}", "isthing": int(k < 3)} for k in range(4)]
    (tmp_path / "cats.json").write_text(json.dumps({"categories": cats}))
    out = run("-q", "segment", "panoptic", tmp_path / "img", "--model", tmp_path / "m2f",
              "--threshold", 0.1, "--overlap", 0.2, "--things", 3, "--categories",
              tmp_path / "cats.json", "--out", tmp_path / "out2")
    assert out.returncode == 0, out.stderr
    data2, _ = _consistent(tmp_path / "out2")
    assert {c["id"] for c in data2["categories"]} == {100, 101, 102, 103}
    out = run("-q", "segment", "panoptic", tmp_path / "img", "--model", tmp_path / "m2f",
              "--score-threshold", 0.1, "--overlap", 0.2, "--classes", "1,2",
              "--out", tmp_path / "out3")
    assert out.returncode == 0, out.stderr
    data3, _ = _consistent(tmp_path / "out3")
    assert {s["category_id"] for a in data3["annotations"] for s in a["segments_info"]} <= {1, 2}

    inst = run("-q", "segment", "instances", tmp_path / "img", "--model", tmp_path / "m2f",
               "--score-threshold", 0, "--out", tmp_path / "inst")
    assert inst.returncode == 0, inst.stderr
    res = json.loads((tmp_path / "inst" / "results.json").read_text())
    assert res and all(1 <= r["category_id"] <= 5 for r in res)


def test_segment_panoptic_fuses_an_instance_and_a_semantic_model(tmp_path):
    from masklab.models.objects import load_object_model, save_object_checkpoint
    from masklab.models.semantic import load_semantic_model, save_checkpoint

    torch.manual_seed(0)
    inst = load_object_model("maskrcnn_resnet18_fpn", weights=None, num_classes=3,
                             class_names=["__background__", "square", "circle"],
                             config={"min_size": 64, "max_size": 96})
    save_object_checkpoint(tmp_path / "inst", inst)
    sem = load_semantic_model("unet", weights=None, num_classes=4,
                              class_names=["background", "square", "circle", "sky"],
                              config={"depth": 2, "width": 8})
    save_checkpoint(tmp_path / "sem", sem)
    _images(tmp_path / "img")
    out = run("-q", "segment", "panoptic", tmp_path / "img", "--model", tmp_path / "inst",
              "--semantic-model", tmp_path / "sem", "--threshold", 0.0, "--stuff-area", 1,
              "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    data, _ = _consistent(tmp_path / "out")
    assert data["categories"] == [{"id": 1, "name": "square", "isthing": 1},
                                  {"id": 2, "name": "circle", "isthing": 1},
                                  {"id": 6, "name": "sky", "isthing": 0}]
    bad = run("segment", "panoptic", tmp_path / "img", "--model", tmp_path / "inst",
              "--out", tmp_path / "o2")
    assert bad.returncode == 2 and "not a panoptic model" in bad.stderr
