"""Promptable and interactive segmentation: one ``Session`` API over SAM-family models and
classical methods (GrabCut, graph cut, random walker, normalized cuts), extreme points, and
segment-everything."""

from masklab.interactive.seeds import extreme_points_to_prompts, prompts_to_seeds
from masklab.interactive.session import Session, list_backends, make_backend

__all__ = ["Session", "extreme_points_to_prompts", "list_backends", "make_backend",
           "prompts_to_seeds"]
