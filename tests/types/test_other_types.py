import numpy as np
import pytest

from masklab import Alpha, Keypoints, Masks, Prompts, Scribble, SemanticMap
from masklab.types import COCO_KEYPOINT_NAMES, default_palette, parse_box, parse_point


def test_semantic_map_areas_masks_and_back():
    lab = np.array([[0, 1, 1], [2, 255, 1]], np.uint8)
    sm = SemanticMap(lab, class_names=["bg", "a", "b"])
    assert sm.class_areas() == {0: 1, 1: 3, 2: 1}
    m = sm.to_masks()
    assert m.labels.tolist() == [0, 1, 2] and m.area.tolist() == [1, 3, 1]
    back = SemanticMap.from_masks(m[1:], background=0)
    np.testing.assert_array_equal(back.labels, [[0, 1, 1], [2, 0, 1]])
    rgb = sm.to_rgb()
    assert rgb.shape == (2, 3, 3) and rgb[1, 1].tolist() == [255, 255, 255]  # ignore is white
    assert rgb[0, 1].tolist() == default_palette()[1].tolist()
    with pytest.raises(ValueError, match="integers"):
        SemanticMap(np.zeros((2, 2)))


def test_voc_palette_hand_values():
    pal = default_palette()
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [128, 0, 0]
    assert pal[2].tolist() == [0, 128, 0]
    assert pal[15].tolist() == [192, 128, 128]  # VOC "person"


def test_alpha_validation_and_uint8():
    a = Alpha(np.array([[0.0, 0.5, 1.0]]))
    assert a.to_uint8().tolist() == [[0, 128, 255]]
    assert Alpha.from_uint8(np.array([[255]], np.uint8)).alpha[0, 0] == 1.0
    with pytest.raises(ValueError, match="within"):
        Alpha(np.array([[1.5]]))
    with pytest.raises(ValueError, match="ambiguous"):
        Alpha(np.array([[1]], np.uint8))


def test_keypoints_boxes_and_coco():
    flat = np.zeros(51)
    flat[0:3] = [10, 20, 2]
    flat[15:18] = [30, 5, 1]
    kp = Keypoints.coco_person([flat])
    assert kp.keypoint_names == COCO_KEYPOINT_NAMES and len(kp.skeleton) == 19
    assert kp.boxes.xyxy.tolist() == [[10, 5, 30, 20]]
    assert kp.to_coco()[0] == flat.tolist()
    assert len(Keypoints.cat([kp, kp])) == 2
    with pytest.raises(ValueError, match="skeleton"):
        Keypoints(np.zeros((1, 2, 3)), skeleton=[(0, 2)])


def test_prompts_and_parsing():
    p = Prompts(points=[[1, 2]], box=[0, 0, 5, 5]).add_point(3, 4, positive=False)
    assert p.point_labels.tolist() == [1, 0] and p.points.tolist() == [[1, 2], [3, 4]]
    assert Prompts().is_empty() and not p.is_empty()
    s = Scribble([[1, 1], [8, 1]], width=3, positive=True)
    neg = Scribble([[5, 8]], width=3, positive=False)
    pos_map, neg_map = Prompts(scribbles=[s, neg]).scribble_maps(10, 10)
    assert pos_map[1, 1:9].all() and not pos_map[5].any()
    assert neg_map[8, 5] and neg_map.sum() < 15
    assert parse_point("3,4") == (3.0, 4.0, 1) and parse_point("3,4,0")[2] == 0
    assert parse_box("1,2,3,4").tolist() == [1, 2, 3, 4]
    for bad in ("3", "a,b", "1,2,5"):
        with pytest.raises(ValueError):
            parse_point(bad)
    with pytest.raises(ValueError):
        parse_box("4,4,1,1")
    with pytest.raises(ValueError, match="labels"):
        Prompts(points=[[1, 2]], point_labels=[2])


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, masklab; heavy = [m for m in ('torch', 'cv2', 'transformers', "
            "'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_masks_public_import():
    from masklab import Boxes as B
    from masklab import Masks as M

    assert M is Masks and B.__name__ == "Boxes"


def test_prompts_fit_to_the_image():
    p = Prompts(points=[[0, 0], [40, 30]], box=[-5, 2, 50, 20])
    fitted, notes = p.fit_to(30, 40)  # height 30, width 40
    np.testing.assert_array_equal(fitted.box, [0, 2, 40, 20])
    assert notes == ["box -5,2,50,20 reaches outside the 40x30 image; clipped to 0,2,40,20"]
    np.testing.assert_array_equal(fitted.points, p.points)
    same, notes = Prompts(box=[0, 0, 40, 30]).fit_to(30, 40)
    assert notes == [] and same.box.tolist() == [0, 0, 40, 30]
    for bad in (Prompts(box=[40, 0, 60, 10]), Prompts(box=[0, -9, 10, 0]),
                Prompts(points=[[41, 1]]), Prompts(points=[[1, -0.5]]),
                Prompts(scribbles=[Scribble([[50, 50], [60, 70]])])):
        with pytest.raises(ValueError, match="outside the 40x30 image"):
            bad.fit_to(30, 40)
    partly = Prompts(scribbles=[Scribble([[-10, 5], [10, 5]])])
    assert partly.fit_to(30, 40)[1] == []  # drawing past the border is fine
