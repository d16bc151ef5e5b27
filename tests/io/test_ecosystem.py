"""masklab ↔ supervision.Detections and Hugging Face datasets: objects the libraries accept
(their own constructors validate), and everything back equal."""

from __future__ import annotations

import numpy as np
import pytest

from masklab.io.convert import LabeledImage, MaskSet
from masklab.io.ecosystem import (
    from_hf_dataset,
    from_supervision,
    to_hf_dataset,
    to_supervision,
)
from masklab.io.images import write_image
from masklab.types import Masks


def _masks():
    m = np.zeros((3, 20, 30), bool)
    m[0, 2:8, 3:9] = True
    m[1, 10:18, 5:25] = True
    m[2, 1:4, 20:29] = True
    return Masks(m, scores=[0.9, 0.5, 0.7], labels=[1, 2, 1], track_ids=[4, 5, 6],
                 class_names=["bg", "cat", "dog"])


def test_supervision_round_trip():
    sv = pytest.importorskip("supervision")
    m = _masks()
    det = to_supervision(m)
    assert isinstance(det, sv.Detections) and len(det) == 3
    np.testing.assert_array_equal(det.xyxy, m.boxes.xyxy)
    assert det.data["class_name"].tolist() == ["cat", "dog", "cat"]
    # supervision's own operations accept it
    assert len(det[det.confidence > 0.6]) == 2
    assert sv.Detections.merge([det, det]).mask.shape == (6, 20, 30)
    back = from_supervision(det)
    np.testing.assert_array_equal(back.to_dense(), m.to_dense())
    np.testing.assert_allclose(back.scores, m.scores, rtol=1e-6)
    assert back.labels.tolist() == [1, 2, 1] and back.track_ids.tolist() == [4, 5, 6]
    assert back.names == ["cat", "dog", "cat"]


def test_hf_dataset_semantic_and_instances(tmp_path):
    datasets = pytest.importorskip("datasets")
    m = _masks()
    for i in range(2):
        write_image(tmp_path / f"im{i}.png", np.full((20, 30, 3), 40 * i, np.uint8))
    ms = MaskSet([{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
                 [LabeledImage(f"im{i}.png", m, i + 1) for i in range(2)])
    ds = to_hf_dataset(ms, tmp_path)
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == 2
    assert isinstance(ds.features["image"], datasets.Image)
    assert isinstance(ds.features["label"], datasets.Image)
    lab = np.asarray(ds[0]["label"])
    assert lab.shape == (20, 30) and set(np.unique(lab)) == {0, 1, 2}
    ds.save_to_disk(tmp_path / "hf")  # and through the library's own storage
    back = from_hf_dataset(datasets.load_from_disk(tmp_path / "hf"))
    assert back.categories == ms.categories
    sem = back.items[0].masks
    assert sem.labels.tolist() == [1, 2]
    np.testing.assert_array_equal(sem.to_dense()[0], m.to_dense()[0] | m.to_dense()[2])
    inst = from_hf_dataset(to_hf_dataset(ms, tmp_path, mode="instances"))
    np.testing.assert_array_equal(inst.items[1].masks.to_dense(), m.to_dense())
    assert inst.items[1].masks.labels.tolist() == [1, 2, 1]


def test_fiftyone_without_fiftyone_is_a_clear_error(tmp_path):
    """FiftyOne lives in its own environment (tests/peers/test_fiftyone.py checks the real
    thing there); here, without it, one clear line."""
    import importlib.util

    from masklab.errors import InputError
    from masklab.io.ecosystem import from_fiftyone, to_fiftyone

    if importlib.util.find_spec("fiftyone") is not None:
        pytest.skip("fiftyone is installed here")
    ms = MaskSet([{"id": 1, "name": "cat"}], [LabeledImage("a.png", _masks()[:1], 1)])
    with pytest.raises(InputError, match=r"fiftyone is not installed: pip install"):
        to_fiftyone(ms, tmp_path)
    with pytest.raises(InputError, match=r"fiftyone is not installed"):
        from_fiftyone(object())
