import numpy as np
import pytest

from masklab.demo import synthetic_shapes
from masklab.errors import InputError
from masklab.io import convert as cv
from masklab.io import write_image
from masklab.types import Masks


@pytest.fixture
def dataset(tmp_path):
    """Two synthetic images (non-overlapping shapes) saved with their images."""
    items = []
    for k in range(2):
        img, masks = synthetic_shapes(seed=k)
        write_image(tmp_path / "images" / f"img{k}.png", img)
        items.append(cv.LabeledImage(f"img{k}.png", Masks(masks.to_dense(), labels=masks.labels),
                                     k + 1))
    cats = [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"},
            {"id": 3, "name": "triangle"}]
    return cv.MaskSet(cats, items), tmp_path


def _by_file(ms):
    return {it.file_name: it.masks for it in ms.items}


def _union_by_label(masks):
    return {int(lab): masks.to_dense()[masks.labels == lab].any(axis=0)
            for lab in np.unique(masks.labels)}


@pytest.mark.parametrize("fmt", ["coco", "instances", "yolo", "davis", "labels"])
def test_round_trip_through_each_format(dataset, fmt):
    ms, tmp = dataset
    src = tmp / "src.json"
    cv.write_coco(ms, src)
    dst = tmp / ("out.json" if fmt == "coco" else fmt)
    cv.convert(src, dst, dst_format=fmt)
    back = cv.convert(dst, tmp / "back.json", src_format=fmt, images_dir=tmp / "images")
    assert back == [tmp / "back.json"]
    got = _by_file(cv.read_coco(tmp / "back.json"))
    for it in ms.items:
        key = it.file_name if fmt != "davis" else f"{it.file_name[:-4]}/00000.jpg"
        m = got[key]
        if fmt == "labels":  # one instance per class: compare class unions
            ref, out = _union_by_label(it.masks), _union_by_label(m)
            assert ref.keys() == out.keys()
            for lab in ref:
                np.testing.assert_array_equal(out[lab], ref[lab])
            continue
        assert len(m) == len(it.masks)
        if fmt == "davis":  # DAVIS keeps objects, not categories
            assert (m.labels == 1).all()
        else:
            assert sorted(m.labels) == sorted(it.masks.labels)
        # each source mask is found again exactly (YOLO's 6-decimal polygons: IoU > 0.97)
        best = it.masks.iou(m).max(axis=1)
        assert best.min() > (0.97 if fmt == "yolo" else 0.999999)


def test_yolo_names_and_errors(dataset):
    ms, tmp = dataset
    cv.write_yolo(ms, tmp / "y")
    text = (tmp / "y" / "data.yaml").read_text()
    assert '0: "circle"' in text and '2: "triangle"' in text
    line = (tmp / "y" / "img0.txt").read_text().splitlines()[0].split()
    assert 0 <= int(line[0]) <= 2 and all(0 <= float(v) <= 1 for v in line[1:])
    with pytest.raises(InputError, match="needs the images folder"):
        cv.convert(tmp / "y", tmp / "b.json")
    (tmp / "y" / "img0.txt").write_text("0 0.1 0.1 0.5\n")
    with pytest.raises(InputError, match=r"img0.txt: line 1: polygon has 3 coordinates"):
        cv.convert(tmp / "y", tmp / "b.json", images_dir=tmp / "images")
    assert not (tmp / "b.json").exists()


def test_unknown_formats(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="cannot tell the source format"):
        cv.convert(tmp_path / "d", tmp_path / "o.json")


def test_yolo_keeps_an_object_of_several_parts_as_one_line(tmp_path):
    """Parts joined by zero-width bridges (as Ultralytics' converter does): one line, one
    object read back, the same pixels but for the bridges' own."""
    from masklab.io.convert import LabeledImage, MaskSet, read_yolo, write_yolo
    from masklab.io.images import write_image
    from masklab.types import Masks

    m = np.zeros((60, 80), bool)
    m[5:20, 5:25] = True
    m[30:50, 40:70] = True
    m[8:14, 60:75] = True
    ms = MaskSet([{"id": 1, "name": "a"}], [LabeledImage("x.png", Masks(m[None], labels=[1]))])
    write_yolo(ms, tmp_path / "y")
    lines = (tmp_path / "y" / "x.txt").read_text().splitlines()
    assert len(lines) == 1
    write_image(tmp_path / "x.png", np.zeros((60, 80, 3), np.uint8))
    back = read_yolo(tmp_path / "y", images_dir=tmp_path).items[0].masks
    assert len(back) == 1
    got = back.to_dense()[0]
    assert (got & m).sum() == m.sum() and (got & ~m).sum() <= 60  # bridges: thin lines


def test_coco_yolo_coco_keeps_the_number_of_objects():
    """The shared COCO subset (815 objects, some in several parts): 815 after YOLO."""
    from pathlib import Path

    from masklab.io.convert import read_coco, read_yolo, write_yolo

    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_tiny"
    if not (root / "annotations" / "instances_val2017.json").is_file():
        pytest.skip("shared COCO subset not present")
    import tempfile

    ms = read_coco(root / "annotations" / "instances_val2017.json")
    with tempfile.TemporaryDirectory() as d:
        write_yolo(ms, d)
        back = read_yolo(d, images_dir=root / "val2017")
    assert sum(len(i.masks) for i in back.items) == sum(len(i.masks) for i in ms.items) == 815
