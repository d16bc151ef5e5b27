"""masklab ↔ FiftyOne (its own environment: ``make peers`` makes .venv-fiftyone, with the
MongoDB build FiftyOne runs on from PyPI): a MaskSet becomes a ``fo.Dataset`` that FiftyOne
accepts (typed fields, its metadata reader), whose instance masks FiftyOne's own renderer
draws to the same pixels, whose segmentation its own converter splits per class, and that
comes back equal — instances and semantic."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FO = ROOT / ".venv-fiftyone" / "bin" / "python"
pytestmark = pytest.mark.skipif(not FO.is_file(), reason="no .venv-fiftyone (make peers)")


def test_fiftyone_dataset_round_trip(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIFTYONE_DATABASE_DIR": str(tmp_path / "db"),
           "FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_VALIDATION": "false"}
    r = subprocess.run([str(FO), str(Path(__file__).with_name("fiftyone_check.py")),
                        str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["samples"] == 3 and out["objects"] == 9
    assert out["labels"] == ["car", "person"]
    assert out["schema_type"] == "EmbeddedDocumentField:Detections"
    assert out["sizes"] == [[40, 30]]
    assert out["fiftyone_renders_the_same"] and out["occluded_kept"] == 3
    assert out["round_trip_equal"]
    assert out["names_back"] == ["sub/img0.png", "sub/img1.png", "sub/img2.png"]
    assert out["semantic_type"] == "Segmentation"
    assert out["mask_targets"] == {"1": "person", "2": "car"}
    assert out["fiftyone_segmentation_to_detections"] == 2
    assert out["semantic_round_trip_equal"]
