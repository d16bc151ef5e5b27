import os
import stat

import numpy as np
import pytest

from masklab.io.atomic import _clear_umask, atomic_open, staged_folder, write_json
from masklab.io.images import write_image, write_label_png


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_open_gives(tmp_path, umask):
    old = os.umask(umask)
    _clear_umask()  # the umask is read once per process; this test changes it
    try:
        with open(tmp_path / "plain.txt", "w") as f:  # the reference: an ordinary open
            f.write("x")
        files = [write_json(tmp_path / "r.json", {"a": 1}),
                 write_image(tmp_path / "i.png", np.zeros((4, 5, 3), np.uint8)),
                 write_label_png(tmp_path / "l.png", np.ones((4, 5), np.uint8))]
        try:
            from masklab.io.video import VideoWriter

            pytest.importorskip("av")
            with VideoWriter(tmp_path / "v.mp4", fps=5) as v:
                v.write(np.zeros((16, 16, 3), np.uint8))
            files.append(tmp_path / "v.mp4")
        except pytest.skip.Exception:
            pass
    finally:
        os.umask(old)
        _clear_umask()
    want = 0o666 & ~umask
    assert _mode(tmp_path / "plain.txt") == want
    for f in files:
        assert _mode(f) == want, f
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.json"
    write_json(path, {"v": 1})
    os.chmod(path, 0o640)
    write_json(path, {"v": 2})
    assert _mode(path) == 0o640 and path.read_text() == '{"v": 2}'
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == '{"v": 2}' and _mode(path) == 0o640


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "gtFine" / "train" / "city"
    # a new folder: renamed into place in one step, with the mode mkdir gives
    with staged_folder(target) as stage:
        assert not target.exists() and stage.parent == target.parent
        (stage / "a.json").write_text("1")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.json").write_text("2")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == \
        ["a.json", "sub", "sub/b.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert _mode(target) == 0o777 & ~mask
    # into an existing folder: its other files stay, a replaced file keeps its mode
    (target / "keep.txt").write_text("k")
    os.chmod(target / "a.json", 0o640)
    with staged_folder(target) as stage:
        (stage / "a.json").write_text("new")
    assert (target / "a.json").read_text() == "new" and _mode(target / "a.json") == 0o640
    assert (target / "keep.txt").read_text() == "k"
    # a failure leaves nothing of the stage and the folder as it was
    with pytest.raises(RuntimeError), staged_folder(target) as stage:
        (stage / "a.json").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (target / "a.json").read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["city"]
