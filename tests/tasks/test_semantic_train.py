import numpy as np
import pytest
import torch

from masklab.data.synthetic import write_shapes_dataset
from masklab.models.semantic import load_semantic_model
from masklab.tasks.semantic import (
    TrainConfig,
    predict_probabilities,
    predict_semantic,
    train_semantic,
)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), 160, 24, size=64, seed=1)


def test_unet_learns_shapes_to_miou_08(shapes, tmp_path):
    cfg = TrainConfig(data=str(shapes), out=str(tmp_path / "run"), model="unet",
                      model_config={"depth": 3, "width": 8}, num_classes=4, epochs=20,
                      val_every=5, batch_size=8, crop=None, scale=(1.0, 1.0), lr=5e-3,
                      workers=0,
                      quiet=True, tensorboard=False, class_names=["bg", "circle", "square",
                                                                  "triangle"])
    r = train_semantic(cfg)
    assert r.best_miou >= 0.8, r.history
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == len(r.history) + 1
    model = load_semantic_model(tmp_path / "run" / "best")
    assert model.class_names[2] == "square"


def test_resume_continues_from_the_last_epoch(shapes, tmp_path):
    base = dict(data=str(shapes), out=str(tmp_path / "run"), model="unet",
                model_config={"depth": 2, "width": 4}, num_classes=4, batch_size=16,
                crop=(48, 48), workers=0, quiet=True, tensorboard=False)
    first = train_semantic(TrainConfig(**base, epochs=1))
    second = train_semantic(TrainConfig(**base, epochs=2, resume=True))
    assert [h["epoch"] for h in first.history] == [1]
    assert [h["epoch"] for h in second.history] == [1, 2]


def test_sliding_window_and_tta_shapes():
    model = load_semantic_model("unet", weights=None, num_classes=3,
                                config={"depth": 2, "width": 4})
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3)).astype(np.uint8)
    whole = predict_probabilities(model, image)
    tiled = predict_probabilities(model, image, tile=32, overlap=0.5)
    tta = predict_probabilities(model, image, scales=(0.75, 1.0), flip=True)
    for p in (whole, tiled, tta):
        assert p.shape == (3, 70, 90)
        torch.testing.assert_close(p.sum(0), torch.ones(70, 90))
    assert predict_semantic(model, image, tile=40).labels.shape == (70, 90)


def test_ema_is_the_ramped_moving_average_and_is_what_is_kept(shapes, tmp_path):
    from masklab.tasks.semantic import _Ema
    from masklab.weights import load_state_dict

    model = load_semantic_model("unet", weights=None, num_classes=3,
                                config={"depth": 1, "width": 2})
    ema = _Ema(model, 0.9)
    w = model.net.head.weight
    expect = w.detach().clone()
    for n in range(1, 4):
        with torch.no_grad():
            w.add_(1.0)
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        expect = d * expect + (1 - d) * w.detach()
    torch.testing.assert_close(ema.model.net.head.weight, expect)

    base = dict(data=str(shapes), out=str(tmp_path / "run"), model="unet",
                model_config={"depth": 2, "width": 4}, num_classes=4, batch_size=16,
                crop=(48, 48), workers=0, quiet=True, tensorboard=False, ema=0.99)
    train_semantic(TrainConfig(**base, epochs=1))
    r = train_semantic(TrainConfig(**base, epochs=2, resume=True))
    run = tmp_path / "run"
    best = load_state_dict(run / r.best_checkpoint.name / "model.safetensors")
    last, last_ema = (load_state_dict(run / f / "model.safetensors") for f in ("last",
                                                                                "last_ema"))
    key = "head.weight"
    assert not torch.equal(last[key], last_ema[key])  # the average lags the raw weights
    if r.best_epoch == 2:
        assert torch.equal(best[key], last_ema[key])
    with pytest.raises(Exception, match="ema"):
        train_semantic(TrainConfig(**{**base, "ema": 1.5}, epochs=1))


def test_cpu_bf16_trains_under_autocast_and_falls_back_to_fp32_without_native_units(
        shapes, tmp_path, monkeypatch, caplog):
    import logging

    from masklab import sysinfo
    from masklab.weights import load_state_dict

    base = dict(data=str(shapes), model="unet", model_config={"depth": 2, "width": 4},
                num_classes=4, batch_size=16, crop=(48, 48), workers=0, quiet=True,
                tensorboard=False, epochs=1, max_steps=3)

    def weights(name, precision):
        train_semantic(TrainConfig(**base, out=str(tmp_path / name), cpu_precision=precision))
        return load_state_dict(tmp_path / name / "last" / "model.safetensors")

    fp32 = weights("fp32", "fp32")
    monkeypatch.setenv("MASKLAB_CPU_BF16", "1")
    sysinfo.cpu_has_bf16.cache_clear()
    sysinfo._warn_emulated_bf16.cache_clear()
    try:
        bf16 = weights("bf16", "bf16")
        # bfloat16 products change every step's gradients, yet training stays sound
        assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
        assert all(torch.isfinite(v).all() for v in bf16.values())
        monkeypatch.setenv("MASKLAB_CPU_BF16", "0")  # a CPU that would emulate bfloat16
        sysinfo.cpu_has_bf16.cache_clear()
        with caplog.at_level(logging.WARNING, logger="masklab"):
            emulated = weights("emulated", "bf16")
        assert any("no native bfloat16" in r.getMessage() for r in caplog.records)
        assert all(torch.equal(fp32[k], emulated[k]) for k in fp32)  # it ran fp32
    finally:
        sysinfo.cpu_has_bf16.cache_clear()
    with pytest.raises(ValueError, match="precision"):
        train_semantic(TrainConfig(**base, out=str(tmp_path / "bad"), cpu_precision="fp8"))
