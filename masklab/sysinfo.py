"""What ``masklab info`` reports: versions, accelerators, optional backends, the cache."""

from __future__ import annotations

import functools
import importlib.metadata as md
import logging
import os
import platform
import subprocess

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


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively: x86 AVX512-BF16 or AMX-BF16, Arm's BF16
    extension. Without it, torch emulates bfloat16 and is several times slower than fp32.
    ``MASKLAB_CPU_BF16=0|1`` overrides the detection."""
    forced = os.environ.get("MASKLAB_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return _cpuinfo_has_bf16(f.read())
    except OSError:
        pass
    if platform.system() == "Darwin":  # Apple silicon from M2 on
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                                 capture_output=True, text=True, timeout=5).stdout
            return out.strip() == "1"
        except (OSError, subprocess.SubprocessError):
            return False
    return False


PRECISIONS = ("auto", "fp32", "bf16")


def precision_for(precision: str, device) -> str:
    """The precision to run: ``precision`` ('fp32' or 'bf16'), except that bf16 on a CPU
    without native bfloat16 (where torch emulates it, 4-7x slower than fp32) becomes fp32
    with a warning, once per process. 'auto' is bf16 on a CPU with native units (about 1.5x
    the images per second of fp32 for a U-Net), fp32 elsewhere."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', got {precision!r}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cpu" and cpu_has_bf16() else "fp32"
    if precision == "bf16" and torch.device(device).type == "cpu" and not cpu_has_bf16():
        _warn_emulated_bf16()
        return "fp32"
    return precision


@functools.cache
def _warn_emulated_bf16() -> None:
    logging.getLogger("masklab").warning(
        "this CPU has no native bfloat16 (AVX512-BF16 / AMX / Arm BF16): precision bf16 "
        "would be several times slower, running fp32")


def _cpuinfo_has_bf16(text: str) -> bool:
    """``/proc/cpuinfo``'s ``flags`` (x86) or ``Features`` (Arm) line names a bf16 unit."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            words = set(value.split())
            return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


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
    info["cpu bfloat16"] = ("native (precision bf16 is fast)" if cpu_has_bf16() else
                            "emulated (precision bf16 runs as fp32)")
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = "yes" if mps is not None and mps.is_available() else "no"
    for dist, what in OPTIONAL.items():
        v = _version(dist)
        info[f"[{dist}]"] = f"{v}  ({what})" if v else f"not installed  ({what})"
    info["weights cache"] = str(home())
    info["offline"] = "yes (MASKLAB_OFFLINE)" if is_offline() else "no"
    return info
