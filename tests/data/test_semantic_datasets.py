import json

import numpy as np
import pytest
import torch

from masklab.data.semantic import detect_layout, open_dataset, train_transform
from masklab.errors import InputError
from masklab.io.images import write_image, write_label_png
from tests.conftest import shared_path


def test_ade20k_layout_reduces_zero_label(tmp_path):
    for split in ("training", "validation"):
        write_image(tmp_path / "images" / split / "a.jpg", np.zeros((4, 5, 3), np.uint8))
        write_label_png(tmp_path / "annotations" / split / "a.png",
                        np.array([[0, 1, 2, 150, 0]] * 4), palette=False)
    assert detect_layout(tmp_path) == "ade20k"
    ds = open_dataset(tmp_path, "val")
    assert ds.spec.num_classes == 150 and ds.spec.reduce_zero_label
    _, lab = ds[0]
    assert lab[0].tolist() == [255, 0, 1, 149, 255]


def test_coco_json_becomes_category_maps(tmp_path):
    write_image(tmp_path / "img" / "a.png", np.zeros((10, 10, 3), np.uint8))
    coco = {"images": [{"id": 7, "file_name": "a.png", "height": 10, "width": 10}],
            "categories": [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 9, "iscrowd": 0,
                 "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "area": 100},
                {"id": 2, "image_id": 7, "category_id": 5, "iscrowd": 0,
                 "segmentation": [[2, 2, 5, 2, 5, 5, 2, 5]], "area": 9}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    ds = open_dataset(tmp_path / "c.json", images_dir=tmp_path / "img")
    assert ds.spec.class_names == ["background", "cat", "dog"]
    _, lab = ds.load(0)
    assert lab[0, 0] == 2 and lab[3, 3] == 1  # small cat painted over the large dog
    with pytest.raises(InputError, match="needs --images"):
        open_dataset(tmp_path / "c.json")


def test_augmentations_keep_masks_aligned():
    torch.manual_seed(0)
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.zeros((40, 60), np.int64)
    image[10:20, 30:50] = 255
    label[10:20, 30:50] = 1
    t = train_transform((32, 32), scale=(0.5, 1.5), jitter=0.0)
    for _ in range(10):
        img, lab = t(image, label)
        assert img.shape == (3, 32, 32) and lab.shape == (32, 32)
        white = img[0] > 127
        labelled = lab == 1
        # image and label moved together (bilinear edges aside)
        assert (white & ~labelled).sum() <= 0.2 * max(1, white.sum())
        assert set(lab.unique().tolist()) <= {0, 1, 255}


def test_camvid_layout():
    root = shared_path("data", "camvid")
    ds = open_dataset(root, "val")
    assert len(ds) == 101 and ds.spec.num_classes == 11 and ds.spec.ignore_index == 11
    img, lab = ds.load(0)
    assert img.shape == (360, 480, 3) and lab.max() <= 11
