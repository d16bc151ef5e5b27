"""Object models: images/s on CPU at 640 px, masklab's API against torchvision called directly.

The same network (random weights, the torchvision architecture, resize to 640 x 480 turned
off by matching min/max size) runs both ways on the same images, starting from uint8 numpy
arrays:

- torchvision: ``net([tensor / 255])``, its raw output dicts;
- masklab: ``ObjectModel.predict([image], score_threshold=0)``, i.e. the same forward plus
  conversion to ``Detections`` (boxes, binary masks, keypoints with names) for every
  detection (threshold 0: the worst case for the conversion).

Calls alternate (masklab, torchvision, masklab, ...) so that drifts of the machine hit both;
each figure is the median of ``--repeat`` timed calls after one warm-up. Reported: images/s
each way, the end-to-end overhead in percent (noisy: two medians of seconds-long calls), and
masklab's own work measured alone — converting one raw output to ``Detections`` — in ms and
as a percentage of the forward pass. Goal: at most 5%.

    python bench/objects.py                 # every torchvision object model
    python bench/objects.py --models maskrcnn_resnet50_fpn --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

from masklab.models.objects import load_object_model

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny" / "val2017"
MODELS = ["fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn",
          "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "maskrcnn_resnet50_fpn",
          "maskrcnn_resnet50_fpn_v2", "keypointrcnn_resnet50_fpn"]


def _images(n: int) -> list[np.ndarray]:
    """``n`` 480 x 640 RGB images: COCO val crops when the shared data is there."""
    from masklab.io.images import read_image

    files = sorted(COCO.glob("*.jpg"))[:n] if COCO.is_dir() else []
    out = []
    for f in files:
        im = read_image(f)
        if im.shape[0] >= 480 and im.shape[1] >= 640:
            out.append(np.ascontiguousarray(im[:480, :640]))
    rng = np.random.default_rng(0)
    while len(out) < n:
        out.append(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = _images(args.repeat)
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        model = load_object_model(name, weights=None,
                                  config={"min_size": 480, "max_size": 640})
        net = model.net.eval()

        def direct(im, net=net):
            with torch.no_grad():
                x = torch.from_numpy(im).permute(2, 0, 1).float().div(255)
                return net([x])

        def ours(im, model=model):
            return model.predict([im], score_threshold=0.0)

        ours(images[0])  # warm-up
        direct(images[0])
        t_ours, t_tv = [], []
        for im in images:
            t = time.perf_counter()
            ours(im)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            direct(im)
            t_tv.append(time.perf_counter() - t)
        m_ours, m_tv = statistics.median(t_ours), statistics.median(t_tv)
        # masklab's own work alone: converting one raw output to Detections
        raw = direct(images[0])[0]
        t_conv = []
        for _ in range(5):
            t = time.perf_counter()
            model._to_detections(raw, images[0].shape[:2], 0.0, None, 100, 0.5)
            t_conv.append(time.perf_counter() - t)
        conv = statistics.median(t_conv)
        n_det = len(ours(images[0])[0])
        rows.append({"model": name, "torchvision img/s": 1 / m_tv, "masklab img/s": 1 / m_ours,
                     "end-to-end overhead %": 100 * (m_ours / m_tv - 1),
                     "conversion ms": 1000 * conv, "conversion %": 100 * conv / m_tv,
                     "detections": n_det})
        print(f"{name}: {1 / m_tv:.3f} vs {1 / m_ours:.3f} img/s", flush=True)
    report("objects", rows, {"image": "480x640", "repeat": args.repeat,
                             "threads": torch.get_num_threads(), "weights": "random",
                             "images": "COCO val crops" if COCO.is_dir() else "random"})


if __name__ == "__main__":
    main()
