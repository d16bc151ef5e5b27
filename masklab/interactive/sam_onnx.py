"""The prompt decoder of a SAM-family model (SAM, SAM 2.1, EdgeTAM) as one ONNX graph, for
decoding clicks where the image's embedding already is (the annotation app's browser, with
onnxruntime-web; or any ONNX Runtime).

Inputs (one object's prompts on one image):

- the image embedding(s), float32, as ``SamBackend.set_image`` computes them
  (``embedding_0``: SAM's (1, C, h, w); SAM 2 / EdgeTAM: the two high-resolution feature maps
  then the image embedding, ``embedding_0..2``);
- ``coords`` (1, n, 2) float32: points in the model's input frame (image pixels times
  ``frame_scale``), and ``labels`` (1, n) int64: 1 object, 0 background, 2 / 3 a box's
  top-left / bottom-right corner, -1 padding. The box and padding follow the family's rule
  (``prompt_tokens``): SAM adds a padding point only when there is no box; SAM 2 always ends
  with one;
- ``mask_input`` (1, 1, 4h, 4w) float32 logits and ``has_mask`` (1,) float32 (0 or 1): the
  previous mask as a prompt;
- ``orig_size`` (2,) int64: the image's (height, width).

Outputs: ``masks`` (1, K, H, W) uint8 (0 / 1, the processor's post-processing: bilinear to the
image size, threshold 0), ``iou`` (1, K), ``low_res`` (1, K, 4h, 4w) logits (the next
prompt's ``mask_input``). K = 3 (whole, part, sub-part) with ``multimask``, else 1.

The graph runs the model's own modules (positional encoding, prompt embeddings, mask decoder)
on its weights, so it computes what ``SamBackend.predict`` does; ``check_decoder`` compares
them on given prompts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FAMILIES = ("sam", "sam2", "edgetam")


def _point_weights(prompt_encoder) -> torch.Tensor:
    """The 4 label embeddings (negative, positive, box corners) as one (4, C) tensor."""
    pe = prompt_encoder.point_embed
    if isinstance(pe, torch.nn.ModuleList):  # SAM: one Embedding(1, C) per label
        return torch.cat([e.weight for e in pe], 0)
    return pe.weight  # SAM 2: Embedding(4, C)


class PromptDecoder(torch.nn.Module):
    """Prompt encoder + mask decoder + post-processing of a transformers SAM-family model."""

    def __init__(self, model, family: str, multimask: bool):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"no ONNX prompt decoder for {family!r} (one of {FAMILIES})")
        self.model, self.family, self.multimask = model, family, bool(multimask)
        pe = model.prompt_encoder
        self.input_size = int(pe.input_image_size)
        with torch.no_grad():
            self.register_buffer("image_pe", model.get_image_wide_positional_embeddings()
                                 .detach().clone(), persistent=False)
            self.register_buffer("label_w", _point_weights(pe).detach().clone(),
                                 persistent=False)

    def forward(self, *args):
        *embeddings, coords, labels, mask_input, has_mask, orig_size = args
        pe = self.model.prompt_encoder
        pts = (coords + 0.5)[:, None]  # (1, 1, n, 2), the pixel's centre
        sparse = pe.shared_embedding(pts, (self.input_size, self.input_size))
        lab = labels[:, None, :, None]
        sparse = torch.where(lab == -1, pe.not_a_point_embed.weight, sparse)
        sparse = sparse + self.label_w[labels.clamp(min=0)][:, None] * (lab >= 0).to(
            sparse.dtype)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has_mask.reshape(1, 1, 1, 1) * pe.mask_embed(mask_input) + \
            (1 - has_mask.reshape(1, 1, 1, 1)) * no_mask
        if self.family == "sam":
            low, iou = self.model.mask_decoder(
                image_embeddings=embeddings[0], image_positional_embeddings=self.image_pe,
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=self.multimask)[:2]
        else:
            low, iou = self.model.mask_decoder(
                image_embeddings=embeddings[-1], image_positional_embeddings=self.image_pe,
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=self.multimask,
                high_resolution_features=list(embeddings[:-1]))[:2]
        return self._post(low[:, 0], iou[:, 0], orig_size)  # (1, K, h, w), (1, K)

    def _post(self, low, iou, orig_size):
        """Low-res logits → masks at the image's size, as the family's processor does."""
        size = orig_size.to(torch.int64)
        h, w = size[0], size[1]
        x = low
        if self.family == "sam":  # to the padded square, crop the resized image, to the image
            s = self.input_size
            x = F.interpolate(x, (s, s), mode="bilinear", align_corners=False)
            scale = s / torch.maximum(h, w).to(torch.float32)
            nh = torch.floor(h.to(torch.float32) * scale + 0.5).to(torch.int64)
            nw = torch.floor(w.to(torch.float32) * scale + 0.5).to(torch.int64)
            x = x[..., :nh, :nw]
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return (x > 0).to(torch.uint8), iou, low


class ImageSide(torch.nn.Module):
    """The per-image part of ``FastPromptDecoder``, computed once per image: the image tokens
    with the no-mask prompt and the first block's projections of them (``keys0``,
    ``proj0``), and for SAM 2 / EdgeTAM the high-resolution features in the upscaling's
    blocked order (``s1``, ``s0``); also the image embedding itself (for mask prompts)."""

    def __init__(self, model, fast):
        super().__init__()
        self.model, self.fast = model, fast

    def forward(self, *embeddings):
        f = self.fast
        last = embeddings[-1]
        no_mask = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        keys = (last + no_mask).flatten(2)[0].t()
        proj = torch.addmm(f.block_c[0], keys, f.block_w[0].t())
        if not f.sam2:
            return last, keys, proj
        return (last, f._blocked(embeddings[1], 1, f.up1_b),
                f._blocked(embeddings[0], 2, f.up2_b).view(-1, 4 * f.c2), keys, proj)


def image_outputs(family: str) -> tuple[str, ...]:
    """``ImageSide``'s outputs, by name (the prompt graphs take them by these names)."""
    return ("image_embedding", "keys0", "proj0") if family == "sam" else \
        ("image_embedding", "s1", "s0", "keys0", "proj0")


class FastPromptDecoder(PromptDecoder):
    """The same function as ``PromptDecoder`` computed as masklab's re-composed decoder does
    (``sam_decoder.FastSamDecoder``: fused projections, blocked upscaling, attention with the
    output projection folded in), on ``ImageSide``'s outputs. Without a mask prompt
    (``with_mask`` False) the first block's image-side projections come precomputed; with one
    they are made from the image embedding and the mask's dense prompt."""

    def __init__(self, model, family: str, multimask: bool, with_mask: bool = False):
        super().__init__(model, family, multimask)
        from masklab.interactive.sam_decoder import FastSamDecoder

        self.fast = FastSamDecoder(model, family)
        self.with_mask = with_mask

    def input_names(self) -> list[str]:
        image = ["image_embedding"] if self.with_mask else ["keys0", "proj0"]
        if self.family != "sam":
            image += ["s1", "s0"]
        prompt = ["coords", "labels"] + (["mask_input"] if self.with_mask else [])
        return [*image, *prompt, "orig_size"]

    def forward(self, *args):
        named = dict(zip(self.input_names(), args, strict=True))
        fast, md, pe = self.fast, self.model.mask_decoder, self.model.prompt_encoder
        coords, labels = named["coords"], named["labels"]
        pts = (coords + 0.5)[:, None]
        sparse = pe.shared_embedding(pts, (self.input_size, self.input_size))
        lab = labels[:, None, :, None]
        sparse = torch.where(lab == -1, pe.not_a_point_embed.weight, sparse)
        sparse = sparse + self.label_w[labels.clamp(min=0)][:, None] * (lab >= 0).to(
            sparse.dtype)
        image = {} if self.family == "sam" else {"s1": named["s1"], "s0": named["s0"]}
        if self.with_mask:
            dense = pe.mask_embed(named["mask_input"])
            keys = (named["image_embedding"] + dense).flatten(2)[0].t()
            proj = torch.addmm(fast.block_c[0], keys, fast.block_w[0].t())
        else:
            keys, proj = named["keys0"], named["proj0"]
        out_tokens = [md.iou_token.weight, md.mask_tokens.weight]
        if fast.sam2:
            out_tokens.insert(0, md.obj_score_token.weight)
        tokens = torch.cat([torch.cat(out_tokens)[None], sparse[0]], dim=1)
        first = 1 if fast.sam2 else 0
        queries, keys = fast.transformer(tokens, keys, proj)
        iou = md.iou_prediction_head(queries[:, first])
        mask_tokens = queries[:, first + 1:first + 1 + fast.num_mask_tokens]
        if self.multimask:
            sel = list(range(1, fast.num_mask_tokens))
        elif fast.sam2 and md.dynamic_multimask_via_stability:
            sel = list(range(fast.num_mask_tokens))
        else:
            sel = [0]
        hyper = torch.stack([md.output_hypernetworks_mlps[j](mask_tokens[:, j]) for j in sel],
                            dim=1)
        keys = keys if keys.dim() == 3 else keys[None]
        iou = iou[:, sel]
        if not self.multimask and len(sel) > 1:
            low, iou = fast._dynamic_masks(keys, image, hyper, iou)
        else:
            low = fast._masks(keys, image, hyper)
        return self._post(low, iou, named["orig_size"])


def frame_scale(backend, height: int, width: int) -> tuple[float, float]:
    """``(sx, sy)``: image pixels → the model's input frame, as ``SamBackend`` maps prompts."""
    s = int(backend.model.prompt_encoder.input_image_size)
    if backend.family in ("sam", "sam_hq"):
        f = s / max(height, width)
        return round(width * f) / width, round(height * f) / height
    return s / width, s / height


def mask_input_size(model) -> tuple[int, int]:
    """The low-resolution mask's (height, width): 4 x the embedding's grid."""
    cfg = model.config.prompt_encoder_config
    n = 4 * int(cfg.image_size // cfg.patch_size)
    return n, n


def decoder_info(backend) -> dict:
    """What the browser needs to drive the exported graph."""
    pe = backend.model.prompt_encoder
    return {"family": backend.family, "input_size": int(pe.input_image_size),
            "mask_input_size": list(mask_input_size(backend.model)),
            # SAM pads the points only without a box; SAM 2 always ends with a padding point
            "pad_with_box": backend.family != "sam"}


def graph_paths(path: str | os.PathLike) -> dict[str, Path]:
    """The files ``export_decoder`` writes beside ``path`` (the prompt graph without a mask
    prompt): ``image`` (once per image) and ``mask`` (prompts with a mask)."""
    path = Path(path)
    return {"prompt": path, "image": path.with_name(path.stem + ".image.onnx"),
            "mask": path.with_name(path.stem + ".mask.onnx")}


def export_decoder(backend, path: str | os.PathLike, *, multimask: bool = True,
                   opset: int = 17, fast: bool = True) -> Path:
    """Write ``backend``'s prompt decoder as ONNX (atomically). With ``fast`` (the default):
    three graphs (``graph_paths``) — the per-image graph (run once per image; its outputs are
    the others' image inputs), the prompt graph, and the prompt graph for prompts with a mask.
    ``fast=False``: one graph of transformers' composition, taking the embeddings themselves
    (``mask_input`` with ``has_mask`` 0 or 1)."""
    import warnings

    from masklab.io.atomic import atomic_path

    if backend.family not in FAMILIES:
        raise ValueError(f"{backend.family}: no ONNX prompt decoder (one of {FAMILIES})")
    model = backend.model
    h = w = int(model.prompt_encoder.input_image_size)
    emb = _example_embeddings(backend, h, w)
    mh, mw = mask_input_size(model)
    prompt = {"coords": torch.tensor([[[10.0, 20.0], [30.0, 40.0]]]),
              "labels": torch.tensor([[1, -1]], dtype=torch.int64),
              "mask_input": torch.zeros(1, 1, mh, mw), "has_mask": torch.zeros(1),
              "orig_size": torch.tensor([h, w], dtype=torch.int64)}
    paths = graph_paths(path)
    axes = {"coords": {1: "n"}, "labels": {1: "n"}, "masks": {2: "height", 3: "width"}}

    def export(module, inputs: dict, out: Path, outputs, dynamic=None) -> None:
        with atomic_path(out) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python-side values
            torch.onnx.export(module, tuple(inputs.values()), str(tmp), opset_version=opset,
                              dynamo=False, input_names=list(inputs), output_names=outputs,
                              dynamic_axes=dynamic)
        _optimize(out)

    outputs = ["masks", "iou", "low_res"]
    if not fast:
        dec = PromptDecoder(model, backend.family, multimask).eval()
        export(dec, {**{f"embedding_{i}": e for i, e in enumerate(emb)}, **prompt},
               paths["prompt"], outputs, axes)
        for extra in ("image", "mask"):  # none of an earlier fast export stays beside it
            paths[extra].unlink(missing_ok=True)
        return paths["prompt"]
    side = ImageSide(model, FastPromptDecoder(model, backend.family, multimask).fast).eval()
    names = image_outputs(backend.family)
    export(side, {f"embedding_{i}": e for i, e in enumerate(emb)}, paths["image"], list(names))
    with torch.no_grad():
        image = dict(zip(names, side(*emb), strict=True))
    for with_mask, out in ((False, paths["prompt"]), (True, paths["mask"])):
        dec = FastPromptDecoder(model, backend.family, multimask, with_mask).eval()
        inputs = {n: image.get(n, prompt.get(n)) for n in dec.input_names()}
        export(dec, inputs, out, outputs, axes)
    return paths["prompt"]


def _optimize(path: Path) -> None:
    """Rewrite an exported graph with ONNX Runtime's portable optimizations applied (constant
    folding, node fusions its WebAssembly build has too), so that onnxruntime-web loads it
    with its own optimizer off (its pass breaks on some traced Reshapes)."""
    try:
        import onnxruntime as ort
    except ImportError:  # the plain export still runs everywhere
        return
    from masklab.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(tmp)
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _example_embeddings(backend, h: int, w: int) -> list[torch.Tensor]:
    state = backend.set_image(np.zeros((h, w, 3), np.uint8))
    emb = state["embeddings"]
    return [e.float().cpu() for e in emb] if isinstance(emb, (list, tuple)) \
        else [emb.float().cpu()]


def prompt_tokens(points, labels, box, family: str, scale: tuple[float, float]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(coords (1, n, 2), labels (1, n))`` for the graph: clicks, the box's corners and the
    family's padding point, in the model's frame (the browser does the same in JS)."""
    sx, sy = scale
    pts = [[float(x) * sx, float(y) * sy] for x, y in (points if points is not None else [])]
    lab = [int(v) for v in (labels if labels is not None else [])]
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        pts += [[x0 * sx, y0 * sy], [x1 * sx, y1 * sy]]
        lab += [2, 3]
    if box is None or family != "sam":
        pts.append([0.0, 0.0])
        lab.append(-1)
    return (np.asarray(pts, np.float32).reshape(1, -1, 2),
            np.asarray(lab, np.int64).reshape(1, -1))


class OnnxPromptDecoder:
    """The exported graphs in ONNX Runtime (Python): the same calls the browser makes."""

    def __init__(self, path: str | os.PathLike, info: dict):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        paths = graph_paths(path)
        self.sessions = {k: ort.InferenceSession(str(p), opts,
                                                 providers=["CPUExecutionProvider"])
                         for k, p in paths.items() if p.is_file()}
        self.info = info
        self._cached = (None, None)

    def image_feeds(self, state: dict) -> dict:
        """The image inputs for ``state`` (the per-image graph's outputs), once per state."""
        if self._cached[0] is state:
            return self._cached[1]
        emb = state["embeddings"]
        embs = list(emb) if isinstance(emb, (list, tuple)) else [emb]
        feed = {f"embedding_{i}": e.float().cpu().numpy() for i, e in enumerate(embs)}
        if "image" in self.sessions:
            names = [o.name for o in self.sessions["image"].get_outputs()]
            feed = dict(zip(names, self.sessions["image"].run(None, feed), strict=True))
        self._cached = (state, feed)
        return feed

    def __call__(self, state: dict, *, points=None, labels=None, box=None,
                 mask_input: np.ndarray | None = None, scale=(1.0, 1.0)):
        coords, lab = prompt_tokens(points, labels, box, self.info["family"], scale)
        mh, mw = self.info["mask_input_size"]
        h, w = state["size"]
        session = self.sessions["mask" if mask_input is not None and "mask" in self.sessions
                                else "prompt"]
        values = dict(self.image_feeds(state))
        values.update(coords=coords, labels=lab,
                      mask_input=(np.zeros((1, 1, mh, mw), np.float32) if mask_input is None
                                  else np.asarray(mask_input, np.float32).reshape(1, 1, mh,
                                                                                  mw)),
                      has_mask=np.array([0.0 if mask_input is None else 1.0], np.float32),
                      orig_size=np.array([h, w], np.int64))
        feed = {i.name: values[i.name] for i in session.get_inputs()}
        masks, iou, low = session.run(None, feed)
        return masks[0].astype(bool), iou[0], low[0]


def check_decoder(backend, path: str | os.PathLike, image: np.ndarray, *,
                  multimask: bool = True, seed: int = 0) -> dict:
    """The exported graph against ``backend.predict`` on one image: clicks, a box, clicks
    with a box and a mask prompt at seeded random places. ``{"min_iou", "max_score_diff",
    "cases"}``; the graph is right when ``min_iou`` >= 0.99."""
    from masklab.types import Prompts

    h, w = image.shape[:2]
    state = backend.set_image(image)
    dec = OnnxPromptDecoder(path, decoder_info(backend))
    scale = frame_scale(backend, h, w)
    rng = np.random.default_rng(seed)

    def pt():
        return [float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(0.1, 0.9) * h)]

    x0, y0 = rng.uniform(0.05, 0.4) * w, rng.uniform(0.05, 0.4) * h
    box = [x0, y0, x0 + rng.uniform(0.3, 0.55) * w, y0 + rng.uniform(0.3, 0.55) * h]
    cases = [{"points": [pt()], "labels": [1]}, {"points": [pt(), pt()], "labels": [1, 0]},
             {"box": box}, {"points": [pt()], "labels": [1], "box": box}]
    ious, diffs = [], []
    for c in [*cases, "mask"]:
        if c == "mask":  # the first case's mask as a prompt, with a new click
            first = backend.predict(state, Prompts(points=np.array(cases[0]["points"]),
                                                   point_labels=np.array([1])),
                                    multimask=False)[0][0]
            c = {"points": [pt()], "labels": [1], "mask": first}
        prompts = Prompts(points=np.array(c.get("points", np.zeros((0, 2))), float)
                          .reshape(-1, 2), point_labels=np.array(c.get("labels", []), int),
                          box=None if "box" not in c else np.array(c["box"], float),
                          mask=c.get("mask"))
        ref, ref_s, _ = backend.predict(state, prompts, multimask=multimask)
        mask_input = None
        if "mask" in c:
            mask_input = backend._mask_prompt(state, c["mask"]).numpy()
        got, s, _ = dec(state, points=c.get("points"), labels=c.get("labels"),
                        box=c.get("box"), mask_input=mask_input, scale=scale)
        order = np.argsort(-s, kind="stable")
        got, s = got[order], s[order]
        for a, b in zip(got, ref, strict=True):
            union = (a | b).sum()
            ious.append(1.0 if union == 0 else float((a & b).sum() / union))
        diffs.append(float(np.abs(s - ref_s).max()))
    return {"min_iou": min(ious), "max_score_diff": max(diffs), "cases": len(cases) + 1}
