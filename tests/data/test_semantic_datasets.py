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


def _camvid_like(root, splits):
    """A CamVid-layout folder: {split: [file stems]} with train.txt / val.txt listings."""
    rng = np.random.default_rng(0)
    for split, stems in splits.items():
        lines = []
        for stem in stems:
            write_image(root / split / f"{stem}.png",
                        rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
            write_label_png(root / f"{split}annot" / f"{stem}.png",
                            rng.integers(0, 12, (12, 16)).astype(np.uint8))
            lines.append(f"/SegNet/CamVid/{split}/{stem}.png "
                         f"/SegNet/CamVid/{split}annot/{stem}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_joined_splits_and_sequence_filter(tmp_path):
    root = _camvid_like(tmp_path, {"train": ["A_1", "A_2", "B_1", "C_1"],
                                   "val": ["A_3", "C_2"]})
    both = open_dataset(root, "train+val")
    assert [p[0].name for p in both.pairs] == ["A_1.png", "A_2.png", "B_1.png", "C_1.png",
                                                "A_3.png", "C_2.png"]
    assert both.spec.num_classes == 11 and both.spec.ignore_index == 11
    a_b = open_dataset(root, "train+val", sequences=["A_", "B_"])
    assert [p[0].name for p in a_b.pairs] == ["A_1.png", "A_2.png", "B_1.png", "A_3.png"]
    assert [p[0].name for p in open_dataset(root, "val", sequences=["C_"]).pairs] == \
        ["C_2.png"]
    with pytest.raises(InputError, match="no image of split 'val' starts with D_"):
        open_dataset(root, "val", sequences=["D_"])


def test_sequence_split_overlap_is_refused(tmp_path):
    from masklab.tasks.semantic import TrainConfig, train_semantic

    root = _camvid_like(tmp_path / "cv", {"train": ["A_1", "A_2", "B_1"], "val": ["B_2"]})
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), model="unet",
                      model_config={"depth": 2, "width": 4}, epochs=1, batch_size=2,
                      crop=None, scale=(1.0, 1.0), workers=0, quiet=True, tensorboard=False,
                      train_split="train+val", val_split="train+val",
                      train_sequences=["A_", "B_"], val_sequences=["B_"])
    with pytest.raises(InputError, match="2 images are in both the training and the "
                                         "validation set"):
        train_semantic(cfg)


def test_photometric_augmentation_changes_colours_not_labels():
    torch.manual_seed(0)
    image = np.full((20, 30, 3), 128, np.uint8)
    image[:, :15] = (200, 60, 40)
    label = np.zeros((20, 30), np.int64)
    label[:, :15] = 1
    t = train_transform(None, scale=None, flip=False, jitter=0.4, hue=0.1, gamma=(0.5, 2.0))
    means = []
    for _ in range(12):
        img, lab = t(image, label)
        assert img.dtype == torch.uint8 and img.shape == (3, 20, 30)
        assert torch.equal(lab, torch.from_numpy(label))
        means.append(img.float().mean().item())
    assert max(means) - min(means) > 30  # brightness, contrast and gamma vary a lot
    grey = train_transform(None, scale=None, flip=False, jitter=0, gamma=(0.5, 0.5))
    img, _ = grey(np.full((2, 2, 3), 64, np.uint8), np.zeros((2, 2), np.int64))
    assert int(img[0, 0, 0]) == round(255 * (64 / 255) ** 0.5)  # gamma 0.5 brightens


def test_camvid_sequence_disjoint_split():
    root = shared_path("data", "camvid")
    train = open_dataset(root, "train+val", sequences=["0016E5", "0001TP"])
    val = open_dataset(root, "train+val", sequences=["0006R0"])
    assert len(train) == 367 and len(val) == 101
    assert not {p[0].name[:6] for p in train.pairs} & {p[0].name[:6] for p in val.pairs}
