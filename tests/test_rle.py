import numpy as np
import pytest
from pycocotools import mask as pm

from masklab import rle


def _reference(masks: np.ndarray) -> list[dict]:
    return pm.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


def _cases(rng):
    yield np.zeros((1, 7, 5), bool)
    yield np.ones((2, 5, 7), bool)
    single = np.zeros((1, 9, 11), bool)
    single[0, 4, 6] = True
    yield single
    corner = np.zeros((1, 4, 4), bool)
    corner[0, 0, 0] = corner[0, 3, 3] = True
    yield corner
    yield np.ones((1, 1, 1), bool)
    for _ in range(300):
        h, w = rng.integers(1, 70, 2)
        n = int(rng.integers(1, 4))
        p = rng.random()
        yield rng.random((n, h, w)) < p
    # long runs: counts need many 5-bit groups and negative deltas
    big = np.zeros((2, 1000, 1200), bool)
    big[0, 100:900, 10:1100] = True
    big[1, :, 600:] = True
    big[1, 500, 3] = True
    yield big


def test_encode_is_byte_identical_to_pycocotools(rng):
    for masks in _cases(rng):
        ours = rle.encode(masks)
        ref = _reference(masks)
        assert [r["counts"].encode() for r in ours] == [r["counts"] for r in ref]
        assert [r["size"] for r in ours] == [list(r["size"]) for r in ref]


def test_numpy_string_codec_matches_pycocotools(rng):
    for masks in _cases(rng):
        for m, ref in zip(masks, _reference(masks), strict=True):
            counts = rle.dense_to_counts(m[None])[0]
            assert rle.counts_to_string(counts).encode() == ref["counts"]
            np.testing.assert_array_equal(rle.string_to_counts(ref["counts"]), counts)
            np.testing.assert_array_equal(rle.counts_to_dense(counts, *m.shape), m)


def test_fortran_and_non_bool_inputs(rng):
    m = rng.random((3, 13, 17)) < 0.3
    ref = [r["counts"] for r in _reference(m)]
    assert [r["counts"].encode() for r in rle.encode(np.asfortranarray(m))] == ref
    assert [r["counts"].encode() for r in rle.encode(m.astype(np.uint8) * 7)] == ref
    assert [r["counts"].encode() for r in rle.encode(m[:, ::1, ::1].copy(order="F"))] == ref


def test_uncompressed_counts_hand_case():
    m = np.array([[0, 1], [1, 1]], bool)  # column-major: 0,1,1,1
    assert rle.encode(m, compressed=False) == [{"size": [2, 2], "counts": [1, 3]}]
    m = np.array([[1, 0], [1, 1]], bool)  # 1,1,0,1
    assert rle.encode(m, compressed=False) == [{"size": [2, 2], "counts": [0, 2, 1, 1]}]


def test_decode_rejects_bad_input():
    with pytest.raises(ValueError, match="sum"):
        rle.counts_to_dense(np.array([1, 2]), 2, 2)
    with pytest.raises(ValueError, match="invalid character"):
        rle.string_to_counts("ab ")
    with pytest.raises(ValueError, match="truncated"):
        rle.string_to_counts("0P")  # continuation bit set on the last character


def test_check_strings_equals_decoding_each_string(rng, monkeypatch):
    """The vectorised check of many strings finds exactly the strings that the one-string
    decoder rejects (or whose runs are negative or miss h*w), and names the first, also
    when the strings span several batches."""
    h, w = 13, 17
    good = [r["counts"] for r in rle.encode(rng.random((40, h, w)) < rng.random((40, 1, 1)))]
    assert rle.check_strings(good, [h * w] * 40) is None
    assert rle.check_strings([*good, ""], [h * w] * 40 + [0]) is None
    assert rle.check_strings([], []) is None

    def one(s):
        try:
            c = rle.string_to_counts(s)
        except ValueError as e:
            return str(e)
        return None if (c >= 0).all() and c.sum() == h * w else "runs"

    monkeypatch.setattr(rle, "_BATCH", 64)  # many batches: faults in any of them
    bad_seen = 0
    for t in range(600):
        s = list(good[t % 40])
        op = t % 4
        if op == 0:
            s[rng.integers(len(s))] = chr(int(rng.integers(40, 115)))
        elif op == 1:
            s.pop(int(rng.integers(len(s))))
        elif op == 2:
            s.insert(int(rng.integers(len(s) + 1)), chr(int(rng.integers(48, 112))))
        else:
            s.append("é")
        s = "".join(s)
        k = int(rng.integers(0, 40))
        strings = [*good[:k], s, *good[k:]]
        got = rle.check_strings(strings, [h * w] * len(strings))
        want = one(s)
        if want is None:
            assert got is None, s
            continue
        bad_seen += 1
        assert got is not None and got[0] == k, (s, got, want)
        if want != "runs":
            assert got[1] == want or "invalid character" in got[1]
    assert bad_seen > 400


def test_check_strings_hand_cases():
    ok = rle.encode(np.eye(3, dtype=bool))[0]["counts"]
    assert rle.check_strings([ok], [9]) is None
    assert rle.check_strings([ok, ok], [9, 10]) == (1, "RLE counts sum to 9, expected h*w = 10")
    assert rle.check_strings(["0", "A"], [0, 1])[0] == 1  # "A" (17) is a continuation: cut
    assert rle.check_strings([ok, "0!"], [9, 0]) == (1, "invalid character in RLE counts "
                                                        "string")
