import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from masklab.errors import InputError
from masklab.grounding import load_detector
from tests.grounding import tiny

CLASSES = ["cat", "traffic light"]


def _images(n=3, h=70, w=100):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("mm", [False, True], ids=["grounding-dino", "mm-grounding-dino"])
def test_grounding_dino_equals_transformers_and_encodes_the_text_once(tmp_path, mm):
    """Grounding DINO and MM Grounding DINO (also LLMDet's checkpoints) against transformers'
    model and post-processing on the same tiny random weights."""
    model, proc = tiny.grounding_dino(tmp_path / "gd", mm=mm)
    images = _images()
    with torch.no_grad():  # a threshold that keeps a few boxes of these random weights
        first = model(**proc(images=images[0], text="cat. traffic light.", return_tensors="pt"))
    t = float(first.logits[0].sigmoid().max(-1).values.sort().values[-5]) - 1e-6
    det = load_detector(tmp_path / "gd", box_threshold=t)
    for img in images:
        got = det.detect(img, CLASSES)
        inputs = proc(images=img, text="cat. traffic light.", return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        ref = proc.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=t, text_threshold=t,
            target_sizes=[img.shape[:2]])[0]
        assert len(got) == len(ref["scores"]) > 0
        np.testing.assert_allclose(got.boxes, ref["boxes"].numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(got.scores, ref["scores"].numpy(), rtol=1e-6)
        # the class: the class whose tokens score highest ([CLS] cat . traffic light . [SEP])
        assert inputs["input_ids"][0].tolist()[1:6] == [5, 13, 7, 8, 13]
        probs = out.logits[0].sigmoid()
        keep = probs.max(-1).values > t
        per_class = torch.stack([probs[:, [1]].max(-1).values, probs[:, [3, 4]].max(-1).values],
                                -1)[keep]
        assert got.labels.tolist() == per_class.argmax(-1).tolist()
    assert det.text_tower.calls == 1  # three images, the text encoded once
    det.detect(_images(1)[0], ["dog"])
    assert det.text_tower.calls == 2


def test_omdet_turbo_equals_transformers_and_caches_the_text(tmp_path):
    """OmDet-Turbo against transformers' model + processor post-processing (top pairs,
    threshold, class-aware NMS, clipping) on tiny random weights; the class embeddings are
    computed once for three images (the model's own cache)."""
    model, proc = tiny.omdet_turbo(tmp_path / "om")
    det = load_detector(tmp_path / "om", box_threshold=0.3, nms_threshold=0.5)  # label's name
    assert det.threshold == 0.3
    with pytest.raises(InputError, match="text threshold applies to Grounding DINO"):
        load_detector(tmp_path / "om", text_threshold=0.2)
    calls = []
    det.text_tower.register_forward_hook(lambda *a: calls.append(1))
    for img in _images(h=50, w=80):
        got = det.detect(img, CLASSES)
        inputs = proc(images=img, text=CLASSES, task="Detect cat, traffic light.",
                      return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        ref = proc.post_process_grounded_object_detection(
            out, text_labels=[CLASSES], threshold=0.3, nms_threshold=0.5,
            target_sizes=[img.shape[:2]])[0]
        assert len(got) == len(ref["scores"]) > 0
        order = np.argsort(-ref["scores"].numpy(), kind="stable")
        np.testing.assert_allclose(got.scores, ref["scores"].numpy()[order], rtol=1e-6)
        np.testing.assert_allclose(got.boxes, ref["boxes"].numpy()[order], rtol=1e-5,
                                   atol=1e-4)
        assert got.labels.tolist() == ref["labels"].numpy()[order].tolist()
    assert len(calls) == 2  # the task prompt and the classes, once for three images


def test_sam3_equals_transformers_instance_segmentation(tmp_path):
    """SAM 3 text → instance masks: the image encoded once, each class's text once per run,
    and per class the scores, boxes and masks of transformers' model called the usual way
    (pixels + tokens) and its processor's post-processing, on tiny random weights."""
    model, proc = tiny.sam3(tmp_path / "s3")
    det = load_detector(tmp_path / "s3", box_threshold=0.2)
    for img in _images(2, h=50, w=80):
        got = det.detect(img, CLASSES)
        want_scores, want_boxes, want_masks, want_labels = [], [], [], []
        for k, c in enumerate(CLASSES):
            inputs = proc(images=img, text=c, return_tensors="pt")
            with torch.no_grad():
                out = model(**inputs)
            r = proc.post_process_instance_segmentation(out, threshold=0.2, mask_threshold=0.5,
                                                        target_sizes=[img.shape[:2]])[0]
            want_scores += r["scores"].tolist()
            want_boxes += r["boxes"].tolist()
            want_masks += list(r["masks"].numpy().astype(bool))
            want_labels += [k] * len(r["scores"])
        assert len(got) == len(want_scores) > 0
        np.testing.assert_allclose(got.scores, want_scores, rtol=1e-5)
        np.testing.assert_allclose(got.boxes, want_boxes, rtol=1e-5, atol=1e-3)
        assert got.labels.tolist() == want_labels
        assert got.masks.shape == (len(got), 50, 80)
        assert (got.masks != np.stack(want_masks)).mean() < 1e-3
    assert det.text_calls == 2  # two classes, two images: each text encoded once


@pytest.mark.parametrize("v2", [True, False])
def test_owl_equals_transformers_and_owlv2_boxes_use_the_padded_square(tmp_path, v2):
    model, proc = tiny.owl(tmp_path / "owl", v2=v2)
    det = load_detector(tmp_path / "owl", threshold=0.0)
    img = _images(1, h=60, w=120)[0]  # not square: OWLv2 pads it to 120x120
    got = det.detect(img, CLASSES)
    inputs = proc(text=[CLASSES], images=img, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    # transformers' OWLv2 post-processing scales by the longer side itself
    ref = proc.post_process_grounded_object_detection(out, threshold=0.0,
                                                      target_sizes=[(60, 120)])[0]
    boxes = ref["boxes"].numpy().copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 120)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 60)
    np.testing.assert_allclose(got.boxes, boxes, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got.scores, ref["scores"].numpy(), rtol=1e-5)
    assert got.labels.tolist() == ref["labels"].tolist()
    assert det.text_tower.calls == 1


def test_owlv2_boxes_are_fractions_of_the_padded_square():
    from masklab.grounding.detectors import owl_boxes

    box = torch.tensor([[0.5, 0.25, 0.2, 0.1]])  # (cx, cy, w, h) of the square the model saw
    # a 60x120 image padded to 120x120 at the bottom: y in pixels = fraction x 120
    np.testing.assert_allclose(owl_boxes(box, 60, 120, padded=True), [[48, 24, 72, 36]],
                               atol=1e-4)
    # scaling by the image size instead (the usual bug) would put it at y 12..18
    np.testing.assert_allclose(owl_boxes(box, 60, 120, padded=False), [[48, 12, 72, 18]],
                               atol=1e-4)
    # a box past the image (in the padding) is clipped to it
    np.testing.assert_allclose(owl_boxes(torch.tensor([[0.5, 0.5, 0.2, 0.2]]), 60, 120, True),
                               [[48, 48, 72, 60]], atol=1e-4)


def test_detector_bad_input(tmp_path):
    tiny.grounding_dino(tmp_path / "gd")
    det = load_detector(tmp_path / "gd")
    img = _images(1)[0]
    with pytest.raises(InputError, match="class list is empty"):
        det.detect(img, [])
    with pytest.raises(InputError, match="cut off"):
        det.detect(img, ["traffic light"] * 1 + [f"cat {'dog ' * k}" for k in range(1, 5)])
    with pytest.raises(InputError, match="unknown detector"):
        load_detector("nosuch")
    tiny.owl(tmp_path / "owl")
    owl = load_detector(tmp_path / "owl")
    with pytest.raises(InputError, match="shorten it"):  # 16 tokens at most
        owl.detect(img, ["cat", "a photo of a cat " * 4])


def test_clipseg_equals_transformers_and_labels_one_mask_per_class(tmp_path):
    import json

    from masklab.grounding.label import LabelSettings, label_images
    from masklab.io.images import write_image

    model, proc = tiny.clipseg(tmp_path / "cs")
    det = load_detector(tmp_path / "cs", box_threshold=0.5)
    for img in _images(2):
        got = det.probabilities(img, CLASSES)
        inputs = proc(text=CLASSES, images=[img] * 2, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[:, None]
        ref = torch.nn.functional.interpolate(logits, size=img.shape[:2], mode="bilinear",
                                              align_corners=False)[:, 0].sigmoid().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert det.text_calls == 1
    masks, _ = det.segment_text(img, CLASSES)
    assert not (masks[0] & masks[1]).any()  # each pixel goes to its best class
    assert all(got[k][m].min() > 0.5 for k, m in enumerate(masks) if m.any())
    for k, img in enumerate(_images(2)):
        write_image(tmp_path / "in" / f"{k}.png", img)
    s = LabelSettings(classes=CLASSES, detector=str(tmp_path / "cs"), segmenter="none",
                      box_threshold=0.5)
    label_images(sorted((tmp_path / "in").glob("*.png")), tmp_path / "out", s, quiet=True)
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    per_image = [sorted(a["category_id"] for a in coco["annotations"] if a["image_id"] == i)
                 for i in (1, 2)]
    assert all(len(set(c)) == len(c) for c in per_image) and coco["annotations"]


def test_florence2_equals_transformers_generation_and_post_processing(tmp_path):
    """Open-vocabulary detection: the boxes of every class's answer equal transformers'
    ``generate`` + ``post_process_generation`` run per class; each box's score is the
    geometric mean probability of its four location tokens (checked against a forward pass
    with the answer as decoder input); the prompts are tokenised once per class list."""
    import transformers as T

    tiny.florence2(tmp_path / "f2", seed=1)
    det = load_detector(tmp_path / "f2", max_new_tokens=40)
    model = T.Florence2ForConditionalGeneration.from_pretrained(tmp_path / "f2").eval()
    proc = T.AutoProcessor.from_pretrained(tmp_path / "f2")
    task = "<OPEN_VOCABULARY_DETECTION>"
    for img in _images(2):
        got = det.detect(img, CLASSES)
        ref_boxes, ref_labels = [], []
        for k, c in enumerate(CLASSES):
            inputs = proc(text=task + c, images=img, return_tensors="pt")
            seq = model.generate(**inputs, max_new_tokens=40, num_beams=3, do_sample=False)
            text = proc.batch_decode(seq, skip_special_tokens=False)[0]
            bb = proc.post_process_generation(text, task=task, image_size=(100, 70))[task]
            ref_boxes += bb["bboxes"]
            ref_labels += [k] * len(bb["bboxes"])
        assert ref_boxes and got.boxes.tolist() == ref_boxes
        assert got.labels.tolist() == ref_labels
        assert ((got.scores > 0) & (got.scores <= 1)).all()
    assert det.text_calls == 1
    # the score, against the model's own probabilities (the answer teacher-forced)
    img = _images(1)[0]
    (tokens, logp), = det.generate(img, [task + "cat"])
    inputs = proc(text=task + "cat", images=img, return_tensors="pt")
    start = torch.tensor([[model.config.text_config.decoder_start_token_id, *tokens[:-1]]])
    with torch.no_grad():
        lp = model(**inputs, decoder_input_ids=start).logits[0].log_softmax(-1)
    forced = lp[torch.arange(len(tokens)), torch.tensor(tokens)].numpy()
    loc = [i for i, t in enumerate(tokens) if proc.tokenizer.convert_ids_to_tokens(t)
           .startswith("<loc_")]
    assert len(loc) >= 4 and np.allclose(forced[loc], np.array(logp)[loc], atol=1e-4)
    found, oracle = det.parse(tokens, logp, 100, 70), det.parse(tokens, forced.tolist(), 100, 70)
    assert found and np.allclose([f[2] for f in found], [f[2] for f in oracle], rtol=1e-3)


def test_florence2_phrase_grounding_parse_and_class_mapping(tmp_path):
    """Phrase grounding parses a grounded answer as transformers does (the same phrases and
    boxes), and each phrase goes to the class it names."""
    import transformers as T

    from masklab.grounding.detectors import Florence2, phrase_class

    tiny.florence2(tmp_path / "f2")
    det = load_detector(tmp_path / "f2", task="grounding", max_new_tokens=30)
    assert isinstance(det, Florence2) and det.task == "grounding"
    proc = T.AutoProcessor.from_pretrained(tmp_path / "f2")
    tok = proc.tokenizer
    answer = "<s>a black cat<loc_10><loc_20><loc_500><loc_600>traffic light" \
             "<loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>horse<loc_9></s>"
    ids = tok(answer, add_special_tokens=False)["input_ids"]
    logp = np.log(np.linspace(0.2, 0.9, len(ids)))  # each token's own probability
    found = det.parse(ids, logp.tolist(), 100, 70, grounding=True)
    ref = proc.post_process_generation(answer, task=Florence2.GROUNDING,
                                       image_size=(100, 70))[Florence2.GROUNDING]
    assert [f[1] for f in found] == ref["bboxes"] and [f[0] for f in found] == ref["labels"]
    assert [f[0] for f in found] == ["a black cat", "traffic light", "traffic light"]
    first = next(i for i, t in enumerate(ids) if tok.convert_ids_to_tokens(t) == "<loc_10>")
    assert found[0][2] == pytest.approx(np.exp(logp[first:first + 4].mean()))  # geometric mean
    assert phrase_class("a black cat", CLASSES) == 0
    assert phrase_class("Traffic Light.", CLASSES) == 1
    assert phrase_class("light", CLASSES) is None
    assert phrase_class("cat and traffic light", CLASSES) == 1  # the longest name
    d = det.detect(_images(1)[0], CLASSES)  # a random model grounds no class name
    assert d.boxes.shape[1] == 4 and set(d.labels.tolist()) <= {0, 1}


def test_sam3_exemplar_boxes_equal_transformers(tmp_path):
    """Text + exemplar boxes (one example, one counter-example): the processor's box prompt
    and the model's answer, post-processed as transformers does; bad exemplars are errors."""
    model, proc = tiny.sam3(tmp_path / "s3")
    det = load_detector(tmp_path / "s3", box_threshold=0.2)
    img = _images(1, h=50, w=80)[0]
    ex = [[10, 5, 40, 30, 1], [50, 20, 70, 45, 0]]
    got = det.detect(img, ["cat"], exemplars={"cat": ex})
    plain = det.detect(img, ["cat"])
    inputs = proc(images=img, text="cat", input_boxes=[[b[:4] for b in ex]],
                  input_boxes_labels=[[b[4] for b in ex]], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    r = proc.post_process_instance_segmentation(out, threshold=0.2, mask_threshold=0.5,
                                                target_sizes=[img.shape[:2]])[0]
    assert len(got) == len(r["scores"]) > 0
    np.testing.assert_allclose(got.scores, r["scores"].numpy(), rtol=1e-5)
    np.testing.assert_allclose(got.boxes, r["boxes"].numpy(), rtol=1e-5, atol=1e-3)
    assert (got.masks != r["masks"].numpy().astype(bool)).mean() < 1e-3
    assert len(plain) != len(got) or not np.allclose(plain.scores, got.scores)  # boxes count
    with pytest.raises(InputError, match="not among the classes"):
        det.detect(img, ["cat"], exemplars={"dog": ex})
    with pytest.raises(InputError, match="empty inside"):
        det.detect(img, ["cat"], exemplars={"cat": [[90, 5, 120, 30, 1]]})
