"""masklab's result and prompt types."""

from masklab.types.boxes import Boxes
from masklab.types.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON, Keypoints
from masklab.types.masks import Masks
from masklab.types.prompts import Prompts, Scribble, parse_box, parse_point
from masklab.types.semantic import Alpha, SemanticMap, default_palette

__all__ = [
    "COCO_KEYPOINT_NAMES", "COCO_SKELETON", "Alpha", "Boxes", "Keypoints", "Masks", "Prompts",
    "Scribble", "SemanticMap", "default_palette", "parse_box", "parse_point",
]
