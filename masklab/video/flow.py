"""The ``flow`` video backend: no weights, the offline default.

Each object's mask is carried from frame to frame by dense optical flow — OpenCV's DIS
(Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016) or Farnebäck —
computed backwards (new frame → previous frame), so every pixel of the new frame looks up
where it came from and the warped mask has no holes. Flow alone drifts, so each frame is
then decided per pixel from three cues (``refine="colour"``, the default):

- where the object should be: the warped mask, blurred (σ = ``prior_sigma`` px) and read as
  a probability, as log-odds. Where the backward flow and the forward flow (previous → new)
  disagree (``consistency``; Sundaram et al., ECCV 2010) the pixel was hidden in the previous
  frame or the flow is wrong there — an occluder passing, a thin part, fast motion — and its
  prior is pulled half-way to 0.5, so the other cues decide it;
- what it looks like: colour histograms (16³ bins) of the object and of a band around it,
  learnt on the frames the user prompted (``appearance``), as a log-likelihood ratio
  weighted by ``colour_weight``;
- how it moves (``motion_weight``): the log-likelihood ratio of each pixel's flow under the
  motion of the object's core and under the motion of a band around it (robust Gaussians:
  median and MAD). Without it, background next to the object that the flow once carried
  into the mask (a curb behind a car, an audience behind a dancer) moves on as background
  but stays in the mask for good, since its colour alone rarely tells it apart. The ratio
  counts fully against a pixel that moves like the surroundings (down to −5) but little for
  one that moves like the object (at most ``motion_max`` = 1): spray thrown up by a surfer or
  a car's shadow moves with the object and would otherwise join it.

The options were chosen by leaving one sequence out on ten DAVIS-2016 sequences
(``bench/video_flow_loo.py``).

A pixel is the object where the sum is positive; connected regions that do not touch the
warped mask are dropped. When what the flow carried looks like the surroundings (mean log
ratio below −0.5) or nothing is left, the object has left the frame, is hidden or was lost:
its track is kept and each next frame is searched for a region with its colours and about
its size (``refind``), so it comes back under its own id. ``refine="grabcut"`` runs GrabCut
(Rother et al. 2004) on a crop around the warped mask instead, and ``refine="none"`` keeps
the warped mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_BINS = 16


@dataclass
class FlowOptions:
    flow: str = "dis"  # dis | farneback
    refine: str = "colour"  # colour | grabcut | none
    max_side: int = 854  # work size (long side) for the flow
    colour_weight: float = 0.5
    prior_sigma: float = 4.0
    consistency: bool = True  # forward–backward check: occluded pixels lose the flow prior
    motion_weight: float = 0.5  # weight of "moves like the object, not like around it"
    motion_max: float = 1.0  # cap on the motion cue's log ratio for the object (0: only removes)
    band: float = 0.08  # grabcut: uncertain band, fraction of the object size
    iterations: int = 2  # grabcut iterations per frame


@dataclass
class Appearance:
    """Colour histograms of an object (``fg``) and of its surroundings (``bg``)."""

    fg: np.ndarray
    bg: np.ndarray
    area: float = 0.0  # the object's pixel count, summed over the frames learnt from
    count: int = 1  # how many frames

    def __add__(self, other: Appearance) -> Appearance:
        return Appearance(self.fg + other.fg, self.bg + other.bg, self.area + other.area,
                          self.count + other.count)

    def log_ratio(self, image: np.ndarray) -> np.ndarray:
        """``log P(colour | object) − log P(colour | surroundings)`` per pixel."""
        n = _BINS ** 3
        pf = (self.fg + 1) / (self.fg.sum() + n)
        pb = (self.bg + 1) / (self.bg.sum() + n)
        return np.log(pf / pb).astype(np.float32)[_bin_index(image)]


def _bin_index(image: np.ndarray) -> np.ndarray:
    q = (image[..., :3] >> 4).astype(np.int32)  # 256 / 16 levels per channel
    return (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]


class FlowTracker:
    """Warps masks from one frame to the next (``step``) and refines them."""

    def __init__(self, **options):
        self.opt = FlowOptions(**options)
        if self.opt.flow not in ("dis", "farneback"):
            raise ValueError(f"flow must be 'dis' or 'farneback', got {self.opt.flow!r}")
        if self.opt.refine not in ("colour", "grabcut", "none"):
            raise ValueError(f"refine must be 'colour', 'grabcut' or 'none', got "
                             f"{self.opt.refine!r}")
        self._dis = None
        self._grid = None

    def appearance(self, image: np.ndarray, mask: np.ndarray) -> Appearance:
        """The colour model of the object ``mask`` shows on ``image``."""
        size = max(3, 2 * round(0.04 * max(mask.shape)) + 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        band = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
        idx = _bin_index(image)
        n = _BINS ** 3
        return Appearance(np.bincount(idx[mask], minlength=n).astype(np.float64),
                          np.bincount(idx[band], minlength=n).astype(np.float64),
                          float(mask.sum()))

    def flow(self, image: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """``(H, W, 2)`` float32 flow from ``image`` to ``previous`` (pixels at full size)."""
        h, w = image.shape[:2]
        f = min(1.0, self.opt.max_side / max(h, w))
        a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (image, previous))
        if f < 1.0:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        if self.opt.flow == "dis":
            if self._dis is None:
                self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            fl = self._dis.calc(a, b, None)
        else:
            fl = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
        if f < 1.0:
            fl = cv2.resize(fl, (w, h), interpolation=cv2.INTER_LINEAR) / f
        return fl

    def warp(self, mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """The previous frame's ``(H, W)`` mask carried onto the new frame, as a soft
        ``float32`` mask in [0, 1]."""
        gx, gy = self._pixel_grid(*mask.shape)
        return cv2.remap(mask.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _pixel_grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = np.meshgrid(np.arange(w, dtype=np.float32),
                                     np.arange(h, dtype=np.float32))
        return self._grid

    def consistent(self, backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
        """Where the flow from the new frame back (``backward``) and the flow from the
        previous frame forward agree: ``|w + ŵ|² ≤ 0.01 (|w|² + |ŵ|²) + 0.5`` (Sundaram et
        al., ECCV 2010). Pixels that fail were hidden in the previous frame or the flow is
        wrong there."""
        gx, gy = self._pixel_grid(*backward.shape[:2])
        fw = cv2.remap(forward, gx + backward[..., 0], gy + backward[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
        err = ((backward + fw) ** 2).sum(-1)
        return err <= 0.01 * ((backward ** 2).sum(-1) + (fw ** 2).sum(-1)) + 0.5

    def refine(self, image: np.ndarray, soft: np.ndarray, appearance: Appearance | None,
               flow: np.ndarray | None = None, reliable: np.ndarray | None = None
               ) -> np.ndarray:
        """The object's mask on ``image`` from its warped soft mask; ``flow`` (the backward
        flow) and ``reliable`` (``consistent``) feed the motion cue and the occlusion
        handling when given."""
        warped = soft >= 0.5
        if not warped.any() and appearance is not None and self.opt.refine == "colour":
            return self.refind(image, appearance)  # lost (left the frame, hidden): look
        if self.opt.refine == "none" or not warped.any():
            return warped
        if self.opt.refine == "grabcut" or appearance is None:
            return _grabcut(image, warped, self.opt)
        prior = soft if reliable is None else np.where(reliable, soft, 0.5 * soft + 0.25)
        prior = np.clip(cv2.GaussianBlur(prior.astype(np.float32), (0, 0),
                                         self.opt.prior_sigma), 0.02, 0.98)
        llr = appearance.log_ratio(image)
        score = np.log(prior / (1 - prior)) + self.opt.colour_weight * llr
        if self.opt.motion_weight and flow is not None:
            score += self.opt.motion_weight * np.minimum(
                motion_log_ratio(flow, warped, reliable), self.opt.motion_max)
        n, regions = cv2.connectedComponents((score > 0).astype(np.uint8))
        keep = np.bincount(regions[warped], minlength=n) > 0
        keep[0] = False
        out = keep[regions]
        if not out.any() or llr[out].mean() < -0.5:
            # what the flow carried looks like the surroundings: the object is gone (left,
            # hidden) or the flow lost it; search the frame for it
            return self.refind(image, appearance)
        return out

    def refind(self, image: np.ndarray, appearance: Appearance) -> np.ndarray:
        """Look over the whole frame for an object that was lost: the connected region whose
        colours are at least e times likelier on the object than around it, of 0.25-4x the
        object's usual area, with the highest mean likelihood ratio; empty if none."""
        llr = cv2.GaussianBlur(appearance.log_ratio(image), (0, 0), 2)
        n, regions, stats, _ = cv2.connectedComponentsWithStats((llr > 1).astype(np.uint8))
        typical = appearance.area / max(1, appearance.count)
        areas = stats[:, cv2.CC_STAT_AREA]
        ok = (areas >= 0.25 * typical) & (areas <= 4 * typical)
        ok[0] = False
        if not ok.any():
            return np.zeros(image.shape[:2], bool)
        mean = np.bincount(regions.ravel(), weights=llr.ravel(), minlength=n) / np.maximum(
            areas, 1)
        best = int(np.argmax(np.where(ok, mean, -np.inf)))
        return regions == best

    def correct(self, image: np.ndarray, mask: np.ndarray, points: np.ndarray,
                labels: np.ndarray, appearance: Appearance | None) -> np.ndarray:
        """``mask`` corrected by clicks: a negative click removes the connected part of the
        mask around it whose colours look like the surroundings (``appearance``), a positive
        click adds the connected part outside the mask whose colours look like the object,
        both within 15 % of the frame's size of the click; without a colour model, or where
        the clicked pixel's own colour disagrees, a disc of radius 3 % of the frame."""
        out = mask.copy()
        h, w = mask.shape
        r = max(2, round(0.03 * max(h, w)))
        llr = appearance.log_ratio(image) if appearance is not None else None
        for (x, y), lab in zip(np.asarray(points).reshape(-1, 2), labels, strict=True):
            xi, yi = min(w - 1, max(0, int(x))), min(h - 1, max(0, int(y)))
            disc = np.zeros((h, w), np.uint8)
            cv2.circle(disc, (xi, yi), r, 1, -1)
            disc = disc.astype(bool)
            region = disc
            if llr is not None:
                looks = (llr > 0) if lab == 1 else (llr < 0)
                candidates = (looks & ~out) if lab == 1 else (looks & out)
                near = np.zeros((h, w), np.uint8)  # a click is a local edit
                cv2.circle(near, (xi, yi), 5 * r, 1, -1)
                candidates &= near.astype(bool)
                if candidates[yi, xi]:
                    _, comp = cv2.connectedComponents(candidates.astype(np.uint8))
                    region = (comp == comp[yi, xi]) | disc
            out = out | region if lab == 1 else out & ~region
        return out

    def step(self, previous: np.ndarray, image: np.ndarray, masks: dict[int, np.ndarray],
             appearance: dict[int, Appearance] | None = None) -> dict[int, np.ndarray]:
        """Each object's mask on ``image`` from its mask on ``previous``."""
        if not masks:
            return {}
        fl = self.flow(image, previous)
        appearance = appearance or {}
        reliable = None
        if self.opt.consistency and self.opt.refine == "colour" and any(
                appearance.get(k) is not None for k in masks):
            reliable = self.consistent(fl, self.flow(previous, image))
        return {k: self.refine(image, self.warp(m, fl), appearance.get(k), fl, reliable)
                for k, m in masks.items()}


def motion_log_ratio(flow: np.ndarray, inside: np.ndarray,
                     reliable: np.ndarray | None = None) -> np.ndarray:
    """Per pixel, ``log p(flow | the object's motion) − log p(flow | its surroundings')``,
    clipped to ±5: robust Gaussians (median, MAD + 0.5 px) of the flow over the object's
    core (``inside`` eroded by 5 % of its size) and over a band around it (5–15 %), from the
    ``reliable`` pixels only. Zero where either is too small to measure."""
    ys, xs = np.nonzero(inside)
    zero = np.zeros(inside.shape, np.float32)
    if ys.size < 50:
        return zero
    r = max(2, int(0.05 * (max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    u8 = inside.astype(np.uint8)
    core = cv2.erode(u8, k).astype(bool)
    band = cv2.dilate(u8, k, iterations=3).astype(bool) & ~cv2.dilate(u8, k).astype(bool)
    if reliable is not None:
        core, band = core & reliable, band & reliable
    if core.sum() < 20 or band.sum() < 20:
        return zero

    def log_density(sel):
        v = flow[sel]
        med = np.median(v, 0)
        sd = np.median(np.abs(v - med), 0) * 1.4826 + 0.5
        return -0.5 * (((flow - med) / sd) ** 2).sum(-1) - np.log(sd).sum()

    return np.clip(log_density(core) - log_density(band), -5, 5).astype(np.float32)


def _grabcut(image: np.ndarray, warped: np.ndarray, opt: FlowOptions) -> np.ndarray:
    """GrabCut on a crop around ``warped``: eroded interior sure foreground, far
    surroundings sure background, the band between decided by colour."""
    ys, xs = np.nonzero(warped)
    size = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    band = max(2, round(opt.band * size))
    h, w = warped.shape
    y0, y1 = max(0, ys.min() - 3 * band), min(h, ys.max() + 3 * band + 1)
    x0, x1 = max(0, xs.min() - 3 * band), min(w, xs.max() + 3 * band + 1)
    crop = warped[y0:y1, x0:x1].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    inner = cv2.erode(crop, kernel)
    gc = np.full(crop.shape, cv2.GC_BGD, np.uint8)
    gc[cv2.dilate(crop, kernel) > 0] = cv2.GC_PR_BGD
    gc[crop > 0] = cv2.GC_PR_FGD
    gc[inner > 0] = cv2.GC_FGD
    if not (gc == cv2.GC_BGD).any() or not inner.any():
        return warped  # no sure background or foreground to learn colours from
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    img = np.ascontiguousarray(image[y0:y1, x0:x1, ::-1])
    cv2.grabCut(img, gc, None, bgd, fgd, opt.iterations, cv2.GC_INIT_WITH_MASK)
    out = np.zeros_like(warped)
    out[y0:y1, x0:x1] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return out
