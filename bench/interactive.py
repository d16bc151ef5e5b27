"""Promptable segmentation: latency of masklab's Session against transformers called directly,
and the classical backends' latency and NoC on real COCO objects.

Part 1 (``--sam``): real model dimensions with random weights (SAM ViT-B, SAM 2.1 Hiera-T,
EdgeTAM with RepViT-M1), a 1024 px-class image (768 x 1024). Per model: the image embedding,
then the mean latency of 5 clicks (growing point lists), masklab's ``Session.predict`` (its
one-prompt decoder on the model's weights, ``masklab/interactive/sam_decoder.py``;
``decoder="onnx"``: transformers' decoder exported to ONNX Runtime once per model; and
``precision="bf16"``: bfloat16 autocast in the image encoder and masklab's decoder) vs the
documented transformers usage (processor + ``get_image_embeddings`` once, then processor +
model with ``image_embeddings`` + ``post_process_masks`` per click). Optionally
(``--everything``) SAM ViT-B segment-everything with a 32 x 32 grid against transformers'
``mask-generation`` pipeline on the same network. ``logit rel. diff``: the largest difference
between masklab's and transformers' low-res logits over the 5 clicks, relative to the largest
logit (fp32, the same weights).

Part 2 (``--classical``): each classical backend (and GrabCut with clicks as seeds only, as
it was before its click region) — mean IoU after 1 / 2 / 3 clicks, NoC@85/90 with the standard
click simulator (max 20 clicks) and the mean latency of an interaction after the first — on
GrabCut-style images with one object each (made in code; and alphamatting.com's 27 photos
from ../shared/data/matting) and on the largest COCO object of each image (area >= 2,000 px,
640 x 480, ../shared/data/coco_tiny).

    python bench/interactive.py --sam --classical --everything
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny"


def _sam_models():
    import transformers as T

    out = {}
    out["sam-vit-b"] = (T.SamModel(T.SamConfig()),
                        T.SamProcessor(image_processor=T.SamImageProcessor()))
    out["sam2.1-tiny"] = (T.Sam2Model(T.Sam2Config()),
                          T.Sam2Processor(image_processor=T.Sam2ImageProcessor()))
    try:
        import timm  # noqa: F401

        bb = T.TimmWrapperConfig(architecture="repvit_m1", model_args={
            "features_only": True, "in_chans": 3, "out_indices": [0, 1, 2, 3]})
        out["edgetam"] = (T.EdgeTamModel(T.EdgeTamConfig(
            vision_config=T.EdgeTamVisionConfig(backbone_config=bb))),
            T.Sam2Processor(image_processor=T.Sam2ImageProcessor()))
    except ImportError:
        print("timm missing: EdgeTAM skipped")
    return out


def _direct(model, proc, img, clicks):
    """transformers as documented: embeddings once, then per click processor + model."""
    t = time.perf_counter()
    inputs = proc(images=img, return_tensors="pt")
    with torch.no_grad():
        emb = model.get_image_embeddings(inputs["pixel_values"])
    t_embed = time.perf_counter() - t
    times = []
    for k in range(1, len(clicks) + 1):
        t = time.perf_counter()
        pts = [[[[float(x), float(y)] for x, y in clicks[:k]]]]
        inp = proc(images=img, input_points=pts, input_labels=[[[1] * k]],
                   return_tensors="pt")
        sizes = [inp.pop(n) for n in ("original_sizes", "reshaped_input_sizes") if n in inp]
        inp.pop("pixel_values")
        with torch.no_grad():
            out = model(**inp, image_embeddings=emb, multimask_output=k == 1)
        proc.post_process_masks(out.pred_masks, *sizes)
        times.append(time.perf_counter() - t)
    return t_embed, statistics.mean(times)


def _ours(folder, img, clicks, decoder="torch", precision="fp32"):
    from masklab.interactive import Session

    s = Session(img, folder, decoder=decoder, precision=precision)
    if decoder == "onnx":  # export both decoders first: a one-off per model, not a click
        s.predict(points=clicks[:1], multimask=True)
        s.predict(points=clicks[:2], multimask=False)
    times = []
    for k in range(1, len(clicks) + 1):
        t = time.perf_counter()
        s.predict(points=clicks[:k], multimask=k == 1)
        times.append(time.perf_counter() - t)
    if decoder == "torch":
        times[0] -= s.embed_seconds  # the first call also embedded the image
    return s.embed_seconds, statistics.mean(times)


def _parity(folder, img, clicks) -> float:
    """Largest |masklab - transformers| low-res logit over the clicks, relative to the
    largest |logit| (masklab's one-prompt decoder against the model's own forward)."""
    from masklab.interactive.sam import SamBackend

    b = SamBackend(folder)
    state = b.set_image(img)
    sx, sy = b._frame(state)
    worst = 0.0
    for k in range(1, len(clicks) + 1):
        pts = torch.tensor(np.array(clicks[:k]) * [sx, sy], dtype=torch.float32)[None, None]
        lab = torch.ones(1, 1, k, dtype=torch.int64)
        with torch.no_grad():
            ref = b.model(image_embeddings=state["embeddings"], input_points=pts,
                          input_labels=lab, multimask_output=k == 1).pred_masks
            got = b._fast(state, pts, lab, None, None, k == 1)[0]
        worst = max(worst, float((got - ref).abs().max() / ref.abs().max()))
    return worst


def bench_sam(everything: bool) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    img = _photo((768, 1024))
    clicks = [(int(x), int(y)) for x, y in rng.integers(100, 700, (5, 2))]
    torch.manual_seed(0)
    for name, (model, proc) in _sam_models().items():
        model.eval()
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            proc.save_pretrained(tmp)
            e_ours, c_ours = _ours(tmp, img, clicks)
            _, c_onnx = _ours(tmp, img, clicks, decoder="onnx")
            e_bf16, c_bf16 = _ours(tmp, img, clicks, precision="bf16")
            e_tf, c_tf = _direct(model, proc, img, clicks)
            parity = _parity(tmp, img, clicks)
            rows.append({"model": name, "embed s (masklab)": e_ours,
                         "embed s (transformers)": e_tf, "embed s (masklab bf16)": e_bf16,
                         "click ms (masklab)": 1000 * c_ours,
                         "click ms (masklab onnx)": 1000 * c_onnx,
                         "click ms (masklab bf16)": 1000 * c_bf16,
                         "click ms (transformers)": 1000 * c_tf,
                         "click speed-up": c_tf / c_ours, "onnx speed-up": c_tf / c_onnx,
                         "bf16 speed-up": c_tf / c_bf16, "logit rel. diff": parity})
            print(rows[-1], flush=True)
            if everything and name == "sam-vit-b":
                rows.append(_everything(model, proc, tmp, img))
                print(rows[-1], flush=True)
    return rows


def _everything(model, proc, folder, img) -> dict:
    from transformers import pipeline

    from masklab.interactive.everything import segment_everything

    t = time.perf_counter()
    ours = segment_everything(img, folder, points_per_side=32, points_per_batch=64,
                              quiet=True)
    t_ours = time.perf_counter() - t
    gen = pipeline("mask-generation", model=model, image_processor=proc.image_processor,
                   device="cpu")
    t = time.perf_counter()
    from PIL import Image

    ref = gen(Image.fromarray(img), points_per_batch=64)
    t_tf = time.perf_counter() - t
    return {"model": "sam-vit-b everything 32x32", "embed s (masklab)": t_ours,
            "embed s (transformers)": t_tf, "embed s (masklab bf16)": float("nan"),
            "click ms (masklab)": float(len(ours)),
            "click ms (masklab onnx)": float("nan"), "click ms (masklab bf16)": float("nan"),
            "click ms (transformers)": float(len(ref["masks"])),
            "click speed-up": t_tf / t_ours, "onnx speed-up": float("nan"),
            "logit rel. diff": float("nan"),
            "bf16 speed-up": float("nan")}


def _photo(size) -> np.ndarray:
    from masklab.io.images import read_image

    files = sorted((COCO / "val2017").glob("*.jpg")) if COCO.is_dir() else []
    if files:
        import cv2

        im = read_image(files[0])
        return cv2.resize(im, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)


def _coco_objects(limit: int):
    """(image at 480 x 640, object mask) pairs: COCO instances of at least 2,000 px."""
    import cv2

    from masklab.io.coco import annotation_rle, load_coco
    from masklab.io.images import read_image
    from masklab.types import Masks

    ann_file = next((COCO / "annotations").glob("instances_*.json"))
    ds = load_coco(ann_file)
    out = []
    for image_id in ds.image_ids:
        rec = ds.image_by_id[image_id]
        anns = [a for a in ds.annotations_for(image_id)
                if not a.get("iscrowd", 0) and a["area"] >= 2000]
        if not anns:
            continue
        img = read_image(COCO / "val2017" / rec["file_name"])
        h, w = rec["height"], rec["width"]
        a = max(anns, key=lambda a: a["area"])  # the largest object of the image
        m = Masks.from_rle([annotation_rle(a, h, w)], size=(h, w)).to_dense()[0]
        img = cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)
        m = cv2.resize(m.astype(np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST) > 0
        out.append((img, m))
        if len(out) == limit:
            break
    return out


MATTING = Path(__file__).resolve().parents[2] / "shared" / "data" / "matting"


def _matting_objects(limit: int):
    """GrabCut-style photos with one object each: alphamatting.com's training images, the
    object = alpha > 0.5."""
    from masklab.io.images import read_image

    out = []
    for f in sorted((MATTING / "input_training_lowres").glob("*.png"))[:limit]:
        a = read_image(MATTING / "gt_training_lowres" / f.name)
        out.append((read_image(f), (a[..., 0] if a.ndim == 3 else a) > 127))
    return out


def _synthetic_objects(limit: int):
    """GrabCut-style images made in code (tests/interactive/test_classical.grabcut_style)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.interactive.test_classical import grabcut_style

    return [grabcut_style(seed) for seed in range(limit)]


def bench_classical(n_objects: int) -> list[dict]:
    """NoC and mean IoU after 1 / 2 / 3 clicks of each classical backend (and GrabCut with
    clicks as seeds only, as before the click region) on three sets."""
    from masklab.interactive import Session
    from masklab.interactive.classical import GrabCut
    from masklab.metrics.interactive import InteractiveEvaluator

    sets = [("synthetic GrabCut-style", _synthetic_objects(n_objects))]
    if MATTING.is_dir():
        sets.append(("alphamatting.com (27 photos)", _matting_objects(27)))
    if COCO.is_dir():
        sets.append((f"COCO val (tiny), {n_objects} largest objects", _coco_objects(n_objects)))
    backends = [("grabcut", "grabcut"), ("grabcut, clicks as seeds only (before)",
                                         GrabCut(click_margin=0)),
                ("graphcut", "graphcut"), ("random_walker", "random_walker"),
                ("ncut", "ncut")]
    rows = []
    for data, objects in sets:
        for name, backend in backends:
            ev = InteractiveEvaluator((0.85, 0.90), 20)
            lat, first = [], []
            for img, gt in objects:
                s = Session(img, backend)
                calls = []

                def predict(clicks, s=s, calls=calls):
                    t = time.perf_counter()
                    m = s.predict(points=[c[:2] for c in clicks],
                                  point_labels=[int(c[2]) for c in clicks]).to_dense()[0]
                    calls.append(time.perf_counter() - t)
                    return m

                ev.evaluate(predict, gt)
                first.append(calls[0])
                lat += calls[1:]
            r = ev.compute()
            rows.append({"data": data, "backend": name,
                         "mIoU@1": round(float(r.miou_per_click[0]), 3),
                         "mIoU@2": round(float(r.miou_per_click[1]), 3),
                         "mIoU@3": round(float(r.miou_per_click[2]), 3),
                         "NoC@85": r.noc[0.85], "NoC@90": r.noc[0.90], "NoF@90": r.nof[0.90],
                         "ms/interaction": round(1000 * statistics.mean(lat), 1)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sam", action="store_true")
    ap.add_argument("--everything", action="store_true")
    ap.add_argument("--classical", action="store_true")
    ap.add_argument("--objects", type=int, default=20)
    args = ap.parse_args()
    if not (args.sam or args.classical):
        args.sam = args.classical = True
    threads = torch.get_num_threads()
    if args.sam:
        report("interactive_sam", bench_sam(args.everything),
               {"image": "768x1024", "weights": "random, real dimensions", "threads": threads,
                "note": "everything row: seconds in the embed columns, mask counts in the "
                        "click columns"})
    if args.classical:
        rows = bench_classical(args.objects)
        report("interactive_classical", rows, {"max_clicks": 20, "threads": threads,
                                               "coco_image": "480x640"})


if __name__ == "__main__":
    main()
