"""``masklab label``: images and class names → a COCO / YOLO-seg dataset."""

from __future__ import annotations

from pathlib import Path

import click

from masklab.cli.options import device_option
from masklab.cli.tasks import _engine_options


@click.command("label")
@click.argument("images", nargs=-1)
@click.option("--classes", help="Comma-separated class names (the text prompts), or 'auto': "
              "each image's caption names its classes (see --captioner).")
@click.option("--captioner", help="With --classes auto: blip-base (default), blip-large, "
              "florence-2-base, florence-2-large or a folder.")
@click.option("--classes-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="One class per line, synonyms after a colon: 'person: man, woman'.")
@click.option("--boxes-from", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Take the boxes of this COCO file (matched by file name) instead of a "
              "detector; the classes default to its categories.")
@click.option("--detector", default="grounding-dino-tiny", show_default=True,
              help="grounding-dino-tiny/base, mm-grounding-dino-tiny/base/large, "
              "llmdet-tiny/base/large, omdet-turbo, florence-2-base/large[-grounding], sam3 "
              "(masks too; --exemplar boxes), owlv2-base/large, "
              "owlvit-base, clipseg or a folder.")
@click.option("--segmenter", default="sam", show_default=True,
              help="sam (SAM 2.1 Hiera-T), another SAM-family name or folder, grabcut "
              "(no weights) or box.")
@click.option("--exemplar", "exemplars", multiple=True, metavar="CLASS=X0,Y0,X1,Y1[,neg]",
              help="SAM 3: an example box of CLASS (pixels; ',neg': a look-alike that is "
              "not one) used on every image with the text (repeatable).")
@click.option("--box-threshold", type=float, help="Detector score threshold.")
@click.option("--text-threshold", type=float, help="Grounding DINO token threshold.")
@click.option("--class-threshold", "class_thresholds", multiple=True,
              help="NAME=SCORE: a stricter threshold for one class (repeatable).")
@click.option("--nms", type=float, default=0.5, show_default=True,
              help="IoU of class-aware NMS.")
@click.option("--agnostic-nms", type=float, default=0.7, show_default=True,
              help="IoU above which boxes of different classes are one object (the higher "
              "score keeps its label).")
@click.option("--min-area", type=int, default=16, show_default=True)
@click.option("--polygons", is_flag=True, help="COCO polygons instead of RLE (holes become "
              "separate rings).")
@click.option("--no-overlays", is_flag=True)
@click.option("--recursive", is_flag=True, help="Look for images in sub-folders too.")
@click.option("--review", is_flag=True, help="Write OUT/review.html: every annotation of the "
              "run in OUT, lowest score first (no labelling).")
@click.option("--review-limit", type=int, help="With --review: the lowest-scored N only.")
@click.option("--apply-review", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Apply a corrections file ('reject ID…', 'relabel ID CATEGORY') to the "
              "run in OUT and rebuild its COCO / YOLO files (no labelling).")
@click.option("--tracker", default="flow", show_default=True,
              help="A video: the tracker between key frames (flow, sam, edgetam, a SAM 2.1 "
              "name or folder).")
@click.option("--key-every", type=int, default=10, show_default=True,
              help="A video: detect on every Nth frame (and the first).")
@device_option("cpu")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@_engine_options
@click.pass_context
def label_cmd(ctx, images, classes, captioner, classes_file, boxes_from, detector, segmenter,
              exemplars, box_threshold, text_threshold, class_thresholds, nms, agnostic_nms,
              min_area, polygons, no_overlays, recursive, review, review_limit, apply_review,
              tracker, key_every, device, out, engine, address, workers, gpus_per_worker
              ) -> None:
    """Label images with text prompts: detector boxes → masks → OUT/annotations.json (COCO),
    OUT/yolo/, OUT/overlays/. Run the same command again to resume. --review and
    --apply-review work on the run in OUT. A video: detect on key frames, track between
    (one track id per object)."""
    from masklab.errors import InputError
    from masklab.grounding.label import (
        CocoBoxes,
        LabelSettings,
        label_images,
        parse_classes_file,
    )
    from masklab.io.images import find_images

    if review or apply_review:
        from masklab.grounding.review import apply_review as apply
        from masklab.grounding.review import write_review

        if images:
            raise click.UsageError("--review / --apply-review take no images (only --out)")
        if apply_review:
            done = apply(out, apply_review)
            if not ctx.obj["quiet"]:
                click.echo(f"rejected {done['rejected']}, relabelled {done['relabelled']}; "
                           f"{done['annotations']} annotations in {out / 'annotations.json'}")
        if review:
            page = write_review(out, limit=review_limit, quiet=ctx.obj["quiet"] or None)
            if not ctx.obj["quiet"]:
                click.echo(f"wrote {page}")
        return
    if not images:
        raise click.UsageError("give images to label (files, folders or globs)")
    runner = None
    if engine == "ray":  # connected here: every check before any work
        from masklab.scale.ray_engine import LabelRunner

        runner = LabelRunner(workers, address, gpus_per_worker)
    if classes and classes_file:
        raise click.UsageError("give --classes or --classes-file, not both")
    synonyms: dict[str, str] = {}
    names: list[str] = []
    auto = classes is not None and classes.strip() == "auto"
    if captioner and not auto:
        raise click.UsageError("--captioner goes with --classes auto")
    if classes_file:
        names, synonyms = parse_classes_file(classes_file)
    elif auto:
        if boxes_from is not None:
            raise click.UsageError("--classes auto and --boxes-from do not go together")
        captioner = captioner or "blip-base"
    elif classes is not None:
        names = [c.strip() for c in classes.split(",")]
        if not all(names):
            raise click.BadParameter(f"{classes!r} has an empty class name",
                                     param_hint="--classes")
    det = None
    if boxes_from is not None:
        det = CocoBoxes(boxes_from)
        detector = det.name
        if not names:
            names = [det.categories[k] for k in sorted(det.categories)]
    if not names and not auto:
        raise click.UsageError("give the classes: --classes 'cat,dog', --classes auto or "
                               "--classes-file")
    thresholds = {}
    for item in class_thresholds:
        name, _, value = item.partition("=")
        try:
            thresholds[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r} is not NAME=SCORE",
                                     param_hint="--class-threshold") from None
        if name.strip() not in names and not auto:  # auto: classes come later
            raise click.BadParameter(f"{name.strip()!r} is not one of the classes",
                                     param_hint="--class-threshold")
    examples: dict[str, list] = {}
    for item in exemplars:
        name, _, rest = item.partition("=")
        parts = [v.strip() for v in rest.split(",")]
        neg = len(parts) == 5 and parts[4] == "neg"
        try:
            box = [float(v) for v in parts[:4]]
        except ValueError:
            box = []
        if len(box) != 4 or len(parts) not in (4, 5) or (len(parts) == 5 and not neg):
            raise click.BadParameter(f"{item!r} is not CLASS=X0,Y0,X1,Y1[,neg]",
                                     param_hint="--exemplar")
        if name.strip() not in names:
            raise click.BadParameter(f"{name.strip()!r} is not one of the classes",
                                     param_hint="--exemplar")
        examples.setdefault(name.strip(), []).append([*box, 0 if neg else 1])
    from masklab.io.video import is_video

    videos = [p for p in images if is_video(p)]
    if videos:
        if len(images) != 1 or boxes_from is not None:
            raise click.UsageError("label one video at a time (or images only), with a "
                                   "detector (not --boxes-from)")
        return _label_video(ctx, Path(videos[0]), names, synonyms, detector, segmenter,
                            box_threshold, text_threshold, thresholds, nms, agnostic_nms,
                            min_area, examples, tracker, key_every, device, out, no_overlays,
                            engine)
    files = find_images(images, recursive=recursive)
    if not files:
        raise InputError("no images found", images[0])
    settings = LabelSettings(classes=names, detector=detector, segmenter=segmenter,
                             synonyms=synonyms, box_threshold=box_threshold,
                             text_threshold=text_threshold, class_thresholds=thresholds,
                             nms_iou=nms, agnostic_iou=agnostic_nms, min_area=min_area,
                             polygons=polygons, captioner=captioner, exemplars=examples)
    r = label_images(files, out, settings, detector=det, device=device,
                     overlays=not no_overlays, quiet=ctx.obj["quiet"] or None,
                     boxes_from=boxes_from, runner=runner)
    if not ctx.obj["quiet"]:
        click.echo(f"labelled {r.done} image(s) ({r.skipped} done before, {r.failed} failed); "
                   f"{r.annotations} annotations in {out / 'annotations.json'}")


def _label_video(ctx, video, names, synonyms, detector, segmenter, box_threshold,
                 text_threshold, thresholds, nms, agnostic_nms, min_area, examples, tracker,
                 key_every, device, out, no_overlays, engine) -> None:
    from masklab.grounding.label import LabelSettings
    from masklab.grounding.video import label_video

    if engine == "ray":
        raise click.UsageError("a video is labelled in one process (--engine ray is for "
                               "folders of images)")
    if not names:
        raise click.UsageError("a video needs its classes (--classes or --classes-file)")
    if key_every < 1:
        raise click.BadParameter("must be at least 1", param_hint="--key-every")
    settings = LabelSettings(classes=names, detector=detector, segmenter=segmenter,
                             synonyms=synonyms, box_threshold=box_threshold,
                             text_threshold=text_threshold, class_thresholds=thresholds,
                             nms_iou=nms, agnostic_iou=agnostic_nms, min_area=min_area,
                             exemplars=examples)
    r = label_video(video, out, settings, tracker=tracker, key_every=key_every,
                    device=device, overlay=not no_overlays, quiet=ctx.obj["quiet"] or None)
    if not ctx.obj["quiet"]:
        click.echo(f"labelled {r.frames} frames ({r.key_frames} key frames): {r.tracks} "
                   f"track(s), {r.annotations} annotations in {out / 'annotations.json'}")
