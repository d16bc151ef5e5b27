"""Video object segmentation: ``VideoFrames`` (decoded on demand), ``VideoSession``
(prompts on any frame, propagation, corrections), the ``flow`` backend."""

from masklab.video.frames import VideoFrames
from masklab.video.session import VideoSession

__all__ = ["VideoFrames", "VideoSession"]
