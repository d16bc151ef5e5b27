"""``masklab prompt``, ``masklab everything``, ``masklab eval interactive``: thin wrappers."""

from __future__ import annotations

from pathlib import Path

import click

from masklab.cli.eval import _engine_opts, _json_opt, _runner, _write_json, eval_group
from masklab.cli.options import device_option
from masklab.cli.tasks import _engine_options

_BACKEND_HELP = ("grabcut (default), graphcut, random_walker, ncut, sam-vit-b/l/h, "
                 "sam-hq-vit-b, sam2.1-tiny/small/base-plus/large, edgetam, or a SAM folder")


def _numbers(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        v = [float(t) for t in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{what} must be numbers, got {text!r}") from None
    if len(v) not in n:
        raise click.BadParameter(f"{what} takes {' or '.join(map(str, n))} numbers, "
                                 f"got {text!r}")
    return v


def _painted(path: Path, size: tuple[int, int]):
    import numpy as np

    from masklab.errors import InputError
    from masklab.io.images import read_image

    m = read_image(path, mode="gray") if path.suffix.lower() != ".npy" else np.load(path)
    if m.shape[:2] != size:
        raise InputError(f"is {m.shape[1]}x{m.shape[0]}, the image {size[1]}x{size[0]}", path)
    if not (m > 0).any():
        raise InputError("has no painted (non-zero) pixel", path)
    return m > 0


@click.command("prompt")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--point", "points", multiple=True,
              help="X,Y or X,Y,LABEL (1 object, 0 background); repeatable.")
@click.option("--box", help="X0,Y0,X1,Y1.")
@click.option("--extreme", "extremes", multiple=True,
              help="An extreme point X,Y; give exactly four (DEXTR-style).")
@click.option("--scribble", "scribbles", multiple=True, type=click.Path(path_type=Path),
              help="PNG whose non-zero pixels mark the object; repeatable.")
@click.option("--negative-scribble", "neg_scribbles", multiple=True,
              type=click.Path(path_type=Path), help="PNG of background strokes.")
@click.option("--mask", "mask_file", type=click.Path(path_type=Path, dir_okay=False),
              help="PNG mask prompt (non-zero = object).")
@click.option("--backend", default="grabcut", show_default=True, help=_BACKEND_HELP)
@click.option("--multimask", is_flag=True, help="Three masks for an ambiguous prompt (SAM).")
@device_option("cpu")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True, help="SAM decoder precision (bf16: CPUs with AVX512-BF16 "
              "or AMX, GPUs).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.pass_context
def prompt_cmd(ctx, image, points, box, extremes, scribbles, neg_scribbles, mask_file,
               backend, multimask, device, precision, out) -> None:
    """Segment the object a prompt points at: mask_K.png per mask, overlay.png, masks.json."""
    import numpy as np

    from masklab import viz
    from masklab.errors import InputError
    from masklab.interactive import Session, extreme_points_to_prompts
    from masklab.io.atomic import write_json
    from masklab.io.images import read_image, write_image
    from masklab.types import Prompts
    from masklab.types.prompts import Scribble

    img = read_image(image)
    size = img.shape[:2]
    pts, labels = [], []
    for p in points:
        v = _numbers(p, (2, 3), "--point")
        pts.append(v[:2])
        labels.append(int(v[2]) if len(v) == 3 else 1)
    if extremes:
        if len(extremes) != 4:
            raise click.BadParameter(f"give 4 extreme points, got {len(extremes)}",
                                     param_hint="--extreme")
        ext = extreme_points_to_prompts([_numbers(e, (2,), "--extreme") for e in extremes])
        pts += ext.points.tolist()
        labels += ext.point_labels.tolist()
        box = box or ",".join(str(v) for v in ext.box)
    strokes = [Scribble.from_raster(_painted(f, size)) for f in scribbles]
    strokes += [Scribble.from_raster(_painted(f, size), positive=False) for f in neg_scribbles]
    prompts = Prompts(points=np.array(pts).reshape(-1, 2), point_labels=labels,
                      box=_numbers(box, (4,), "--box") if box else None,
                      mask=_painted(mask_file, size) if mask_file else None,
                      scribbles=strokes)
    if prompts.is_empty():
        raise click.UsageError("give a prompt: --point, --box, --extreme, --scribble or --mask")
    try:
        prompts, notes = prompts.fit_to(*size)
    except ValueError as e:
        raise InputError(str(e), image) from None
    for note in notes:
        click.echo(f"masklab: note: {image}: {note}", err=True)
    from masklab.interactive.classical import CLASSICAL

    if precision != "fp32" and backend in CLASSICAL:
        raise click.UsageError(f"--precision is for SAM backends, not {backend}")
    session = Session(img, backend, device=device,
                      **({"precision": precision} if precision != "fp32" else {}))
    masks = session.predict(prompts=prompts, multimask=multimask)
    records = []
    for k, m in enumerate(masks.to_dense()):
        path = write_image(out / f"mask_{k}.png", (m * 255).astype(np.uint8))
        records.append({"file": path.name, "score": float(masks.scores[k]),
                        "area": int(m.sum()), "bbox": masks.boxes.xywh[k].tolist()})
    viz.save(out / "overlay.png", viz.overlay_masks(img, masks[:1], boxes=False))
    write_json(out / "masks.json", {"image": str(image), "backend": str(backend),
                                    "masks": records}, indent=1)
    if not ctx.obj["quiet"]:
        best = records[0]
        click.echo(f"{len(records)} mask(s) to {out}; best score {best['score']:.3f}, "
                   f"area {best['area']} px")


@click.command("everything")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--backend", default="slic", show_default=True,
              help="slic or felzenszwalb (no weights), or a SAM model / folder.")
@click.option("--points-per-side", type=int, default=32, show_default=True)
@click.option("--points-per-batch", type=int, default=64, show_default=True)
@click.option("--pred-iou-thresh", type=float, default=0.88, show_default=True)
@click.option("--stability-thresh", type=float, default=0.95, show_default=True)
@click.option("--nms-thresh", type=float, default=0.7, show_default=True)
@click.option("--crop-layers", type=int, default=0, show_default=True)
@click.option("--min-area", type=int, default=0, show_default=True,
              help="Remove holes and islands (and classical regions) below this area.")
@click.option("--segments", type=int, default=400, show_default=True,
              help="Superpixels (slic).")
@click.option("--merge-threshold", type=float, default=30.0, show_default=True,
              help="Merge neighbouring regions whose mean colours differ less (classical).")
@device_option("cpu")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@_engine_options
@click.pass_context
def everything_cmd(ctx, inputs, backend, points_per_side, points_per_batch, pred_iou_thresh,
                   stability_thresh, nms_thresh, crop_layers, min_area, segments,
                   merge_threshold, device, out, engine, address, workers,
                   gpus_per_worker) -> None:
    """Every object/region of images (files, folders, globs): OUT/masks.json (COCO, RLE,
    image ids 1..N in input order) and overlays (overlay.png for one image file,
    STEM_overlay.png otherwise). Run the same command again to resume."""
    from masklab.cli.tasks import _manifest
    from masklab.interactive.everything import segment_everything_files
    from masklab.io.images import find_images

    if engine == "ray":
        from masklab.scale import ray_engine

        ray_engine.connect(address, workers)  # every check before any work
    files = find_images(inputs)
    if not files:
        raise click.BadParameter("no images found", param_hint="INPUTS")
    one = len(inputs) == 1 and Path(inputs[0]).is_file()
    options = {"points_per_side": points_per_side, "points_per_batch": points_per_batch,
               "pred_iou_thresh": pred_iou_thresh, "stability_score_thresh": stability_thresh,
               "box_nms_thresh": nms_thresh, "crop_n_layers": crop_layers,
               "min_region_area": min_area, "n_segments": segments,
               "merge_threshold": merge_threshold,
               "overlay": "overlay.png" if one else "{stem}_overlay.png"}
    manifest = _manifest(out, "everything", backend, None, **options)
    if engine == "ray":
        ray_engine.segment_everything_files(files, out, backend, workers=workers,
                                            address=address, gpus_per_worker=gpus_per_worker,
                                            manifest=manifest, **options)
    else:
        segment_everything_files(files, out, backend, device=device, manifest=manifest,
                                 quiet=ctx.obj["quiet"] or None, **options)
    if not ctx.obj["quiet"]:
        n = sum(len(r["annotations"]) for r in manifest.rows([str(f.resolve())
                                                               for f in files]))
        click.echo(f"{n} masks of {len(files)} image(s) to {out}/masks.json")


@eval_group.command("interactive")
@click.option("--backend", default="grabcut", show_default=True, help=_BACKEND_HELP)
@click.option("--images", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--masks", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="PNGs named like the images; each non-zero value is one object.")
@click.option("--max-clicks", type=int, default=20, show_default=True)
@click.option("--thresholds", default="0.85,0.90", show_default=True)
@device_option("cpu")
@_engine_opts
@_json_opt
@click.pass_context
def eval_interactive(ctx, backend, images, masks, max_clicks, thresholds, device, engine,
                     address, workers, gpus_per_worker, json_out) -> None:
    """NoC@85/90, NoF and mIoU per click with the standard click simulator."""
    from masklab.interactive.benchmark import evaluate_interactive_files

    thr = tuple(_numbers(thresholds, tuple(range(1, 10)), "--thresholds"))
    r = evaluate_interactive_files(images, masks, backend, device=device, thresholds=thr,
                                   max_clicks=max_clicks, quiet=ctx.obj["quiet"] or None,
                                   runner=_runner(engine, address, workers,
                                                  gpus_per_worker))
    for t in thr:
        click.echo(f"NoC@{round(t * 100)} {r.noc[t]:.2f}  NoF@{round(t * 100)} {r.nof[t]}")
    click.echo(f"mIoU@1 {r.miou_per_click[0]:.3f}  mIoU@5 "
               f"{r.miou_per_click[min(4, max_clicks - 1)]:.3f}  objects {r.samples}")
    _write_json(json_out, r.to_dict())
