"""Mask2Former / OneFormer / DETR panoptic adapters: tiny random networks saved as transformers
folders, loaded back through the registry and the weight resolver, checked against the
family's own processor run on the same network."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from masklab.models.universal import load_universal_model

SCALE = {"oneformer": 1.0}
SIZE = {"shortest_edge": 64, "longest_edge": 96}


def _swin():
    from transformers import SwinConfig

    return SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                      image_size=64, out_features=["stage1", "stage2", "stage3", "stage4"])


def _labels(k):
    return {"id2label": {i: f"c{i}" for i in range(k)}, "label2id": {f"c{i}": i for i in
                                                                    range(k)}}


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "the", "task", "is", "panoptic", "instance", "semantic"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def _save(family, folder, k=5):
    import transformers as T

    torch.manual_seed(0)
    if family == "mask2former":
        cfg = T.Mask2FormerConfig(backbone_config=_swin(), hidden_dim=32, mask_feature_size=32,
                                  feature_size=32, encoder_layers=1, decoder_layers=2,
                                  num_queries=12, encoder_feedforward_dim=64,
                                  dim_feedforward=64, num_attention_heads=2, **_labels(k))
        net = T.Mask2FormerForUniversalSegmentation(cfg)
        proc = T.Mask2FormerImageProcessor(size=SIZE)
    elif family == "oneformer":
        cfg = T.OneFormerConfig(backbone_config=_swin(), hidden_dim=32, mask_dim=32,
                                conv_dim=32, encoder_layers=1, decoder_layers=2,
                                num_queries=12, encoder_feedforward_dim=64, dim_feedforward=64,
                                num_attention_heads=2, text_encoder_width=32,
                                text_encoder_num_layers=1, text_encoder_context_length=16,
                                text_encoder_vocab_size=8, task_seq_len=16, max_seq_len=16,
                                text_encoder_proj_layers=1, **_labels(k))
        net = T.OneFormerForUniversalSegmentation(cfg)
        proc = T.OneFormerImageProcessor(size=SIZE)
        _tokenizer().save_pretrained(folder)
    else:
        rc = T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                            layer_type="basic",
                            out_features=["stage1", "stage2", "stage3", "stage4"])
        cfg = T.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False,
                           backbone_config=rc, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=8,
                           decoder_attention_heads=8, num_queries=12, **_labels(k))
        net = T.DetrForSegmentation(cfg)
        proc = T.DetrImageProcessor(size=SIZE, format="coco_panoptic")
    with torch.no_grad():  # confident queries, so that thresholds keep some of them
        for p in net.parameters():
            p.mul_(SCALE.get(family, 3.0))
        for name, p in net.named_parameters():
            if "mask_embed" in name and name.endswith("weight"):
                p.mul_(4.0)  # decided masks, not a blur around 0.5
        for mod in net.modules():
            if isinstance(mod, torch.nn.Linear) and mod.out_features == k + 1:
                mod.bias[-1] = -20.0  # class heads: the "no object" class loses,
                mod.weight.mul_(30.0)  # and scores are high (HF thresholds score * prob)
            if isinstance(mod, torch.nn.Embedding):
                mod.weight.normal_(0.0, 1.0)  # distinct queries
    net.save_pretrained(folder)
    proc.save_pretrained(folder)
    return net.eval(), proc


def _image(h=50, w=70, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


NAMES = {"mask2former": "mask2former-swin-tiny-coco-panoptic",
         "oneformer": "oneformer-swin-large-coco", "detr": "detr-resnet50-panoptic"}


@pytest.mark.parametrize("family", ["mask2former", "oneformer", "detr"])
def test_tiny_checkpoint_loads_and_matches_the_reference_pipeline(family, tmp_path):
    net, proc = _save(family, tmp_path / "tiny")
    m = load_universal_model(NAMES[family], weights=tmp_path / "tiny", things=3)
    off = 0 if family == "detr" else 1
    assert m.family == family and len(m.class_names) == 5 + off
    img = _image()

    # the reference: the family's processor on the same network, called directly
    inputs = proc(images=[img], return_tensors="pt")
    kw = {"pixel_values": inputs["pixel_values"]}
    if "pixel_mask" in inputs:
        kw["pixel_mask"] = inputs["pixel_mask"]
    if family == "oneformer":
        kw["task_inputs"] = m.tokenizer(["the task is panoptic"], padding="max_length",
                                        max_length=16, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = proc.post_process_panoptic_segmentation(
            net(**kw), threshold=0.1, overlap_mask_area_threshold=0.2, target_sizes=[img.shape[:2]],
            label_ids_to_fuse={k - off for k in range(5 + off) if k >= off and k not in m.things
                               })[0]
    ids, segments = m.predict_panoptic([img], threshold=0.1, overlap_threshold=0.2)[0]
    assert ids.shape == img.shape[:2] and ids.dtype == np.int32
    ref_seg = ref["segmentation"].numpy()
    firsts = {}
    for s in ref["segments_info"]:
        firsts.setdefault(s["id"], s)
    ref_info = [s for s in firsts.values() if (ref_seg == s["id"]).any()]
    assert len(segments) == len(ref_info) > 0
    for s, r in zip(segments, ref_info, strict=True):
        assert np.array_equal(ids == s["id"], ref_seg == r["id"])
        assert s["category_id"] == r["label_id"] + off
        assert s["area"] == int((ids == s["id"]).sum())
        assert s["isthing"] == int(s["category_id"] in m.things)
    assert set(np.unique(ids)) <= {0} | {s["id"] for s in segments}

    dets = m.predict([img], score_threshold=0.0)[0]
    assert dets.masks.size == img.shape[:2] and len(dets) > 0
    assert np.all(np.diff(dets.boxes.scores) <= 0)
    assert set(dets.boxes.labels.tolist()) <= set(range(off, 5 + off))
    rles = dets.to_coco_results(7)
    assert rles[0]["image_id"] == 7 and "segmentation" in rles[0]

    sem = m.predict_semantic([img])[0]
    assert sem.size == img.shape[:2]
    assert sem.labels.min() >= off and sem.labels.max() < 5 + off


def test_random_build_and_errors(tmp_path):
    from masklab.errors import InputError, WeightsError

    with pytest.raises(InputError, match="not a Mask2Former"):
        load_universal_model("unet")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(WeightsError):
        load_universal_model("mask2former-swin-tiny-coco-panoptic", weights=tmp_path / "bad")
