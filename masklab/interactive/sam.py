"""Segment Anything family through transformers: SAM (ViT-B/L/H), SAM-HQ, SAM 2.1, EdgeTAM.

The image encoder runs once per image (``set_image``); each prompt then only runs the prompt
encoder and the mask decoder on the cached embedding. Prompts (points, box, a previous
low-resolution mask) are mapped to the model's 1024-pixel frame exactly as the family's
processor does, and masks come back through the processor's ``post_process_masks``. With
``multimask`` the decoder's three masks (whole / part / subpart) are returned best predicted
IoU first; otherwise its single output mask. SAM, SAM 2.1 and EdgeTAM prompts run through
masklab's composition of the decoder (``sam_decoder.FastSamDecoder``, same weights, same
function); SAM-HQ and ``decoder="onnx"`` use transformers' decoder.
"""

from __future__ import annotations

import numpy as np
import torch

from masklab.errors import WeightsError
from masklab.interactive.sam_decoder import FAMILIES as FAST_FAMILIES
from masklab.interactive.sam_decoder import FastSamDecoder
from masklab.types import Prompts

SAM_FAMILIES = {
    # model_type: (model class, processor class)
    "sam": ("SamModel", "SamProcessor"),
    "sam_hq": ("SamHQModel", "SamHQProcessor"),
    "sam2": ("Sam2Model", "Sam2Processor"),
    "edgetam": ("EdgeTamModel", "Sam2Processor"),
}


def _family(folder) -> str:
    import json
    from pathlib import Path

    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        raise WeightsError(f"{folder}: no config.json (not a transformers checkpoint)")
    kind = json.loads(cfg.read_text()).get("model_type")
    # the hub's SAM 2.1 and EdgeTAM checkpoints are video models; their image part is the
    # image model (same weight names), which loads from them
    kind = {"sam2_video": "sam2", "edgetam_video": "edgetam"}.get(kind, kind)
    if kind not in SAM_FAMILIES:
        raise WeightsError(f"{folder}: model type {kind!r} is not one of "
                           f"{', '.join(SAM_FAMILIES)}")
    return kind


class SamBackend:
    """A SAM-family model + processor; ``source``: a weights name or a local folder."""

    def __init__(self, source, device: str = "cpu", name: str = "sam", decoder: str = "torch",
                 precision: str = "fp32"):
        try:
            import transformers
        except ImportError:
            raise WeightsError("SAM backends need transformers: pip install 'masklab[hf]'") \
                from None
        from masklab.weights import resolve

        folder = resolve(source)
        self.family = _family(folder)
        model_cls, proc_cls = (getattr(transformers, n) for n in SAM_FAMILIES[self.family])
        self.model = model_cls.from_pretrained(str(folder)).to(device).eval()
        from masklab.models.positions import cache_position_encodings

        cache_position_encodings(self.model)  # once per shape, not once per image and level
        self.processor = proc_cls.from_pretrained(str(folder)) \
            if _has_processor(folder) else proc_cls(
                image_processor=_default_image_processor(self.family))
        self.device, self.name = device, name
        if decoder not in ("torch", "onnx"):
            raise ValueError(f"decoder must be 'torch' or 'onnx', got {decoder!r}")
        self.decoder = decoder
        self._fast = None
        if decoder == "torch" and self.family in FAST_FAMILIES:
            self._fast = FastSamDecoder(self.model, self.family)
        from masklab.sysinfo import precision_for

        self.precision = precision_for(precision, device)
        self._onnx: dict[bool, object] = {}  # multimask -> ONNX Runtime session
        self._onnx_dir = None

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> dict:
        inputs = self.processor(images=np.ascontiguousarray(image[..., :3]),
                                return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device)
        with self._autocast():  # bf16: the image encoder's products too; fp32 embeddings out
            emb = self.model.get_image_embeddings(pixel_values)
        emb = _float(emb)
        state = {"embeddings": emb, "original_sizes": inputs["original_sizes"],
                 "size": image.shape[:2], "input_size": tuple(pixel_values.shape[-2:])}
        if "reshaped_input_sizes" in inputs:
            state["reshaped_input_sizes"] = inputs["reshaped_input_sizes"]
        return state

    def _frame(self, state: dict) -> tuple[float, float]:
        """Scale factors (x, y) from image pixels to the model's input frame."""
        h, w = state["size"]
        if "reshaped_input_sizes" in state:  # SAM: longest side resized to 1024
            nh, nw = (int(v) for v in state["reshaped_input_sizes"][0])
        else:  # SAM 2, EdgeTAM: the image is resized to the (square) input, no padding
            nh, nw = state["input_size"]
        return nw / w, nh / h

    @torch.no_grad()
    def predict(self, state: dict, prompts: Prompts, multimask: bool = True, previous=None
                ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """``(masks (K, H, W) bool, predicted IoU (K,), low-res logits (K, 256, 256))``."""
        sx, sy = self._frame(state)
        kw: dict = {"multimask_output": bool(multimask)}
        emb = state["embeddings"]
        if isinstance(emb, (tuple, list)) and self.family == "sam_hq":
            kw["image_embeddings"], kw["intermediate_embeddings"] = emb[0], emb[1]
        else:
            kw["image_embeddings"] = emb
        points, labels = prompts.points, prompts.point_labels
        for scr in prompts.scribbles:  # SAM takes points: a few along each stroke
            p = scr.sample_points(5)
            points = np.vstack([points, p])
            labels = np.concatenate([labels, np.full(len(p), int(scr.positive))])
        if len(points):
            pts = points * np.array([sx, sy])
            kw["input_points"] = torch.tensor(pts, dtype=torch.float32,
                                              device=self.device)[None, None]
            kw["input_labels"] = torch.tensor(labels, dtype=torch.int64,
                                              device=self.device)[None, None]
        if prompts.box is not None:
            box = prompts.box * np.array([sx, sy, sx, sy])
            kw["input_boxes"] = torch.tensor(box, dtype=torch.float32,
                                             device=self.device)[None, None]
        if previous is None and prompts.mask is not None:
            previous = self._mask_prompt(state, prompts.mask)
        if previous is not None:
            kw["input_masks"] = torch.as_tensor(previous, dtype=torch.float32,
                                                device=self.device).reshape(1, 1, *previous
                                                                            .shape[-2:])
        if self.decoder == "onnx" and set(kw) == {"multimask_output", "image_embeddings",
                                                  "input_points", "input_labels"}:
            pred_masks, iou_scores = self._onnx_decode(kw)  # clicks: the fast path
        elif self._fast is not None:  # one prompt: the re-composed decoder
            with self._autocast():
                pred_masks, iou_scores = self._fast(
                    state, kw.get("input_points"), kw.get("input_labels"),
                    kw.get("input_boxes"), kw.get("input_masks"), kw["multimask_output"])
            pred_masks, iou_scores = pred_masks.float(), iou_scores.float()
        else:
            with self._autocast():
                out = self.model(**kw)
            pred_masks, iou_scores = out.pred_masks.float(), out.iou_scores.float()
        logits = pred_masks[0, 0]  # (K, 256, 256)
        scores = iou_scores[0, 0].float().cpu().numpy()
        post = {"original_sizes": state["original_sizes"]}
        if "reshaped_input_sizes" in state:
            post["reshaped_input_sizes"] = state["reshaped_input_sizes"]
        masks = self.processor.post_process_masks(pred_masks.cpu(), **post,
                                                  binarize=True)[0][0].numpy().astype(bool)
        order = np.argsort(-scores, kind="stable")
        return masks[order], scores[order], logits[order]


    def _onnx_decode(self, kw: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder + mask decoder in ONNX Runtime (exported once per backend and
        multimask setting, any number of points)."""
        multi = kw["multimask_output"]
        emb = kw["image_embeddings"]
        embs = list(emb) if isinstance(emb, (list, tuple)) else [emb]
        names = [f"embedding_{i}" for i in range(len(embs))]
        if multi not in self._onnx:
            import tempfile
            from pathlib import Path

            try:
                import onnxruntime as ort
            except ImportError:
                raise WeightsError("decoder='onnx' needs onnxruntime: "
                                   "pip install 'masklab[onnx]'") from None
            if self._onnx_dir is None:
                self._onnx_dir = tempfile.TemporaryDirectory(prefix="masklab-sam-")
            path = Path(self._onnx_dir.name) / f"decoder_{int(multi)}.onnx"
            wrapper = _Decoder(self.model, multi).eval()
            import warnings

            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python-side values
                torch.onnx.export(wrapper, (kw["input_points"], kw["input_labels"], *embs),
                                  str(path), input_names=["points", "labels", *names],
                                  output_names=["pred_masks", "iou_scores"],
                                  dynamic_axes={"points": {2: "n"}, "labels": {2: "n"}},
                                  opset_version=17, dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            self._onnx[multi] = ort.InferenceSession(str(path), opts,
                                                     providers=["CPUExecutionProvider"])
        feed = {"points": kw["input_points"].cpu().numpy(),
                "labels": kw["input_labels"].cpu().numpy(),
                **{n: e.cpu().numpy() for n, e in zip(names, embs, strict=True)}}
        masks, iou = self._onnx[multi].run(None, feed)
        return torch.from_numpy(masks), torch.from_numpy(iou)

    def _mask_prompt(self, state: dict, mask: np.ndarray) -> torch.Tensor:
        """A user's mask as the decoder's low-res mask input: resized into the model frame
        (1/4 of the padded input), +-10 logits."""
        import cv2

        low = 4 * int(getattr(self.model.config.prompt_encoder_config, "image_size", 1024) //
                      getattr(self.model.config.prompt_encoder_config, "patch_size", 16))
        sx, sy = self._frame(state)
        h, w = state["size"]
        nw, nh = max(1, round(w * sx / 4)), max(1, round(h * sy / 4))
        small = cv2.resize(np.asarray(mask).astype(np.float32), (nw, nh),
                           interpolation=cv2.INTER_LINEAR) > 0.5
        out = np.full((low, low), -10.0, np.float32)
        out[:min(nh, low), :min(nw, low)] = np.where(small[:low, :low], 10.0, -10.0)
        return torch.from_numpy(out)

    def _autocast(self):
        """bfloat16 matrix products in the image encoder, prompt encoder and mask decoder
        with ``precision="bf16"`` (CPUs with AVX512-BF16 or AMX, and GPUs); fp32 otherwise."""
        import contextlib

        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)

    @torch.no_grad()
    def upscale(self, state: dict, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res mask logits ``(K, h, w)`` → logits at the image's size ``(K, H, W)``,
        exactly as the family's processor does it."""
        post = {"original_sizes": state["original_sizes"]}
        if "reshaped_input_sizes" in state:
            post["reshaped_input_sizes"] = state["reshaped_input_sizes"]
        return self.processor.post_process_masks(low_res[None, None].cpu(), **post,
                                                 binarize=False)[0][0]

    @torch.no_grad()
    def predict_boxes(self, state: dict, boxes: np.ndarray, batch: int = 64
                      ) -> tuple[np.ndarray, np.ndarray]:
        """One mask per box (SAM's single-mask output), the boxes decoded together in
        batches on the one image embedding: ``(masks (N, H, W) bool, predicted IoU (N,))``,
        each equal to ``predict`` with that box alone."""
        h, w = state["size"]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        masks, scores = np.zeros((len(boxes), h, w), bool), np.zeros(len(boxes))
        sx, sy = self._frame(state)
        emb = state["embeddings"]
        for i in range(0, len(boxes), batch):
            b = torch.tensor(boxes[i:i + batch] * np.array([sx, sy, sx, sy]),
                             dtype=torch.float32, device=self.device)[None]
            with self._autocast():
                if self._fast is not None:
                    low, iou = self._fast(state, boxes=b, multimask=False)
                else:
                    kw = {"input_boxes": b, "multimask_output": False}
                    if isinstance(emb, (tuple, list)) and self.family == "sam_hq":
                        kw["image_embeddings"], kw["intermediate_embeddings"] = emb
                    else:
                        kw["image_embeddings"] = emb
                    out = self.model(**kw)
                    low, iou = out.pred_masks, out.iou_scores
            low = low[0, :, 0].float()  # (n, 256, 256)
            post = {"original_sizes": state["original_sizes"]}
            if "reshaped_input_sizes" in state:
                post["reshaped_input_sizes"] = state["reshaped_input_sizes"]
            masks[i:i + len(low)] = self.processor.post_process_masks(
                low[None, :, None].cpu(), **post, binarize=True)[0][:, 0].numpy()
            scores[i:i + len(low)] = iou[0, :, 0].float().cpu().numpy()
        return masks, scores

    @torch.no_grad()
    def predict_points(self, state: dict, points: np.ndarray, batch: int = 64):
        """Each point alone as a positive prompt, in batches: yields ``(low-res logits
        (P, 3, h, w), predicted IoU (P, 3))`` per batch (SAM's automatic-mask inner loop)."""
        sx, sy = self._frame(state)
        emb = state["embeddings"]
        for i in range(0, len(points), batch):
            pts = points[i:i + batch] * np.array([sx, sy])
            kw = {"input_points": torch.tensor(pts, dtype=torch.float32,
                                               device=self.device)[None, :, None],
                  "input_labels": torch.ones((1, len(pts), 1), dtype=torch.int64,
                                             device=self.device),
                  "multimask_output": True}
            if isinstance(emb, (tuple, list)) and self.family == "sam_hq":
                kw["image_embeddings"], kw["intermediate_embeddings"] = emb[0], emb[1]
            else:
                kw["image_embeddings"] = emb
            with self._autocast():
                if self._fast is not None:
                    masks, iou = self._fast(state, kw["input_points"], kw["input_labels"],
                                            multimask=True)
                else:
                    out = self.model(**kw)
                    masks, iou = out.pred_masks, out.iou_scores
            yield masks[0].float(), iou[0].float().cpu()


class _Decoder(torch.nn.Module):
    """The promptable part of a SAM-family model with positional inputs, for ONNX export."""

    def __init__(self, model, multimask: bool):
        super().__init__()
        self.model, self.multimask = model, multimask

    def forward(self, points, labels, *embeddings):
        emb = list(embeddings) if len(embeddings) > 1 else embeddings[0]
        out = self.model(image_embeddings=emb, input_points=points, input_labels=labels,
                         multimask_output=self.multimask)
        return out.pred_masks, out.iou_scores


def _float(x):
    """float32 copies of a tensor or of (nested) lists of tensors (SAM-HQ: embedding +
    intermediate embeddings)."""
    return x.float() if isinstance(x, torch.Tensor) else [_float(e) for e in x]


def _default_image_processor(family: str):
    import transformers

    if family in ("sam", "sam_hq"):
        return transformers.SamImageProcessor()
    return transformers.Sam2ImageProcessor()


def _has_processor(folder) -> bool:
    """A saved (image) processor: ``preprocessor_config.json`` or transformers 5's
    ``processor_config.json``."""
    from pathlib import Path

    return any((Path(folder) / n).is_file()
               for n in ("preprocessor_config.json", "processor_config.json"))
