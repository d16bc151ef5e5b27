"""Classes from captions (``masklab label --classes auto``): a captioning model describes each
image, a small rule set takes the noun phrases out of the caption, plurals and synonyms are
merged into one category name, and the detector is prompted with that image's categories.

Why rules and not spaCy: captions from BLIP or Florence-2 are short, simple English
("a man riding a horse on a beach"); a noun chunker over them needs a stop list
(determiners, prepositions, auxiliaries), verb forms (-ing/-ed, with the common -ing
nouns kept), a list of adjectives to strip (colours, sizes, materials, ages) and framing
words ("a close up of", "a group of"). That takes a few dozen lines and no model download;
spaCy's parser would add a 12 MB model that must be fetched separately (and is not on the
package index), for no gain on this kind of text. The rules are tested on real captions.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from masklab.errors import InputError, WeightsError

CAPTIONERS = {  # name -> weights source
    "blip-base": "hf/blip-image-captioning-base",
    "blip-large": "hf/blip-image-captioning-large",
    "florence-2-base": "hf/florence-2-base",
    "florence-2-large": "hf/florence-2-large",
}

_STOP = set("""a an the some several many few lots lot any no each every both either neither
one two three four five six seven eight nine ten dozen his her their its my our your this that
these those there here it they he she we you i me him them us who whom which what where when
while as and or but nor so yet of on in at with without near next to by under over above below
behind beside besides between from into onto off out up down through around across along against
toward towards inside outside onto upon for about after before during like than then very
really just also is are was were be been being am has have had do does did can could will would
may might must shall should not other another top bottom front back side middle center corner
edge background foreground view picture photo photograph image shot close closeup group bunch
couple pair set row line pile stack number variety lot kind type sort full filled made""".split())

_VERBS = set("""sits sit stands stand holds hold looks look lies lie lays lay rides ride walks
walk runs run eats eat plays play flies fly waits wait sleeps sleep grazes graze parked covered
topped loaded stuffed dressed shaped colored coloured painted posed displayed stacked""".split())

_ING_NOUNS = set("""building ceiling painting clothing ring king thing string wing swing sling
ping morning evening wedding pudding dressing icing frosting stuffing topping bedding railing
siding awning lightning sibling duckling earring""".split())

_ADJECTIVES = set("""white black red green blue yellow orange purple pink brown gray grey silver
golden gold dark bright colorful colourful big small large little tiny huge giant tall
short long wide narrow young old new baby adult wooden metal plastic glass empty open closed
busy clean dirty wet dry hot cold fresh ripe sliced half whole single double multiple various
different same several many lone beautiful pretty cute nice good great large-sized small-sized
striped spotted furry fluffy shiny blurry blurred sunny cloudy foggy snowy rainy grassy sandy
rocky messy crowded""".split())

_IRREGULAR = {"men": "man", "women": "woman", "people": "person", "children": "child",
              "mice": "mouse", "geese": "goose", "feet": "foot", "teeth": "tooth",
              "knives": "knife", "leaves": "leaf", "shelves": "shelf", "wolves": "wolf",
              "calves": "calf", "halves": "half", "loaves": "loaf", "sheep": "sheep",
              "fish": "fish", "deer": "deer", "skis": "ski", "buses": "bus",
              "glasses": "glasses", "scissors": "scissors", "pants": "pants",
              "jeans": "jeans", "shorts": "shorts", "clothes": "clothes", "dishes": "dish"}

SYNONYMS = {  # a caption's word -> the category it is merged into
    **{w: "person" for w in """man woman boy girl child kid baby lady guy gentleman player
    skier surfer skateboarder snowboarder rider pedestrian toddler adult teenager""".split()},
    "puppy": "dog", "kitten": "cat", "kitty": "cat", "automobile": "car", "bike": "bicycle",
    "motorbike": "motorcycle", "sofa": "couch", "television": "tv", "cellphone": "cell phone",
    "phone": "cell phone", "plane": "airplane", "aeroplane": "airplane", "jet": "airplane",
    "doughnut": "donut", "ball": "sports ball", "hotdog": "hot dog", "racquet": "racket",
}


def singular(word: str) -> str:
    """English plural → singular by rule (``buses`` → ``bus``, ``berries`` → ``berry``)."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or w.endswith(("ss", "us", "is", "ous")):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "zes", "sses", "oes")):
        return w[:-2]
    if w.endswith("s"):
        return w[:-1]
    return w


def canonical(phrase: str, synonyms: dict[str, str] | None = None) -> str:
    """A noun phrase's category: its last word made singular, then the synonym table
    (``"two little girls"`` is not a phrase here; ``"girls"`` → ``"person"``)."""
    table = SYNONYMS if synonyms is None else synonyms
    words = phrase.lower().split()
    if not words:
        return ""
    words[-1] = singular(words[-1])
    name = " ".join(words)
    if name in table:
        return table[name]
    return table.get(words[-1], name) if len(words) == 1 else name


def _is_verb(w: str) -> bool:
    return w in _VERBS or (w.endswith("ing") and w not in _ING_NOUNS and len(w) > 4) or (
        w.endswith("ed") and len(w) > 4 and w not in ("bed", "sled", "shed"))


def noun_phrases(caption: str) -> list[str]:
    """The noun phrases of a caption, in order: runs of words between stop words and verbs,
    with adjectives removed, at most the last two words (``"traffic light"``); a word
    repeated at once (``"a cat cat"``, a captioner's stutter) counts once."""
    words = re.findall(r"[a-z][a-z'-]*", caption.lower())
    words = [w for k, w in enumerate(words) if k == 0 or w != words[k - 1]]
    phrases, run = [], []
    for w in [*words, "."]:
        if w == "." or w in _STOP or _is_verb(w):
            nouns = [x for x in run if x not in _ADJECTIVES and not x.endswith("'s")]
            if nouns:
                phrases.append(" ".join(nouns[-2:]))
            run = []
        else:
            run.append(w)
    return phrases


def classes_from_caption(caption: str, synonyms: dict[str, str] | None = None) -> list[str]:
    """The categories a caption names, each once, in order of appearance."""
    return list(dict.fromkeys(c for c in (canonical(p, synonyms)
                                          for p in noun_phrases(caption)) if c))


def load_captioner(name, device: str = "cpu"):
    """A captioning model by name (``blip-base``, ``blip-large``, ``florence-2-base``,
    ``florence-2-large``) or transformers folder (BLIP or Florence-2)."""
    import json

    from masklab.grounding.detectors import Florence2, _folder

    if name not in CAPTIONERS and not Path(name).is_dir():
        raise InputError(f"unknown captioner {name!r}; one of {', '.join(CAPTIONERS)} or a "
                         "transformers folder")
    folder = _folder(CAPTIONERS.get(str(name), name))
    kind = json.loads((folder / "config.json").read_text()).get("model_type")
    if kind == "blip":
        return Blip(folder, device=device)
    if kind == "florence2":
        return Florence2(folder, device=device)
    raise WeightsError(f"{folder}: model type {kind!r} is not a supported captioner "
                       "(blip, florence2)")


class Blip:
    """BLIP image captioning (Li et al., ICML 2022), as its model card runs it: the
    processor's pixels, ``generate`` (beam search, ``num_beams``), the decoded text."""

    def __init__(self, folder, device: str = "cpu", num_beams: int = 3,
                 max_new_tokens: int = 30):
        from masklab.grounding.detectors import _load_hf

        self.name, self.model, self.processor = _load_hf(folder, device,
                                                         "BlipForConditionalGeneration")
        self.device, self.num_beams, self.max_new_tokens = device, num_beams, max_new_tokens

    @torch.inference_mode()
    def caption(self, image: np.ndarray) -> str:
        inputs = self.processor(images=np.ascontiguousarray(image[..., :3]),
                                return_tensors="pt").to(self.device)
        out = self.model.generate(**inputs, num_beams=self.num_beams,
                                  max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.decode(out[0], skip_special_tokens=True).strip()
