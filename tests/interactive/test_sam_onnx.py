"""The SAM-family prompt decoder exported to ONNX (the app's browser decoder) against the
PyTorch path on the same tiny weights: clicks, boxes, clicks with a box, a mask prompt."""

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from click.testing import CliRunner

from masklab.cli import main
from masklab.interactive.sam import SamBackend
from masklab.interactive.sam_onnx import check_decoder, export_decoder
from masklab.io.images import write_image
from tests.interactive.test_sam import _tiny_family, _tiny_sam


@pytest.mark.parametrize("family", ["sam", "sam2", "edgetam"])
def test_exported_decoder_equals_pytorch(family, tmp_path):
    (_tiny_sam if family == "sam" else lambda f: _tiny_family(family, f))(tmp_path / "m")
    backend = SamBackend(str(tmp_path / "m"))
    img = np.random.default_rng(1).integers(0, 255, (150, 210, 3), dtype=np.uint8)
    for multimask, fast in ((True, True), (False, True), (False, False)):
        # fast: masklab's re-composed decoder (+ a per-image graph for SAM 2 / EdgeTAM);
        # else transformers' composition
        path = export_decoder(backend, tmp_path / f"d{int(multimask)}{int(fast)}.onnx",
                              multimask=multimask, fast=fast)
        r = check_decoder(backend, path, img, multimask=multimask, seed=int(multimask))
        assert r["min_iou"] >= 0.99 and r["max_score_diff"] < 1e-4, r
        assert r["cases"] == 5
        others = [path.with_name(path.stem + s) for s in (".image.onnx", ".mask.onnx")]
        assert all(p.is_file() == fast for p in others)


def test_export_decoder_cli(tmp_path):
    _tiny_family("sam2", tmp_path / "m")
    img = np.random.default_rng(2).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", img)
    r = CliRunner().invoke(main, ["export", "onnx", "--decoder", "--model",
                                  str(tmp_path / "m"), "--out", str(tmp_path / "d.onnx"),
                                  "--check", str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    assert "ok" in r.output and (tmp_path / "d.onnx").stat().st_size > 10_000
    r = CliRunner().invoke(main, ["export", "onnx", "--decoder", "--model", "grabcut",
                                  "--out", str(tmp_path / "g.onnx")])
    assert r.exit_code != 0 and "SAM-family" in r.output
