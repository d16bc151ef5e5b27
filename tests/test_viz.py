import numpy as np
import pytest

from masklab import Alpha, Boxes, Keypoints, Masks, SemanticMap, viz


def test_overlay_blends_mask_colour_only_inside():
    img = np.zeros((20, 30, 3), np.uint8)
    d = np.zeros((1, 20, 30), bool)
    d[0, 5:15, 5:20] = True
    out = viz.overlay_masks(img, Masks(d), alpha=0.5, boxes=False, contours=False)
    expect = np.round(np.array(viz.color_for(0)) * 0.5)
    assert out[10, 10].tolist() == expect.tolist()
    assert out[0, 0].tolist() == [0, 0, 0]
    boxed = viz.overlay_masks(img, Masks(d, labels=[1], class_names=["bg", "cat"], scores=[0.9]))
    assert boxed.shape == img.shape and (boxed != out).any()
    with pytest.raises(ValueError):
        viz.overlay_masks(np.zeros((5, 5, 3), np.uint8), Masks(d))


def test_colors_are_stable():
    assert viz.color_for(3) == viz.color_for(23)
    assert viz.color_for(0) != viz.color_for(1)


def test_semantic_legend_alpha_and_panels():
    sm = SemanticMap(np.array([[0, 1], [2, 2]], np.uint8), class_names=["a", "b", "c"])
    out = viz.overlay_semantic(np.zeros((2, 2, 3), np.uint8), sm, alpha=1.0)
    assert out.shape[0] == 2 and out.shape[1] > 2  # legend panel appended
    assert out[0, 1].tolist() == sm.to_rgb()[0, 1].tolist()
    cb = viz.alpha_on_checkerboard(Alpha(np.array([[1.0, 0.0]])), np.full((1, 2, 3), 10, np.uint8))
    assert cb[0, 0].tolist() == [10, 10, 10] and cb[0, 1].tolist() == [204, 204, 204]
    panel = viz.side_by_side([np.zeros((4, 5, 3), np.uint8), np.zeros((6, 2), np.uint8)],
                             gap=1)
    assert panel.shape == (6, 8, 3)


def test_boxes_and_keypoints_draw_where_expected():
    img = np.zeros((40, 40, 3), np.uint8)
    out = viz.draw_boxes(img, Boxes([[5, 5, 30, 30]]), labels=False, thickness=1)
    assert out[5, 15].any() and not out[15, 15].any()
    kp = Keypoints(np.array([[[10, 10, 2], [30, 30, 2], [35, 5, 0]]]), skeleton=[(0, 1)])
    out = viz.draw_keypoints(img, kp)
    assert out[20, 20].any()  # on the skeleton line
    assert not out[5, 35].any()  # invisible point not drawn
