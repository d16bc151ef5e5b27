"""Text → boxes: open-vocabulary detectors through transformers, one interface.

``detector.detect(image, classes)`` returns ``Detections``: boxes ``(N, 4)`` xyxy in image
pixels, scores, and labels indexing ``classes``. The text side of a detector runs once per
list of classes, not once per image: the text tower is wrapped so that the same tokens give
back the same features without running it again (the model's own forward is unchanged, so
the outputs are the model's).

- Grounding DINO (IDEA-Research; ``grounding-dino-tiny``, ``grounding-dino-base``), MM
  Grounding DINO (OpenMMLab; ``mm-grounding-dino-tiny|base|large``) and LLMDet (its
  inference checkpoints are MM Grounding DINO; ``llmdet-tiny|base|large``): the
  prompt is ``"cat. traffic light."``; a box's score is its best token probability (as
  transformers' post-processing) and its class the class whose tokens score highest (the
  processor would give the text of every token above ``text_threshold`` instead, which
  can mix classes).
- OmDet-Turbo (``omdet-turbo``, Swin-T): a task prompt (``"Detect cat, traffic light."``)
  and one embedding per class; every (query, class) pair is a candidate scored by its
  sigmoid, the best ``num_queries`` kept, then the score threshold and class-aware NMS, as
  transformers' post-processing. The model caches class and task embeddings itself.
- SAM 3 (``sam3``): text → instance masks directly (``Detections.masks``); no box
  segmenter is needed.
- Florence-2 (``florence-2-base|large``: open-vocabulary detection, one generated answer
  per class, ``Locate cat in the image.``; ``florence-2-base|large-grounding``: phrase
  grounding, one answer per image for all classes). A generative model: its answer is text
  with location tokens, parsed exactly as transformers' ``post_process_generation``; it
  gives no confidence, so a box's score is the geometric mean of the probabilities the
  model gave its four location tokens. The image is encoded once per image and the
  class prompts are generated as one batch.
- OWLv2 / OWL-ViT (``owlv2-base``, ``owlvit-base``): one query per class. OWLv2 pads the
  image to a square (bottom and right) before resizing, so its boxes are fractions of the
  padded square: they are scaled by the longer side, not by (width, height) — scaling by
  the image size shifts and squeezes every box on a non-square image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from masklab.errors import InputError, WeightsError

DETECTORS = {  # name -> weights source
    "grounding-dino-tiny": "hf/grounding-dino-tiny",
    "grounding-dino-base": "hf/grounding-dino-base",
    "mm-grounding-dino-tiny": "hf/mm-grounding-dino-tiny",
    "mm-grounding-dino-base": "hf/mm-grounding-dino-base",
    "mm-grounding-dino-large": "hf/mm-grounding-dino-large",
    "llmdet-tiny": "hf/llmdet-tiny",
    "llmdet-base": "hf/llmdet-base",
    "llmdet-large": "hf/llmdet-large",
    "omdet-turbo": "hf/omdet-turbo-swin-tiny",
    "florence-2-base": "hf/florence-2-base",
    "florence-2-large": "hf/florence-2-large",
    "florence-2-base-grounding": "hf/florence-2-base",
    "florence-2-large-grounding": "hf/florence-2-large",
    "owlv2-base": "hf/owlv2-base-patch16-ensemble",
    "owlv2-large": "hf/owlv2-large-patch14-ensemble",
    "owlvit-base": "hf/owlvit-base-patch32",
    "clipseg": "hf/clipseg-rd64-refined",
    "sam3": "hf/sam3",
}
DETECTOR_OPTIONS = {  # name -> fixed options of that detector
    "florence-2-base-grounding": {"task": "grounding"},
    "florence-2-large-grounding": {"task": "grounding"},
}


@dataclass
class Detections:
    boxes: np.ndarray  # (N, 4) float xyxy, image pixels
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) index into ``classes``
    classes: list[str] = field(default_factory=list)
    prompts: list[str] | None = None  # after post-processing: the text that found each box
    masks: np.ndarray | None = None  # (N, H, W) bool, from text → mask models (SAM 3)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep) -> Detections:
        keep = np.asarray(keep)
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep],
                          list(self.classes), None if self.prompts is None else
                          [self.prompts[i] for i in np.arange(len(self))[keep]],
                          None if self.masks is None else self.masks[keep])

    @staticmethod
    def empty(classes: list[str]) -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), list(classes),
                          [])


class _MemoText(nn.Module):
    """Runs the wrapped text tower only when its inputs change."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self._key = None
        self._out = None

    def forward(self, *args, **kwargs):
        key = _key(args, kwargs)
        if key != self._key:
            self._out = self.inner(*args, **kwargs)
            self._key = key
            self.calls += 1
        return self._out


def _key(args, kwargs) -> tuple:
    def one(v):
        if isinstance(v, torch.Tensor):
            return ("t", tuple(v.shape), str(v.dtype), v.detach().cpu().numpy().tobytes())
        return ("v", repr(v))
    return tuple(one(a) for a in args) + tuple((k, one(v)) for k, v in sorted(kwargs.items()))


def check_classes(classes) -> list[str]:
    names = [str(c).strip() for c in (classes or [])]
    if not names or not all(names):
        raise InputError("the class list is empty" if not names else
                         f"an empty class name in {classes!r}")
    if len(set(names)) != len(names):
        raise InputError(f"a class is listed twice in {names}")
    return names


def _check_length(tokenizer, texts: list[str], limit: int) -> None:
    """A text the model would cut is an error, not a silently different prompt."""
    for t in texts:
        n = len(tokenizer(t)["input_ids"])
        if n > limit:
            raise InputError(f"the class {t!r} makes {n} text tokens; this detector reads "
                             f"{limit}: shorten it")


def _folder(source) -> Path:
    from masklab.weights import resolve

    folder = Path(resolve(source))
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{folder}: no config.json (not a transformers checkpoint)")
    return folder


def _load_hf(folder, device: str, model_class: str = "AutoModelForZeroShotObjectDetection"):
    """A transformers checkpoint folder: its name, the model (eval mode) and its processor."""
    import transformers as T

    folder = Path(folder)
    model = getattr(T, model_class).from_pretrained(str(folder)).to(device).eval()
    return folder.name, model, T.AutoProcessor.from_pretrained(str(folder))


def load_detector(name, device: str = "cpu", **options):
    """A detector from a registered name or a local transformers folder (Grounding DINO,
    OWLv2 or OWL-ViT, told apart by its ``model_type``)."""
    if not isinstance(name, (str, Path)):
        return name
    source = DETECTORS.get(str(name), name)
    if str(name) not in DETECTORS and not Path(name).is_dir():
        raise InputError(f"unknown detector {name!r}; one of {', '.join(DETECTORS)} or a "
                         "transformers folder")
    folder = _folder(source)
    options = {**DETECTOR_OPTIONS.get(str(name), {}), **options}
    kind = json.loads((folder / "config.json").read_text()).get("model_type")
    if kind != "sam3" and options.get("exemplars"):
        raise InputError(f"exemplar boxes are a SAM 3 prompt; {kind} takes text only")
    if kind != "sam3":
        options.pop("exemplars", None)
    if kind not in ("grounding-dino", "mm-grounding-dino"):
        if options.get("text_threshold") is not None:
            raise InputError("a text threshold applies to Grounding DINO models only, not to "
                             f"{kind}")
        options.pop("text_threshold", None)
        if kind in ("owlv2", "owlvit", "omdet-turbo", "sam3", "florence2") and \
                "box_threshold" in options:
            options["threshold"] = options.pop("box_threshold")  # their one score threshold
    if kind in ("grounding-dino", "mm-grounding-dino"):
        return GroundingDino(folder, device=device, **options)
    if kind in ("owlv2", "owlvit"):
        return Owl(folder, device=device, **options)
    if kind == "clipseg":
        return ClipSeg(folder, device=device, **options)
    if kind == "omdet-turbo":
        return OmDetTurbo(folder, device=device, **options)
    if kind == "sam3":
        return Sam3(folder, device=device, **options)
    if kind == "florence2":
        return Florence2(folder, device=device, **options)
    raise WeightsError(f"{folder}: model type {kind!r} is not a supported detector "
                       "(grounding-dino, mm-grounding-dino, omdet-turbo, owlv2, owlvit, "
                       "clipseg, sam3, florence2)")


class GroundingDino:
    """Grounding DINO: ``box_threshold`` on a box's best token probability."""

    def __init__(self, folder, device: str = "cpu", box_threshold: float = 0.35,
                 text_threshold: float = 0.25):
        self.name, self.model, self.processor = _load_hf(folder, device)
        self.device = device
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        inner = self.model.model
        inner.text_backbone = _MemoText(inner.text_backbone)
        self.text_tower = inner.text_backbone
        self.max_text_len = int(self.model.config.max_text_len)
        self._text: tuple | None = None  # (classes, tokens, class -> token positions)

    def prompt(self, classes: list[str]) -> str:
        return " ".join(f"{c.lower()}." for c in classes)

    def _tokens(self, classes: list[str]):
        if self._text is None or self._text[0] != classes:
            text = self.prompt(classes)
            tok = self.processor.tokenizer(text, return_tensors="pt",
                                           return_offsets_mapping=True)
            ids = tok["input_ids"][0]
            if len(ids) > self.max_text_len:
                raise InputError(f"the classes make {len(ids)} text tokens; this detector "
                                 f"reads {self.max_text_len}: the last classes would be "
                                 "cut off (fewer or shorter classes, or run them in parts)")
            offsets = tok["offset_mapping"][0].tolist()
            spans, start = [], 0
            for c in classes:
                s = text.index(c.lower() + ".", start)
                spans.append((s, s + len(c)))
                start = s + len(c) + 1
            positions = []
            for c, (a, b) in zip(classes, spans, strict=True):
                pos = [i for i, (x, y) in enumerate(offsets) if y > x and x >= a and y <= b]
                if not pos:
                    raise InputError(f"the class {c!r} has no token the detector knows")
                positions.append(pos)
            self._text = (classes, text, positions)
        return self._text

    @torch.inference_mode()
    def detect(self, image: np.ndarray, classes: list[str]) -> Detections:
        classes = check_classes(classes)
        _, text, positions = self._tokens(classes)
        inputs = self.processor(images=np.ascontiguousarray(image[..., :3]), text=text,
                                return_tensors="pt").to(self.device)
        out = self.model(**inputs)
        probs = out.logits[0].sigmoid()  # (queries, text tokens)
        scores = probs.max(-1).values
        per_class = torch.stack([probs[:, p].max(-1).values for p in positions], -1)
        keep = scores > self.box_threshold
        h, w = image.shape[:2]
        boxes = _corners(out.pred_boxes[0][keep]) * torch.tensor([w, h, w, h],
                                                                  dtype=torch.float32)
        return Detections(boxes.cpu().numpy().astype(np.float64),
                          scores[keep].cpu().numpy().astype(np.float64),
                          per_class[keep].argmax(-1).cpu().numpy().astype(np.int64), classes)


class Owl:
    """OWLv2 / OWL-ViT with one text query per class; ``threshold`` on the sigmoid score."""

    def __init__(self, folder, device: str = "cpu", threshold: float = 0.1,
                 template: str = "{}"):
        self.name, self.model, self.processor = _load_hf(folder, device)
        self.v2 = self.model.config.model_type == "owlv2"
        base = self.model.owlv2 if self.v2 else self.model.owlvit
        base.text_model = _MemoText(base.text_model)
        self.text_tower = base.text_model
        self.device, self.threshold, self.template = device, threshold, template

    @torch.inference_mode()
    def detect(self, image: np.ndarray, classes: list[str]) -> Detections:
        classes = check_classes(classes)
        queries = [self.template.format(c) for c in classes]
        _check_length(self.processor.tokenizer, queries, self.model.config.text_config
                      .max_position_embeddings)
        inputs = self.processor(text=[queries], images=np.ascontiguousarray(image[..., :3]),
                                return_tensors="pt", truncation=True).to(self.device)
        out = self.model(**inputs)
        logits = out.logits[0]  # (patches, classes)
        best = logits.max(-1)
        scores = best.values.sigmoid()
        keep = scores > self.threshold
        h, w = image.shape[:2]
        boxes = owl_boxes(out.pred_boxes[0][keep], h, w, padded=self.v2)
        return Detections(boxes, scores[keep].cpu().numpy().astype(np.float64),
                          best.indices[keep].cpu().numpy().astype(np.int64), classes)


class OmDetTurbo:
    """OmDet-Turbo: ``threshold`` on a (query, class) pair's sigmoid, class-aware NMS at
    ``nms_threshold`` (transformers' post-processing)."""

    def __init__(self, folder, device: str = "cpu", threshold: float = 0.3,
                 nms_threshold: float = 0.5):
        self.name, self.model, self.processor = _load_hf(folder, device)
        self.device, self.threshold, self.nms_threshold = device, threshold, nms_threshold
        self.text_tower = self.model.language_backbone  # its calls: the model's own cache

    @staticmethod
    def task(classes: list[str]) -> str:
        return f"Detect {', '.join(classes)}."

    @torch.inference_mode()
    def detect(self, image: np.ndarray, classes: list[str]) -> Detections:
        from torchvision.ops import batched_nms

        classes = check_classes(classes)
        inputs = self.processor(images=np.ascontiguousarray(image[..., :3]), text=classes,
                                task=self.task(classes), return_tensors="pt").to(self.device)
        out = self.model(**inputs)
        scores = out.decoder_class_logits[0].sigmoid()  # (queries, classes)
        q, k = scores.shape
        top, idx = scores.flatten().topk(q)  # the best (query, class) pairs, one per query
        keep = top > self.threshold
        top, idx = top[keep], idx[keep]
        labels = idx % k
        h, w = image.shape[:2]
        boxes = _corners(out.decoder_coord_logits[0][idx // k]) * torch.tensor(
            [w, h, w, h], dtype=torch.float32, device=top.device)
        order = batched_nms(boxes, top, labels, self.nms_threshold)
        boxes = boxes[order]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        return Detections(boxes.cpu().numpy().astype(np.float64),
                          top[order].cpu().numpy().astype(np.float64),
                          labels[order].cpu().numpy().astype(np.int64), classes)


class Sam3:
    """SAM 3 (Meta's Segment Anything 3): a text prompt → every instance of it, with a mask.
    The image is encoded once per image and each class's text once per run; per class the
    score is the query's probability times the prompt's presence probability, kept above
    ``threshold``; masks are the predicted probabilities resized (bilinear) to the image
    and cut at ``mask_threshold`` — transformers' ``post_process_instance_segmentation``.

    Exemplar boxes (``exemplars={"cat": [[x0, y0, x1, y1, 1], …]}``, image pixels, the last
    value 1 for an example of the class, 0 for a look-alike that is not): the model's
    geometry prompt, next to the text, finds every instance that looks like the positives
    (the SAM 3 paper's "image exemplars"). ``exemplars`` given to the constructor apply to
    every image; ``detect(..., exemplars=)`` to one."""

    gives_masks = True

    def __init__(self, folder, device: str = "cpu", threshold: float = 0.5,
                 mask_threshold: float = 0.5, exemplars: dict | None = None):
        self.name, self.model, self.processor = _load_hf(folder, device, "Sam3Model")
        self.device, self.threshold, self.mask_threshold = device, threshold, mask_threshold
        self.exemplars = exemplars or {}
        self._text: dict[str, tuple] = {}
        self.text_calls = 0

    def _text_embeds(self, prompt: str) -> tuple:
        if prompt not in self._text:
            tok = self.processor(text=prompt, return_tensors="pt").to(self.device)
            self.text_calls += 1
            emb = self.model.get_text_features(input_ids=tok["input_ids"],
                                               attention_mask=tok["attention_mask"],
                                               return_dict=True)
            if isinstance(emb, torch.Tensor):  # the forward reads ``.pooler_output``
                from types import SimpleNamespace

                emb = SimpleNamespace(pooler_output=emb)
            self._text[prompt] = (emb, tok["attention_mask"])
        return self._text[prompt]

    @staticmethod
    def _geometry(boxes, h: int, w: int) -> dict:
        """Exemplar boxes ``[[x0, y0, x1, y1, label], …]`` as the model's box prompt: centre
        and size as fractions of the image (the processor's normalisation)."""
        b = np.asarray(boxes, np.float64).reshape(-1, 5)
        if not len(b):
            return {}
        x0, y0, x1, y1 = b[:, 0].clip(0, w), b[:, 1].clip(0, h), b[:, 2].clip(0, w), \
            b[:, 3].clip(0, h)
        if ((x1 <= x0) | (y1 <= y0)).any():
            raise InputError(f"an exemplar box is empty inside the {w}x{h} image: "
                             f"{b[:, :4].tolist()}")
        if not np.isin(b[:, 4], (0, 1)).all():
            raise InputError("an exemplar's label is 1 (an example) or 0 (not one)")
        cxcywh = np.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w,
                           (y1 - y0) / h], 1)
        return {"input_boxes": torch.tensor(cxcywh[None], dtype=torch.float32),
                "input_boxes_labels": torch.tensor(b[None, :, 4], dtype=torch.int64)}

    @torch.inference_mode()
    def detect(self, image: np.ndarray, classes: list[str],
               exemplars: dict | None = None) -> Detections:
        classes = check_classes(classes)
        exemplars = self.exemplars if exemplars is None else exemplars
        unknown = set(exemplars) - set(classes)
        if unknown:
            raise InputError(f"exemplars for {sorted(unknown)}, which are not among the "
                             f"classes {classes}")
        h, w = image.shape[:2]
        pixels = self.processor(images=np.ascontiguousarray(image[..., :3]),
                                return_tensors="pt").to(self.device)["pixel_values"]
        vision = self.model.get_vision_features(pixel_values=pixels)
        boxes, scores, labels, masks = [], [], [], []
        for k, c in enumerate(classes):
            emb, mask = self._text_embeds(c)
            geo = {n: v.to(self.device) for n, v in
                   self._geometry(exemplars.get(c, []), h, w).items()}
            out = self.model(vision_embeds=vision, text_embeds=emb, attention_mask=mask,
                             **geo)
            score = out.pred_logits[0].sigmoid()
            if out.presence_logits is not None:
                score = score * out.presence_logits[0].sigmoid()
            keep = score > self.threshold
            if not keep.any():
                continue
            prob = torch.nn.functional.interpolate(
                out.pred_masks[0][keep].sigmoid()[None], size=(h, w), mode="bilinear",
                align_corners=False)[0]
            boxes.append(out.pred_boxes[0][keep] * torch.tensor([w, h, w, h],
                                                                dtype=torch.float32))
            scores.append(score[keep])
            labels.append(torch.full((int(keep.sum()),), k))
            masks.append(prob > self.mask_threshold)
        if not scores:
            return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), classes,
                              masks=np.zeros((0, h, w), bool))
        return Detections(torch.cat(boxes).cpu().numpy().astype(np.float64),
                          torch.cat(scores).cpu().numpy().astype(np.float64),
                          torch.cat(labels).cpu().numpy().astype(np.int64), classes,
                          masks=torch.cat(masks).cpu().numpy())


class Florence2:
    """Florence-2 (Xiao et al., CVPR 2024) as a detector. ``task="ovd"``: open-vocabulary
    detection, the prompt ``<OPEN_VOCABULARY_DETECTION>cat`` per class, every box of class
    k's answer labelled k. ``task="grounding"``: one ``<CAPTION_TO_PHRASE_GROUNDING>`` prompt
    ``"cat. dog."`` per image, each grounded phrase mapped to the class it names (exactly,
    else the longest class name it contains; other phrases are dropped). ``threshold`` (0:
    keep all) applies to the box score, the geometric mean probability of its location
    tokens. ``caption(image)`` gives ``<CAPTION>``'s text (``--classes auto``)."""

    OVD, GROUNDING = "<OPEN_VOCABULARY_DETECTION>", "<CAPTION_TO_PHRASE_GROUNDING>"

    def __init__(self, folder, device: str = "cpu", task: str = "ovd", threshold: float = 0.0,
                 num_beams: int = 3, max_new_tokens: int = 1024):
        if task not in ("ovd", "grounding"):
            raise InputError(f"Florence-2 task {task!r}: ovd or grounding")
        self.name, self.model, self.processor = _load_hf(
            folder, device, "Florence2ForConditionalGeneration")
        self.device, self.task, self.threshold = device, task, threshold
        self.num_beams, self.max_new_tokens = num_beams, max_new_tokens
        self._ids: dict[tuple, tuple] = {}  # prompts -> (input ids, attention mask)
        self.text_calls = 0

    def _inputs(self, prompts: tuple[str, ...]):
        """Token ids of the prompts (they do not depend on the image: its tokens are a
        fixed number of placeholders), once per prompt list."""
        if prompts not in self._ids:
            blank = np.zeros((8, 8, 3), np.uint8)
            enc = self.processor(text=list(prompts), images=[blank] * len(prompts),
                                 return_tensors="pt", padding=True)
            self._ids[prompts] = (enc["input_ids"].to(self.device),
                                  enc["attention_mask"].to(self.device))
            self.text_calls += 1
        return self._ids[prompts]

    @torch.inference_mode()
    def generate(self, image: np.ndarray, prompts: list[str]):
        """One answer per prompt for one image: ``(token ids, log-probabilities)`` each,
        the special tokens kept. The image is encoded once for all prompts."""
        from transformers.modeling_outputs import BaseModelOutput

        model = self.model
        ids, mask = self._inputs(tuple(prompts))
        pixels = self.processor.image_processor(images=np.ascontiguousarray(image[..., :3]),
                                                return_tensors="pt")["pixel_values"]
        feats = model.get_image_features(pixels.to(self.device, model.dtype)).pooler_output
        emb = model.get_input_embeddings()(ids)
        where = (ids == model.config.image_token_id)[..., None]
        emb = emb.masked_scatter(where, feats.expand(len(ids), -1, -1).to(emb.dtype))
        enc = model.get_encoder()(inputs_embeds=emb, attention_mask=mask)
        out = model.generate(input_ids=ids, attention_mask=mask,
                             encoder_outputs=BaseModelOutput(last_hidden_state=enc[0]),
                             num_beams=self.num_beams, max_new_tokens=self.max_new_tokens,
                             do_sample=False, output_scores=True, return_dict_in_generate=True)
        logp = model.compute_transition_scores(out.sequences, out.scores,
                                               getattr(out, "beam_indices", None),
                                               normalize_logits=self.num_beams == 1)
        n = logp.shape[1]  # the generated tokens: after the decoder's start token
        return [(out.sequences[i, -n:].tolist(), logp[i].float().tolist())
                for i in range(len(ids))]

    def parse(self, tokens: list[int], logp: list[float], w: int, h: int,
              grounding: bool = False) -> list[tuple[str, list[float], float]]:
        """``(phrase, xyxy box, score)`` of an answer, as transformers' post-processing
        parses it (the same regular expressions on the same text), with the score of the
        tokens each box was read from."""
        import re

        tk = self.processor.tokenizer
        drop = {tk.bos_token_id, tk.eos_token_id, tk.pad_token_id}
        kept = [(t, lp) for t, lp in zip(tokens, logp, strict=True) if t not in drop]
        text, spans = self.processor.post_processor.decode_with_spans([t for t, _ in kept])
        if "<poly>" in text and not grounding:  # polygons, not boxes: the processor keeps
            return []                           # none as boxes either
        banned = self.processor.post_processor.banned_grounding_tokens if grounding else set()
        found = []
        for m in re.finditer(r"([^<]+(?:<loc_\d+>){4,})", text):
            chunk, start = m.group(1), m.start(1)
            head = re.search(r"^\s*(.*?)(?=<od>|</od>|<box>|</box>|<bbox>|</bbox>|<loc_)", chunk)
            if not head:
                continue
            phrase = head.group().strip()
            if phrase in banned:
                continue
            phrase = phrase.encode("ascii", "ignore").decode("ascii")
            for b in re.finditer(r"<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>", chunk):
                bins = torch.tensor([[int(b.group(j)) for j in range(1, 5)]])
                box = self.processor.post_processor.dequantize(bins, size=(w, h))[0].tolist()
                a, z = start + b.start(), start + b.end()
                lps = [kept[i][1] for i, (x, y) in enumerate(spans) if x < z and y > a]
                found.append((phrase, [float(v) for v in box],
                              float(np.exp(np.mean(lps))) if lps else 0.0))
        return found

    def detect(self, image: np.ndarray, classes: list[str]) -> Detections:
        classes = check_classes(classes)
        h, w = image.shape[:2]
        boxes, scores, labels = [], [], []
        if self.task == "ovd":
            answers = self.generate(image, [self.OVD + c for c in classes])
            for k, (tokens, logp) in enumerate(answers):
                for _, box, score in self.parse(tokens, logp, w, h):
                    boxes.append(box), scores.append(score), labels.append(k)
        else:
            (tokens, logp), = self.generate(image, [self.GROUNDING + self.prompt(classes)])
            for phrase, box, score in self.parse(tokens, logp, w, h, grounding=True):
                k = phrase_class(phrase, classes)
                if k is not None:
                    boxes.append(box), scores.append(score), labels.append(k)
        keep = [i for i, s in enumerate(scores) if s >= self.threshold]
        if not keep:
            return Detections.empty(classes)
        return Detections(np.array([boxes[i] for i in keep], np.float64),
                          np.array([scores[i] for i in keep], np.float64),
                          np.array([labels[i] for i in keep], np.int64), classes)

    @staticmethod
    def prompt(classes: list[str]) -> str:
        return " ".join(f"{c}." for c in classes)

    def caption(self, image: np.ndarray, task: str = "<CAPTION>") -> str:
        (tokens, _), = self.generate(image, [task])
        text = self.processor.decode(tokens, skip_special_tokens=False)
        return self.processor.post_process_generation(text, task=task,
                                                      image_size=image.shape[1::-1])[task]


def phrase_class(phrase: str, classes: list[str]) -> int | None:
    """The class a grounded phrase names: the same words, else the longest class name
    among its words (``"a black cat"`` → ``cat``), else None."""
    p = phrase.lower().strip(" .")
    low = [c.lower() for c in classes]
    if p in low:
        return low.index(p)
    words = f" {' '.join(p.split())} "
    hits = [k for k, c in enumerate(low) if f" {c} " in words]
    return max(hits, key=lambda k: len(low[k])) if hits else None


class ClipSeg:
    """CLIPSeg (Lüddecke & Ecker, CVPR 2022): text → a coarse probability map per class,
    no boxes; good for stuff (sky, road, grass). ``probabilities`` gives ``(K, H, W)`` at
    the image's size (the 352² logits resized bilinearly); the text embeddings are computed
    once per class list (the model takes them as ``conditional_embeddings``)."""

    def __init__(self, folder, device: str = "cpu", box_threshold: float = 0.4,
                 text_threshold: float | None = None):
        import transformers as T

        folder = Path(folder)
        self.name = folder.name
        self.model = T.CLIPSegForImageSegmentation.from_pretrained(str(folder)).to(device).eval()
        self.processor = T.CLIPSegProcessor.from_pretrained(str(folder))
        self.device, self.threshold = device, box_threshold
        self._text: tuple[list[str], torch.Tensor] | None = None
        self.text_calls = 0

    @torch.inference_mode()
    def probabilities(self, image: np.ndarray, classes: list[str]) -> np.ndarray:
        classes = check_classes(classes)
        if self._text is None or self._text[0] != classes:
            _check_length(self.processor.tokenizer, classes,
                          self.model.config.text_config.max_position_embeddings)
            tok = self.processor.tokenizer(classes, padding=True, return_tensors="pt")
            emb = self.model.get_conditional_embeddings(
                len(classes), tok["input_ids"].to(self.device),
                tok["attention_mask"].to(self.device))
            self._text = (classes, emb)
            self.text_calls += 1
        px = self.processor.image_processor(images=np.ascontiguousarray(image[..., :3]),
                                            return_tensors="pt")["pixel_values"]
        px = px.to(self.device).expand(len(classes), -1, -1, -1)
        logits = self.model(pixel_values=px, conditional_embeddings=self._text[1]).logits
        logits = logits.reshape(len(classes), 1, *logits.shape[-2:])
        up = torch.nn.functional.interpolate(logits, size=image.shape[:2], mode="bilinear",
                                             align_corners=False)
        return up[:, 0].sigmoid().cpu().numpy()

    def segment_text(self, image: np.ndarray, classes: list[str]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """One mask per class ``(K, H, W)``: the pixels whose best class it is, above the
        threshold (masks do not overlap); score = mean probability inside."""
        p = self.probabilities(image, classes)
        best = p.argmax(0)
        masks = np.stack([(best == k) & (p[k] > self.threshold) for k in range(len(p))])
        scores = np.array([float(p[k][m].mean()) if m.any() else 0.0
                           for k, m in enumerate(masks)])
        return masks, scores


def owl_boxes(cxcywh: torch.Tensor, h: int, w: int, padded: bool) -> np.ndarray:
    """OWL boxes (cx, cy, w, h fractions) → xyxy pixels of an ``h x w`` image, clipped.
    OWLv2 (``padded``) saw the image padded to a square at the bottom/right: fractions of
    the longer side. OWL-ViT saw it stretched to a square: fractions of width and height."""
    sx, sy = (max(h, w), max(h, w)) if padded else (w, h)
    boxes = _corners(cxcywh) * torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
    boxes = boxes.cpu().numpy().astype(np.float64)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return boxes


def _corners(cxcywh: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = cxcywh.float().unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
