"""Evaluation: one module per family, each a mergeable accumulator plus a one-call function."""

from masklab.metrics.coco import CocoEvaluator, CocoParams, CocoResult, coco_evaluate

__all__ = ["CocoEvaluator", "CocoParams", "CocoResult", "coco_evaluate"]
