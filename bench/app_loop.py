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

    python bench/app_loop.py --minutes 2.5
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
    """One simulated project: the app's store and job runner, in this process."""

    def __init__(self, work: Path, pool: list[Path], truth, args):
        from masklab.app import db
        from masklab.app.jobs import JobRunner
        from masklab.app.store import Store
        from masklab.data.semantic import CAMVID_CLASSES

        self.truth, self.args = truth, args
        data = work / "data"
        data.mkdir(parents=True)
        engine = db.make_engine(db.sqlite_url(data / "masklab.db"))
        db.migrate(engine)
        self.store = Store(engine, data, [pool[0].parent])
        self.runner = JobRunner(self.store, threads=1, poll=0.2)
        self.runner.start()
        p = self.store.create_project("camvid", list(CAMVID_CLASSES))
        self.pid = p["id"]
        self.class_ids = [c["id"] for c in p["classes"]]  # CamVid class k -> this id
        self.store.add_images(self.pid, pool, base=pool[0].parent)
        self.images = {i["file_name"]: i["id"] for i in self.store.all_images(self.pid)}
        self.names = {v: k for k, v in self.images.items()}

    def label(self, image_ids) -> None:
        """The annotator's work: the ground truth, one annotation per class; then "done"."""
        from masklab import rle

        for i in image_ids:
            gt = self.truth[self.names[i]]
            recs = [{"class_id": self.class_ids[k], "mask": rle.encode(gt == k)[0]}
                    for k in range(VOID) if (gt == k).any()]
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

        params = training.check_params({
            "model": "unet", "model_config": {"depth": 4, "width": 16}, "epochs": 10_000,
            "minutes": self.args.minutes, "crop": 128, "batch_size": 8, "lr": 2e-3,
            "val_percent": 10, "threads": self.args.threads, "unlabelled": "ignore",
            "from_version": previous if self.args.warm else None},
            self.store.project(self.pid, counts=False))
        ids = training.labelled_ids(self.store, self.pid, params["statuses"], ImageFilter())
        assert sorted(ids) == sorted(labelled)
        return self.job("train", params, ids)

    def prelabel(self, model_id: int, ids: list[int]) -> dict:
        from masklab.app.prelabel import check_params

        params = check_params({"source": "model", "model_id": model_id},
                              self.store.project(self.pid, counts=False), self.store)
        return self.job("prelabel", params, ids)

    def proposal_map(self, image_id: int) -> tuple[np.ndarray, dict]:
        """The label map the annotator sees (proposals in z order; 255: nothing) and each
        class's proposal mask."""
        from masklab import rle

        gt = self.truth[self.names[image_id]]
        out = np.full(gt.shape, 255, np.uint8)
        by_class = {}
        back = {cid: k for k, cid in enumerate(self.class_ids)}
        for a in self.store.annotations(image_id)["annotations"]:  # z order
            if not a["proposal"]:
                continue
            m = rle.decode([a["mask"]])[0]
            out[m] = back[a["class_id"]]
            by_class[back[a["class_id"]]] = m
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


def click_effort(loop: Loop, ids, with_model: bool, max_clicks: int = 20) -> float:
    """Mean NoC@85 over the class regions (>= ``MIN_REGION`` of the image) of ``ids``."""
    from masklab.interactive.classical import GrabCut
    from masklab.io.images import read_image
    from masklab.metrics.interactive import iou, next_click
    from masklab.types import Prompts

    backend = GrabCut()
    nocs = []
    for i in ids:
        gt_map = loop.truth[loop.names[i]]
        image = read_image(loop.store.image_path(i))
        state = backend.set_image(image)
        _, proposals = loop.proposal_map(i) if with_model else (None, {})
        for k in range(VOID):
            gt = gt_map == k
            if gt.sum() < MIN_REGION * gt.size:
                continue
            prior = proposals.get(k)
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
                                                      point_labels=np.array(labs),
                                                      mask=prior))[0][0]
            nocs.append(n if iou(gt, pred) >= 0.85 else max_clicks)
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


def run_order(order: str, work: Path, pool, truth, held, eval_ids_names, args) -> list[dict]:
    loop = Loop(work / order, pool, truth, args)
    eval_ids = [loop.images[n] for n in eval_ids_names]
    candidates = [i for i in loop.images.values() if i not in set(eval_ids)]
    rng = random.Random(args.seed)
    labelled = rng.sample(sorted(candidates), STEPS[0])
    rows, previous = [], None
    for step, n in enumerate(STEPS):
        if step:  # the next images: at random, or least confident first
            rest = sorted(set(candidates) - set(labelled))
            if order == "random":
                labelled += rng.sample(rest, n - len(labelled))
            else:  # the project's queue, as the editor's "next" follows it
                labelled += loop.queue(rest)[:n - len(labelled)]
        loop.label(labelled[len(labelled) - (n - (STEPS[step - 1] if step else 0)):])
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
               "job_val_mIoU": round(job["result"]["score"], 4),
               "held_out_video_mIoU": round(held_out_miou(model["path"], held), 4),
               "pixels_to_correct": round(pixel_effort(loop, remaining), 4),
               "pixels_to_correct_eval_set": round(pixel_effort(loop, eval_ids), 4),
               "noc85": round(click_effort(loop, eval_ids, True), 2)}
        rows.append(row)
        print(row, flush=True)
    loop.runner.stop()
    return rows


def plot(rows, baseline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    for order, style in (("random", "o--"), ("uncertain", "s-")):
        r = [x for x in rows if x["order"] == order]
        n = [x["labelled"] for x in r]
        ax[0].plot(n, [x["pixels_to_correct"] for x in r], style, label=f"model, {order} order")
        ax[1].plot(n, [x["noc85"] for x in r], style, label=f"model, {order} order")
        ax[2].plot(n, [x["held_out_video_mIoU"] for x in r], style, label=f"{order} order")
    ax[0].axhline(1.0, color="gray", ls=":", label="no model")
    ax[1].axhline(baseline["noc85"], color="gray", ls=":", label="no model")
    ax[0].set(title="pixels to correct per remaining image", xlabel="labelled images",
              ylabel="share of pixels", xscale="log", ylim=(0, 1.05))
    ax[1].set(title="clicks to IoU 0.85 (NoC@85)", xlabel="labelled images",
              ylabel="clicks per region", xscale="log")
    ax[2].set(title=f"mIoU on an unseen video ({HELD_OUT_VIDEO})", xlabel="labelled images",
              ylabel="mIoU", xscale="log")
    from matplotlib.ticker import NullFormatter

    for a in ax:
        a.set_xticks(list(STEPS), [str(s) for s in STEPS])
        a.xaxis.set_minor_formatter(NullFormatter())
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.5, help="training budget per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                    help="each step's training goes on from the previous version "
                         "(--no-warm: from scratch)")
    args = ap.parse_args()
    from masklab.app.training import cpu_precision

    if not CAMVID.is_dir():
        raise SystemExit(f"no CamVid at {CAMVID}")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="masklab-loop-"))
    pool, truth, held = half_res(work)
    rng = random.Random(args.seed + 1)
    eval_names = sorted(rng.sample(sorted(p.name for p in pool), EVAL_IMAGES))
    # without a model: every pixel to draw, clicks from nothing on the same regions
    base_loop = Loop(work / "none", pool, truth, args)
    baseline = {"pixels_to_correct": 1.0, "noc85": round(click_effort(
        base_loop, [base_loop.images[n] for n in eval_names], False), 2)}
    base_loop.runner.stop()
    print("no model", baseline, flush=True)
    rows = []
    for order in ("random", "uncertain"):
        rows += run_order(order, work, pool, truth, held, eval_names, args)
    for r in rows:
        r["effort_ratio"] = {"pixels": round(r["pixels_to_correct"] / 1.0, 4),
                             "clicks": round(r["noc85"] / baseline["noc85"], 4)}
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    plot(rows, baseline, out / "app_loop.png")
    table = [{"order": r["order"], "labelled": r["labelled"],
              "val mIoU (unseen video)": r["held_out_video_mIoU"],
              "pixels to correct": r["pixels_to_correct"],
              "NoC@85": r["noc85"], "effort ratio pixels": r["effort_ratio"]["pixels"],
              "effort ratio clicks": r["effort_ratio"]["clicks"], "train s": r["train_s"],
              "pre-label s": r["prelabel_s"]} for r in rows]
    at80 = {r["order"]: r["effort_ratio"] for r in rows if r["labelled"] == STEPS[-1]}
    meta = {"dataset": f"CamVid half resolution: pool {'+'.join(POOL_VIDEOS)} "
                       f"({len(pool)} images), held-out video {HELD_OUT_VIDEO} ({len(held)})",
            "steps": list(STEPS), "training_minutes_per_step": args.minutes,
            "warm_start": args.warm,
            "threads": args.threads, "model": "unet depth 4 width 16, crops 128",
            "precision": cpu_precision("auto"),
            "no_model": baseline, "eval_set_images": EVAL_IMAGES,
            "effort_ratio_at_80": at80, "goal": "effort ratio <= 0.5 after 80 images",
            "seconds": round(time.perf_counter() - t0), "rows": rows}
    report("app_loop", table, meta)
    print(json.dumps(at80))


if __name__ == "__main__":
    main()
