import hashlib
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from masklab import weights as w
from masklab.errors import OfflineError, WeightsError


@pytest.fixture
def source(tmp_path):
    """A registered source whose URL is a local file (file:// — no network)."""
    tensors = {"conv.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4)}
    f = tmp_path / "remote" / "tiny.safetensors"
    f.parent.mkdir()
    save_file(tensors, str(f))
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    src = w.register(w.WeightSource("test/tiny", urls=(f.as_uri(),), sha256=digest,
                                    filename="tiny.safetensors"), replace=True)
    yield src, f, tensors
    w.unregister("test/tiny")


def test_resolve_downloads_verifies_and_caches(source):
    _, remote, tensors = source
    path = w.resolve("test/tiny", progress=False)
    assert path == w.home() / "weights" / "tiny.safetensors"
    assert w.verify("test/tiny") == (True, f"{path} ok")
    loaded = w.load_state_dict(path)
    assert torch.equal(loaded["conv.weight"], tensors["conv.weight"])
    remote.unlink()  # cached now: no fetch needed
    assert w.resolve("test/tiny") == path


def test_sha256_prefix_as_torchvision_publishes(tmp_path, source):
    src, remote, _ = source
    prefixed = w.register(w.WeightSource("test/prefix", urls=(remote.as_uri(),),
                                         sha256=src.sha256[:8]), replace=True)
    try:
        assert w.resolve(prefixed.name, progress=False).is_file()
    finally:
        w.unregister("test/prefix")


def test_bad_checksum_saves_nothing(source):
    _, remote, _ = source
    w.register(w.WeightSource("test/tiny", urls=(remote.as_uri(),), sha256="0" * 64,
                              filename="tiny.safetensors"), replace=True)
    with pytest.raises(WeightsError, match="does not match"):
        w.resolve("test/tiny", progress=False)
    assert not (w.home() / "weights" / "tiny.safetensors").exists()
    assert not any((w.home() / "weights").glob("*tmp*"))


def test_corrupted_cache_is_reported(source):
    path = w.resolve("test/tiny", progress=False)
    path.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="fails its sha256 check"):
        w.resolve("test/tiny")
    assert w.verify("test/tiny")[0] is False


def test_offline_error_names_file_and_destination(source, monkeypatch):
    monkeypatch.setenv("MASKLAB_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        w.resolve("test/tiny")
    msg = str(e.value)
    assert "MASKLAB_OFFLINE" in msg and "tiny.safetensors" in msg
    assert str(w.home() / "weights" / "tiny.safetensors") in msg and "\n" not in msg


def test_unreachable_url_is_an_offline_error(tmp_path):
    w.register(w.WeightSource("test/gone", urls=((tmp_path / "nope.pt").as_uri(),),
                              sha256="ab" * 32), replace=True)
    try:
        with pytest.raises(OfflineError, match="download failed"):
            w.resolve("test/gone", progress=False)
    finally:
        w.unregister("test/gone")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(WeightsError, match="did you mean torchvision/fcn_resnet50"):
        w.resolve("torchvision/fcn_resnet5")


def test_local_path_wins(tmp_path):
    f = tmp_path / "mine.pt"
    torch.save({"model": {"a": torch.ones(2)}}, f)
    assert w.resolve(f) == f
    assert torch.equal(w.load_state_dict(f)["a"], torch.ones(2))


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    f = tmp_path / "evil.pt"
    f.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(WeightsError, match="weights-only"):
        w.load_state_dict(f)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        w.load_state_dict(tmp_path / "bad.safetensors")


def test_catalogue_is_well_formed():
    names = [s.name for s in w.list_sources()]
    assert "torchvision/maskrcnn_resnet50_fpn_v2" in names and "hf/sam-vit-base" in names
    for s in w.list_sources():
        if s.urls:
            assert s.urls[0].startswith("https://") and len(s.sha256) >= 8
            int(s.sha256, 16)
    with pytest.raises(ValueError):
        w.WeightSource("x", urls=("https://a/b",))
    assert np.all([s.license for s in w.list_sources()])


def test_hf_source_offline_error(monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("MASKLAB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="facebook/sam-vit-base"):
        w.resolve("hf/sam-vit-base")
