import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("transformers")

from masklab.cli import main
from masklab.grounding.captions import (
    canonical,
    classes_from_caption,
    load_captioner,
    noun_phrases,
    singular,
)
from masklab.grounding.detectors import Detections
from masklab.grounding.label import LabelSettings, label_images
from masklab.io.images import write_image
from tests.grounding import tiny


@pytest.mark.parametrize("caption, phrases, classes", [
    ("a man riding a horse on a beach", ["man", "horse", "beach"],
     ["person", "horse", "beach"]),
    ("a black and white cat laying on a bed", ["cat", "bed"], ["cat", "bed"]),
    ("a plate of food with broccoli and carrots", ["plate", "food", "broccoli", "carrots"],
     ["plate", "food", "broccoli", "carrot"]),
    ("two giraffes standing next to each other", ["giraffes"], ["giraffe"]),
    ("a close up of a pizza on a table", ["pizza", "table"], ["pizza", "table"]),
    ("a group of people standing around a kitchen", ["people", "kitchen"],
     ["person", "kitchen"]),
    ("a red fire hydrant sitting on the side of a road", ["fire hydrant", "road"],
     ["fire hydrant", "road"]),
    ("a traffic light hanging over a street", ["traffic light", "street"],
     ["traffic light", "street"]),
    ("arafed woman with two dogs and a frisbee", ["woman", "dogs", "frisbee"],
     ["person", "dog", "frisbee"]),
    ("a cat cat sitting on a building", ["cat", "building"], ["cat", "building"]),
    ("boys and girls playing with a puppy", ["boys", "girls", "puppy"], ["person", "dog"]),
])
def test_noun_phrases_of_captions(caption, phrases, classes):
    assert noun_phrases(caption) == phrases
    assert classes_from_caption(caption) == classes


def test_singular_and_synonyms():
    assert [singular(w) for w in ["buses", "berries", "boxes", "glass", "knives", "people",
                                  "bus", "tomatoes", "skis", "cars", "dish"]] == \
        ["bus", "berry", "box", "glass", "knife", "person", "bus", "tomato", "ski", "car",
         "dish"]
    assert canonical("Kittens") == "cat" and canonical("tennis rackets") == "tennis racket"
    assert canonical("men", {}) == "man"  # an empty table: plurals merged only


def test_blip_caption_equals_transformers(tmp_path):
    import transformers as T

    tiny.blip(tmp_path / "blip")
    cap = load_captioner(tmp_path / "blip")
    model = T.BlipForConditionalGeneration.from_pretrained(tmp_path / "blip").eval()
    proc = T.BlipProcessor.from_pretrained(tmp_path / "blip")
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    out = model.generate(**proc(images=img, return_tensors="pt"), num_beams=3,
                         max_new_tokens=30, do_sample=False)
    assert cap.caption(img) == proc.decode(out[0], skip_special_tokens=True).strip() != ""


class _Captions:
    def __init__(self, texts):
        self.texts, self.calls = texts, 0

    def caption(self, image):
        self.calls += 1
        return self.texts[int(image[0, 0, 0])]


class _OneBoxPerPrompt:
    """A detector giving one box per prompted class, at a place of its own."""

    def detect(self, image, classes):
        boxes = np.array([[5 * k, 5 * k, 5 * k + 20, 5 * k + 20] for k in range(len(classes))],
                         np.float64)
        return Detections(boxes, np.full(len(classes), 0.9), np.arange(len(classes)),
                          list(classes))


def test_classes_auto_prompts_each_image_with_its_captions_classes(tmp_path):
    files = []
    for k in range(3):
        img = np.full((40, 60, 3), k, np.uint8)
        files.append(tmp_path / "in" / f"{k}.png")
        write_image(files[-1], img)
    cap = _Captions(["a man riding a horse", "two horses and a dog", "a blurry photo"])
    settings = LabelSettings(classes=[], detector="stub", segmenter="box",
                             captioner="stub-captioner")
    r = label_images(files, tmp_path / "out", settings, detector=_OneBoxPerPrompt(),
                     captioner=cap, overlays=False, quiet=True)
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["person", "horse", "dog"]
    per_image = {i["file_name"]: [a["prompt"] for a in coco["annotations"]
                                  if a["image_id"] == i["id"]] for i in coco["images"]}
    assert per_image == {"0.png": ["person", "horse"], "1.png": ["horse", "dog"],
                         "2.png": []}
    caps = [json.loads(x) for x in (tmp_path / "out" / "captions.jsonl").read_text()
            .splitlines()]
    assert [c["caption"] for c in caps] == cap.texts and r.done == 3 and cap.calls == 3
    # resumed: no image captioned or labelled again
    r2 = label_images(files, tmp_path / "out", settings, detector=_OneBoxPerPrompt(),
                      captioner=cap, overlays=False, quiet=True)
    assert cap.calls == 3 and r2.done == 0 and r2.skipped == 3


def test_label_classes_auto_cli_with_blip(tmp_path):
    tiny.blip(tmp_path / "blip", favour="dog")  # every caption: "dog dog dog …"
    tiny.grounding_dino(tmp_path / "gd")
    for k in range(2):
        write_image(tmp_path / "in" / f"{k}.jpg",
                    np.random.default_rng(k).integers(0, 255, (70, 100, 3), dtype=np.uint8))
    args = ["--quiet", "label", str(tmp_path / "in"), "--classes", "auto", "--captioner",
            str(tmp_path / "blip"), "--detector", str(tmp_path / "gd"), "--segmenter", "box",
            "--box-threshold", "0.2", "--out", str(tmp_path / "out")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["dog"]
    assert coco["annotations"] and all(a["prompt"] == "dog" for a in coco["annotations"])
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings["classes"] == ["dog"] and settings["captioner"] == str(tmp_path / "blip")
    assert CliRunner().invoke(main, args).exit_code == 0  # resumes
    tiny.blip(tmp_path / "blip2")
    other = CliRunner().invoke(main, [a if a != str(tmp_path / "blip") else
                                      str(tmp_path / "blip2") for a in args])
    assert other.exit_code == 2 and "captions by" in other.output
    bad = CliRunner().invoke(main, ["label", str(tmp_path / "in"), "--classes", "cat",
                                    "--captioner", "blip-base", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--classes auto" in bad.output


def test_florence2_caption_equals_transformers(tmp_path):
    import transformers as T

    tiny.florence2(tmp_path / "f2")
    cap = load_captioner(tmp_path / "f2")
    cap.max_new_tokens = 20
    model = T.Florence2ForConditionalGeneration.from_pretrained(tmp_path / "f2").eval()
    proc = T.AutoProcessor.from_pretrained(tmp_path / "f2")
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    seq = model.generate(**proc(text="<CAPTION>", images=img, return_tensors="pt"),
                         num_beams=3, max_new_tokens=20, do_sample=False)
    text = proc.batch_decode(seq, skip_special_tokens=False)[0]
    want = proc.post_process_generation(text, task="<CAPTION>", image_size=(60, 40))
    assert cap.caption(img) == want["<CAPTION>"]
