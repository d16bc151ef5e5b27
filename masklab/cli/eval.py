"""``masklab eval <family>``: parse, call ``masklab.metrics``, print a table, write JSON/plots."""

from __future__ import annotations

from pathlib import Path

import click

_json_opt = click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
                         help="Write the figures as JSON here.")
_plots_opt = click.option("--plots", type=click.Path(path_type=Path, file_okay=False),
                          help="Save PNG plots into this folder.")


def _engine_opts(fn):
    """``--engine local|ray``, ``--address``, ``--workers``: where shards are evaluated."""
    for opt in reversed([
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True, help="ray: shards evaluated as Ray tasks where the "
                     "files are, the accumulators merged (masklab[ray])."),
        click.option("--address", help="With --engine ray: auto, ray://HOST:PORT, or none "
                     "(a new local cluster)."),
        click.option("--workers", type=int, default=2, show_default=True,
                     help="With --engine ray: shards evaluated in parallel."),
        click.option("--gpus-per-worker", type=float, default=0.0, show_default=True,
                     help="With --engine ray: GPUs per shard (the click benchmarks' models; "
                     "pass --device cuda)."),
    ]):
        fn = opt(fn)
    return fn


def _runner(engine: str, address: str | None, workers: int, gpus_per_worker: float = 0.0):
    """None (in-process) or a Ray shard runner, connected: every check before any work."""
    if engine != "ray":
        return None
    from masklab.scale import ray_engine

    return ray_engine.shard_runner(workers, address, gpus_per_worker)


def _write_json(path: Path | None, data: dict) -> None:
    if path is not None:
        from masklab.io.atomic import write_json

        write_json(path, data, indent=1)


@click.group("eval")
def eval_group() -> None:
    """Evaluate predictions: coco, semantic, panoptic, davis, matting."""


@eval_group.command("coco")
@click.argument("gt", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("pred", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--iou-type", type=click.Choice(["segm", "bbox", "keypoints"]), default="segm",
              show_default=True)
@click.option("--iou-thrs", help="Comma-separated IoU thresholds (default .50:.05:.95).")
@click.option("--max-dets", help="Comma-separated maxDets (default 1,10,100; keypoints 20).")
@_engine_opts
@_json_opt
@_plots_opt
def eval_coco(gt, pred, iou_type, iou_thrs, max_dets, engine, address, workers,
              gpus_per_worker, json_out, plots) -> None:
    """COCO AP/AR (the 12 or 10 pycocotools stats) of results PRED against GT."""
    import numpy as np

    runner = _runner(engine, address, workers, gpus_per_worker)
    from masklab.io.coco import load_coco, load_results
    from masklab.metrics.coco import CocoParams, coco_evaluate_images
    from masklab.metrics.report import coco_text

    ds = load_coco(gt)
    results = load_results(pred, iou_type=iou_type, gt=ds)
    kwargs = {}
    if iou_thrs:
        kwargs["iou_thrs"] = np.array([float(v) for v in iou_thrs.split(",")])
    if max_dets:
        kwargs["max_dets"] = tuple(int(v) for v in max_dets.split(","))
    params = CocoParams(iou_type, **kwargs)
    r = coco_evaluate_images(ds.categories, ds.images, ds.annotations, results, iou_type,
                             params, runner=runner)
    click.echo(coco_text(r))
    _write_json(json_out, r.to_dict())
    if plots is not None:
        from masklab.plots import per_class_bars, pr_curves

        t50 = int(np.flatnonzero(np.isclose(params.iou_thrs, 0.5))[0]) \
            if np.isclose(params.iou_thrs, 0.5).any() else 0
        names = [r.cat_names[c] for c in r.cat_ids]
        pr_curves(params.rec_thrs, r.precision[t50, :, :, 0, -1].T, names,
                  plots / "pr_curves.png")
        per_class_bars({v["name"]: v["AP"] for v in r.per_category().values()},
                       plots / "per_class_ap.png", "AP")


@eval_group.command("semantic")
@click.argument("gt_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("pred_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--num-classes", type=int, required=True)
@click.option("--ignore-index", type=int, default=255, show_default=True)
@click.option("--reduce-zero-label", is_flag=True, help="ADE20K: 0 is ignored, ids shift down.")
@click.option("--class-names", type=click.Path(path_type=Path, dir_okay=False),
              help="Text file, one class name per line.")
@_engine_opts
@_json_opt
@_plots_opt
def eval_semantic(gt_dir, pred_dir, num_classes, ignore_index, reduce_zero_label, class_names,
                  engine, address, workers, gpus_per_worker, json_out, plots) -> None:
    """mIoU, Dice, accuracies of label PNGs in PRED_DIR against GT_DIR (paired by name)."""
    from masklab.metrics.report import semantic_text
    from masklab.metrics.semantic import semantic_evaluate_dirs

    runner = _runner(engine, address, workers, gpus_per_worker)
    names = None
    if class_names is not None:
        names = [n.strip() for n in class_names.read_text().splitlines() if n.strip()]
    r = semantic_evaluate_dirs(gt_dir, pred_dir, num_classes, ignore_index=ignore_index,
                               reduce_zero_label=reduce_zero_label, class_names=names,
                               runner=runner)
    click.echo(semantic_text(r))
    _write_json(json_out, r.to_dict())
    if plots is not None:
        from masklab.plots import confusion_heatmap, per_class_bars

        labels = names or [str(i) for i in range(num_classes)]
        confusion_heatmap(r.confusion, labels, plots / "confusion.png")
        per_class_bars(dict(zip(labels, r.iou.tolist(), strict=True)),
                       plots / "per_class_iou.png", "IoU")


@eval_group.command("panoptic")
@click.option("--gt-json", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--gt-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--pred-json", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--pred-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@_engine_opts
@_json_opt
@_plots_opt
def eval_panoptic(gt_json, gt_dir, pred_json, pred_dir, engine, address, workers,
                  gpus_per_worker, json_out, plots) -> None:
    """PQ, SQ, RQ (all, things, stuff, per class) of COCO-panoptic predictions."""
    from masklab.io.coco import read_json
    from masklab.metrics.panoptic import panoptic_evaluate
    from masklab.metrics.report import panoptic_text

    r = panoptic_evaluate(gt_json, gt_dir, pred_json, pred_dir,
                          runner=_runner(engine, address, workers,
                                         gpus_per_worker))
    names = {c["id"]: c["name"] for c in read_json(gt_json)["categories"]}
    click.echo(panoptic_text(r, names))
    _write_json(json_out, r.to_dict())
    if plots is not None:
        from masklab.plots import per_class_bars

        per_class_bars({names[c]: v["pq"] for c, v in r.per_class.items()},
                       plots / "per_class_pq.png", "PQ")


@eval_group.command("davis")
@click.option("--davis-root", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--results", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--task", type=click.Choice(["semi-supervised", "unsupervised"]),
              default="semi-supervised", show_default=True)
@click.option("--set", "subset", default="val", show_default=True,
              help="ImageSets/<year>/<set>.txt lists the sequences.")
@_engine_opts
@_json_opt
@_plots_opt
def eval_davis(davis_root, results, task, subset, engine, address, workers, gpus_per_worker,
               json_out, plots) -> None:
    """DAVIS 2017 J&F (mean, recall, decay; per object)."""
    from masklab.metrics.report import davis_text
    from masklab.metrics.video import davis_evaluate

    r = davis_evaluate(davis_root, results, task=task, subset=subset,
                       runner=_runner(engine, address, workers, gpus_per_worker))
    click.echo(davis_text(r))
    _write_json(json_out, r.to_dict())
    if plots is not None:
        from masklab.plots import per_class_bars

        per_class_bars(r.j_per_object, plots / "per_object_j.png", "J-Mean")
        per_class_bars(r.f_per_object, plots / "per_object_f.png", "F-Mean")


@eval_group.command("matting")
@click.argument("pred_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("gt_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--trimaps", type=click.Path(path_type=Path, file_okay=False),
              help="Trimaps (0/128/255): errors over the unknown region.")
@click.option("--region", type=click.Choice(["unknown", "all"]),
              help="Default: unknown with --trimaps, else all.")
@_engine_opts
@_json_opt
@_plots_opt
def eval_matting(pred_dir, gt_dir, trimaps, region, engine, address, workers,
                 gpus_per_worker, json_out, plots) -> None:
    """SAD, MSE, gradient and connectivity errors of alpha mattes."""
    from masklab.metrics.matting import matting_evaluate_dirs
    from masklab.metrics.report import matting_text

    r = matting_evaluate_dirs(pred_dir, gt_dir, trimaps, region=region,
                              runner=_runner(engine, address, workers,
                                         gpus_per_worker))
    click.echo(matting_text(r))
    _write_json(json_out, r.to_dict())
    if plots is not None:
        import numpy as np

        from masklab.plots import per_class_bars

        sads = {k: v["SAD"] for k, v in r.per_image.items()}
        top = max(sads.values(), default=1) or 1
        per_class_bars({k: float(np.clip(v / top, 0, 1)) for k, v in sads.items()},
                       plots / "per_image_sad.png", "SAD (relative to the worst)")
