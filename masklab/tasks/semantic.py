"""Semantic segmentation: training (``train_semantic``) and prediction (``predict_semantic``).

Training: per-pixel cross-entropy with an ignore index (optionally + Dice, or focal), class
weights (given or median-frequency), AdamW or SGD with a poly or cosine schedule, mixed
precision on CUDA, gradient accumulation, resume, the best checkpoint by validation mIoU
(computed by ``masklab.metrics.semantic``), CSV and TensorBoard logs, a fixed seed.

Prediction: whole image, or sliding windows for images larger than ``tile``; optional
multi-scale + horizontal-flip test-time augmentation (softmax probabilities averaged).
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from masklab.errors import InputError
from masklab.models.semantic import (
    SemanticModel,
    load_checkpoint,
    load_semantic_model,
    save_checkpoint,
)
from masklab.types import SemanticMap


# --- prediction ----------------------------------------------------------------------------
def _windows(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = [*range(0, n - tile, stride), n - tile]
    return sorted(set(starts))


@torch.no_grad()
def _probs(model: SemanticModel, x: torch.Tensor, tile: int | None, overlap: float,
           batch_size: int) -> torch.Tensor:
    """Softmax probabilities ``(K, H, W)`` of one normalised ``(3, H, W)`` image."""
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(x[None]).softmax(dim=1)[0]
    stride = max(1, int(tile * (1 - overlap)))
    acc = x.new_zeros(model.num_classes, h, w)
    count = x.new_zeros(1, h, w)
    boxes = [(y, xx) for y in _windows(h, tile, stride) for xx in _windows(w, tile, stride)]
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        crops = torch.stack([x[:, y:y + tile, xx:xx + tile] for y, xx in chunk])
        out = model(crops).softmax(dim=1)
        for (y, xx), p in zip(chunk, out, strict=True):
            acc[:, y:y + tile, xx:xx + tile] += p
            count[:, y:y + tile, xx:xx + tile] += 1
    return acc / count


@torch.no_grad()
def predict_probabilities(model: SemanticModel, image: np.ndarray, *, tile: int | None = None,
                          overlap: float = 1 / 3, scales=(1.0,), flip: bool = False,
                          batch_size: int = 4) -> torch.Tensor:
    """Averaged class probabilities ``(K, H, W)`` for an ``(H, W, 3)`` uint8 image."""
    device = next(model.parameters()).device
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
    x = model.normalize(img)[0]
    h, w = x.shape[-2:]
    total = None
    n = 0
    for s in scales:
        # antialiased like the training-time random scale, so --scales 0.5 sees what
        # training and its validation saw
        xs = x if s == 1 else F.interpolate(x[None], scale_factor=s, mode="bilinear",
                                            align_corners=False, antialias=s < 1)[0]
        for flipped in ((False, True) if flip else (False,)):
            xi = xs.flip(-1) if flipped else xs
            p = _probs(model, xi, tile, overlap, batch_size)
            if flipped:
                p = p.flip(-1)
            if p.shape[-2:] != (h, w):
                p = F.interpolate(p[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            total = p if total is None else total + p
            n += 1
    return total / n


def predict_semantic(model: SemanticModel, image: np.ndarray, **kwargs) -> SemanticMap:
    """The label map of one image (see ``predict_probabilities`` for the options)."""
    probs = predict_probabilities(model, image, **kwargs)
    labels = probs.argmax(dim=0).cpu().numpy()
    dtype = np.uint8 if model.num_classes <= 256 else np.int32
    return SemanticMap(labels.astype(dtype), class_names=model.class_names, ignore_index=None)


def segment_files(model: SemanticModel, files: list[Path], out_dir: str | os.PathLike, *,
                  overlay: bool = True, areas_csv: bool = False, quiet: bool | None = None,
                  manifest=None, **kwargs) -> list[Path]:
    """Label PNG (and overlay, and per-class areas CSV) for each image file. With a
    ``masklab.manifest.RunManifest`` the images it lists as done are skipped and every
    finished one is recorded, so a stopped run started again resumes."""
    from masklab.manifest import key, run_pending

    out = Path(out_dir)
    done = run_pending([key(f) for f in files], lambda i: {"areas": segment_one_file(
        model, Path(files[i]), out, overlay=overlay, **kwargs)[1]}, manifest,
        desc="segment", quiet=quiet, unit="img")
    rows = [a for r in done for a in r["areas"]]
    written = [out / f"{Path(f).stem}.png" for f in files]
    if overlay:
        written += [out / f"{Path(f).stem}_overlay.png" for f in files]
    if areas_csv:
        written.append(write_areas_csv(out / "areas.csv", rows))
    return written


def segment_one_file(model: SemanticModel, f: Path, out: Path, *, overlay: bool = True,
                     **kwargs) -> tuple[list[Path], list[list]]:
    """One image: its label PNG (and overlay) written; its per-class area rows returned."""
    from masklab import viz
    from masklab.io.images import read_image, write_label_png

    image = read_image(f)
    sem = predict_semantic(model, image, **kwargs)
    written = [write_label_png(out / f"{f.stem}.png", sem.labels)]
    if overlay:
        written.append(viz.save(out / f"{f.stem}_overlay.png", viz.overlay_semantic(image, sem)))
    rows = []
    total = sem.labels.size
    for c, a in sorted(sem.class_areas().items()):
        name = sem.class_names[c] if sem.class_names and c < len(sem.class_names) else str(c)
        rows.append([f.name, int(c), name, int(a), a / total])
    return written, rows


def write_areas_csv(path: Path, rows: list[list]) -> Path:
    from masklab.io.atomic import atomic_open

    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "class_id", "class_name", "pixels", "fraction"])
        w.writerows(rows)
    return path


# --- training ------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Everything a training run depends on (saved beside its checkpoints)."""

    data: str
    out: str = "runs/semantic"
    model: str = "unet"
    model_config: dict = field(default_factory=dict)
    layout: str = "auto"
    images: str | None = None  # COCO layout: the image folder
    num_classes: int | None = None
    class_names: list[str] | None = None
    ignore_index: int = 255
    epochs: int = 50
    max_steps: int | None = None  # stop after this many optimiser steps (quick runs)
    batch_size: int = 8
    crop: tuple[int, int] | None = (256, 256)
    scale: tuple[float, float] = (0.5, 2.0)
    jitter: float = 0.2  # brightness / contrast / saturation factor range 1 ± jitter
    hue: float = 0.0  # hue shift, fraction of a turn
    gamma: tuple[float, float] | None = None  # random gamma range
    train_split: str = "train"  # "train", "val" or joined with "+"
    val_split: str = "val"
    train_sequences: list[str] | None = None  # keep images whose name starts with these
    val_sequences: list[str] | None = None
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "poly"
    loss: str = "ce"  # ce, ce+dice, focal
    class_weights: str | list[float] | None = None  # None, "median", "sqrt-median", explicit
    amp: bool = True  # fp16 mixed precision on CUDA
    cpu_precision: str = "fp32"  # "bf16": bfloat16 autocast on the CPU (2-2.5x faster where
    # the CPU has native bf16 units; elsewhere it runs fp32 with a warning); "auto": bf16
    # where those units exist, else fp32
    accumulate: int = 1
    ema: float | None = None  # decay of an exponential moving average of the weights, which
    # is then what is validated and saved as best (e.g. 0.999)
    flip: bool = True  # random horizontal flips
    sync_bn: bool = False  # SyncBatchNorm across processes (GPUs; see masklab.distributed)
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    val_every: int = 1
    eval_scale: float = 1.0  # validate on images resized by this factor (logits resized back)
    resume: bool = False
    pretrained: bool = False  # start from the registry's pretrained weights
    init_from: str | None = None  # start from this checkpoint folder's weights (same
    # architecture and classes: e.g. the previous version of a model, trained on fewer images)
    quiet: bool | None = None
    tensorboard: bool = True
    time_budget: float | None = None  # seconds of training (this run): then the epoch ends,
    # is validated and saved as the last one


@dataclass
class TrainResult:
    best_miou: float
    best_epoch: int
    history: list[dict]
    best_checkpoint: Path
    last_checkpoint: Path
    images_per_second: float
    best_result: object = None  # the SemanticResult of the best validation


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # the augmentations draw from torch's generator only


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _loss_fn(cfg: TrainConfig, weight: torch.Tensor | None, ignore: int):
    from masklab.nn.losses import cross_entropy, dice_loss, focal_loss

    def fn(logits, target):
        if cfg.loss == "focal":
            return focal_loss(logits, target, ignore_index=ignore)
        ce = cross_entropy(logits, target, ignore_index=ignore, weight=weight)
        if cfg.loss == "ce+dice":
            return ce + dice_loss(logits, target, ignore_index=ignore)
        return ce

    if cfg.loss not in ("ce", "ce+dice", "focal"):
        raise InputError(f"loss must be ce, ce+dice or focal, got {cfg.loss!r}")
    return fn


def _schedule(cfg: TrainConfig, optimizer, clock):
    """The learning rate over the run's progress (``clock.fraction``: steps, or the time
    budget when that ends first)."""
    if cfg.schedule == "poly":
        f = lambda s: (1 - clock.fraction(s)) ** 0.9  # noqa: E731
    elif cfg.schedule == "cosine":
        f = lambda s: 0.5 * (1 + math.cos(math.pi * clock.fraction(s)))  # noqa: E731
    else:
        raise InputError(f"schedule must be poly or cosine, got {cfg.schedule!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def evaluate_model(model: SemanticModel, dataset, num_classes: int, ignore_index: int,
                   quiet: bool | None = None, scale: float = 1.0, dist=None):
    """Validation figures over a dataset of full images (``masklab.metrics.semantic``).

    Predictions come from ``predict_semantic`` with ``scales=(scale,)``, the very path of
    ``masklab segment semantic --scales``: the image is resized, the class probabilities
    are resized back to the label's size; labels are never resized.
    """
    from masklab.metrics.semantic import SemanticEvaluator
    from masklab.progress import progress

    ev = SemanticEvaluator(num_classes, ignore_index=ignore_index,
                           class_names=model.class_names)
    model.eval()
    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    for i in progress(range(rank, len(dataset), world), desc="val", quiet=quiet):
        image, label = dataset.load(i)
        ev.update(label, predict_semantic(model, image, scales=(scale,)).labels)
    if world > 1:  # each process scored its share: the confusion matrices add up
        from masklab import distributed

        ev.confusion = distributed.all_sum(dist, ev.confusion).astype(np.int64)
        ev.images = int(distributed.all_sum(dist, [ev.images])[0])
    return ev.compute()


def train_semantic(cfg: TrainConfig, callback=None) -> TrainResult:
    """Train, validate each ``val_every`` epochs, keep the best checkpoint by mIoU.

    Under ``torchrun`` (or ``masklab train semantic --nproc N``) it trains with DDP: the
    global batch ``batch_size`` is split over the processes, gradients are averaged, rank 0
    writes checkpoints and logs, validation metrics are merged over the processes.

    ``callback(event)`` (rank 0) sees ``{"event": "step", "step", "total_steps", "epoch",
    "loss"}`` after each optimiser step and ``{"event": "epoch", **log row}`` after each
    epoch's checkpoint; an exception it raises stops the run (the last epoch's checkpoint
    stays, ``resume`` goes on from it)."""
    from masklab import distributed

    _seed(cfg.seed)
    dist_, device = distributed.setup(_device(cfg.device))
    try:
        return _train(cfg, dist_, device, callback)
    finally:
        distributed.teardown(dist_)


def _train(cfg: TrainConfig, dist_, device, callback=None) -> TrainResult:
    """``train_semantic`` on this process: every process of a distributed run trains on its
    share of each global batch (DDP averages the gradients), validates its share of the
    validation images (the confusion matrices are summed), and rank 0 writes the files."""
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from masklab import distributed
    from masklab.data.semantic import eval_transform, open_dataset, train_transform
    from masklab.io.atomic import write_json
    from masklab.progress import progress

    main = dist_.main
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(layout=cfg.layout, num_classes=cfg.num_classes, class_names=cfg.class_names,
              ignore_index=cfg.ignore_index)
    if cfg.images:
        kw["images_dir"] = cfg.images
    train_ds = open_dataset(cfg.data, cfg.train_split, sequences=cfg.train_sequences, **kw)
    spec = train_ds.spec  # the layout may fix the ignore index (CamVid: 11)
    train_ds.transform = train_transform(cfg.crop, scale=cfg.scale, jitter=cfg.jitter,
                                         hue=cfg.hue, gamma=cfg.gamma, flip=cfg.flip,
                                         ignore_index=spec.ignore_index)
    if spec.num_classes is None:
        raise InputError("the number of classes is unknown: pass num_classes", cfg.data)
    ignore = spec.ignore_index
    try:
        val_ds = open_dataset(cfg.data, cfg.val_split, sequences=cfg.val_sequences, **kw,
                              transform=eval_transform())
    except InputError:
        if cfg.val_sequences or cfg.val_split != "val":
            raise  # asked for explicitly: a missing validation set is an error
        val_ds = None
    if val_ds is not None:
        shared = {p[0].resolve() for p in train_ds.pairs} & {p[0].resolve() for p in
                                                               val_ds.pairs}
        if shared:
            raise InputError(f"{len(shared)} images are in both the training and the "
                             f"validation set (e.g. {min(shared).name})", cfg.data)
    model = load_semantic_model(cfg.model, weights="default" if cfg.pretrained else None,
                                num_classes=spec.num_classes, class_names=spec.class_names,
                                config=cfg.model_config, device=str(device))
    if cfg.init_from and not (cfg.resume and (out / "train_state.pt").is_file()):
        _init_from(model, cfg.init_from)

    weight = None
    if cfg.class_weights in ("median", "sqrt-median"):
        from masklab.nn.losses import median_frequency_weights

        weight = median_frequency_weights(train_ds.pixel_counts()).to(device)
        if cfg.class_weights == "sqrt-median":  # milder: rare classes less over-predicted
            weight = weight.sqrt()
    elif cfg.class_weights is not None:
        weight = torch.tensor(cfg.class_weights, dtype=torch.float32, device=device)
        if len(weight) != spec.num_classes:
            raise InputError(f"{len(weight)} class weights for {spec.num_classes} classes")
    loss_fn = _loss_fn(cfg, weight, ignore)

    if cfg.batch_size % dist_.world:
        raise InputError(f"batch size {cfg.batch_size} does not split over {dist_.world} "
                         "processes")
    if len(train_ds) < cfg.batch_size:
        raise InputError(f"fewer training images ({len(train_ds)}) than one batch "
                         f"({cfg.batch_size})", cfg.data)
    # one permutation per epoch (seed + epoch), each process taking its share of every
    # global batch: the same batches on 1 process or N
    sampler = DistributedSampler(train_ds, num_replicas=dist_.world, rank=dist_.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size // dist_.world, sampler=sampler,
                        drop_last=True, num_workers=cfg.workers, persistent_workers=False,
                        worker_init_fn=_worker_seed if cfg.workers else None)
    if len(loader) == 0:
        raise InputError(f"fewer training images ({len(train_ds)}) than one batch "
                         f"({cfg.batch_size})", cfg.data)
    if cfg.sync_bn and dist_.active:
        if device.type != "cuda":
            raise InputError("sync_bn needs GPUs (PyTorch's SyncBatchNorm runs on CUDA "
                             "only); on CPUs use a model with norm=group")
        model = _convert_sync_bn(model)
    ddp = model
    if dist_.active:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type ==
                                      "cuda" else None)
    steps_per_epoch = max(1, len(loader) // cfg.accumulate)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
    else:
        raise InputError(f"optimizer must be adamw or sgd, got {cfg.optimizer!r}")
    from masklab.tasks.budget import RunClock

    clock = RunClock(total_steps, cfg.time_budget, dist_)
    sched = _schedule(cfg, opt, clock)
    if cfg.ema is not None and not 0.0 < cfg.ema < 1.0:
        raise InputError(f"ema must be a decay in (0, 1), got {cfg.ema}")
    ema = _Ema(model, cfg.ema) if cfg.ema else None
    from masklab.sysinfo import precision_for

    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    cpu_bf16 = device.type == "cpu" and precision_for(cfg.cpu_precision, device) == "bf16"
    autocast = (dict(device_type="cuda", enabled=use_amp) if device.type == "cuda" else
                dict(device_type="cpu", dtype=torch.bfloat16, enabled=cpu_bf16))

    state_file = out / "train_state.pt"
    history: list[dict] = []
    start_epoch, step, best, best_epoch = 0, 0, -1.0, -1
    if cfg.resume and state_file.is_file():
        from masklab.weights import load_state_dict

        st = torch.load(state_file, map_location=device, weights_only=True)
        model.net.load_state_dict(load_state_dict(out / "last" / "model.safetensors"))
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start_epoch, step = int(st["epoch"]) + 1, int(st["step"])
        best, best_epoch = float(st["best_miou"]), int(st["best_epoch"])
        if ema is not None and (out / "last_ema" / "model.safetensors").is_file():
            ema.model.net.load_state_dict(load_state_dict(out / "last_ema" / "model.safetensors"))
            ema.updates = step
        history = _read_log(out / "log.csv")

    writer = _tensorboard(out / "tb") if cfg.tensorboard and main else None
    if main:
        write_json(out / "train_config.json", {**asdict(cfg), "processes": dist_.world},
                   indent=1)
    seen, t_train, last_result = 0, 0.0, None
    clock.start()
    out_of_time = False
    emit = callback if (callback is not None and main) else (lambda event: None)
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total_steps or out_of_time:
            break
        model.train()
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        running, batches = 0.0, 0
        opt.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(progress(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                                            quiet=cfg.quiet if main else True)):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(**autocast):
                loss = loss_fn(ddp(model.normalize(x)), y) / cfg.accumulate
            scaler.scale(loss).backward()
            running += float(loss.detach()) * cfg.accumulate
            batches += 1
            seen += len(x)
            if (i + 1) % cfg.accumulate == 0:
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                clock.tick()
                sched.step()
                step += 1
                if ema is not None:
                    ema.update(model)
                emit({"event": "step", "step": step, "total_steps": total_steps,
                      "epoch": epoch + 1, "loss": float(loss.detach()) * cfg.accumulate})
                out_of_time = clock.out_of_time
                if step >= total_steps or out_of_time:
                    break
        t_train += time.perf_counter() - t0
        if dist_.active:  # the mean over every process's batches
            running, batches = distributed.all_sum(dist_, [running, float(batches)])
        row = {"epoch": epoch + 1, "step": step, "loss": float(running) / max(1, batches),
               "lr": opt.param_groups[0]["lr"], "val_mIoU": float("nan"),
               "val_pixel_acc": float("nan"), "seconds": time.perf_counter() - t0}
        last_epoch = epoch + 1 == cfg.epochs or step >= total_steps or out_of_time
        scored = ema.model if ema is not None else model  # what is validated and kept
        distributed.broadcast_buffers(dist_, scored.net)  # rank 0's BatchNorm statistics
        if val_ds is not None and ((epoch + 1) % cfg.val_every == 0 or last_epoch):
            r = evaluate_model(scored, val_ds, spec.num_classes, ignore,
                               cfg.quiet if main else True, cfg.eval_scale, dist=dist_)
            row["val_mIoU"], row["val_pixel_acc"] = r.miou, r.pixel_acc
            if r.miou > best:
                best, best_epoch, last_result = r.miou, epoch + 1, r
                if main:
                    save_checkpoint(out / "best", scored, {"epoch": epoch + 1,
                                                           "val_mIoU": r.miou})
        elif val_ds is None and last_epoch:
            if main:
                save_checkpoint(out / "best", scored, {"epoch": epoch + 1})
            best_epoch = epoch + 1
        history.append(row)
        if main:  # rank 0 writes the log and the checkpoints
            _append_log(out / "log.csv", row)
            if writer is not None:
                for k in ("loss", "lr", "val_mIoU", "val_pixel_acc"):
                    if row[k] == row[k]:
                        writer.add_scalar(k, row[k], epoch + 1)
            save_checkpoint(out / "last", model, {"epoch": epoch + 1})
            if ema is not None:
                save_checkpoint(out / "last_ema", ema.model, {"epoch": epoch + 1})
            from masklab.io.atomic import atomic_path

            with atomic_path(state_file) as tmp:  # a stop mid-write leaves the last one whole
                torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "epoch": epoch, "step": step, "best_miou": best,
                            "best_epoch": best_epoch}, tmp)
            emit({"event": "epoch", **row, "best_mIoU": best, "best_epoch": best_epoch})
        distributed.barrier(dist_)
    if writer is not None:
        writer.close()
    if last_result is None and val_ds is not None and (out / "best").is_dir():
        # resumed after the best epoch: score the saved best checkpoint again
        best_model = load_checkpoint(out / "best", device=str(device))
        last_result = evaluate_model(best_model, val_ds, spec.num_classes, ignore,
                                     cfg.quiet if main else True, cfg.eval_scale, dist=dist_)
    return TrainResult(best, best_epoch, history, out / "best", out / "last",
                       seen * dist_.world / t_train if t_train else 0.0, last_result)


def _init_from(model: SemanticModel, folder: str) -> None:
    """Load a checkpoint's weights into ``model`` (same architecture and classes)."""
    from masklab.io.coco import read_json
    from masklab.weights import load_state_dict

    cfg = read_json(Path(folder) / "config.json")
    if cfg.get("model") != model.name or int(cfg.get("num_classes", -1)) != model.num_classes:
        raise InputError(f"init_from is a {cfg.get('model')} of {cfg.get('num_classes')} "
                         f"classes; this run trains a {model.name} of {model.num_classes}",
                         folder)
    state = load_state_dict(Path(folder) / "model.safetensors")
    try:
        model.net.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"init_from does not fit the model ({str(e).splitlines()[0]})",
                         folder) from None


def _convert_sync_bn(model):
    model.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.net)
    return model


class _Ema:
    """An exponential moving average of a model's weights and BatchNorm statistics.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    early average is not dominated by the random initialisation.
    """

    def __init__(self, model: SemanticModel, decay: float):
        import copy

        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: SemanticModel) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        src = model.net.state_dict()
        for k, v in self.model.net.state_dict().items():
            if v.dtype.is_floating_point:
                v.lerp_(src[k].detach(), 1.0 - d)
            else:
                v.copy_(src[k])


def _worker_seed(worker_id: int) -> None:
    random.seed(torch.initial_seed() % 2**32)


_LOG_FIELDS = ["epoch", "step", "loss", "lr", "val_mIoU", "val_pixel_acc", "seconds"]


def _append_log(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_LOG_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; the CSV log is always written
        return None
    return SummaryWriter(str(folder))
