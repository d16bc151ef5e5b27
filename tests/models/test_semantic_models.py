import hashlib

import numpy as np
import pytest
import torch

from masklab import weights as w
from masklab.errors import InputError, WeightsError
from masklab.models import list_models
from masklab.models.semantic import load_checkpoint, load_semantic_model, save_checkpoint

TORCHVISION = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
               "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]


def _x(h=67, w=91):
    return torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_adapter_loads_random_weights_through_the_resolver(name, tmp_path):
    m = load_semantic_model(name, weights=None)
    f = tmp_path / f"{name}.pth"
    torch.save(m.net.state_dict(), f)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    src = w.register(w.WeightSource(f"test/{name}", urls=(f.as_uri(),), sha256=digest),
                     replace=True)
    try:
        loaded = load_semantic_model(name, weights=src.name)
    finally:
        w.unregister(src.name)
    x = _x()
    with torch.no_grad():
        a = m(m.normalize(x))
        b = loaded(loaded.normalize(x))
    assert a.shape == (1, 21, 67, 91)
    torch.testing.assert_close(a, b)
    assert loaded.class_names[15] == "person"


def test_segformer_tiny_random_folder_loads_through_the_resolver(tmp_path):
    pytest.importorskip("transformers")
    from masklab.models.semantic import build_segformer

    net = build_segformer(7, "b0", hidden_sizes=[8, 16, 24, 32], decoder_hidden_size=16,
                          num_attention_heads=[1, 1, 1, 1], depths=[1, 1, 1, 1],
                          id2label={i: f"c{i}" for i in range(7)},
                          label2id={f"c{i}": i for i in range(7)})
    net.save_pretrained(tmp_path / "tiny", safe_serialization=True)
    m = load_semantic_model("segformer-b0-ade", weights=tmp_path / "tiny")
    assert m.num_classes == 7 and m.class_names[3] == "c3"
    with torch.no_grad():
        out = m(m.normalize(_x(45, 70)))
    assert out.shape == (1, 7, 45, 70)


@pytest.mark.parametrize("name", ["fcn8s", "fcn16s", "fcn32s", "unet"])
def test_our_models_build_and_checkpoint_round_trip(name, tmp_path):
    m = load_semantic_model(name, weights=None, num_classes=4, class_names=list("abcd"))
    save_checkpoint(tmp_path / "ck", m, {"epoch": 3})
    again = load_checkpoint(tmp_path / "ck")
    x = _x(40, 50)
    with torch.no_grad():
        torch.testing.assert_close(m(m.normalize(x)), again(again.normalize(x)))
    assert again.class_names == list("abcd")
    assert load_semantic_model(tmp_path / "ck").num_classes == 4


def test_errors():
    with pytest.raises(InputError, match="pass num_classes"):
        load_semantic_model("unet", weights=None)
    with pytest.raises(InputError, match="did you mean"):
        load_semantic_model("unett")
    m = load_semantic_model("unet", weights=None, num_classes=3)
    with pytest.raises(WeightsError, match="do not fit"):
        bad = {"x": torch.zeros(1)}
        import tempfile

        from safetensors.torch import save_file

        with tempfile.TemporaryDirectory() as d:
            save_file(bad, f"{d}/w.safetensors")
            load_semantic_model("unet", weights=f"{d}/w.safetensors", num_classes=3)
    assert m.num_classes == 3


def test_registry_lists_every_family_with_metadata():
    names = {m.name for m in list_models(task="semantic")}
    assert {"fcn8s", "unet", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large",
            "segformer-b0-ade", "segformer-b5-cityscapes"} <= names
    info = {m.name: m for m in list_models()}["deeplabv3_mobilenet_v3_large"]
    assert info.parameters() > 1_000_000 and info.num_classes == 21
    assert np.all([w.get_source(m.weights) for m in list_models() if m.weights])
