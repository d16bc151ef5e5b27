"""Text prompts: open-vocabulary detectors (text → boxes), boxes → masks, auto-labelling."""

from masklab.grounding.detectors import DETECTORS, Detections, load_detector

__all__ = ["DETECTORS", "Detections", "load_detector"]
