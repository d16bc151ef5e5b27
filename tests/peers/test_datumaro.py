"""Datumaro (the peers' environment, ``make peers``) reads masklab's CVAT XML, Pascal VOC and
Cityscapes exports and finds the same masks and labels. (labelme JSON is checked against
labelme's own code in tests/io/test_labelme.py: Datumaro's ``label_me`` is MIT LabelMe XML.)"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from masklab.io.convert import MaskSet
from tests.peers.sample_set import sample_set

PEERS = Path(__file__).resolve().parents[2] / ".venv-peers" / "bin" / "python"
pytestmark = pytest.mark.skipif(not PEERS.is_file(), reason="no .venv-peers (make peers)")


def _datumaro(path: Path, fmt: str) -> dict:
    r = subprocess.run([str(PEERS), str(Path(__file__).with_name("datumaro_read.py")),
                        str(path), fmt], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = {}
    for item, objs in json.loads(r.stdout.splitlines()[-1]).items():
        out[Path(item).name.split("_gtFine")[0]] = [
            (name, np.unpackbits(np.frombuffer(base64.b64decode(b), np.uint8))[:h * w]
             .reshape(h, w).astype(bool)) for name, b, h, w in objs]
    return out


def _same(ms: MaskSet, theirs: dict, key=lambda name: Path(name).stem) -> None:
    names = {c["id"]: c["name"] for c in ms.categories}
    for item in ms.items:
        got = theirs[key(item.file_name)]
        want = [(names[int(c)], m) for c, m in zip(item.masks.labels, item.masks.to_dense(),
                                                     strict=True)]
        assert len(got) == len(want), (item.file_name, len(got), len(want))
        for name, m in want:  # each of ours is one of theirs
            assert any(n == name and np.array_equal(g, m) for n, g in got), \
                (item.file_name, name)


def test_datumaro_reads_masklab_cvat(tmp_path):
    from masklab.io.cvat import write_cvat
    from masklab.io.images import write_image

    ms = sample_set()
    for item in ms.items:  # CVAT's export layout: annotations.xml + images/
        write_image(tmp_path / "cvat" / "images" / item.file_name, np.zeros((30, 40, 3), np.uint8))
    write_cvat(ms, tmp_path / "cvat" / "annotations.xml")
    _same(ms, _datumaro(tmp_path / "cvat", "cvat"))


def test_datumaro_reads_masklab_voc(tmp_path):
    from masklab.io.voc import write_voc

    ms = sample_set()
    write_voc(ms, tmp_path / "voc", split="train")
    theirs = _datumaro(tmp_path / "voc", "voc_instance_segmentation")
    _same(ms, theirs)


def test_datumaro_reads_masklab_cityscapes(tmp_path):
    """Datumaro (1.13) reads the regions of classes without instances from instanceIds
    PNGs (values >= 1000, the instances, it skips): so road, building and sky here."""
    from masklab.io.cityscapes import write_cityscapes
    from masklab.io.images import write_image

    ms = sample_set(("road", "building"))
    for item in ms.items:  # one region per class: the third object becomes sky
        item.masks.labels = np.array([1, 2, 3])
    ms.categories.append({"id": 3, "name": "sky"})
    write_cityscapes(ms, tmp_path / "cs", split="train")
    for k in range(len(ms.items)):  # Datumaro wants the images too
        write_image(tmp_path / "cs" / "leftImg8bit" / "train" / "masklab" /
                    f"masklab_000000_{k:06d}_leftImg8bit.png", np.zeros((30, 40, 3), np.uint8))
    theirs = _datumaro(tmp_path / "cs", "cityscapes")
    stems = sorted(theirs)
    _same(ms, {f"img{k}": theirs[s] for k, s in enumerate(stems)})


def _datumaro_export(tmp_path: Path, ms: MaskSet, fmt: str) -> Path:
    names = [c["name"] for c in ms.categories]
    index = {c["id"]: k for k, c in enumerate(ms.categories)}
    arrays = {"names": np.array(names)}
    for k, item in enumerate(ms.items):
        arrays[f"masks_{k}"] = item.masks.to_dense()
        arrays[f"labels_{k}"] = np.array([index[int(c)] for c in item.masks.labels])
    np.savez(tmp_path / "in.npz", **arrays)
    out = tmp_path / f"dm-{fmt}"
    r = subprocess.run([str(PEERS), str(Path(__file__).with_name("datumaro_write.py")),
                        str(tmp_path / "in.npz"), fmt, str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_masklab_reads_datumaros_cvat_and_voc(tmp_path):
    from masklab.io.cvat import read_cvat
    from masklab.io.voc import read_voc

    ms = sample_set()
    for fmt, read in (("cvat", lambda p: read_cvat(next(p.rglob("*.xml")))),
                      ("voc_instance_segmentation", read_voc)):
        back = read(_datumaro_export(tmp_path, ms, fmt))
        names = {c["id"]: c["name"] for c in back.categories}
        by_stem = {Path(i.file_name).stem: i for i in back.items}
        for k, item in enumerate(ms.items):
            got = by_stem[f"img{k}"]
            theirs = [(names[int(c)], m) for c, m in zip(got.masks.labels,
                                                           got.masks.to_dense(), strict=True)]
            for c, m in zip(item.masks.labels, item.masks.to_dense(), strict=True):
                name = {1: "person", 2: "car"}[int(c)]
                assert any(n == name and np.array_equal(g, m) for n, g in theirs), (fmt, k)
