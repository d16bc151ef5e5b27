"""SAM 2.1 and EdgeTAM video backends: transformers' video models with a bounded memory bank.

The model is transformers' own (``Sam2VideoModel`` or ``EdgeTamVideoModel``): its per-frame
``forward`` reads an object's memory from an inference session by frame index — the
conditioning frame (the prompted frame), the masks' memory features of the last
``num_maskmem - 1`` frames and the object pointers of the last
``max_object_pointers_in_encoder - 1`` frames in the direction of travel. Transformers keeps
every frame's pixels, masks and memory features for the whole video, so memory grows with
every frame. Here each chain (an object, its prompted frame and a direction) has its own
session and, after each frame, everything no later frame of that chain reads is dropped:
frames past the pointer window entirely, and past the mask-memory window all but their
object pointer; pixels are decoded per frame and the image features are computed once per
frame for all chains. What the model reads is unchanged, so the masks equal transformers'
unpruned propagation in the same direction from the same prompt (tested on tiny random
weights); memory is bounded by (objects × prompted frames × window).

A chain reads only its own frames: frames before a prompt never depend on frames after it
(transformers' second direction reads the first one's frames near the prompt too, so
compare each direction with a fresh transformers session).

Prompts: points (with labels), a box, or a mask (then it is the object's mask on that frame,
as in SAM 2). Points and a box go to the decoder together; with points a mask given beside
them (a correction on a propagated mask) is not used, as in SAM 2's video predictor.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from masklab.errors import WeightsError
from masklab.types import Prompts

VIDEO_FAMILIES = {  # model_type in config.json -> (model class, inference session class)
    "sam2_video": ("Sam2VideoModel", "Sam2VideoInferenceSession"),
    "sam2": ("Sam2VideoModel", "Sam2VideoInferenceSession"),
    "edgetam_video": ("EdgeTamVideoModel", "EdgeTamVideoInferenceSession"),
    "edgetam": ("EdgeTamVideoModel", "EdgeTamVideoInferenceSession"),
}
VIDEO_WEIGHTS = {"sam": "hf/sam2.1-hiera-tiny", "sam2.1-tiny": "hf/sam2.1-hiera-tiny",
                 "sam2.1-small": "hf/sam2.1-hiera-small",
                 "sam2.1-base-plus": "hf/sam2.1-hiera-base-plus",
                 "sam2.1-large": "hf/sam2.1-hiera-large", "edgetam": "hf/edgetam"}


def _family(folder: Path) -> str:
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise WeightsError(f"{folder}: no config.json (not a transformers checkpoint)")
    kind = json.loads(cfg.read_text()).get("model_type")
    if kind not in VIDEO_FAMILIES:
        raise WeightsError(f"{folder}: model type {kind!r} is not a SAM 2 / EdgeTAM video "
                           f"model ({', '.join(VIDEO_FAMILIES)})")
    return kind


class _Chain:
    """One object propagated from one prompted frame in one direction."""

    def __init__(self, session, cond: dict, anchor: int, direction: int):
        self.session, self.cond, self.anchor, self.direction = session, cond, anchor, direction
        self.last = anchor  # the last frame computed


class SamVideoTracker:
    """A ``VideoSession`` backend over SAM 2.1 or EdgeTAM (``source``: a weights name such as
    ``hf/sam2.1-hiera-tiny`` or a local transformers folder)."""

    stateful = True  # the session passes frame indices, anchors and directions

    def __init__(self, source: str | Path = "hf/sam2.1-hiera-tiny", device: str = "cpu",
                 max_chains: int = 64):
        try:
            import transformers
        except ImportError:
            raise WeightsError("SAM video backends need transformers: pip install "
                               "'masklab[hf]'") from None
        from masklab.weights import resolve

        folder = Path(resolve(source))
        self.family = _family(folder)
        model_name, session_name = VIDEO_FAMILIES[self.family]
        self.model = getattr(transformers, model_name).from_pretrained(str(folder)).to(
            device).eval()
        from masklab.models.positions import cache_position_encodings

        cache_position_encodings(self.model)  # once per shape, not once per frame and level
        session_cls = getattr(transformers, session_name)
        # the model reads num_frames for the pointer window; pruned sessions hold one frame
        self._session_cls = type("BoundedSession", (session_cls,), {
            "num_frames": property(lambda s: s.total_frames)})
        has_proc = (folder / "processor_config.json").is_file() or \
            (folder / "preprocessor_config.json").is_file()
        self.processor = transformers.Sam2VideoProcessor.from_pretrained(str(folder)) \
            if has_proc else transformers.Sam2VideoProcessor(
                image_processor=transformers.Sam2ImageProcessor(),
                video_processor=transformers.Sam2VideoVideoProcessor())
        self.device = device
        cfg = self.model.config
        self.mask_window = max(0, cfg.num_maskmem - 2)  # frames behind the next one it reads
        self.pointer_window = max(0, cfg.max_object_pointers_in_encoder - 2)
        self.max_chains = max_chains
        self._chains: OrderedDict[tuple, _Chain] = OrderedDict()
        self._features: tuple[int, dict] | None = None  # frame -> image features, one frame
        self._cache = None

    # --- what the session calls --------------------------------------------------------
    @torch.inference_mode()
    def prompt(self, frames, t: int, prompts: Prompts) -> tuple[np.ndarray, dict]:
        """The object's mask on prompted frame ``t`` and its conditioning output (what
        later frames read), from points/box or a mask."""
        h, w = frames.size
        s = self._new_session(len(frames), h, w)
        self._set_features(s, t, frames[t])
        if prompts.is_mask_only():
            self.processor.add_inputs_to_inference_session(
                s, frame_idx=t, obj_ids=1, input_masks=prompts.mask.astype(bool))
        else:
            pts, labels = prompts.points, prompts.point_labels
            for scr in prompts.scribbles:  # points along each stroke, as the image backend
                p = scr.sample_points(5)
                pts = np.vstack([pts, p])
                labels = np.concatenate([labels, np.full(len(p), int(scr.positive))])
            kw = {}
            if len(pts):
                kw["input_points"] = [[[[float(x), float(y)] for x, y in pts]]]
                kw["input_labels"] = [[[int(v) for v in labels]]]
            if prompts.box is not None:
                kw["input_boxes"] = [[[float(v) for v in prompts.box]]]
            self.processor.add_inputs_to_inference_session(s, frame_idx=t, obj_ids=1,
                                                           original_size=(h, w), **kw)
        out = self.model(inference_session=s, frame_idx=t)
        cond = s.output_dict_per_obj[0]["cond_frame_outputs"][t]
        return self._mask(out.pred_masks[0:1], h, w), cond

    @torch.inference_mode()
    def track(self, frames, t: int, jobs: dict[int, tuple[int, int, dict]]
              ) -> dict[int, np.ndarray]:
        """Masks on frame ``t`` for ``{obj: (anchor, direction, cond)}``: each object's chain
        from its anchor continues (or restarts, replaying from the anchor, when it did not
        end on the frame before ``t``)."""
        h, w = frames.size
        out = {}
        for obj, (anchor, d, cond) in jobs.items():
            key = (obj, anchor, d)
            chain = self._chains.get(key)
            if chain is None or chain.cond is not cond or (chain.last - (t - d)) * d > 0:
                chain = _Chain(self._new_session(len(frames), h, w), cond, anchor, d)
                chain.session.obj_id_to_idx(1)
                chain.session.output_dict_per_obj[0]["cond_frame_outputs"][anchor] = cond
                self._chains[key] = chain
            self._chains.move_to_end(key)
            while chain.last != t - d:  # replay the frames the chain has not seen
                self._step(chain, frames, chain.last + d)
            out[obj] = self._mask(self._step(chain, frames, t), h, w)
        while len(self._chains) > self.max_chains:
            self._chains.popitem(last=False)
        return out

    def forget(self) -> None:
        """Drop every chain (their memory); the next ``track`` replays from the anchors."""
        self._chains.clear()

    # --- internals ---------------------------------------------------------------------
    def _new_session(self, n: int, h: int, w: int):
        s = self._session_cls(video_height=h, video_width=w, inference_device=self.device,
                              inference_state_device=self.device,
                              video_storage_device=self.device, dtype=torch.float32)
        s.total_frames = n
        if self._cache is None:
            self._cache = s.cache
        s.cache = self._cache  # one image-feature cache for all chains
        return s

    def _set_features(self, session, t: int, image: np.ndarray) -> None:
        if self._features is None or self._features[0] != t:
            pixels = self.processor.video_processor(
                videos=[np.ascontiguousarray(image[..., :3])[None]], return_tensors="pt"
            ).pixel_values_videos[0].to(self.device)
            got = self.model.get_image_features(pixels[0:1], return_dict=True)
            self._features = (t, {"vision_feats": got.fpn_hidden_states,
                                  "vision_pos_embeds": got.fpn_position_encoding})
        if session.cache.get_vision_features(t) is None:
            session.cache.cache_vision_features(t, self._features[1])

    def _step(self, chain: _Chain, frames, t: int) -> torch.Tensor:
        s = chain.session
        self._set_features(s, t, frames[t])
        got = self.model(inference_session=s, frame_idx=t, reverse=chain.direction < 0)
        chain.last = t
        self._prune(chain, t)
        return got.pred_masks[0:1]

    def _prune(self, chain: _Chain, t: int) -> None:
        """Drop what no later frame of the chain reads (see the module docstring)."""
        d = chain.direction
        s = chain.session
        outputs = s.output_dict_per_obj[0]["non_cond_frame_outputs"]
        for k in list(outputs):
            behind = (t - k) * d
            if behind > self.pointer_window:
                del outputs[k]
            elif behind > self.mask_window:
                outputs[k] = {"object_pointer": outputs[k]["object_pointer"]}
            else:
                for key in ("pred_masks", "high_res_masks"):
                    outputs[k].pop(key, None)
        s.frames_tracked_per_obj[0].clear()

    def _mask(self, low_res: torch.Tensor, h: int, w: int) -> np.ndarray:
        m = self.processor.post_process_masks([low_res.float().cpu()], original_sizes=[[h, w]],
                                              binarize=True)[0]
        return m[0, 0].numpy()

