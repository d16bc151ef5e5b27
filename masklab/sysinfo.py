"""What ``masklab info`` reports: versions, accelerators, optional backends, the cache."""

from __future__ import annotations

import importlib.metadata as md
import platform

OPTIONAL = {
    "transformers": "hf: SegFormer, SAM, Mask2Former, ViTMatte",
    "av": "video: reading and writing video files",
    "onnxruntime": "onnx: fast decoders and export checks",
    "PyMaxflow": "graphcut: Boykov-Jolly graph cut",
}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def collect() -> dict[str, str]:
    """Ordered facts about this installation."""
    from masklab import __version__
    from masklab.weights import home, is_offline

    info = {"masklab": __version__, "python": platform.python_version(),
            "platform": platform.platform(terse=True)}
    for dist in ("numpy", "torch", "torchvision", "opencv-python-headless", "scikit-image",
                 "pycocotools"):
        info[dist] = _version(dist) or "missing"
    import torch

    cuda = torch.cuda.is_available()
    info["cuda"] = (f"yes ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
                    if cuda else f"no (torch built with CUDA {torch.version.cuda})"
                    if torch.version.cuda else "no")
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = "yes" if mps is not None and mps.is_available() else "no"
    for dist, what in OPTIONAL.items():
        v = _version(dist)
        info[f"[{dist}]"] = f"{v}  ({what})" if v else f"not installed  ({what})"
    info["weights cache"] = str(home())
    info["offline"] = "yes (MASKLAB_OFFLINE)" if is_offline() else "no"
    return info
