import numpy as np
import pytest

from masklab.metrics.video_interactive import (
    VideoInteractiveEvaluator,
    VideoInteractiveResult,
    score_sequence,
    simulate_video,
)
from masklab.video import VideoSession
from tests.video.test_session import moving_squares


def test_auc_and_jf_at_by_hand():
    r = VideoInteractiveResult(np.array([0.4, 0.6, 0.8]), np.array([0.6, 0.8, 1.0]), 1)
    np.testing.assert_allclose(r.jf, [0.5, 0.7, 0.9])
    assert r.auc == pytest.approx(((0.5 + 0.7) / 2 + (0.7 + 0.9) / 2) / 2)
    assert r.jf_at(8) == pytest.approx(0.9) and r.jf_at(2) == pytest.approx(0.7)
    a = VideoInteractiveEvaluator(3).update("a", [0.2, 0.4, 0.6], [0.2, 0.4, 0.6])
    b = VideoInteractiveEvaluator(3).update("b", [0.6, 0.8, 1.0], [0.6, 0.8, 1.0])
    np.testing.assert_allclose(a.merge(b).compute().jf, [0.4, 0.6, 0.8])
    with pytest.raises(ValueError, match="expected 3 values"):
        a.update("c", [1, 2], [1, 2])


def test_score_sequence_by_hand():
    gt = np.zeros((2, 4, 4), np.uint8)
    gt[:, :2, :2] = 1
    res = gt.copy()
    res[1, 0, :] = 1  # frame 1: 4 of 6 predicted pixels are right
    j, f = score_sequence(gt, res)
    np.testing.assert_allclose(j, [[1.0, 4 / 6]])
    assert f[0, 0] == 1.0 and f[0, 1] < 1.0


def test_simulated_user_reaches_the_objects():
    frames, red, green = moving_squares(12)
    gt = np.zeros((12, *red[0].shape), np.uint8)
    for t in range(12):
        gt[t][red[t]] = 1
        gt[t][green[t]] = 2
    j, f = simulate_video(VideoSession(frames), gt, interactions=3)
    assert len(j) == len(f) == 3
    assert j[0] >= 0.85 and j[-1] >= j[0] - 0.02 and f[-1] >= 0.8


def test_eval_video_interactive_cli(tmp_path):
    import json

    from masklab.io.images import write_image, write_label_png
    from tests.test_cli import run

    frames, red, _ = moving_squares(8)
    for t, fr in enumerate(frames):
        write_image(tmp_path / "JPEGImages" / "480p" / "sq" / f"{t:05d}.jpg", fr)
        write_label_png(tmp_path / "Annotations" / "480p" / "sq" / f"{t:05d}.png",
                        red[t].astype(np.uint8) * 255)  # DAVIS-2016 style 0/255
    out = run("eval", "video-interactive", "--davis-root", tmp_path, "--interactions", 2,
              "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    assert "AUC" in out.stdout and "J&F@8" in out.stdout
    r = json.loads((tmp_path / "r.json").read_text())
    assert len(r["J&F_per_interaction"]) == 2 and r["sequences"] == 1
    assert r["J_per_interaction"][-1] >= 0.85
    bad = run("eval", "video-interactive", "--davis-root", tmp_path, "--sequences", "nope")
    assert bad.returncode == 2 and "no annotations for sequence nope" in bad.stderr


def test_eval_video_interactive_runs_a_sam_backend_on_the_device_given(tmp_path):
    import json

    pytest.importorskip("transformers")
    from masklab.io.images import write_image, write_label_png
    from tests.test_cli import run
    from tests.video.test_sam_video import tiny_video_model

    tiny_video_model("sam2_video", tmp_path / "sam2")
    frames, red, _ = moving_squares(5)
    for t, fr in enumerate(frames):
        write_image(tmp_path / "d" / "JPEGImages" / "480p" / "sq" / f"{t:05d}.jpg", fr)
        write_label_png(tmp_path / "d" / "Annotations" / "480p" / "sq" / f"{t:05d}.png",
                        red[t].astype(np.uint8) * 255)
    args = ("eval", "video-interactive", "--davis-root", tmp_path / "d", "--interactions", 2,
            "--backend", tmp_path / "sam2")
    out = run(*args, "--device", "cpu", "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert len(r["J&F_per_interaction"]) == 2 and r["sequences"] == 1
