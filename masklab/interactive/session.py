"""One image, one backend, many prompts: the promptable-segmentation session.

    s = Session(image, backend="grabcut")            # or "sam-vit-b", a SAM folder, ...
    masks = s.predict(box=[10, 20, 200, 180])        # explicit prompts -> Masks
    s.click(120, 90)                                 # or build the prompt click by click
    s.click(40, 40, positive=False)
    s.undo(); s.redo()

The image embedding (SAM) or per-image state (superpixels, ...) is computed once, at the
first prediction, and reused. ``predict(..., use_previous=True)`` feeds the last low-res
logits back to SAM models as a mask prompt. The click-by-click state (points, box,
scribbles) has undo/redo.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np

from masklab.types import Masks, Prompts
from masklab.types.prompts import Scribble

_log = logging.getLogger(__name__)

SAM_BACKENDS = {  # backend name -> weights source; "sam" is the default SAM-family model
    "sam": "hf/sam2.1-hiera-tiny",
    "sam-vit-b": "hf/sam-vit-base", "sam-vit-l": "hf/sam-vit-large",
    "sam-vit-h": "hf/sam-vit-huge", "sam-hq-vit-b": "hf/sam-hq-vit-base",
    "sam2.1-tiny": "hf/sam2.1-hiera-tiny", "sam2.1-small": "hf/sam2.1-hiera-small",
    "sam2.1-base-plus": "hf/sam2.1-hiera-base-plus", "sam2.1-large": "hf/sam2.1-hiera-large",
    "edgetam": "hf/edgetam",
}


def list_backends() -> list[str]:
    from masklab.interactive.classical import CLASSICAL

    return [*CLASSICAL, *SAM_BACKENDS]


def make_backend(backend, *, device: str = "cpu", **options):
    """A backend object from a name (classical or SAM family), a local SAM folder, or an
    object with ``set_image`` and ``predict`` (returned as is)."""
    from pathlib import Path

    from masklab.errors import InputError
    from masklab.interactive.classical import CLASSICAL

    if not isinstance(backend, (str, Path)):
        return backend
    name = str(backend)
    if name in CLASSICAL:
        return CLASSICAL[name](**options)
    from masklab.interactive.sam import SamBackend

    if name in SAM_BACKENDS:
        return SamBackend(SAM_BACKENDS[name], device=device, name=name, **options)
    if Path(name).is_dir():
        return SamBackend(Path(name), device=device, name=Path(name).name, **options)
    raise InputError(f"unknown backend {name!r}; one of {', '.join(list_backends())} "
                     "or a SAM checkpoint folder")


class Session:
    """Promptable segmentation of one image (see the module docstring)."""

    def __init__(self, image: np.ndarray, backend="grabcut", *, device: str = "cpu",
                 **options):
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype}")
        self.image = image[..., :3]
        self.backend = make_backend(backend, device=device, **options)
        self._state = None
        self.embed_seconds = 0.0
        self.last_logits = None
        self.prompts = Prompts()  # the click-by-click state
        self._undo: list[Prompts] = []
        self._redo: list[Prompts] = []

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def _ensure_state(self):
        if self._state is None:
            t = time.perf_counter()
            self._state = self.backend.set_image(self.image)
            self.embed_seconds = time.perf_counter() - t
        return self._state

    def predict(self, points=None, point_labels=None, box=None, mask=None, scribbles=None,
                *, prompts: Prompts | None = None, multimask: bool = False,
                use_previous: bool = False) -> Masks:
        """Masks for the given prompts (or ``prompts``), best predicted IoU first; ``scores``
        are the backend's predicted IoU (1.0 for classical backends)."""
        if prompts is None:
            prompts = Prompts(points=points if points is not None else np.zeros((0, 2)),
                              point_labels=point_labels if point_labels is not None
                              else np.zeros(0, np.int64),
                              box=box, mask=mask, scribbles=list(scribbles or []))
        if prompts.is_empty():
            raise ValueError("no prompt given")
        prompts, notes = prompts.fit_to(*self.size)
        for note in notes:
            _log.warning(note)
        state = self._ensure_state()
        previous = self.last_logits[0] if use_previous and self.last_logits is not None \
            else None
        masks, scores, logits = self.backend.predict(state, prompts, multimask=multimask,
                                                     previous=previous)
        self.last_logits = logits
        return Masks(np.asarray(masks, bool).reshape(-1, *self.size),
                     scores=np.asarray(scores, np.float64))

    # --- click-by-click state with undo/redo -------------------------------------------
    def _push(self, new: Prompts) -> Masks:
        self._undo.append(self.prompts)
        self._redo.clear()
        self.prompts = new
        return self.predict(prompts=new) if not new.is_empty() else \
            Masks(np.zeros((0, *self.size), bool))

    def click(self, x: float, y: float, positive: bool = True) -> Masks:
        p = copy.deepcopy(self.prompts)
        p.points = np.vstack([p.points, [[x, y]]])
        p.point_labels = np.append(p.point_labels, 1 if positive else 0)
        return self._push(p)

    def set_box(self, box) -> Masks:
        p = copy.deepcopy(self.prompts)
        p.box = np.asarray(box, np.float64)
        return self._push(Prompts(p.points, p.point_labels, p.box, p.mask, p.scribbles))

    def scribble(self, points, width: float = 5.0, positive: bool = True) -> Masks:
        p = copy.deepcopy(self.prompts)
        p.scribbles.append(Scribble(np.asarray(points, np.float64), width, positive))
        return self._push(p)

    def undo(self) -> Masks | None:
        if not self._undo:
            return None
        self._redo.append(self.prompts)
        self.prompts = self._undo.pop()
        return None if self.prompts.is_empty() else self.predict(prompts=self.prompts)

    def redo(self) -> Masks | None:
        if not self._redo:
            return None
        self._undo.append(self.prompts)
        self.prompts = self._redo.pop()
        return self.predict(prompts=self.prompts)

    def reset(self) -> None:
        self._undo.append(self.prompts)
        self._redo.clear()
        self.prompts = Prompts()
        self.last_logits = None
