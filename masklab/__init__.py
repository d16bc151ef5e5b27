"""masklab: every kind of image and video segmentation behind one API.

``import masklab`` is cheap: it loads numpy and the core types only; torch, OpenCV and model
libraries are imported inside the functions that need them.
"""

from masklab.errors import InputError, MasklabError, OfflineError, WeightsError
from masklab.types import (
    Alpha,
    Boxes,
    Keypoints,
    Masks,
    Prompts,
    Scribble,
    SemanticMap,
)

__version__ = "0.1.0"

__all__ = [
    "Alpha", "Boxes", "InputError", "Keypoints", "MasklabError", "Masks", "OfflineError",
    "Prompts", "Scribble", "SemanticMap", "WeightsError", "__version__",
]
