"""Fine-tuning object models on COCO-format data (``masklab train instances``).

Instance segmentation (Mask R-CNN family), boxes (Faster R-CNN family) or keypoints (Keypoint
R-CNN; any keypoint set, flips swap left/right names): class remapping
(keep a subset of categories, renumbered 1..K in id order), the option to freeze the backbone,
mixed precision on CUDA, resume, periodic COCO evaluation on a validation set with
``masklab.metrics`` (mask AP for instance models, OKS AP for keypoints, box AP otherwise), the
best checkpoint by that AP, a CSV log and progress bars. Starting from COCO weights, the
class-specific heads (and a keypoint head of another size) are replaced to fit.
"""

from __future__ import annotations

import csv
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from masklab.errors import InputError
from masklab.models.objects import ObjectModel, load_object_model, save_object_checkpoint


@dataclass
class InstanceTrainConfig:
    data: str  # COCO instances JSON for training
    images: str  # their image folder
    val_data: str | None = None
    val_images: str | None = None  # default: ``images``
    out: str = "runs/instances"
    model: str = "maskrcnn_resnet50_fpn_v2"
    model_config: dict = field(default_factory=dict)
    pretrained: bool = True  # start from the registry's COCO weights (heads replaced)
    classes: list[str] | None = None  # keep these category names only (in this order)
    freeze_backbone: bool = False
    epochs: int = 12
    max_steps: int | None = None
    batch_size: int = 2
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    clip_grad: float | None = 10.0  # max gradient norm (None: no clipping)
    amp: bool = True
    flip: bool = True
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    resume: bool = False
    quiet: bool | None = None
    time_budget: float | None = None  # seconds of training (this run): then the epoch ends,
    # is evaluated and saved as the last one


class CocoTrainDataset:
    """Images and torchvision targets (xyxy boxes, labels 1..K, masks) from a COCO JSON;
    crowd annotations are left out."""

    def __init__(self, json_path, images_dir, class_names: list[str] | None = None,
                 flip: bool = False, with_masks: bool = True, with_keypoints: bool = False):
        from masklab.io.coco import load_coco

        self.coco = load_coco(json_path)
        self.json_path = json_path
        self.images_dir = Path(images_dir)
        cats = sorted(self.coco.categories, key=lambda c: c["id"])
        if class_names is not None:
            by_name = {c["name"]: c for c in cats}
            unknown = [n for n in class_names if n not in by_name]
            if unknown:
                raise InputError(f"no category named {unknown[0]!r}", json_path)
            cats = [by_name[n] for n in class_names]
        self.remap = {c["id"]: k + 1 for k, c in enumerate(cats)}
        self.class_names = ["__background__"] + [c["name"] for c in cats]
        self.ids = self.coco.image_ids
        self.flip, self.with_masks, self.with_keypoints = flip, with_masks, with_keypoints
        self.keypoint_names, self.skeleton, self.flip_perm = None, None, None
        if with_keypoints:
            names = [tuple(c.get("keypoints") or ()) for c in cats]
            if not names[0] or len(set(names)) != 1:
                raise InputError("keypoint training needs categories with one shared, "
                                 "non-empty 'keypoints' list", json_path)
            self.keypoint_names = list(names[0])
            self.skeleton = cats[0].get("skeleton") or None
            self.flip_perm = flip_permutation(self.keypoint_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        from masklab.io.images import read_image

        img_rec = self.coco.image_by_id[self.ids[i]]
        image = read_image(self.images_dir / img_rec["file_name"])
        anns = [a for a in self.coco.annotations_for(self.ids[i])
                if not a.get("iscrowd", 0) and a["category_id"] in self.remap]
        h, w = image.shape[:2]
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                           a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4)
        keep = (boxes[:, 2] > boxes[:, 0] + 1e-3) & (boxes[:, 3] > boxes[:, 1] + 1e-3)
        anns = [a for a, k in zip(anns, keep, strict=True) if k]
        boxes = boxes[keep]
        labels = np.array([self.remap[a["category_id"]] for a in anns], np.int64)
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
        if self.with_masks:
            from masklab.io.coco import annotation_rle
            from masklab.types import Masks

            rles = [annotation_rle(a, h, w) for a in anns]
            m = Masks.from_rle(rles, size=(h, w)).to_dense()
            target["masks"] = torch.from_numpy(m.astype(np.uint8))
        if self.with_keypoints:
            k = len(self.keypoint_names)
            kps = np.zeros((len(anns), k, 3), np.float32)
            for j, a in enumerate(anns):
                v = np.asarray(a.get("keypoints") or [0.0] * 3 * k, np.float32)
                if v.size != 3 * k:
                    raise InputError(f"annotation {a.get('id')} has {v.size // 3} keypoints, "
                                     f"its category {k}", self.json_path)
                kps[j] = v.reshape(k, 3)
            target["keypoints"] = torch.from_numpy(kps)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
            b = target["boxes"].clone()
            target["boxes"][:, 0], target["boxes"][:, 2] = w - b[:, 2], w - b[:, 0]
            if "masks" in target:
                target["masks"] = target["masks"].flip(-1)
            if "keypoints" in target:
                kp = target["keypoints"][:, self.flip_perm].clone()
                kp[..., 0] = torch.where(kp[..., 2] > 0, w - kp[..., 0], kp[..., 0])
                target["keypoints"] = kp
        return x, target


def flip_permutation(names: list[str]) -> list[int]:
    """Keypoint order after a horizontal flip: each ``left`` name trades places with its
    ``right`` twin (``left_eye`` ↔ ``right_eye``, ``top_left`` ↔ ``top_right``)."""
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        twin = n.replace("left", "\0").replace("right", "left").replace("\0", "right")
        perm.append(index.get(twin, index[n]))
    return perm


def _collate(batch):
    return tuple(zip(*batch, strict=True))


def _replace_heads(model: ObjectModel, num_classes: int,
                   num_keypoints: int | None = None) -> None:
    """New class-specific predictors for ``num_classes`` (Mask/Faster/Keypoint R-CNN), and a
    new keypoint predictor when ``num_keypoints`` differs from the checkpoint's."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    heads = getattr(model.net, "roi_heads", None)
    if heads is None:
        raise InputError(f"{model.name}: fine-tuning to new classes supports the R-CNN "
                         "families; train RetinaNet/FCOS with --no-pretrained")
    if heads.box_predictor.cls_score.out_features != num_classes:
        in_features = heads.box_predictor.cls_score.in_features
        heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
        if heads.mask_predictor is not None:
            in_ch = heads.mask_predictor.conv5_mask.in_channels
            heads.mask_predictor = MaskRCNNPredictor(in_ch, 256, num_classes)
    kp = getattr(heads, "keypoint_predictor", None)
    if kp is not None and num_keypoints and kp.kps_score_lowres.out_channels != num_keypoints:
        heads.keypoint_predictor = KeypointRCNNPredictor(kp.kps_score_lowres.in_channels,
                                                         num_keypoints)
        model.config["num_keypoints"] = num_keypoints


KEYPOINT_SIGMA = 0.05  # OKS sigma of every keypoint of a non-COCO skeleton


def evaluate_instances(model: ObjectModel, dataset: CocoTrainDataset, device,
                       quiet: bool | None = None, dist=None):
    """COCO evaluation (mask AP for instance models, OKS AP for keypoint models, else box
    AP) with masklab.metrics. In a distributed run (``dist``) each process predicts a
    contiguous share of the images; the accumulators are gathered and merged in rank order,
    so every process gets the one-process figures."""
    from masklab.io.images import read_image
    from masklab.metrics.coco import CocoEvaluator, CocoParams
    from masklab.progress import progress

    iou_type = {"instances": "segm", "keypoints": "keypoints"}.get(model.task, "bbox")
    params = CocoParams(iou_type)
    if iou_type == "keypoints" and len(dataset.keypoint_names) != 17:
        params.kpt_sigmas = np.full(len(dataset.keypoint_names), KEYPOINT_SIGMA)
    inverse = {k: cid for cid, k in dataset.remap.items()}
    gt = dataset.coco
    results = []
    model.eval()
    ids = list(dataset.ids)
    if dist is not None and dist.active:
        lo, hi = (round(k * len(ids) / dist.world) for k in (dist.rank, dist.rank + 1))
        ids = ids[lo:hi]
    for image_id in progress(ids, desc="eval", quiet=quiet):
        rec = gt.image_by_id[image_id]
        det = model.predict([read_image(dataset.images_dir / rec["file_name"])],
                            score_threshold=0.0, max_detections=100)[0]
        for r in det.to_coco_results(image_id):
            r["category_id"] = inverse.get(r["category_id"], -1)
            if r["category_id"] >= 0:
                results.append(r)
    cats = [c for c in gt.categories if c["id"] in dataset.remap]
    anns = [a for a in gt.annotations if a["category_id"] in dataset.remap]
    keep = set(ids)
    ev = CocoEvaluator(cats, iou_type, params).update(
        [im for im in gt.images if im["id"] in keep],
        [a for a in anns if a["image_id"] in keep], results)
    if dist is not None and dist.active:
        import torch.distributed

        parts = [None] * dist.world
        torch.distributed.all_gather_object(parts, ev)
        ev = parts[0]
        for p in parts[1:]:
            ev.merge(p)
    return ev.compute()


def train_instances(cfg: InstanceTrainConfig, callback=None):
    """Train; evaluate every ``eval_every`` epochs; keep ``out/best`` by AP.

    ``callback(event)`` (rank 0) sees ``{"event": "step", "step", "total_steps", "epoch",
    "loss"}`` after each step and ``{"event": "epoch", **log row}`` after each epoch's
    checkpoint; an exception it raises stops the run (``resume`` goes on from the last
    epoch).

    Under ``torchrun`` (``masklab train instances|keypoints --nproc N``) or Ray Train it
    trains with DDP: the global batch ``batch_size`` is split over the processes, gradients
    are averaged, each process evaluates a share of the validation images (the COCO
    accumulators are merged), rank 0 writes checkpoints and logs."""
    from masklab import distributed

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                          else "cpu" if cfg.device == "auto" else cfg.device)
    dist_, device = distributed.setup(device)
    try:
        return _train_instances(cfg, dist_, device, callback)
    finally:
        distributed.teardown(dist_)


def _train_instances(cfg: InstanceTrainConfig, dist_, device, callback=None):
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from masklab import distributed
    from masklab.io.atomic import write_json
    from masklab.progress import progress

    main = dist_.main
    quiet = cfg.quiet if main else True
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    from masklab.models.registry import get_info

    task = get_info(cfg.model).task
    with_masks, with_kps = task == "instances", task == "keypoints"
    train_ds = CocoTrainDataset(cfg.data, cfg.images, cfg.classes, flip=cfg.flip,
                                with_masks=with_masks, with_keypoints=with_kps)
    val_ds = None
    if cfg.val_data:
        val_ds = CocoTrainDataset(cfg.val_data, cfg.val_images or cfg.images,
                                  train_ds.class_names[1:], with_masks=with_masks,
                                  with_keypoints=with_kps)
    k = len(train_ds.class_names)
    n_kps = len(train_ds.keypoint_names) if with_kps else None
    if cfg.pretrained and get_info(cfg.model).weights:
        model = load_object_model(cfg.model, weights="default", config=cfg.model_config)
        _replace_heads(model, k, n_kps)
        model.num_classes, model.class_names = k, train_ds.class_names
    else:
        config = dict(cfg.model_config)
        if with_kps:
            config["num_keypoints"] = n_kps
        model = load_object_model(cfg.model, weights=None, num_classes=k,
                                  class_names=train_ds.class_names, config=config)
    if with_kps:
        model.keypoint_names, model.skeleton = train_ds.keypoint_names, train_ds.skeleton
    if cfg.freeze_backbone:
        for p in model.net.backbone.body.parameters():
            p.requires_grad_(False)
    model.to(device)

    if cfg.batch_size % dist_.world:
        raise InputError(f"batch size {cfg.batch_size} does not split over {dist_.world} "
                         "processes")
    # one permutation per epoch (seed + epoch), each process taking its share of every
    # global batch: the same batches on 1 process or N
    sampler = DistributedSampler(train_ds, num_replicas=dist_.world, rank=dist_.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size // dist_.world, sampler=sampler,
                        drop_last=True, num_workers=cfg.workers, collate_fn=_collate)
    net = model.net
    if dist_.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model.net, device_ids=[device.index] if device.type ==
                                      "cuda" else None)
    if len(loader) == 0:
        raise InputError(f"fewer training images than one batch ({cfg.batch_size})", cfg.data)
    total = len(loader) * cfg.epochs if cfg.max_steps is None else \
        min(cfg.max_steps, len(loader) * cfg.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise InputError(f"optimizer must be sgd or adamw, got {cfg.optimizer!r}")
    warm = max(1, min(cfg.warmup_steps, total // 2))
    from masklab.tasks.budget import RunClock

    clock = RunClock(max(1, total - warm), cfg.time_budget, dist_)

    def lr_at(s: int) -> float:  # linear warm-up, then cosine decay (over steps or time)
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * clock.fraction(s - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    state_file = out / "train_state.pt"
    start, step, best, best_epoch, history = 0, 0, -1.0, -1, []
    if cfg.resume and state_file.is_file():
        from masklab.weights import load_state_dict

        st = torch.load(state_file, map_location=device, weights_only=True)
        model.net.load_state_dict(load_state_dict(out / "last" / "model.safetensors"))
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, step = int(st["epoch"]) + 1, int(st["step"])
        best, best_epoch = float(st["best_ap"]), int(st["best_epoch"])
    if main:
        write_json(out / "train_config.json", {**asdict(cfg), "processes": dist_.world},
                   indent=1)
    seen, t_train = 0, 0.0
    emit = callback if (callback is not None and main) else (lambda event: None)
    clock.start()
    out_of_time = False
    for epoch in range(start, cfg.epochs):
        if step >= total or out_of_time:
            break
        model.train()
        sampler.set_epoch(epoch)
        t0, running, n = time.perf_counter(), 0.0, 0
        for images, targets in progress(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                                        quiet=quiet):
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            with torch.autocast(device.type, enabled=use_amp):
                losses = net(images, targets)
                loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            scaler.step(opt)
            scaler.update()
            clock.tick()
            sched.step()
            step += 1
            running += float(loss.detach())
            n += 1
            seen += len(images)
            emit({"event": "step", "step": step, "total_steps": total, "epoch": epoch + 1,
                  "loss": float(loss.detach())})
            out_of_time = clock.out_of_time
            if step >= total or out_of_time:
                break
        t_train += time.perf_counter() - t0
        running = float(distributed.all_sum(dist_, [running])[0]) / dist_.world
        row = {"epoch": epoch + 1, "step": step, "loss": running / max(1, n),
               "lr": opt.param_groups[0]["lr"], "AP": float("nan"), "AP50": float("nan")}
        last = epoch + 1 == cfg.epochs or step >= total or out_of_time
        distributed.broadcast_buffers(dist_, model.net)  # rank 0's BatchNorm statistics
        if val_ds is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
            r = evaluate_instances(model, val_ds, device, quiet, dist=dist_)
            row["AP"], row["AP50"] = float(r.stats[0]), float(r.stats[1])
            if r.stats[0] > best:
                best, best_epoch = float(r.stats[0]), epoch + 1
                if main:
                    save_object_checkpoint(out / "best", model, {"epoch": epoch + 1,
                                                                 "AP": row["AP"],
                                                                 "AP50": row["AP50"]})
        elif val_ds is None and last:
            if main:
                save_object_checkpoint(out / "best", model, {"epoch": epoch + 1})
            best_epoch = epoch + 1
        history.append(row)
        if main:
            _log(out / "log.csv", row)
            save_object_checkpoint(out / "last", model, {"epoch": epoch + 1})
            from masklab.io.atomic import atomic_path

            with atomic_path(state_file) as tmp:  # a stop mid-write leaves the last one whole
                torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "epoch": epoch, "step": step, "best_ap": best,
                            "best_epoch": best_epoch}, tmp)
            emit({"event": "epoch", **row, "best_AP": best, "best_epoch": best_epoch})
        distributed.barrier(dist_)  # the files are written before any process reads them
    return {"best_ap": best, "best_epoch": best_epoch, "history": history,
            "best_checkpoint": out / "best", "images_per_second": seen * dist_.world /
            t_train if t_train else 0.0}


def _log(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
