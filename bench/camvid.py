"""CamVid from scratch: train a U-Net with masklab on ../shared/data/camvid and report the
best validation mIoU, per-class IoU and training images/s.

No pretrained backbone. ``--split sequence`` (default): train on the frames of videos 0016E5
and 0001TP, validate on all of 0006R0, a video the model never sees (the figure to compare
with published test-split results); ``--split segnet``: SegNet's train / val lists (val
shares its video with training). Default recipe v3: random scale 0.3-1.0, crops 176x240,
brightness/contrast/saturation ±0.4, hue ±0.05, gamma 0.6-1.6, sqrt median-frequency class
weights, AdamW with weight decay 0.05, an EMA of the weights (0.998) validated and kept,
validation on images resized by 0.5 with the logits resized back. Reproduce:

    python bench/camvid.py --epochs 80            # CPU, about 60 s per epoch on 2 idle cores
    python bench/camvid.py --resume               # continue the run in runs/camvid_sequence

Comparison: SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017) on the CamVid 11-class
test split; see the README for the figure quoted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

from masklab.tasks.semantic import TrainConfig, train_semantic

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
SPLITS = {
    "segnet": {"train_split": "train", "val_split": "val"},
    "sequence": {"train_split": "train+val", "train_sequences": ["0016E5", "0001TP"],
                 "val_split": "train+val", "val_sequences": ["0006R0"]},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--model", default="unet")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--lcn", action="store_true",
                    help="U-Net input: the image and its local contrast normalisation")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--crop", default="176,240")
    ap.add_argument("--scale", default="0.3,1.0")
    ap.add_argument("--jitter", type=float, default=0.4,
                    help="brightness/contrast/saturation factor range 1 ± jitter")
    ap.add_argument("--hue", type=float, default=0.05)
    ap.add_argument("--gamma", default="0.6,1.6", help="random gamma range ('1,1': none)")
    ap.add_argument("--class-weights", default="sqrt-median",
                    choices=["median", "sqrt-median", "none"])
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--ema", type=float, default=0.998,
                    help="validate and keep an EMA of the weights (0: none)")
    ap.add_argument("--split", choices=sorted(SPLITS), default="sequence",
                    help="sequence: train on 0016E5 + 0001TP, validate on all of 0006R0 (a "
                         "video the model never sees); segnet: SegNet's train / val lists")
    ap.add_argument("--eval-scale", type=float, default=0.5)
    ap.add_argument("--cpu-precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: bfloat16 autocast on a CPU with native bf16 units")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="run folder (default runs/<name>)")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out")
    ap.add_argument("--name", help="results file name (default camvid_<split>)")
    args = ap.parse_args()
    args.name = args.name or f"camvid_{args.split}"
    args.out = args.out or f"runs/{args.name}"
    if not Path(args.data).is_dir():
        print(f"CamVid not found at {args.data}; skipping")
        return
    cfg = TrainConfig(
        data=args.data, out=args.out, model=args.model,
        model_config={"width": args.width, "depth": args.depth, "lcn": args.lcn}
        if args.model == "unet"
        else {"width": args.width},
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        crop=tuple(int(v) for v in args.crop.split(",")),
        scale=tuple(float(v) for v in args.scale.split(",")),
        class_weights=None if args.class_weights == "none" else args.class_weights,
        weight_decay=args.weight_decay,
        jitter=args.jitter, hue=args.hue, gamma=tuple(float(v) for v in args.gamma.split(",")),
        **SPLITS[args.split],
        ema=args.ema or None, loss="ce", schedule="poly", workers=args.workers, device=args.device,
        cpu_precision=args.cpu_precision,
        eval_scale=args.eval_scale, val_every=5, resume=args.resume, tensorboard=False, quiet=True)
    t = time.perf_counter()
    r = train_semantic(cfg)
    minutes = (time.perf_counter() - t) / 60
    res = r.best_result
    rows = [{"class": n, "IoU": float(i)} for n, i in zip(res.class_names, res.iou,
                                                           strict=True)]
    rows.append({"class": "mIoU", "IoU": float(res.miou)})
    report(args.name, rows, {
        "model": args.model, "width": args.width, "depth": args.depth, "epochs": args.epochs,
        "best_epoch": r.best_epoch, "val_mIoU": float(res.miou),
        "val_pixel_acc": float(res.pixel_acc), "train_images_per_s": r.images_per_second,
        "device": str(args.device), "minutes": minutes, "crop": args.crop,
        "scale": args.scale, "eval_scale": args.eval_scale, "split": args.split,
        "jitter": args.jitter, "hue": args.hue, "gamma": args.gamma,
        "class_weights": args.class_weights, "weight_decay": args.weight_decay,
        "ema": args.ema, "cpu_precision": args.cpu_precision, "lcn": args.lcn})
    print(f"val mIoU {res.miou:.4f} (best epoch {r.best_epoch}), {r.images_per_second:.1f} "
          f"train images/s, {minutes:.1f} min")


if __name__ == "__main__":
    main()
