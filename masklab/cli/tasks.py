"""``masklab models``, ``masklab train <task>``, ``masklab segment <task>``: thin wrappers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from masklab.cli.options import device_option


def _budget(minutes: float | None) -> float | None:
    """``--minutes`` as the trainers' ``time_budget`` seconds (positive, or an error)."""
    if minutes is None:
        return None
    if not minutes > 0:
        from masklab.errors import InputError

        raise InputError(f"--minutes must be positive, got {minutes}")
    return 60.0 * minutes


def _parse_kv(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} must be KEY=VALUE")
        k, v = item.split("=", 1)
        if v.lower() in ("true", "false"):
            out[k] = v.lower() == "true"
            continue
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                continue
        out[k] = v
    return out


def _pair(text: str | None, name: str) -> tuple | None:
    if text is None:
        return None
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{name} must be numbers A,B") from None
    if len(parts) != 2:
        raise click.BadParameter(f"{name} must be two numbers A,B")
    return tuple(parts)


@click.command("models")
@click.option("--task", help="Only this task (semantic, ...).")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(task: str | None, as_json: bool) -> None:
    """Every registered model: task, dataset, classes, input size, parameters, license."""
    from masklab.models import list_models

    rows = []
    for m in list_models(task=task):
        rows.append({"name": m.name, "task": m.task, "dataset": m.dataset,
                     "classes": m.num_classes, "input": "x".join(map(str, m.input_size))
                     if m.input_size else "any", "params": m.parameters(),
                     "weights": m.weights or "-", "license": m.license,
                     "description": m.description})
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from masklab.metrics.report import table

    click.echo(table(["name", "task", "dataset", "classes", "input", "params (M)", "license"],
                     [[r["name"], r["task"], r["dataset"], r["classes"] or "any", r["input"],
                       f"{r['params'] / 1e6:.1f}", r["license"]] for r in rows]))


def _manifest(out: Path, verb: str, model: str, weights, **settings):
    """``OUT/manifest.jsonl`` for a batch verb: the run's settings, the images done."""
    from masklab.manifest import RunManifest, file_stamp

    out.mkdir(parents=True, exist_ok=True)
    return RunManifest(out, {"verb": verb, "model": file_stamp(model) if Path(model).exists()
                             else model, "weights": file_stamp(weights), **settings})


def _engine_options(fn):
    """``--engine local|ray``, ``--address``, ``--workers``, ``--gpus-per-worker``."""
    for opt in reversed([
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True, help="ray: run on a Ray cluster (masklab[ray])."),
        click.option("--address", help="With --engine ray: auto (the running cluster), "
                     "ray://HOST:PORT, or none for a new local cluster."),
        click.option("--workers", type=int, default=2, show_default=True,
                     help="With --engine ray: model replicas (actors)."),
        click.option("--gpus-per-worker", type=float, default=0.0, show_default=True,
                     help="With --engine ray: GPUs per replica (1: one per GPU)."),
    ]):
        fn = opt(fn)
    return fn


@click.group("train")
def train_group() -> None:
    """Train a model on your data."""


@train_group.command("semantic")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Dataset root (folder, CamVid or ADE20K layout) or a COCO .json.")
@click.option("--layout", default="auto", show_default=True,
              type=click.Choice(["auto", "folder", "camvid", "ade20k", "coco"]))
@click.option("--images", type=click.Path(path_type=Path, file_okay=False),
              help="Image folder (COCO layout).")
@click.option("--model", default="unet", show_default=True, help="A name from `masklab models`.")
@click.option("--model-arg", multiple=True, help="Builder option KEY=VALUE (e.g. depth=3).")
@click.option("--pretrained", is_flag=True, help="Start from the registry's weights.")
@click.option("--num-classes", type=int, help="Needed for the folder layout.")
@click.option("--ignore-index", type=int, default=255, show_default=True)
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--max-steps", type=int, help="Stop after this many optimiser steps.")
@click.option("--minutes", type=float, help="A time budget: training ends after this many "
              "minutes (that epoch validated and kept), the learning rate annealed over it "
              "when it ends before the epochs.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--crop", default="256,256", show_default=True, help="H,W or 'none'.")
@click.option("--scale", default="0.5,2.0", show_default=True, help="Random scale range.")
@click.option("--jitter", type=float, default=0.2, show_default=True,
              help="Brightness/contrast/saturation factors in 1 ± JITTER.")
@click.option("--hue", type=float, default=0.0, show_default=True,
              help="Hue shift up to this fraction of a turn.")
@click.option("--gamma", help="Random gamma range LO,HI (e.g. 0.6,1.6).")
@click.option("--train-split", default="train", show_default=True,
              help="Split(s) to train on, joined with + (e.g. train+val).")
@click.option("--val-split", default="val", show_default=True)
@click.option("--train-sequences", help="Comma-separated file-name prefixes to train on "
              "(CamVid videos: 0016E5,0001TP).")
@click.option("--val-sequences", help="Comma-separated file-name prefixes to validate on.")
@click.option("--eval-scale", type=float, default=1.0, show_default=True,
              help="Validate on images resized by this factor (as segment --scales).")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default="adamw",
              show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--schedule", type=click.Choice(["poly", "cosine"]), default="poly",
              show_default=True)
@click.option("--loss", type=click.Choice(["ce", "ce+dice", "focal"]), default="ce",
              show_default=True)
@click.option("--class-weights", help="'median' (median frequency), 'sqrt-median' (its "
              "square root) or comma-separated.")
@click.option("--no-amp", is_flag=True, help="Disable mixed precision (CUDA).")
@click.option("--cpu-precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32",
              show_default=True, help="bf16: bfloat16 autocast when training on the CPU "
              "(about 2x faster on CPUs with native bf16 units; fp32 with a warning elsewhere); "
              "auto: bf16 where those units exist, else fp32.")
@click.option("--accumulate", type=int, default=1, show_default=True,
              help="Gradient accumulation steps.")
@click.option("--ema", type=float, help="Validate and keep an exponential moving average of "
              "the weights with this decay (e.g. 0.998).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option("auto")
@click.option("--val-every", type=int, default=1, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.")
@click.option("--no-flip", is_flag=True, help="No random horizontal flips.")
@click.option("--nproc", type=int, help="Train on N local processes (DDP; torchrun is "
              "started for you). --batch-size is the global batch.")
@click.option("--sync-bn", is_flag=True, help="SyncBatchNorm across processes (GPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="ray: --nproc workers of Ray Train's TorchTrainer "
              "(masklab[ray]); OUT must be storage every worker reaches.")
@click.option("--address", help="With --engine ray: auto (the running cluster), "
              "ray://HOST:PORT, or none for a new local cluster.")
@click.option("--gpus-per-worker", type=float, default=0.0, show_default=True,
              help="With --engine ray: GPUs per training worker.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              default="runs/semantic", show_default=True)
@click.pass_context
def train_semantic_cmd(ctx, data, layout, images, model, model_arg, pretrained, num_classes,
                       ignore_index, epochs, max_steps, minutes, batch_size, crop, scale,
                       jitter, hue,
                       gamma, train_split, val_split, train_sequences, val_sequences,
                       eval_scale, optimizer, lr, weight_decay, schedule, loss, class_weights,
                       no_amp, cpu_precision, accumulate, ema, workers, seed, device,
                       val_every, resume,
                       no_flip, nproc, sync_bn, engine, address, gpus_per_worker, out) -> None:
    """Train a semantic segmentation model; writes OUT/best, OUT/last, log.csv, tb/.

    Under torchrun, or with --nproc N, it trains on many processes (DDP); with --engine ray
    those processes are Ray Train workers."""
    from masklab.errors import InputError
    from masklab.tasks.semantic import TrainConfig, train_semantic

    if engine == "ray":
        from masklab.scale import ray_engine

        if nproc is not None and nproc < 1:
            raise InputError(f"--nproc must be at least 1, got {nproc}")
        ray_engine.connect(address, nproc or 2)  # every check before any work
    elif nproc is not None and "WORLD_SIZE" not in os.environ:
        _relaunch(nproc)

    weights = None
    if class_weights in ("median", "sqrt-median"):
        weights = class_weights
    elif class_weights:
        weights = [float(v) for v in class_weights.split(",")]
    crop_hw = None if crop.lower() == "none" else tuple(int(v) for v in _pair(crop, "--crop"))
    cfg = TrainConfig(data=str(data), out=str(out), model=model,
                      model_config=_parse_kv(model_arg), layout=layout,
                      images=str(images) if images else None, num_classes=num_classes,
                      ignore_index=ignore_index, epochs=epochs, max_steps=max_steps,
                      time_budget=_budget(minutes),
                      batch_size=batch_size, crop=crop_hw, scale=_pair(scale, "--scale"),
                      jitter=jitter, hue=hue, gamma=_pair(gamma, "--gamma"),
                      train_split=train_split, val_split=val_split,
                      train_sequences=train_sequences.split(",") if train_sequences else None,
                      val_sequences=val_sequences.split(",") if val_sequences else None,
                      eval_scale=eval_scale,
                      optimizer=optimizer, lr=lr, weight_decay=weight_decay, schedule=schedule,
                      loss=loss, class_weights=weights, amp=not no_amp,
                      cpu_precision=cpu_precision, accumulate=accumulate,
                      ema=ema, flip=not no_flip, sync_bn=sync_bn,
                      workers=workers, seed=seed, device=device, val_every=val_every,
                      resume=resume, pretrained=pretrained, quiet=ctx.obj["quiet"] or None)
    if engine == "ray":
        from masklab.scale.ray_train import train_on_ray

        m = train_on_ray("semantic", cfg, workers=nproc or 2, address=address,
                         gpus_per_worker=gpus_per_worker)
        click.echo(f"best val mIoU {m['best']:.4f} at epoch {m['best_epoch']}; "
                   f"{m['images_per_second']:.1f} train images/s; checkpoint {out / 'best'} "
                   f"({nproc or 2} Ray Train workers)")
        return
    r = train_semantic(cfg)
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"best val mIoU {r.best_miou:.4f} at epoch {r.best_epoch}; "
                   f"{r.images_per_second:.1f} train images/s; checkpoint {r.best_checkpoint}")


def _relaunch(nproc: int) -> None:
    """Run this very command again under ``torchrun`` on ``nproc`` processes, then exit."""
    import sys

    from masklab.distributed import launch

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        argv.append(a)
    sys.exit(launch(nproc, argv))


@click.group("segment")
def segment_group() -> None:
    """Run a model on images."""


@segment_group.command("semantic")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", required=True, help="A registry name or a checkpoint folder.")
@click.option("--weights", help="Local weights file/folder for a registry name.")
@click.option("--num-classes", type=int)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--tile", type=int, help="Sliding-window size for large images.")
@click.option("--overlap", type=float, default=1 / 3, show_default=True)
@click.option("--scales", default="1.0", show_default=True,
              help="Comma-separated test-time scales.")
@click.option("--flip", is_flag=True, help="Add horizontally flipped predictions.")
@click.option("--no-overlay", is_flag=True)
@click.option("--areas", is_flag=True, help="Write areas.csv with per-class pixel areas.")
@click.option("--batch-size", type=int, default=4, show_default=True,
              help="Windows per forward pass.")
@device_option("cpu")
@_engine_options
@click.pass_context
def segment_semantic_cmd(ctx, inputs, model, weights, num_classes, out, tile, overlap, scales,
                         flip, no_overlay, areas, batch_size, device, engine, address, workers,
                         gpus_per_worker) -> None:
    """Label PNGs (+ overlays, + areas CSV) for images, folders or globs."""
    import torch

    from masklab.io.images import find_images
    from masklab.models.semantic import load_semantic_model
    from masklab.tasks.semantic import segment_files

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    def manifest():
        return _manifest(out, "segment semantic", model, weights, num_classes=num_classes,
                         tile=tile, overlap=overlap, scales=scales, flip=flip,
                         overlay=not no_overlay, batch_size=batch_size)

    if engine == "ray":
        from masklab.scale import ray_engine

        ray_engine.connect(address, workers)  # every check before any work
        files = find_images(inputs)
        if not files:
            raise click.BadParameter("no images found", param_hint="INPUTS")
        run_manifest = manifest()
        spec = {"model": str(model), "weights": str(weights) if weights else None,
                "num_classes": num_classes, "device": "cuda" if gpus_per_worker else "cpu"}
        written = ray_engine.segment_semantic(
            spec, files, out, workers=workers, address=address, manifest=run_manifest,
            gpus_per_worker=gpus_per_worker, overlay=not no_overlay, areas_csv=areas,
            tile=tile, overlap=overlap, scales=tuple(float(s) for s in scales.split(",")),
            flip=flip, batch_size=batch_size)
        if not ctx.obj["quiet"]:
            click.echo(f"wrote {len(written)} files to {out} ({workers} Ray workers)")
        return
    m = load_semantic_model(model, weights=weights if weights else "default",
                            num_classes=num_classes, device=device)
    files = find_images(inputs)
    if not files:
        raise click.BadParameter("no images found", param_hint="INPUTS")
    written = segment_files(m, files, out, overlay=not no_overlay, areas_csv=areas,
                            quiet=ctx.obj["quiet"] or None, manifest=manifest(),
                            tile=tile, overlap=overlap,
                            scales=tuple(float(s) for s in scales.split(",")), flip=flip,
                            batch_size=batch_size)
    if not ctx.obj["quiet"]:
        click.echo(f"wrote {len(written)} files to {out}")


_OBJECT_HELP = {
    "instances": "Instance masks: COCO results JSON (RLE masks), images JSON, overlays.",
    "boxes": "Object boxes: COCO results JSON, images JSON, overlays.",
    "keypoints": "Person keypoints: COCO results JSON, images JSON, overlays.",
}


def _load_objects(model, weights, num_classes, class_names, device):
    """An ObjectModel, or a UniversalModel for Mask2Former / OneFormer / DETR."""
    from masklab.models.objects import load_object_model
    from masklab.models.universal import is_universal, load_universal_model

    if is_universal(model):
        return load_universal_model(model, weights=weights or "default", device=device)
    return load_object_model(model, weights=weights or "default", num_classes=num_classes,
                             class_names=class_names, device=device)


def _object_command(task: str):
    @segment_group.command(task, help=_OBJECT_HELP[task])
    @click.argument("inputs", nargs=-1, required=True)
    @click.option("--model", required=True, help="A registry name or a checkpoint folder.")
    @click.option("--weights", help="A local state dict (with --num-classes if not COCO's).")
    @click.option("--num-classes", type=int)
    @click.option("--class-names", type=click.Path(path_type=Path, dir_okay=False),
                  help="Text file, one class name per line (line 0 is the background).")
    @click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
    @click.option("--score-threshold", type=float, default=0.5, show_default=True)
    @click.option("--classes", help="Comma-separated class ids to keep.")
    @click.option("--max-detections", type=int, default=100, show_default=True)
    @click.option("--batch-size", type=int, default=2, show_default=True)
    @click.option("--coco-gt", type=click.Path(path_type=Path, dir_okay=False),
                  help="Take image ids from this ground truth (matched by file name).")
    @click.option("--no-overlay", is_flag=True)
    @device_option("cpu")
    @_engine_options
    @click.pass_context
    def cmd(ctx, inputs, model, weights, num_classes, class_names, out, score_threshold,
            classes, max_detections, batch_size, coco_gt, no_overlay, device, engine, address,
            workers, gpus_per_worker):
        import torch

        from masklab.errors import InputError
        from masklab.io.images import find_images
        from masklab.tasks.instances import segment_object_files

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        names = None
        if class_names is not None:
            names = [n.strip() for n in class_names.read_text().splitlines() if n.strip()]
        keep = [int(c) for c in classes.split(",")] if classes else None

        def manifest():
            return _manifest(out, f"segment {task}", model, weights, num_classes=num_classes,
                             class_names=names, score_threshold=score_threshold,
                             classes=keep, max_detections=max_detections,
                             batch_size=batch_size, overlay=not no_overlay,
                             coco_gt=str(Path(coco_gt).resolve()) if coco_gt else None)

        if engine == "ray":
            from masklab.scale import ray_engine

            ray_engine.connect(address, workers)  # every check before any work
            files = find_images(inputs)
            if not files:
                raise click.BadParameter("no images found", param_hint="INPUTS")
            spec = {"model": model, "weights": str(weights) if weights else None,
                    "num_classes": num_classes, "class_names": names,
                    "device": "cuda" if gpus_per_worker else "cpu"}
            written = ray_engine.segment_objects(
                spec, files, out, workers=workers, address=address, manifest=manifest(),
                gpus_per_worker=gpus_per_worker, batch_size=batch_size,
                score_threshold=score_threshold, classes=keep, max_detections=max_detections,
                overlay=not no_overlay, coco_gt=coco_gt)
            if not ctx.obj["quiet"]:
                click.echo(f"wrote {len(written)} files to {out} ({workers} Ray workers)")
            return
        m = _load_objects(model, weights, num_classes, names, device)
        if m.task != task and not (task == "instances" and m.task == "panoptic"):
            raise InputError(f"model {model} predicts {m.task}, not {task}")
        files = find_images(inputs)
        if not files:
            raise click.BadParameter("no images found", param_hint="INPUTS")
        written = segment_object_files(m, files, out, score_threshold=score_threshold,
                                       classes=keep, max_detections=max_detections,
                                       batch_size=batch_size, overlay=not no_overlay,
                                       coco_gt=coco_gt, quiet=ctx.obj["quiet"] or None,
                                       manifest=manifest())
        if not ctx.obj["quiet"]:
            click.echo(f"wrote {len(written)} files to {out}")

    return cmd


for _task in ("instances", "boxes", "keypoints"):
    _object_command(_task)


@segment_group.command("panoptic")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", required=True,
              help="A panoptic model (Mask2Former, OneFormer, DETR), or with --semantic-model "
                   "an instance model to fuse.")
@click.option("--weights", help="Local weights for --model (a transformers folder, ...).")
@click.option("--semantic-model", help="Semantic model (name or checkpoint) to fuse with.")
@click.option("--semantic-weights", help="Local weights for --semantic-model.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--categories", type=click.Path(path_type=Path, dir_okay=False),
              help="A COCO(-panoptic) JSON: renumber classes to its categories, by name.")
@click.option("--coco-gt", type=click.Path(path_type=Path, dir_okay=False),
              help="Take image ids from this ground truth (matched by file name).")
@click.option("--threshold", "--score-threshold", "threshold", type=float, default=0.8,
              show_default=True,
              help="Segment score threshold (0.5 is used for fusion unless given).")
@click.option("--classes", help="Comma-separated category ids to keep (others become VOID).")
@click.option("--overlap", type=float, default=0.8, show_default=True,
              help="Min. share of a segment's own mask it must keep (fusion: max overlap "
                   "with segments already pasted, default 0.5).")
@click.option("--stuff-area", type=int, default=4096, show_default=True,
              help="Fusion: minimum stuff segment area in pixels.")
@click.option("--things", type=int, help="Leading classes that are things (universal models).")
@click.option("--no-overlay", is_flag=True)
@device_option("cpu")
@_engine_options
@click.pass_context
def segment_panoptic_cmd(ctx, inputs, model, weights, semantic_model, semantic_weights, out,
                         categories, coco_gt, threshold, classes, overlap, stuff_area, things,
                         no_overlay, device, engine, address, workers, gpus_per_worker) -> None:
    """COCO-panoptic PNGs + panoptic.json (+ overlays) from one panoptic model, or from an
    instance model fused with a semantic model."""
    import torch

    from masklab.io.coco import read_json
    from masklab.io.images import find_images
    from masklab.manifest import file_stamp
    from masklab.models.universal import is_universal
    from masklab.tasks.panoptic import load_panoptic_predictor, segment_panoptic_files

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    src = ctx.get_parameter_source
    if semantic_model:  # fusion has its own defaults unless given
        threshold = threshold if src("threshold").name != "DEFAULT" else 0.5
        overlap = overlap if src("overlap").name != "DEFAULT" else 0.5
    elif not is_universal(model):
        raise click.BadParameter(f"{model} is not a panoptic model; add --semantic-model to "
                                 "fuse an instance model with a semantic one",
                                 param_hint="--model")
    if engine == "ray":
        from masklab.scale import ray_engine

        ray_engine.connect(address, workers)  # every check before any work
    files = find_images(inputs)
    if not files:
        raise click.BadParameter("no images found", param_hint="INPUTS")
    cats = read_json(categories)["categories"] if categories else None
    keep = [int(c) for c in classes.split(",")] if classes else None
    spec = {"model": model, "weights": str(weights) if weights else None,
            "semantic_model": semantic_model,
            "semantic_weights": str(semantic_weights) if semantic_weights else None,
            "threshold": threshold, "overlap": overlap, "stuff_area": stuff_area,
            "things": things}
    manifest = _manifest(out, "segment panoptic", model, weights, **{
        k: v for k, v in spec.items() if k not in ("model", "weights")},
        semantic_stamp=file_stamp(semantic_model) if semantic_model and
        Path(semantic_model).exists() else None,
        categories=str(Path(categories).resolve()) if categories else None, classes=keep,
        coco_gt=str(Path(coco_gt).resolve()) if coco_gt else None, overlay=not no_overlay)
    options = {"categories": cats, "categories_source": str(categories) if categories else
               None, "classes": keep, "coco_gt": coco_gt, "overlay": not no_overlay}
    if engine == "ray":
        written = ray_engine.segment_panoptic(
            {**spec, "device": "cuda" if gpus_per_worker else "cpu"}, files, out,
            workers=workers, address=address, gpus_per_worker=gpus_per_worker,
            manifest=manifest, **options)
        if not ctx.obj["quiet"]:
            click.echo(f"wrote {len(written)} files to {out} ({workers} Ray workers)")
        return
    predictor = load_panoptic_predictor(device=device, **spec)
    written = segment_panoptic_files(predictor, files, out, quiet=ctx.obj["quiet"] or None,
                                     manifest=manifest, **options)
    if not ctx.obj["quiet"]:
        click.echo(f"wrote {len(written)} files to {out}")


@click.group("export")
def export_group() -> None:
    """Export models to other runtimes."""


@export_group.command("onnx")
@click.option("--model", required=True, help="An object model name or checkpoint folder, "
              "or a semantic checkpoint folder (masklab train semantic, the app's trained "
              "models); with --decoder a SAM-family name (sam, sam-vit-b, edgetam, ...) or "
              "folder.")
@click.option("--decoder", is_flag=True, help="Write the SAM-family model's prompt decoder "
              "(clicks, boxes, mask → masks at the image's size) for ONNX Runtime and "
              "onnxruntime-web, as the annotation app's browser uses it.")
@click.option("--multimask/--single-mask", default=True, show_default=True,
              help="With --decoder: three masks (whole, part, sub-part) or one.")
@click.option("--weights", help="Local weights (with --num-classes if not COCO's).")
@click.option("--num-classes", type=int)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--height", type=int, default=480, show_default=True)
@click.option("--width", type=int, default=640, show_default=True)
@click.option("--check", "check_image", type=click.Path(path_type=Path, dir_okay=False),
              help="Compare ONNX Runtime with PyTorch on this image (exit 1 if they differ).")
def export_onnx_cmd(model, decoder, multimask, weights, num_classes, out, height, width,
                    check_image) -> None:
    """Write a detection / instance / keypoint model, a semantic checkpoint, or a
    SAM-family prompt decoder, as ONNX."""
    import sys

    if decoder:
        from masklab.interactive.sam_onnx import check_decoder, export_decoder
        from masklab.interactive.session import make_backend
        from masklab.io.images import read_image

        backend = make_backend(model)
        if not hasattr(backend, "family"):
            raise click.UsageError(f"--decoder needs a SAM-family model, not {model!r}")
        path = export_decoder(backend, out, multimask=multimask)
        click.echo(f"wrote {path} ({backend.family}, {path.stat().st_size / 1e6:.1f} MB)")
        if check_image is not None:
            r = check_decoder(backend, path, read_image(check_image), multimask=multimask)
            ok = r["min_iou"] >= 0.99
            click.echo(f"{r['cases']} prompts: smallest mask IoU with PyTorch "
                       f"{r['min_iou']:.4f}, largest score difference "
                       f"{r['max_score_diff']:.2g}; {'ok' if ok else 'DIFFERENT'}")
            if not ok:
                sys.exit(1)
        return
    from masklab.export import check_parity, export_onnx
    from masklab.io.images import read_image
    from masklab.models.objects import load_object_model
    from masklab.models.semantic import is_checkpoint

    if is_checkpoint(model):  # a semantic checkpoint (masklab train semantic, the app)
        from masklab.export import check_semantic_parity, export_semantic_onnx
        from masklab.models.semantic import load_semantic_model

        sm = load_semantic_model(model)
        path = export_semantic_onnx(sm, out, height=height, width=width)
        click.echo(f"wrote {path} ({sm.name}, {sm.num_classes} classes)")
        if check_image is not None:
            r = check_semantic_parity(sm, path, read_image(check_image))
            click.echo(f"classes agree on {100 * r['pixels_agree']:.3f} % of the pixels, "
                       f"largest logit difference {r['max_abs_diff']:.3g}; "
                       f"{'ok' if r['ok'] else 'DIFFERENT'}")
            if not r["ok"]:
                sys.exit(1)
        return
    m = load_object_model(model, weights=weights or "default", num_classes=num_classes)
    path = export_onnx(m, out, height=height, width=width)
    click.echo(f"wrote {path}")
    if check_image is not None:
        p = check_parity(m, path, read_image(check_image))
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in p.max_abs_diff.items()) or "-"
        click.echo(f"detections: torch {p.detections_torch}, onnx {p.detections_onnx}; "
                   f"largest |diff| of matched detections: {diffs}; "
                   f"{'ok' if p.ok else 'DIFFERENT'}")
        if not p.ok:
            sys.exit(1)


_TRAIN_OBJECTS = {
    "instances": ("maskrcnn_resnet50_fpn_v2", "Fine-tune an instance (or box) model on "
                  "COCO-format data; best checkpoint by mask (box) AP."),
    "keypoints": ("keypointrcnn_resnet50_fpn", "Fine-tune a keypoint model on COCO-format "
                  "keypoint data (any keypoint set); best checkpoint by OKS AP."),
}


def _train_objects_command(task: str):
    default_model, help_text = _TRAIN_OBJECTS[task]

    @train_group.command(task, help=help_text)
    @click.option("--data", required=True, type=click.Path(path_type=Path, dir_okay=False),
                  help="COCO JSON for training.")
    @click.option("--images", required=True, type=click.Path(path_type=Path, file_okay=False))
    @click.option("--val-data", type=click.Path(path_type=Path, dir_okay=False),
                  help="COCO JSON for validation (AP each --eval-every epochs).")
    @click.option("--val-images", type=click.Path(path_type=Path, file_okay=False))
    @click.option("--model", default=default_model, show_default=True)
    @click.option("--model-arg", multiple=True,
                  help="Builder option KEY=VALUE (e.g. min_size=512).")
    @click.option("--no-pretrained", is_flag=True, help="Random initialisation.")
    @click.option("--classes", help="Comma-separated category names to keep (renumbered).")
    @click.option("--freeze-backbone", is_flag=True)
    @click.option("--epochs", type=int, default=12, show_default=True)
    @click.option("--max-steps", type=int)
    @click.option("--minutes", type=float, help="A time budget (the learning rate anneals "
                  "over it when it ends before the epochs).")
    @click.option("--batch-size", type=int, default=2, show_default=True)
    @click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd",
                  show_default=True)
    @click.option("--lr", type=float, default=0.01, show_default=True)
    @click.option("--no-amp", is_flag=True)
    @click.option("--workers", type=int, default=2, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @device_option("auto")
    @click.option("--eval-every", type=int, default=1, show_default=True)
    @click.option("--resume", is_flag=True)
    @click.option("--no-flip", is_flag=True, help="No random horizontal flips.")
    @click.option("--nproc", type=int, help="Train on N local processes (DDP; torchrun is "
                  "started for you), or N Ray Train workers with --engine ray. --batch-size "
                  "is the global batch.")
    @click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                  show_default=True, help="ray: --nproc workers of Ray Train's TorchTrainer "
                  "(masklab[ray]); OUT must be storage every worker reaches.")
    @click.option("--address", help="With --engine ray: auto, ray://HOST:PORT, or none.")
    @click.option("--gpus-per-worker", type=float, default=0.0, show_default=True,
                  help="With --engine ray: GPUs per training worker.")
    @click.option("--out", type=click.Path(path_type=Path, file_okay=False),
                  default=f"runs/{task}", show_default=True)
    @click.pass_context
    def cmd(ctx, data, images, val_data, val_images, model, model_arg, no_pretrained, classes,
            freeze_backbone, epochs, max_steps, minutes, batch_size, optimizer, lr, no_amp,
            workers, seed, device, eval_every, resume, no_flip, nproc, engine, address,
            gpus_per_worker, out) -> None:
        from masklab.errors import InputError
        from masklab.models.registry import get_info
        from masklab.tasks.instances_train import InstanceTrainConfig, train_instances

        if nproc is not None and nproc < 1:
            raise InputError(f"--nproc must be at least 1, got {nproc}")
        if engine == "ray":
            from masklab.scale import ray_engine

            ray_engine.connect(address, nproc or 2)  # every check before any work
        elif nproc is not None and "WORLD_SIZE" not in os.environ:
            _relaunch(nproc)

        kind = get_info(model).task
        if (kind == "keypoints") != (task == "keypoints"):
            raise InputError(f"model {model} predicts {kind}; use `masklab train "
                             f"{'keypoints' if kind == 'keypoints' else 'instances'}`")
        cfg = InstanceTrainConfig(
            data=str(data), images=str(images),
            val_data=str(val_data) if val_data else None,
            val_images=str(val_images) if val_images else None, out=str(out), model=model,
            model_config=_parse_kv(model_arg), pretrained=not no_pretrained,
            classes=[c.strip() for c in classes.split(",")] if classes else None,
            freeze_backbone=freeze_backbone, epochs=epochs, max_steps=max_steps,
            time_budget=_budget(minutes), batch_size=batch_size, optimizer=optimizer, lr=lr,
            amp=not no_amp,
            flip=not no_flip, workers=workers, seed=seed, device=device,
            eval_every=eval_every, resume=resume, quiet=ctx.obj["quiet"] or None)
        if engine == "ray":
            from masklab.scale.ray_train import train_on_ray

            m = train_on_ray(task, cfg, workers=nproc or 2, address=address,
                             gpus_per_worker=gpus_per_worker)
            click.echo(f"best AP {m['best']:.4f} at epoch {m['best_epoch']}; "
                       f"{m['images_per_second']:.2f} train images/s; checkpoint "
                       f"{out / 'best'} ({nproc or 2} Ray Train workers)")
            return
        r = train_instances(cfg)
        if os.environ.get("RANK", "0") != "0":
            return
        click.echo(f"best AP {r['best_ap']:.4f} at epoch {r['best_epoch']}; "
                   f"{r['images_per_second']:.2f} train images/s; "
                   f"checkpoint {r['best_checkpoint']}")

    return cmd


for _task in _TRAIN_OBJECTS:
    _train_objects_command(_task)
