"""Classical promptable segmentation — no weights, the offline default.

- ``grabcut``: OpenCV's GrabCut (Rother et al. 2004): colour GMMs + graph cut, iterated;
  from a box, clicks, scribbles or a mask.
- ``graphcut``: interactive graph cut (Boykov & Jolly 2001) with PyMaxflow: colour-histogram
  likelihoods of the seeds as t-links, contrast-sensitive 8-connected n-links, seeds as hard
  constraints.
- ``random_walker``: Grady's random walker (scikit-image) from seeds; the object is where a
  walker from the pixel most likely first reaches an object seed.
- ``ncut``: normalized cuts (Shi & Malik 2000) over SLIC superpixels, computed once per
  image; the prompt picks the regions holding object seeds and not background seeds.

Each backend works at most at ``max_side`` pixels on the long side (the result is resized
back) so that one interaction stays interactive on large images.
"""

from __future__ import annotations

import abc

import numpy as np

from masklab.interactive.seeds import Seeds, prompts_to_seeds
from masklab.types import Prompts


def _resize_factor(shape, max_side: int | None) -> float:
    return 1.0 if not max_side or max(shape) <= max_side else max_side / max(shape)


def _scale_prompts(p: Prompts, f: float) -> Prompts:
    if f == 1.0:
        return p
    import cv2

    from masklab.types.prompts import Scribble

    mask = None
    if p.mask is not None:
        h, w = p.mask.shape
        mask = cv2.resize(p.mask.astype(np.uint8), (max(1, round(w * f)), max(1, round(h * f))),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
    return Prompts(points=p.points * f, point_labels=p.point_labels,
                   box=None if p.box is None else p.box * f, mask=mask,
                   scribbles=[Scribble(s.points * f, max(1.0, s.width * f), s.positive)
                              if s.raster is None else s for s in p.scribbles], text=p.text)


class ClassicalBackend(abc.ABC):
    """Shared machinery: image downscaling, prompt scaling, seeds, result upscaling;
    subclasses give ``segment(state, seeds) -> (H, W) bool``."""

    name = "classical"
    needs_background = False  # add the image border as background when none is given

    def __init__(self, max_side: int | None = 400, click_radius: float = 5.0):
        self.max_side, self.click_radius = max_side, click_radius

    def set_image(self, image: np.ndarray):
        import cv2

        f = _resize_factor(image.shape[:2], self.max_side)
        small = image if f == 1.0 else cv2.resize(
            image, (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f))),
            interpolation=cv2.INTER_AREA)
        return {"image": np.ascontiguousarray(small[..., :3]), "factor": f,
                "size": image.shape[:2], **self.prepare(small[..., :3])}

    def prepare(self, image: np.ndarray) -> dict:
        """Per-image work done once (superpixels, ...)."""
        return {}

    def predict(self, state: dict, prompts: Prompts, multimask: bool = False,
                previous=None) -> tuple[np.ndarray, np.ndarray, None]:
        import cv2

        p = _scale_prompts(prompts, state["factor"])
        small = state["image"]
        seeds = prompts_to_seeds(p, small.shape[:2],
                                 click_radius=self.click_radius * max(state["factor"], 0.5),
                                 border_background=self.needs_background)
        if seeds.empty:
            m = np.zeros(small.shape[:2], bool)
        else:
            m = self.segment_prompts(state, p, seeds)
        m = m | seeds.fg
        m &= ~seeds.bg
        h, w = state["size"]
        if m.shape != (h, w):
            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        return m[None], np.ones(1), None

    def segment_prompts(self, state: dict, prompts: Prompts, seeds: Seeds) -> np.ndarray:
        """The object mask from the prompts (scaled to the working resolution) and their
        seeds; backends that use the clicks' order override it."""
        return self.segment(state, seeds)

    @abc.abstractmethod
    def segment(self, state: dict, seeds: Seeds) -> np.ndarray:
        """The object mask at the working resolution."""


class GrabCut(ClassicalBackend):
    """GrabCut from a box, a mask, scribbles or clicks. Clicks alone (no box, no mask) give
    GrabCut a region to start from: the box around the positive clicks, widened by
    ``click_margin`` of the image's long side divided by the number of clicks, is "probably
    object", and a border ring of ``border`` of the long side is background — so one click
    gives the object rather than the few pixels under the cursor, and as clicks accumulate
    the region tightens to them (they say ever more precisely where the object is)."""

    name = "grabcut"

    def __init__(self, iterations: int = 3, click_margin: float = 0.25, border: float = 0.02,
                 focus: bool = True, focus_margin: float = 0.02, **kw):
        super().__init__(**kw)
        self.iterations = iterations
        self.click_margin, self.border = click_margin, border
        self.focus, self.focus_margin = focus, focus_margin

    def segment_prompts(self, state: dict, prompts: Prompts, seeds: Seeds) -> np.ndarray:
        if (self.focus and prompts.mask is not None and len(prompts.points)
                and prompts.box is None and not prompts.scribbles):
            return self.refine_locally(state, prompts)
        return self.segment(state, seeds)

    def refine_locally(self, state: dict, prompts: Prompts) -> np.ndarray:
        """A mask prompt corrected by clicks, each only near itself (the local refinement
        of FocalClick, Chen et al. 2022): a mask that is mostly right — a proposal, the
        previous result — keeps what no click touches, where GrabCut over the whole image
        would re-decide every pixel from two colour models. Clicks are taken in order; each
        gets a window around it, twice as wide as its distance to the nearest pixel the mask
        already labels as the click says (how far the error it points at reaches) plus
        ``focus_margin`` of the image's long side; GrabCut runs in the window with the
        current mask as "probably", the click as certain and the window's inner edges held
        at their current labels, and the window's result replaces the mask there."""
        import cv2
        from scipy import ndimage

        from masklab.interactive.seeds import disk

        img = cv2.cvtColor(state["image"], cv2.COLOR_RGB2BGR)
        h, w = img.shape[:2]
        cur = np.asarray(prompts.mask) > 0
        radius = self.click_radius * max(state["factor"], 0.5)
        margin = max(4, round(self.focus_margin * max(h, w)))
        for (x, y), lab in zip(prompts.points, prompts.point_labels, strict=True):
            xi, yi = min(w - 1, max(0, round(x))), min(h - 1, max(0, round(y)))
            pos = lab == 1
            agree = cur if pos else ~cur
            d = float(ndimage.distance_transform_edt(~agree)[yi, xi]) if agree.any() \
                else float(max(h, w))
            r = int(2 * d + margin)
            y0, y1 = max(0, yi - r), min(h, yi + r + 1)
            x0, x1 = max(0, xi - r), min(w, xi + r + 1)
            cm = cur[y0:y1, x0:x1]
            gm = np.where(cm, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
            edge = np.zeros(cm.shape, bool)  # inner edges: held; the image's border: free
            if y0 > 0:
                edge[0] = True
            if y1 < h:
                edge[-1] = True
            if x0 > 0:
                edge[:, 0] = True
            if x1 < w:
                edge[:, -1] = True
            gm[edge & cm] = cv2.GC_FGD
            gm[edge & ~cm] = cv2.GC_BGD
            gm[disk(cm.shape, x - x0, y - y0, radius)] = cv2.GC_FGD if pos else cv2.GC_BGD
            fgl = (gm == cv2.GC_FGD) | (gm == cv2.GC_PR_FGD)
            if min(fgl.sum(), (~fgl).sum()) < 10:  # one side only: nothing to model
                cur[y0:y1, x0:x1] = fgl
                continue
            bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
            cv2.grabCut(np.ascontiguousarray(img[y0:y1, x0:x1]), gm, None, bgd, fgd,
                        self.iterations, cv2.GC_INIT_WITH_MASK)
            cur[y0:y1, x0:x1] = (gm == cv2.GC_FGD) | (gm == cv2.GC_PR_FGD)
        return cur

    def _click_region(self, seeds: Seeds) -> tuple[np.ndarray, np.ndarray]:
        """``(prior, background)`` for click-only prompts."""
        from scipy import ndimage

        h, w = seeds.fg.shape
        ys, xs = np.nonzero(seeds.fg)
        clicks = max(1, ndimage.label(seeds.fg)[1] + ndimage.label(seeds.bg)[1])
        m = round(self.click_margin * max(h, w) / clicks)
        prior = np.zeros((h, w), bool)
        prior[max(0, ys.min() - m):ys.max() + m + 1, max(0, xs.min() - m):xs.max() + m + 1] = True
        b = max(1, round(self.border * max(h, w)))
        ring = np.ones((h, w), bool)
        ring[b:h - b, b:w - b] = False
        return prior, seeds.bg | (ring & ~seeds.fg)

    def segment(self, state: dict, seeds: Seeds) -> np.ndarray:
        import cv2

        img = cv2.cvtColor(state["image"], cv2.COLOR_RGB2BGR)
        mask = np.full(img.shape[:2], cv2.GC_PR_BGD, np.uint8)
        prior, bg = seeds.prior, seeds.bg
        if prior is None and seeds.fg.any() and self.click_margin > 0:
            prior, bg = self._click_region(seeds)
        if prior is not None:
            mask[prior] = cv2.GC_PR_FGD
        mask[bg] = cv2.GC_BGD
        mask[seeds.fg] = cv2.GC_FGD
        if not (mask == cv2.GC_BGD).any() and not (mask == cv2.GC_PR_BGD).any():
            return np.ones(img.shape[:2], bool)
        if not ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).any():
            return np.zeros(img.shape[:2], bool)
        bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
        cv2.grabCut(img, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _color_likelihood(image: np.ndarray, sample: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-pixel ``-log P(colour | seeds)`` from a smoothed colour histogram."""
    q = (image.astype(np.int32) * bins) // 256
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = np.bincount(idx[sample], minlength=bins ** 3).astype(np.float64) + 1.0
    hist /= hist.sum()
    return -np.log(hist[idx])


def _neighbour_diff(img: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``|I(p) - I(p + (dy, dx))|^2`` at every ``p`` whose neighbour exists, and where."""
    h, w = img.shape[:2]
    d = np.zeros((h, w))
    valid = np.zeros((h, w), bool)
    ys, yq = slice(0, h - dy), slice(dy, h)
    xs, xq = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    d[ys, xs] = ((img[ys, xs] - img[yq, xq]) ** 2).sum(-1)
    valid[ys, xs] = True
    return d, valid


class GraphCut(ClassicalBackend):
    name = "graphcut"

    def __init__(self, smoothness: float = 50.0, **kw):
        super().__init__(**kw)
        self.smoothness = smoothness

    def segment(self, state: dict, seeds: Seeds) -> np.ndarray:
        try:
            import maxflow
        except ImportError:
            from masklab.errors import InputError

            raise InputError("the graphcut backend needs PyMaxflow: "
                             "pip install 'masklab[graphcut]'") from None
        img = state["image"].astype(np.float64)
        h, w = img.shape[:2]
        fg_sample = seeds.fg if seeds.fg.any() else seeds.prior
        bg_sample = seeds.bg if seeds.bg.any() else ~(seeds.prior if seeds.prior is not None
                                                      else seeds.fg)
        # t-links: region terms from the seeds' colour models
        d_fg = _color_likelihood(state["image"], fg_sample)
        d_bg = _color_likelihood(state["image"], bg_sample)
        big = 1e9
        d_fg[seeds.fg], d_bg[seeds.fg] = 0.0, big
        d_fg[seeds.bg], d_bg[seeds.bg] = big, 0.0
        # n-links: exp(-|Ip - Iq|^2 / (2 sigma^2)) / dist, sigma^2 the mean squared difference
        links = [(dy, dx, np.hypot(dy, dx), *_neighbour_diff(img, dy, dx))
                 for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1))]
        mean_sq = np.mean(np.concatenate([d[v] for *_, d, v in links]))
        beta = 1.0 / (2 * max(mean_sq, 1e-9))
        g = maxflow.Graph[float]()
        nodes = g.add_grid_nodes((h, w))
        for dy, dx, dist, d, valid in links:
            weights = np.where(valid, self.smoothness * np.exp(-beta * d) / dist, 0.0)
            structure = np.zeros((3, 3))
            structure[1 + dy, 1 + dx] = 1
            g.add_grid_edges(nodes, weights=weights, structure=structure, symmetric=True)
        # source = object: the capacity to the sink is the cost of calling a pixel object
        g.add_grid_tedges(nodes, d_bg, d_fg)
        g.maxflow()
        return ~g.get_grid_segments(nodes)


class RandomWalker(ClassicalBackend):
    name = "random_walker"
    needs_background = True

    def __init__(self, beta: float = 130.0, **kw):
        kw.setdefault("max_side", 256)
        super().__init__(**kw)
        self.beta = beta

    def segment(self, state: dict, seeds: Seeds) -> np.ndarray:
        from skimage.segmentation import random_walker

        labels = np.zeros(state["image"].shape[:2], np.int32)
        fg = seeds.fg if seeds.fg.any() else _core(seeds.prior)
        labels[seeds.bg] = 2
        labels[fg] = 1
        if not (labels == 1).any():
            return np.zeros(labels.shape, bool)
        img = state["image"].astype(np.float64) / 255.0
        out = random_walker(img, labels, beta=self.beta, mode="cg_j", tol=1e-3, prob_tol=0.05,
                            channel_axis=-1)
        return out == 1


def _core(prior: np.ndarray | None) -> np.ndarray:
    """Object seeds from a soft prior alone: its interior, away from its edge."""
    if prior is None or not prior.any():
        return np.zeros((1, 1), bool) if prior is None else np.zeros_like(prior)
    import cv2

    dt = cv2.distanceTransform(np.pad(prior, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    return dt >= 0.5 * dt.max()


class NormalizedCut(ClassicalBackend):
    name = "ncut"

    def __init__(self, n_segments: int = 300, compactness: float = 20.0,
                 threshold: float = 0.05, **kw):
        super().__init__(**kw)
        self.n_segments, self.compactness, self.threshold = n_segments, compactness, threshold

    def prepare(self, image: np.ndarray) -> dict:
        from skimage import graph
        from skimage.segmentation import slic

        sp = slic(image, n_segments=self.n_segments, compactness=self.compactness,
                  start_label=0)
        rag = graph.rag_mean_color(image, sp, mode="similarity")
        regions = graph.cut_normalized(sp, rag, thresh=self.threshold, rng=0)
        return {"superpixels": sp, "regions": regions}

    def segment(self, state: dict, seeds: Seeds) -> np.ndarray:
        regions = state["regions"]
        if seeds.fg.any():
            pos = set(np.unique(regions[seeds.fg]).tolist())
        else:  # a box or mask only: regions mostly inside it
            n = np.bincount(regions.ravel())
            inside = np.bincount(regions[seeds.prior], minlength=len(n))
            pos = {int(r) for r in np.flatnonzero(inside > 0.5 * np.maximum(n, 1))}
        neg = set(np.unique(regions[seeds.bg]).tolist()) if seeds.bg.any() else set()
        keep = np.array(sorted(pos - neg if pos - neg else pos), np.int64)
        m = np.isin(regions, keep)
        if seeds.prior is not None:
            m &= seeds.prior | seeds.fg
        return m


CLASSICAL = {b.name: b for b in (GrabCut, GraphCut, RandomWalker, NormalizedCut)}
