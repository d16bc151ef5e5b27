"""Auto-labelling throughput: masklab's text → boxes → masks path against the naive
Grounded-SAM loop a user writes from the transformers docs, on the same weights, with the
outputs compared.

Models at their real sizes with random weights (the computation per image is the same as
with the real checkpoints): Grounding DINO (Swin-T + BERT-base, ``grounding-dino-tiny``'s
architecture) and SAM 2.1 Hiera-T (image model). The naive loop: per image, the processor
and the detector with the text (re-encoded every image), the processor's post-processing,
then per box the SAM processor and the whole SAM model (image encoder included). masklab:
``load_detector(...).detect`` (text encoded once) and ``segment_boxes`` (one embedding per
image, every box in one batched decoder call). The threshold is set so that the random
detector keeps about ``--boxes`` boxes per image.

Memory: the whole ``label_images`` pipeline with tiny random models over ``--many`` small
synthetic images; resident memory after 100 images and at the end.

    python bench/label.py --images 3 --boxes 5 --many 1000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import report
from video import rss_mb

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny" / "val2017"
CLASSES = ["cat", "dog", "person"]


def build(folder: Path) -> tuple[Path, Path]:
    import transformers as T

    from tests.grounding.tiny import _bert_tokenizer

    torch.manual_seed(0)
    gd = T.GroundingDinoForObjectDetection(T.GroundingDinoConfig()).eval()
    T.GroundingDinoProcessor(image_processor=T.GroundingDinoImageProcessor(),
                             tokenizer=_bert_tokenizer()).save_pretrained(folder / "gd")
    gd.save_pretrained(folder / "gd")
    del gd
    sam = T.Sam2Model(T.Sam2Config()).eval()  # the defaults are Hiera-T
    sam.save_pretrained(folder / "sam")
    T.Sam2Processor(image_processor=T.Sam2ImageProcessor()).save_pretrained(folder / "sam")
    return folder / "gd", folder / "sam"


def temper(model) -> None:
    """Random weights saturate every Grounding DINO score at 1 (|logits| ~ 10-25): scale the
    class logits by 0.05 (a hook, applied the same to both pipelines) so a threshold keeps a
    few boxes, as with real weights."""
    for m in model.class_embed:
        m.register_forward_hook(lambda _m, _i, out: out * 0.05)


def images(n: int) -> list[np.ndarray]:
    from masklab.io.images import read_image

    files = sorted(COCO.glob("*.jpg"))[:n]
    if len(files) == n:
        return [read_image(f) for f in files]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(n)]


@torch.inference_mode()
def naive(gd_dir: Path, sam_dir: Path, imgs, threshold: float):
    import transformers as T

    gd = T.AutoModelForZeroShotObjectDetection.from_pretrained(str(gd_dir)).eval()
    temper(gd)
    gp = T.AutoProcessor.from_pretrained(str(gd_dir))
    sam = T.Sam2Model.from_pretrained(str(sam_dir)).eval()
    sp = T.Sam2Processor.from_pretrained(str(sam_dir))
    text = " ".join(f"{c}." for c in CLASSES)
    out = []
    t0 = time.perf_counter()
    for img in imgs:
        inputs = gp(images=img, text=text, return_tensors="pt")
        o = gd(**inputs)
        r = gp.post_process_grounded_object_detection(o, inputs["input_ids"], threshold=threshold,
                                                      text_threshold=threshold,
                                                      target_sizes=[img.shape[:2]])[0]
        masks = []
        for box in r["boxes"].tolist():
            si = sp(images=img, input_boxes=[[box]], return_tensors="pt")
            so = sam(**{k: v for k, v in si.items() if k != "original_sizes"},
                     multimask_output=False)
            masks.append(sp.post_process_masks(so.pred_masks, si["original_sizes"])[0][0, 0]
                         .numpy())
        out.append((r["boxes"].numpy(), np.array(masks).reshape(-1, *img.shape[:2])))
    return time.perf_counter() - t0, out


def ours(gd_dir: Path, sam_dir: Path, imgs, threshold: float):
    from masklab.grounding import load_detector
    from masklab.grounding.label import load_segmenter, segment_boxes

    det = load_detector(gd_dir, box_threshold=threshold)
    temper(det.model)
    seg = load_segmenter(str(sam_dir))
    out = []
    t0 = time.perf_counter()
    for img in imgs:
        d = det.detect(img, CLASSES)
        masks, _ = segment_boxes(img, d.boxes, seg)
        out.append((d.boxes, masks))
    return time.perf_counter() - t0, out


def pick_threshold(gd_dir: Path, img: np.ndarray, k: int) -> float:
    from masklab.grounding import load_detector

    det = load_detector(gd_dir, box_threshold=0.0)
    temper(det.model)
    scores = np.sort(det.detect(img, CLASSES).scores)[::-1]
    return float((scores[k - 1] + scores[k]) / 2)


def memory(n: int, tmp: Path) -> dict:
    from masklab.grounding.label import LabelSettings, label_images
    from masklab.io.images import write_image
    from tests.grounding import tiny

    tiny.grounding_dino(tmp / "tiny_gd")
    rng = np.random.default_rng(0)
    files = []
    for k in range(n):
        p = tmp / "many" / f"{k:05d}.png"
        write_image(p, rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
        files.append(p)
    settings = LabelSettings(classes=["cat", "dog"], detector=str(tmp / "tiny_gd"),
                             segmenter="grabcut", box_threshold=0.3)
    label_images(files[:100], tmp / "out", settings, overlays=False, quiet=True)
    gc.collect()
    at100 = rss_mb()
    t0 = time.perf_counter()
    label_images(files, tmp / "out", settings, overlays=False, quiet=True)
    dt = time.perf_counter() - t0
    gc.collect()
    end = rss_mb()
    return {"rss_mb_after_100": at100, f"rss_mb_after_{n}": end, "growth": end / at100 - 1,
            "images_per_s": (n - 100) / dt}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--boxes", type=int, default=5, help="boxes per image to aim for")
    ap.add_argument("--many", type=int, default=1000, help="images for the memory check")
    args = ap.parse_args()
    imgs = images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gd_dir, sam_dir = build(tmp)
        thr = pick_threshold(gd_dir, imgs[0], args.boxes)
        t_ours, got = ours(gd_dir, sam_dir, imgs, thr)
        t_naive, ref = naive(gd_dir, sam_dir, imgs, thr)
        boxes = sum(len(b) for b, _ in ref)
        same_boxes = all(np.allclose(a[0], b[0], atol=1e-3) for a, b in zip(got, ref,
                                                                              strict=True))
        differ = sum(int((a[1] != b[1]).sum()) for a, b in zip(got, ref, strict=True))
        pixels = sum(b[1].size for b in ref)
        rows = [{"pipeline": "naive Grounded-SAM loop", "images_per_s": args.images / t_naive,
                 "boxes": boxes},
                {"pipeline": "masklab", "images_per_s": args.images / t_ours,
                 "boxes": sum(len(b) for b, _ in got)}]
        mem = memory(args.many, tmp)
    meta = {"images": args.images, "threshold": thr, "speedup": t_naive / t_ours,
            "same_boxes": same_boxes, "mask_pixels_differing": differ,
            "mask_pixels": pixels, "threads": torch.get_num_threads(), "memory": mem}
    report("label", rows, meta)
    print(f"speed-up {t_naive / t_ours:.2f}x, boxes identical: {same_boxes}, mask pixels "
          f"differing: {differ} of {pixels}")
    print(f"memory over {args.many} images (tiny models, grabcut): "
          f"{mem['rss_mb_after_100']:.0f} MB after 100, "
          f"{mem[f'rss_mb_after_{args.many}']:.0f} MB at the end ({mem['growth']:+.1%})")


if __name__ == "__main__":
    main()
