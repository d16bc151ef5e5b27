"""Does the app's model loop save annotation work? Simulated annotators on real CamVid.

A project holds the CamVid images of two videos (0001TP and 0016E5: 367 images, at half
resolution); annotating an image means entering its ground truth (void left unlabelled). In
growing steps (10, 20, 40, 80 labelled images) the app's own jobs run: ``train`` (a U-Net on
the labelled images, a fixed time budget, going on from the previous step's version), then
``prelabel`` with the new version over the images still unlabelled (proposals + each image's
uncertainty). The next images to label are taken at random, or from the project's "least
confident first" queue (uncertainty made diverse: masklab/app/queue.py), as the editor's
"next" follows it. After each step the effort left is measured against
annotating without a model:

- pixels to correct per remaining image: the pixels (void excluded) where the proposals,
  as the annotator sees them, differ from the ground truth; without a model every pixel;
- clicks: NoC@85 with masklab's click simulator (``metrics.interactive.next_click``) and the
  app's offline click tool (GrabCut), per class region (>= 5 % of the image) of a fixed set
  of 10 images that are never labelled, starting from the region's proposal (GrabCut then
  keeps it as the prior) or from nothing;
- validation mIoU on a video the training never saw (0006R0, 101 images).

``effort_ratio`` (with model / without) at each step goes to bench/results/app_loop.json,
the curves to bench/results/app_loop.png.

``--task instances``: the same loop on the 80 shared COCO photos (10 never labelled; steps
10, 20, 40, 60) with a Mask R-CNN: object pixels to correct (each object against the
proposal matched to it as COCO matches detections), proposals to reject, NoC@85 per object
of at least 32 x 32 pixels, and mask AP on the never-labelled photos; to
bench/results/app_loop_instances.json and .png.

    python bench/app_loop.py --minutes 4
    python bench/app_loop.py --task instances --minutes 2.5
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
POOL_VIDEOS = ("0001TP", "0016E5")
HELD_OUT_VIDEO = "0006R0"
STEPS = (10, 20, 40, 80)
EVAL_IMAGES = 10
MIN_REGION = 0.05  # class regions of at least this share of the image are clicked
COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny"
INSTANCE_STEPS = (10, 20, 40, 60)  # of the 80 photos; 10 are never labelled
MIN_OBJECT = 32 * 32  # objects clicked: COCO's medium and large ones
VOID = 11


def half_res(work: Path) -> tuple[list[Path], dict[str, np.ndarray], list[tuple]]:
    """Pool images (written at half size) with their labels, and the held-out video's pairs."""
    import cv2

    from masklab.io.images import read_image, read_label_png, write_image

    pairs = []
    for split in ("train", "val"):
        for line in (CAMVID / f"{split}.txt").read_text().split("\n"):
            if line.strip():
                img, lab = (CAMVID / p.split("CamVid/")[-1] for p in line.split())
                pairs.append((img, lab))
    folder = work / "pool"
    folder.mkdir(parents=True, exist_ok=True)
    pool, truth, held = [], {}, []
    for img, lab in pairs:
        im = read_image(img)
        lb = read_label_png(lab)
        im = cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA)
        lb = cv2.resize(lb, (lb.shape[1] // 2, lb.shape[0] // 2),
                        interpolation=cv2.INTER_NEAREST)
        if img.name.startswith(HELD_OUT_VIDEO):
            held.append((im, lb))
        elif img.name.startswith(POOL_VIDEOS):
            out = folder / (img.stem + ".png")
            write_image(out, im)
            pool.append(out)
            truth[out.name] = lb
    return sorted(pool), truth, held


class Loop:
    """One simulated project: the app's store and job runner, in this process. ``truth``
    maps an image's file name to its ground truth (a label map, or the objects);
    ``objects(truth)`` is the annotator's work on it: ``[(class index, bool mask)]``."""

    def __init__(self, work: Path, pool: list[Path], truth, classes: list[str], objects,
                 args):
        from masklab.app import db
        from masklab.app.jobs import JobRunner
        from masklab.app.store import Store

        self.truth, self.objects, self.args = truth, objects, args
        data = work / "data"
        data.mkdir(parents=True)
        engine = db.make_engine(db.sqlite_url(data / "masklab.db"))
        db.migrate(engine)
        self.store = Store(engine, data, [pool[0].parent])
        self.runner = JobRunner(self.store, threads=1, poll=0.2)
        self.runner.start()
        p = self.store.create_project("loop", list(classes))
        self.pid = p["id"]
        self.class_ids = [c["id"] for c in p["classes"]]  # class index k -> this id
        self.store.add_images(self.pid, pool, base=pool[0].parent)
        self.images = {i["file_name"]: i["id"] for i in self.store.all_images(self.pid)}
        self.names = {v: k for k, v in self.images.items()}

    def label(self, image_ids) -> None:
        """The annotator's work: the ground truth; then "done"."""
        from masklab import rle

        for i in image_ids:
            recs = [{"class_id": self.class_ids[k], "mask": rle.encode(m)[0]}
                    for k, m in self.objects(self.truth[self.names[i]])]
            # what was proposed is rejected; the truth is drawn
            self.store.review_proposals(self.pid, "reject", image_id=i)
            with self.store.transaction() as s:
                self.store.add_annotations(s, i, recs, source="hand")
            self.store.set_status(i, "done")

    def job(self, kind: str, params: dict, image_ids) -> dict:
        j = self.store.create_job(self.pid, kind, params, image_ids=image_ids)
        self.runner.wake()
        while True:
            j = self.store.job(j["id"])
            if j["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.5)
        if j["state"] != "done":
            raise SystemExit(f"{kind} job: {j['state']} {j['message']}")
        return j

    def train(self, labelled: list[int], previous: int | None = None) -> dict:
        from masklab.app import training
        from masklab.app.store import ImageFilter

        a = self.args
        if a.task == "semantic":
            params = {"model": "unet", "model_config": {"depth": 4, "width": 16},
                      "crop": 128, "batch_size": 8, "lr": 2e-3, "unlabelled": "ignore",
                      "from_version": previous if a.warm else None}
        else:  # the trainer has no warm start for instance models
            params = {"task": "instances", "model": a.model, "pretrained": a.pretrained,
                      "model_config": {"min_size": a.size, "max_size": round(a.size * 5 / 3)},
                      "batch_size": 2, "lr": a.lr}
        params = training.check_params({
            **params, "epochs": 10_000, "minutes": a.minutes, "val_percent": 10,
            "threads": a.threads}, self.store.project(self.pid, counts=False))
        ids = training.labelled_ids(self.store, self.pid, params["statuses"], ImageFilter())
        assert sorted(ids) == sorted(labelled)
        return self.job("train", params, ids)

    def prelabel(self, model_id: int, ids: list[int]) -> dict:
        from masklab.app.prelabel import check_params

        params = check_params({"source": "model", "model_id": model_id},
                              self.store.project(self.pid, counts=False), self.store)
        return self.job("prelabel", params, ids)

    def proposals(self, image_id: int) -> list[tuple[int, np.ndarray, float]]:
        """The proposals the annotator sees, in z order: ``(class index, mask, score)``."""
        from masklab import rle

        back = {cid: k for k, cid in enumerate(self.class_ids)}
        return [(back[a["class_id"]], rle.decode([a["mask"]])[0], a.get("score") or 0.0)
                for a in self.store.annotations(image_id)["annotations"] if a["proposal"]]

    def proposal_map(self, image_id: int) -> tuple[np.ndarray, dict]:
        """The label map the annotator sees (proposals in z order; 255: nothing) and each
        class's proposal mask."""
        out = np.full(self.truth[self.names[image_id]].shape, 255, np.uint8)
        by_class = {}
        for k, m, _ in self.proposals(image_id):
            out[m] = k
            by_class[k] = m
        return out, by_class

    def queue(self, ids: list[int]) -> list[int]:
        """``ids`` in the project's "least confident first" order (the store's list)."""
        from masklab.app.store import ImageFilter

        wanted = set(ids)
        return [i for i in self.store.image_ids(self.pid, ImageFilter(sort="-uncertain"))
                if i in wanted]


def pixel_effort(loop: Loop, ids) -> float:
    """Mean share of an image's (non-void) pixels the annotator must correct."""
    shares = []
    for i in ids:
        gt = loop.truth[loop.names[i]]
        valid = gt != VOID
        seen, _ = loop.proposal_map(i)
        shares.append(float(((seen != gt) & valid).sum() / max(1, valid.sum())))
    return float(np.mean(shares))


def noc(backend, state, gt: np.ndarray, prior: np.ndarray | None, max_clicks: int = 20) -> int:
    """Clicks (masklab's simulator) until IoU 0.85, from ``prior`` (the proposal, which the
    tool keeps as its mask prompt) or from nothing; ``max_clicks`` when never reached."""
    from masklab.metrics.interactive import iou, next_click
    from masklab.types import Prompts

    pred = prior.copy() if prior is not None else np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    pts, labs, n = [], [], 0
    while iou(gt, pred) < 0.85 and n < max_clicks:
        c = next_click(gt, pred, clicked)
        if c is None:
            break
        n += 1
        clicked[int(c[1]), int(c[0])] = True
        pts.append(c[:2])
        labs.append(1 if c[2] else 0)
        pred = backend.predict(state, Prompts(points=np.array(pts, float),
                                              point_labels=np.array(labs), mask=prior))[0][0]
    return n if iou(gt, pred) >= 0.85 else max_clicks


def click_effort(loop: Loop, ids, with_model: bool) -> float:
    """Mean NoC@85 over the class regions (>= ``MIN_REGION`` of the image) of ``ids``."""
    from masklab.interactive.classical import GrabCut
    from masklab.io.images import read_image

    backend = GrabCut()
    nocs = []
    for i in ids:
        gt_map = loop.truth[loop.names[i]]
        state = backend.set_image(read_image(loop.store.image_path(i)))
        _, proposals = loop.proposal_map(i) if with_model else (None, {})
        for k in range(VOID):
            gt = gt_map == k
            if gt.sum() >= MIN_REGION * gt.size:
                nocs.append(noc(backend, state, gt, proposals.get(k)))
    return float(np.mean(nocs))


def held_out_miou(model_path: str, held) -> float:
    from masklab.metrics.semantic import SemanticEvaluator
    from masklab.models.semantic import load_semantic_model
    from masklab.tasks.semantic import predict_semantic

    m = load_semantic_model(model_path)
    ev = SemanticEvaluator(VOID, ignore_index=VOID)
    for im, lb in held:
        pred = predict_semantic(m, im).labels.astype(np.int64) - 1  # 0 is "background"
        ev.update(lb, np.clip(pred, 0, VOID - 1))
    return float(ev.compute().miou)


# --- instances: the shared COCO photos --------------------------------------------------

def coco_pool(work: Path) -> tuple[list[Path], dict, list[str], dict]:
    """The 80 photos (copied into the project's folder), their objects ``[(class index,
    mask)]`` (crowd regions left out), the class names (categories present, COCO order)
    and the ground truth JSON."""
    import shutil

    from masklab import rle
    from masklab.io.coco import annotation_rle, read_json

    gt = read_json(COCO / "annotations" / "instances_val2017.json")
    used = {a["category_id"] for a in gt["annotations"] if not a.get("iscrowd")}
    cats = [c for c in sorted(gt["categories"], key=lambda c: c["id"]) if c["id"] in used]
    index = {c["id"]: k for k, c in enumerate(cats)}
    folder = work / "pool"
    folder.mkdir(parents=True, exist_ok=True)
    pool, truth = [], {}
    by_image = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):
            by_image[a["image_id"]].append(a)
    for im in gt["images"]:
        out = folder / im["file_name"]
        shutil.copyfile(COCO / "val2017" / im["file_name"], out)
        pool.append(out)
        truth[out.name] = [(index[a["category_id"]], rle.decode(
            [annotation_rle(a, im["height"], im["width"])])[0]) for a in by_image[im["id"]]]
    return sorted(pool), truth, [c["name"] for c in cats], gt


def match(objects, proposals) -> tuple[dict[int, np.ndarray], int]:
    """Proposals matched to objects as COCO matches detections (by score, each to the
    unmatched object of its class with the highest IoU >= 0.5): ``{object index: mask}``
    and the number of proposals left unmatched (one keystroke each to reject)."""
    from masklab.metrics.interactive import iou

    taken, unmatched = {}, 0
    for k, m, _ in sorted(proposals, key=lambda p: -p[2]):
        best, best_iou = None, 0.5
        for j, (kj, g) in enumerate(objects):
            if kj == k and j not in taken:
                v = iou(g, m)
                if v >= best_iou:
                    best, best_iou = j, v
        if best is None:
            unmatched += 1
        else:
            taken[best] = m
    return taken, unmatched


def instance_pixel_effort(loop: Loop, ids) -> tuple[float, float]:
    """Mean over images of the object pixels to correct (each object's symmetric difference
    with its matched proposal; all of it when none matched) over the object pixels, and
    the mean number of proposals to reject."""
    shares, rejects = [], []
    for i in ids:
        objs = loop.truth[loop.names[i]]
        if not objs:
            continue
        taken, extra = match(objs, loop.proposals(i))
        wrong = sum(int((g ^ taken[j]).sum()) if j in taken else int(g.sum())
                    for j, (_, g) in enumerate(objs))
        shares.append(wrong / max(1, sum(int(g.sum()) for _, g in objs)))
        rejects.append(extra)
    return float(np.mean(shares)), float(np.mean(rejects))


def instance_click_effort(loop: Loop, ids, with_model: bool, cache: dict) -> float:
    """Mean NoC@85 over the objects of ``ids`` of at least ``MIN_OBJECT`` pixels (COCO's
    medium and large), from the matched proposal or from nothing. ``cache`` keeps each
    object's count from nothing (by file name and object), measured once."""
    from masklab.interactive.classical import GrabCut
    from masklab.io.images import read_image

    backend = GrabCut()
    nocs = []
    for i in ids:
        name = loop.names[i]
        objs = loop.truth[name]
        state = None
        taken = match(objs, loop.proposals(i))[0] if with_model else {}
        for j, (_, g) in enumerate(objs):
            if g.sum() < MIN_OBJECT:
                continue
            if j not in taken and (name, j) in cache:
                nocs.append(cache[name, j])
                continue
            if state is None:
                state = backend.set_image(read_image(loop.store.image_path(i)))
            nocs.append(noc(backend, state, g, taken.get(j)))
            if j not in taken:
                cache[name, j] = nocs[-1]
    return float(np.mean(nocs))


def eval_set_ap(loop: Loop, model_path: str, ids, gt: dict) -> float:
    """Mask AP (masklab's COCO evaluation) of the model on the images ``ids``."""
    from masklab import rle
    from masklab.io.images import read_image
    from masklab.metrics.coco import coco_evaluate
    from masklab.models.objects import load_object_model

    model = load_object_model(model_path)
    by_name = {c["name"]: c["id"] for c in gt["categories"]}
    wanted = {loop.names[i] for i in ids}
    images = [im for im in gt["images"] if im["file_name"] in wanted]
    subset = {**gt, "images": images, "annotations": [
        a for a in gt["annotations"] if a["image_id"] in {im["id"] for im in images}]}
    results = []
    for im in images:
        det = model.predict([read_image(COCO / "val2017" / im["file_name"])],
                            score_threshold=0.0, max_detections=100)[0]
        if det.masks is None or not len(det):
            continue
        names = det.masks.names or [str(k) for k in det.masks.labels]
        for k, r in enumerate(rle.encode(det.masks.to_dense())):
            if names[k] in by_name:
                results.append({"image_id": im["id"], "category_id": by_name[names[k]],
                                "segmentation": r, "score": float(det.masks.scores[k])})
    if not results:
        return 0.0
    return max(0.0, float(coco_evaluate(subset, results).stats[0]))


def run_order(order: str, work: Path, task: dict, args) -> list[dict]:
    """One annotation order (random, or the project's "least confident first" queue)
    through the steps: label, train, pre-label the rest, measure the effort left."""
    loop = Loop(work / order, task["pool"], task["truth"], task["classes"], task["objects"],
                args)
    eval_ids = [loop.images[n] for n in task["eval_names"]]
    candidates = [i for i in loop.images.values() if i not in set(eval_ids)]
    rng = random.Random(args.seed)
    steps = task["steps"]
    labelled = rng.sample(sorted(candidates), steps[0])
    rows, previous = [], None
    for step, n in enumerate(steps):
        if step:  # the next images: at random, or least confident first
            rest = sorted(set(candidates) - set(labelled))
            if order == "random":
                labelled += rng.sample(rest, n - len(labelled))
            else:  # the project's queue, as the editor's "next" follows it
                labelled += loop.queue(rest)[:n - len(labelled)]
        loop.label(labelled[len(labelled) - (n - (steps[step - 1] if step else 0)):])
        t = time.perf_counter()
        job = loop.train(labelled, previous)
        previous = job["result"]["model_id"]
        t_train = time.perf_counter() - t
        remaining = sorted(set(loop.images.values()) - set(labelled))
        t = time.perf_counter()
        loop.prelabel(job["result"]["model_id"], remaining)
        t_pre = time.perf_counter() - t
        model = loop.store.model(job["result"]["model_id"])
        row = {"order": order, "labelled": n, "version": model["version"],
               "train_s": round(t_train, 1), "prelabel_s": round(t_pre, 1),
               "prelabel_images": len(remaining),
               "job_val_" + job["result"]["score_name"].replace(" ", "_"):
                   round(job["result"]["score"], 4)}
        if args.task == "semantic":
            row.update(held_out_video_mIoU=round(held_out_miou(model["path"], task["held"]), 4),
                       pixels_to_correct=round(pixel_effort(loop, remaining), 4),
                       pixels_to_correct_eval_set=round(pixel_effort(loop, eval_ids), 4),
                       noc85=round(click_effort(loop, eval_ids, True), 2))
        else:
            pixels, rejects = instance_pixel_effort(loop, remaining)
            row.update(eval_set_mask_AP=round(eval_set_ap(loop, model["path"], eval_ids,
                                                          task["gt"]), 4),
                       pixels_to_correct=round(pixels, 4), rejects_per_image=round(rejects, 2),
                       noc85=round(instance_click_effort(loop, eval_ids, True,
                                                         task["from_nothing"]), 2))
        rows.append(row)
        print(row, flush=True)
    loop.runner.stop()
    return rows


def plot(rows, baseline, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    quality, title = (("held_out_video_mIoU", f"mIoU on an unseen video ({HELD_OUT_VIDEO})")
                      if task == "semantic" else
                      ("eval_set_mask_AP", "mask AP on 10 never-labelled photos"))
    unit = "region" if task == "semantic" else "object"
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    for order, style in (("random", "o--"), ("uncertain", "s-")):
        r = [x for x in rows if x["order"] == order]
        n = [x["labelled"] for x in r]
        ax[0].plot(n, [x["pixels_to_correct"] for x in r], style, label=f"model, {order} order")
        ax[1].plot(n, [x["noc85"] for x in r], style, label=f"model, {order} order")
        ax[2].plot(n, [x[quality] for x in r], style, label=f"{order} order")
    ax[0].axhline(1.0, color="gray", ls=":", label="no model")
    ax[1].axhline(baseline["noc85"], color="gray", ls=":", label="no model")
    ax[0].set(title="pixels to correct per remaining image", xlabel="labelled images",
              ylabel="share of pixels", xscale="log", ylim=(0, 1.05))
    ax[1].set(title="clicks to IoU 0.85 (NoC@85)", xlabel="labelled images",
              ylabel=f"clicks per {unit}", xscale="log")
    ax[2].set(title=title, xlabel="labelled images", ylabel=quality.split("_")[-1],
              xscale="log")
    steps = sorted({x["labelled"] for x in rows})
    for a in ax:
        a.set_xticks(steps, [str(s) for s in steps])
        a.xaxis.set_minor_formatter(NullFormatter())
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def semantic_task(work: Path, seed: int) -> dict:
    pool, truth, held = half_res(work)
    rng = random.Random(seed + 1)
    from masklab.data.semantic import CAMVID_CLASSES

    return {"pool": pool, "truth": truth, "held": held, "classes": list(CAMVID_CLASSES),
            "objects": lambda gt: [(k, gt == k) for k in range(VOID) if (gt == k).any()],
            "eval_names": sorted(rng.sample(sorted(p.name for p in pool), EVAL_IMAGES)),
            "steps": STEPS,
            "dataset": f"CamVid half resolution: pool {'+'.join(POOL_VIDEOS)} ({len(pool)} "
                       f"images), held-out video {HELD_OUT_VIDEO} ({len(held)})"}


def instance_task(work: Path, seed: int) -> dict:
    pool, truth, classes, gt = coco_pool(work)
    rng = random.Random(seed + 1)
    return {"pool": pool, "truth": truth, "classes": classes, "gt": gt,
            "objects": lambda objs: objs,
            "eval_names": sorted(rng.sample(sorted(p.name for p in pool), EVAL_IMAGES)),
            "steps": INSTANCE_STEPS,
            "dataset": f"the shared COCO val2017 photos ({len(pool)}, {len(classes)} classes "
                       f"present); {EVAL_IMAGES} of them never labelled"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=("semantic", "instances"), default="semantic",
                    help="CamVid (semantic) or the COCO photos (instances)")
    ap.add_argument("--minutes", type=float, default=2.5, help="training budget per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                    help="each step's training goes on from the previous version "
                         "(--no-warm: from scratch; semantic)")
    ap.add_argument("--model", default="maskrcnn_resnet18_fpn",
                    help="instances: the registry's model")
    ap.add_argument("--pretrained", action="store_true",
                    help="instances: start from the model's COCO weights (downloaded once; "
                         "--model maskrcnn_resnet50_fpn_v2)")
    ap.add_argument("--size", type=int, default=384,
                    help="instances: the model's shorter input side")
    ap.add_argument("--lr", type=float, default=1e-3, help="instances: AdamW learning rate")
    args = ap.parse_args()
    from masklab.sysinfo import precision_for

    if args.task == "instances" and args.pretrained:
        from masklab.models.registry import get_info

        if get_info(args.model).weights is None:
            raise SystemExit(f"{args.model} has no pretrained weights: --pretrained needs "
                             "e.g. --model maskrcnn_resnet50_fpn_v2")
    data = CAMVID if args.task == "semantic" else COCO
    if not data.is_dir():
        raise SystemExit(f"no data at {data}")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="masklab-loop-"))
    task = (semantic_task if args.task == "semantic" else instance_task)(work, args.seed)
    # without a model: every pixel to draw, clicks from nothing on the same regions
    base_loop = Loop(work / "none", task["pool"], task["truth"], task["classes"],
                     task["objects"], args)
    eval_ids = [base_loop.images[n] for n in task["eval_names"]]
    if args.task == "semantic":
        clicks = click_effort(base_loop, eval_ids, False)
    else:
        task["from_nothing"] = {}
        clicks = instance_click_effort(base_loop, eval_ids, False, task["from_nothing"])
    baseline = {"pixels_to_correct": 1.0, "noc85": round(clicks, 2)}
    base_loop.runner.stop()
    print("no model", baseline, flush=True)
    rows = []
    for order in ("random", "uncertain"):
        rows += run_order(order, work, task, args)
    for r in rows:
        r["effort_ratio"] = {"pixels": round(r["pixels_to_correct"] / 1.0, 4),
                             "clicks": round(r["noc85"] / baseline["noc85"], 4)}
    name = "app_loop" if args.task == "semantic" else "app_loop_instances"
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    plot(rows, baseline, out / f"{name}.png", args.task)
    quality = "held_out_video_mIoU" if args.task == "semantic" else "eval_set_mask_AP"
    table = [{"order": r["order"], "labelled": r["labelled"],
              ("val mIoU (unseen video)" if args.task == "semantic" else
               "mask AP (never labelled)"): r[quality],
              "pixels to correct": r["pixels_to_correct"],
              "NoC@85": r["noc85"], "effort ratio pixels": r["effort_ratio"]["pixels"],
              "effort ratio clicks": r["effort_ratio"]["clicks"], "train s": r["train_s"],
              "pre-label s": r["prelabel_s"]} for r in rows]
    last = task["steps"][-1]
    at_last = {r["order"]: r["effort_ratio"] for r in rows if r["labelled"] == last}
    model = ("unet depth 4 width 16, crops 128" if args.task == "semantic" else
             f"{args.model}{' from COCO weights' if args.pretrained else ' from scratch'}, "
             f"shorter side {args.size}")
    meta = {"task": args.task, "dataset": task["dataset"], "steps": list(task["steps"]),
            "training_minutes_per_step": args.minutes,
            "warm_start": args.warm and args.task == "semantic",
            "threads": args.threads, "model": model, "precision": precision_for("auto", "cpu"),
            "no_model": baseline, "eval_set_images": EVAL_IMAGES,
            f"effort_ratio_at_{last}": at_last, "goal": "effort ratio <= 0.5 after 80 images",
            "seconds": round(time.perf_counter() - t0), "rows": rows}
    report(name, table, meta)
    print(json.dumps(at_last))


if __name__ == "__main__":
    main()
