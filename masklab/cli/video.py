"""``masklab track``: video object segmentation, a thin wrapper over ``masklab.video``."""

from __future__ import annotations

from pathlib import Path

import click

from masklab.cli.eval import _engine_opts
from masklab.cli.options import device_option
from masklab.cli.tasks import _engine_options


def _prompt(text: str, n: tuple[int, ...], what: str) -> tuple[list[float], int | None]:
    """``F,A,B,...[@ID]`` -> (numbers, object id or None)."""
    body, _, obj = text.partition("@")
    try:
        values = [float(v) for v in body.split(",")]
        obj_id = int(obj) if obj else None
    except ValueError:
        raise click.BadParameter(f"{text!r} must be numbers", param_hint=what) from None
    if len(values) not in n:
        raise click.BadParameter(f"{text!r} must have {' or '.join(map(str, n))} numbers",
                                 param_hint=what)
    return values, obj_id


@click.command("track")
@click.argument("video", type=click.Path(path_type=Path, exists=True), required=False)
@click.option("--davis-root", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Track every sequence of a DAVIS folder instead of one VIDEO (prompt: "
              "each sequence's first annotated frame; or --unsupervised): OUT/<seq>/*.png "
              "for `eval davis --results OUT`.")
@click.option("--sequences", help="With --davis-root: comma-separated sequence names.")
@click.option("--set", "subset", help="With --davis-root: the sequences of "
              "ImageSets/2017/<SET>.txt (default: every annotated sequence).")
@click.option("--mask", "mask_file", type=click.Path(path_type=Path, dir_okay=False,
              exists=True), help="First-frame annotation PNG (DAVIS: each non-zero value is "
              "an object id; 255 is void).")
@click.option("--mask-frame", type=int, default=0, show_default=True,
              help="The frame --mask annotates.")
@click.option("--point", "points", multiple=True,
              help="`F,X,Y[,LABEL][@ID]`: a click on frame F (label 1 positive, 0 negative).")
@click.option("--box", "boxes", multiple=True, help="F,X0,Y0,X1,Y1[@ID]: a box on frame F.")
@click.option("--object", "default_id", type=int, default=1, show_default=True,
              help="Object id of --point/--box prompts without @ID.")
@click.option("--unsupervised", is_flag=True,
              help="No prompt: find the objects that move against the camera and track them.")
@click.option("--max-objects", type=int, default=20, show_default=True,
              help="With --unsupervised: at most this many (DAVIS allows 20).")
@click.option("--backend", default="flow", show_default=True,
              help="flow (no weights), sam (SAM 2.1 Hiera-T), sam2.1-small, "
              "sam2.1-base-plus, sam2.1-large, edgetam, or a SAM 2 / EdgeTAM folder.")
@device_option("cpu", help="With a SAM backend.")
@click.option("--image-backend", default="grabcut", show_default=True,
              help="flow: turns point/box prompts into masks on their frame.")
@click.option("--no-overlay", is_flag=True, help="Skip overlay.mp4.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@_engine_options
@click.pass_context
def track_cmd(ctx, video, davis_root, sequences, subset, mask_file, mask_frame, points, boxes,
              default_id, unsupervised, max_objects, backend, device, image_backend,
              no_overlay, out, engine, address, workers, gpus_per_worker) -> None:
    """Track objects through a video (file or folder of frames) from prompts on any frames:
    OUT/Annotations/<seq>/<frame>.png, OUT/overlay.mp4, OUT/tracks.json. With --davis-root,
    every sequence of a DAVIS folder (resumable; --engine ray spreads them over a cluster)."""
    from masklab.errors import InputError
    from masklab.io.images import read_label_png
    from masklab.video.batch import load_video_backend, prompt_objects
    from masklab.video.output import track_to_folder
    from masklab.video.session import VideoSession

    if max_objects < 1:
        raise click.BadParameter("must be at least 1", param_hint="--max-objects")
    if davis_root is not None:
        if video is not None or mask_file is not None or points or boxes:
            raise click.UsageError("--davis-root takes no VIDEO and no prompt (each "
                                   "sequence's first annotated frame is its prompt)")
        _track_davis(ctx, davis_root, sequences, subset, unsupervised, max_objects, backend,
                     device, image_backend, not no_overlay, out, engine, address, workers,
                     gpus_per_worker)
        return
    if video is None:
        raise click.UsageError("give a VIDEO (file or folder of frames) or --davis-root")
    if unsupervised and (mask_file is not None or points or boxes):
        raise click.UsageError("--unsupervised takes no prompt")
    if not unsupervised and mask_file is None and not points and not boxes:
        raise click.UsageError("give a prompt: --mask, --point or --box (or --unsupervised)")
    session = VideoSession(video, load_video_backend(backend, device),
                           image_backend=image_backend)
    h, w = session.frames.size
    # every prompt is checked before anything is written
    if mask_file is not None:
        ids = read_label_png(mask_file)
        if ids.shape != (h, w):
            raise InputError(f"mask is {ids.shape[1]}x{ids.shape[0]}, the video {w}x{h}",
                             mask_file)
        for k, m in prompt_objects(ids, mask_file).items():
            session.add_prompt(mask_frame, k, mask=m)
    clicks: dict[tuple[int, int], tuple[list, list]] = {}
    for p in points:
        v, obj = _prompt(p, (3, 4), "--point")
        pts, labels = clicks.setdefault((int(v[0]), obj or default_id), ([], []))
        pts.append(v[1:3])
        labels.append(int(v[3]) if len(v) == 4 else 1)
    for b in boxes:
        v, obj = _prompt(b, (5,), "--box")
        try:
            session.add_prompt(int(v[0]), obj or default_id, box=v[1:5])
        except ValueError as e:
            raise InputError(str(e), video) from None
    for (frame, obj), (pts, labels) in clicks.items():
        try:
            session.add_prompt(frame, obj, points=pts, labels=labels)
        except ValueError as e:
            raise InputError(str(e), video) from None
    if unsupervised:
        session.discover(max_objects=max_objects)
        if not session.objects:
            raise InputError("nothing moves against the camera: no object found", video)
    sequence = video.stem if video.is_file() else video.name
    files = track_to_folder(session, out, sequence=sequence, overlay=not no_overlay,
                            quiet=ctx.obj["quiet"] or None)
    if not ctx.obj["quiet"]:
        click.echo(f"tracked {len(session.objects)} object(s) over {len(session.frames)} "
                   f"frames; wrote {len(files)} files to {out}")


def _track_davis(ctx, root, sequences, subset, unsupervised, max_objects, backend, device,
                 image_backend, overlay, out, engine, address, workers, gpus_per_worker):
    from masklab.cli.tasks import _manifest
    from masklab.video.batch import track_davis

    if engine == "ray":
        from masklab.scale import ray_engine

        ray_engine.connect(address, workers)  # every check before any work
    seqs = sequences.split(",") if sequences else None
    options = {"unsupervised": unsupervised, "max_objects": max_objects,
               "image_backend": image_backend, "overlay": overlay}
    manifest = _manifest(out, "track", backend, None, davis_root=str(Path(root).resolve()),
                         **options)
    if engine == "ray":
        rows = ray_engine.track_davis(root, out, workers=workers, address=address,
                                      gpus_per_worker=gpus_per_worker, backend=backend,
                                      device=device, sequences=seqs, subset=subset,
                                      manifest=manifest, **options)
    else:
        rows = track_davis(root, out, backend=backend, device=device, sequences=seqs,
                           subset=subset, quiet=ctx.obj["quiet"] or None, manifest=manifest,
                           **options)
    if not ctx.obj["quiet"]:
        click.echo(f"tracked {len(rows)} sequence(s), {sum(r['frames'] for r in rows)} "
                   f"frames; `masklab eval davis --davis-root {root} --results {out}` "
                   "scores them")


@click.command("video-interactive")
@click.option("--davis-root", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="DAVIS folder: JPEGImages/<res>/<seq>/ and Annotations/<res>/<seq>/.")
@click.option("--sequences", help="Comma-separated sequence names (default: all).")
@click.option("--interactions", type=int, default=8, show_default=True)
@click.option("--backend", default="flow", show_default=True,
              help="flow, sam, sam2.1-small/base-plus/large, edgetam or a SAM 2 folder.")
@device_option("cpu", help="With a SAM backend.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the figures as JSON.")
@_engine_opts
@click.pass_context
def eval_video_interactive(ctx, davis_root, sequences, interactions, backend, device,
                           json_out, engine, address, workers, gpus_per_worker) -> None:
    """Interactive VOS: a simulated user corrects the worst frame with a click after each
    propagation; J&F per interaction, AUC, J&F@8."""
    from masklab.cli.eval import _runner, _write_json
    from masklab.metrics.video_interactive import evaluate_davis_interactive

    if interactions < 1:
        raise click.BadParameter("must be at least 1", param_hint="--interactions")
    r = evaluate_davis_interactive(davis_root, backend=backend, interactions=interactions,
                                   sequences=sequences.split(",") if sequences else None,
                                   quiet=ctx.obj["quiet"] or None, device=device,
                                   runner=_runner(engine, address, workers,
                                                  gpus_per_worker))
    click.echo("interaction  J       F       J&F")
    for k, (j, f) in enumerate(zip(r.j, r.f, strict=True), 1):
        click.echo(f"{k:<11}  {j:.4f}  {f:.4f}  {(j + f) / 2:.4f}")
    click.echo(f"AUC {r.auc:.4f}  J&F@8 {r.jf_at(8):.4f}  ({r.sequences} sequences)")
    _write_json(json_out, r.to_dict())
