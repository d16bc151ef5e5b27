"""Alpha matting: trimaps, alpha solvers, foreground colours, compositing.

    from masklab.matting import matte, trimap_from_mask, composite
    alpha, fg = matte(image, trimap)                 # closed-form (Levin et al.)
    out = composite(fg, alpha, (0, 177, 64))         # onto green, no colour bleed
"""

from __future__ import annotations

import numpy as np

from masklab.matting.background import background_matte, plate_difference, trimap_from_plate
from masklab.matting.closed_form import closed_form_alpha
from masklab.matting.coarse_to_fine import coarse_to_fine_alpha
from masklab.matting.composite import background_like, composite, rgba
from masklab.matting.foreground import estimate_foreground
from masklab.matting.knn import knn_alpha
from masklab.matting.trimap import split_trimap, trimap_from_mask, trimap_from_scribbles
from masklab.matting.video import matte_video

SOLVERS = ("cf", "knn", "vitmatte")


def estimate_alpha(image: np.ndarray, trimap: np.ndarray, solver: str = "cf", *,
                   coarse_to_fine: bool = False, **options) -> np.ndarray:
    """Alpha ``(H, W)`` in [0, 1] from a trimap with the chosen solver: ``cf``
    (closed-form), ``knn`` or ``vitmatte`` (options ``weights=``, ``device=``). With
    ``coarse_to_fine`` the solver runs at low resolution and the uncertain pixels are
    refined (``coarse_to_fine_alpha``; options ``refine=``, ``scale=``, ...)."""
    if coarse_to_fine:
        return coarse_to_fine_alpha(image, trimap, solver=solver, **options)
    if solver == "cf":
        return closed_form_alpha(image, trimap, **options)
    if solver == "knn":
        return knn_alpha(image, trimap, **options)
    if solver == "vitmatte":
        from masklab.matting.vitmatte import vitmatte_alpha

        return vitmatte_alpha(image, trimap, **options)
    raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


def matte(image: np.ndarray, trimap: np.ndarray, solver: str = "cf",
          **options) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, foreground)``: the alpha and the foreground colours (float, [0, 1])."""
    alpha = estimate_alpha(image, trimap, solver, **options)
    return alpha, estimate_foreground(image, alpha)


__all__ = [
    "SOLVERS",
    "background_like",
    "background_matte",
    "closed_form_alpha",
    "coarse_to_fine_alpha",
    "composite",
    "estimate_alpha",
    "estimate_foreground",
    "knn_alpha",
    "matte",
    "matte_video",
    "plate_difference",
    "rgba",
    "split_trimap",
    "trimap_from_mask",
    "trimap_from_plate",
    "trimap_from_scribbles",
]
