import numpy as np
import pytest

from masklab.errors import InputError
from masklab.io.images import write_image
from masklab.video.frames import VideoFrames


def test_video_file_random_access_equals_sequential_decode(tmp_path):
    pytest.importorskip("av")
    from masklab.io.video import VideoWriter, read_video

    rng = np.random.default_rng(0)
    with VideoWriter(tmp_path / "v.mp4", fps=25) as w:
        for t in range(90):
            f = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
            f[10:20, t % 50:t % 50 + 10] = 255
            w.write(f)
    seq = list(read_video(tmp_path / "v.mp4"))
    v = VideoFrames(tmp_path / "v.mp4", cache=4)
    assert len(v) == len(seq) == 90 and v.size == (48, 64) and v.names[:2] == ["00000", "00001"]
    for order in (range(89, -1, -1), range(0, 90, 7), [50, 3, 88, 3]):
        for i in order:
            np.testing.assert_array_equal(v[i], seq[i])
            assert len(v._cache) <= 4  # memory stays bounded
    with pytest.raises(IndexError):
        v[90]


def test_folder_and_arrays(tmp_path):
    frames = [np.full((6, 8, 3), 10 * i, np.uint8) for i in range(5)]
    for i, f in enumerate(frames):
        write_image(tmp_path / "seq" / f"{i:05d}.png", f)
    v = VideoFrames(tmp_path / "seq", cache=2)
    assert v.names == ["00000", "00001", "00002", "00003", "00004"] and v.size == (6, 8)
    np.testing.assert_array_equal(v[3], frames[3])
    a = VideoFrames(frames)
    assert len(a) == 5 and int(a[-1][0, 0, 0]) == 40
    write_image(tmp_path / "seq" / "00005.png", np.zeros((7, 8, 3), np.uint8))
    with pytest.raises(InputError, match="frame 00005 is 8x7, the video 8x6"):
        VideoFrames(tmp_path / "seq")[5]
    with pytest.raises(InputError, match="no such video or folder"):
        VideoFrames(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    pytest.importorskip("av")
    with pytest.raises(InputError, match="bad.mp4: not a readable video"):
        VideoFrames(tmp_path / "bad.mp4")
