import json

import numpy as np
import pytest

from masklab.errors import InputError
from masklab.io.davis import list_sequences, read_sequence, write_frame
from masklab.io.images import read_label_png
from masklab.io.panoptic import id2rgb, load_panoptic, rgb2id, write_panoptic
from tests.conftest import shared_path


def test_rgb_id_hand_values_and_round_trip(rng):
    assert rgb2id(np.array([[[1, 2, 3]]])).tolist() == [[1 + 2 * 256 + 3 * 65536]]
    ids = rng.integers(0, 2**24, (7, 9))
    np.testing.assert_array_equal(rgb2id(id2rgb(ids)), ids)
    with pytest.raises(ValueError):
        id2rgb(np.array([[2**24]]))


def test_write_and_load_panoptic(tmp_path):
    ids = np.zeros((6, 8), np.int64)
    ids[:3] = 5
    ids[3:, :4] = 70000
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 6, "width": 8}],
            "categories": [{"id": 1, "name": "a", "isthing": 1},
                           {"id": 2, "name": "b", "isthing": 0}],
            "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
                {"id": 5, "category_id": 1}, {"id": 70000, "category_id": 2}]}]}
    write_panoptic(tmp_path / "p.json", tmp_path / "png", data, {"a.png": ids})
    ds = load_panoptic(tmp_path / "p.json", tmp_path / "png")
    np.testing.assert_array_equal(ds.read_ids(1), ids)
    bad = json.loads((tmp_path / "p.json").read_text())
    bad["annotations"][0]["segments_info"][1]["category_id"] = 9
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="bad.json: image 1: segment 70000 has unknown"):
        load_panoptic(tmp_path / "bad.json", tmp_path / "png")


def test_shared_panoptic_fixture_loads_and_areas_match():
    root = shared_path("fixtures", "panoptic_dev")
    ds = load_panoptic(root / "gt.json", root / "gt")
    for ann in ds.data["annotations"][:10]:
        ids = ds.read_ids(ann["image_id"])
        for seg in ann["segments_info"]:
            assert int((ids == seg["id"]).sum()) == seg["area"]


def test_davis_frames_round_trip(tmp_path):
    frame = np.array([[0, 1, 2], [255, 2, 0]], np.uint8)
    write_frame(tmp_path / "seq" / "00000.png", frame)
    write_frame(tmp_path / "seq" / "00001.png", frame[::-1])
    names, frames = read_sequence(tmp_path / "seq")
    assert names == ["00000", "00001"]
    np.testing.assert_array_equal(frames[1], frame[::-1])


def test_shared_davis_fixture_lists_sequences():
    root = shared_path("fixtures", "davis_dev", "DAVIS")
    seqs = list_sequences(root)
    assert seqs
    names, frames = read_sequence(root / "Annotations" / "480p" / seqs[0])
    assert frames.ndim == 3 and len(names) == len(frames)
    assert frames[0].max() >= 1
    assert read_label_png(root / "Annotations" / "480p" / seqs[0] / f"{names[0]}.png").shape \
        == frames.shape[1:]
