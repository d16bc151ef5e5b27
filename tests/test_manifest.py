"""Resumable batch runs: ``OUT/manifest.jsonl`` (masklab.manifest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from masklab.errors import InputError
from masklab.manifest import RunManifest

N = 24  # images: a run of a few seconds, long enough to be stopped part-way


def test_manifest_records_refuses_other_settings_and_drops_a_cut_line(tmp_path):
    m = RunManifest(tmp_path, {"model": "a", "t": 0.5})
    m.record("/x/1.jpg", {"areas": [[1]]})
    m.record("/x/2.jpg", {"areas": [[2]]})
    with open(m.path, "a") as f:
        f.write('{"key": "/x/3.jpg", "are')  # a crash in the middle of a line
    again = RunManifest(tmp_path, {"model": "a", "t": 0.5})
    assert sorted(again.done) == ["/x/1.jpg", "/x/2.jpg"]
    assert again.pending(["/x/1.jpg", "/x/3.jpg"]) == [1]
    again.record("/x/3.jpg", {"areas": [[3]]})
    rows = RunManifest(tmp_path, {"model": "a", "t": 0.5}).rows(["/x/3.jpg", "/x/1.jpg"])
    assert [r["areas"] for r in rows] == [[[3]], [[1]]]
    with pytest.raises(InputError, match=r"other settings \(t: 0.5, now 0.6\)"):
        RunManifest(tmp_path, {"model": "a", "t": 0.6})


def _image_rows(manifest) -> list[dict]:
    """The manifest's rows of finished images (not the settings line, not the run's row)."""
    from masklab.manifest import META

    rows = []
    for line in manifest.read_text().splitlines()[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # being written
        if row["key"] != META:
            rows.append(row)
    return rows


def test_a_killed_run_resumes_and_equals_an_uninterrupted_one(tmp_path):
    """``segment instances`` killed (SIGKILL) part-way, then started again with the same
    command: the finished images are not redone and results.json equals a clean run's."""
    from tests.small_models import random_images, small_maskrcnn

    small_maskrcnn(tmp_path / "ckpt")
    random_images(tmp_path / "img", N, 64, 80)
    cmd = [sys.executable, "-m", "masklab.cli", "-q", "segment", "instances",
           str(tmp_path / "img"), "--model", str(tmp_path / "ckpt"), "--score-threshold", "0",
           "--max-detections", "3", "--batch-size", "1", "--no-overlay"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([*cmd, "--out", str(tmp_path / "run")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "run" / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        if manifest.is_file() and len(_image_rows(manifest)) >= 2:
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "the run ended before it could be stopped"
    done_before = len(_image_rows(manifest))
    assert 2 <= done_before < N and not (tmp_path / "run" / "results.json").exists()
    subprocess.run([*cmd, "--out", str(tmp_path / "run")], env=env, check=True, timeout=300)
    subprocess.run([*cmd, "--out", str(tmp_path / "clean")], env=env, check=True, timeout=300)
    keys = [r["key"] for r in _image_rows(manifest)]
    assert len(keys) == len(set(keys)) == N  # nothing done twice
    a = json.loads((tmp_path / "run" / "results.json").read_text())
    b = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert [(x["image_id"], x["category_id"]) for x in a] == \
        [(x["image_id"], x["category_id"]) for x in b]
    np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], atol=1e-5)


def test_nothing_imports_ray_without_engine_ray(tmp_path):
    """The default engine is in-process: a batch verb and an eval verb run without Ray."""
    from masklab.io.images import write_label_png

    write_label_png(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from masklab.cli import main\n"
        f"d = {str(tmp_path)!r}\n"
        "r = CliRunner().invoke(main, ['-q', 'eval', 'semantic', d + '/gt', d + '/gt',"
        " '--num-classes', '2'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['-q', 'everything', d + '/gt', '--out', d + '/e'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "r = CliRunner().invoke(main, ['eval', 'semantic', d + '/gt', d + '/gt',"
        " '--num-classes', '2', '--engine', 'ray'])\n"
        "assert r.exit_code == 2 and r.output.strip() == \"masklab: error: --engine ray needs"
        " Ray: pip install 'masklab[ray]'\", r.output\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
