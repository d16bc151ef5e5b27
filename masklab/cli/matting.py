"""``masklab matte`` and ``masklab composite``: thin wrappers over ``masklab.matting``."""

from __future__ import annotations

from pathlib import Path

import click

from masklab.cli.options import device_option


def _colour_or_file(text: str):
    """``r,g,b``, ``#rrggbb``, ``blur``, or an image file."""
    import numpy as np

    from masklab.io.images import read_image

    t = text.strip()
    if t == "blur":
        return "blur"
    if t.startswith("#") and len(t) == 7:
        return np.array([int(t[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)
    if t.count(",") == 2 and not Path(t).exists():
        try:
            v = [int(c) for c in t.split(",")]
        except ValueError:
            raise click.BadParameter(f"{text!r} is not r,g,b") from None
        if not all(0 <= c <= 255 for c in v):
            raise click.BadParameter(f"colour values must be 0-255, got {text!r}")
        return np.array(v, np.uint8)
    return read_image(t)


@click.command("matte")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--trimap", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Trimap PNG (0 background, 255 foreground, else unknown).")
@click.option("--mask", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Binary mask PNG; a trimap band is made around its edge.")
@click.option("--background", "plate", type=click.Path(path_type=Path, dir_okay=False,
                                                       exists=True),
              help="Clean plate: the same background shot without the subject.")
@click.option("--point", "points", multiple=True,
              help="X,Y on the object: a GrabCut selection becomes the mask (repeatable).")
@click.option("--band", type=int, help="Unknown band half-width in pixels (default: from "
              "the object size, or from the soft edge's width with --background).")
@click.option("--solver", type=click.Choice(["cf", "knn", "vitmatte"]), default="cf",
              show_default=True, help="cf: closed-form (Levin et al.); knn: KNN matting "
              "(Chen et al.); vitmatte: ViTMatte (learned; weights via --weights).")
@click.option("--weights", default="hf/vitmatte-small", show_default=True,
              help="ViTMatte weights: a registry name or a local transformers folder.")
@click.option("--coarse-to-fine", is_flag=True,
              help="Solve at low resolution, refine uncertain pixels at full resolution.")
@click.option("--refine", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="With --coarse-to-fine: fraction of unknown pixels refined.")
@click.option("--new-background", default="blur", show_default=True,
              help="For the composite: an image, r,g,b, #rrggbb or blur.")
@click.option("--smoothing", type=click.FloatRange(0, 0.99), default=0.5, show_default=True,
              help="Video: temporal smoothing of the plate difference (0 = none).")
@device_option("cpu", help="For --solver vitmatte.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.pass_context
def matte_cmd(ctx, image, trimap, mask, plate, points, band, solver, weights, coarse_to_fine,
              refine, new_background, smoothing, device, out) -> None:
    """Alpha matte of IMAGE (or of every frame of a video) and its composite onto a new
    background. Images: alpha.png, foreground.png (RGBA), trimap.png, composite.jpg.
    Videos (with --background PLATE): composite.mp4 and alpha.mp4."""
    import numpy as np

    from masklab.errors import InputError
    from masklab.io.images import read_image, write_image
    from masklab.io.video import is_video
    from masklab.matting import (
        composite,
        estimate_alpha,
        estimate_foreground,
        rgba,
        trimap_from_mask,
        trimap_from_plate,
    )

    given = sum(x is not None for x in (trimap, mask, plate, points or None))
    if given != 1:
        raise click.UsageError("give exactly one of --trimap, --mask, --background, --point")
    options = {"weights": weights, "device": device} if solver == "vitmatte" else {}
    if coarse_to_fine:
        options["refine"] = refine

    new_bg = _colour_or_file(new_background)
    if is_video(image):
        from masklab.matting import matte_video

        if plate is None:
            raise click.UsageError("a video is matted against a clean plate: give "
                                   "--background PLATE")
        info = matte_video(image, read_image(plate), out, new_background=new_bg,
                           solver=solver, coarse_to_fine=coarse_to_fine, smoothing=smoothing,
                           band=band, quiet=ctx.obj["quiet"], **options)
        if not ctx.obj["quiet"]:
            click.echo(f"wrote composite.mp4, alpha.mp4 ({info['frames']} frames) to {out}")
        return
    img = read_image(image)

    def same_size(shape, path, what):
        if tuple(shape[:2]) != img.shape[:2]:
            raise InputError(f"{what} is {shape[1]}x{shape[0]}, image "
                             f"{img.shape[1]}x{img.shape[0]}", path)

    if trimap is not None:
        tri = read_image(trimap, mode="gray")
        same_size(tri.shape, trimap, "trimap")
    elif plate is not None:
        bg = read_image(plate)
        same_size(bg.shape, plate, "plate")
        tri, m = trimap_from_plate(img, bg, band=band)
        if not m.any():
            raise InputError("does not differ from the image: no subject found", plate)
    else:
        if mask is not None:
            m = read_image(mask, mode="gray") > 127
            src = mask
            same_size(m.shape, mask, "mask")
        else:
            from masklab.interactive import Session

            pts = [[float(v) for v in p.split(",")[:2]] for p in points]
            m = Session(img, "grabcut").predict(points=pts).to_dense()[0]
            src = image
        if not m.any():
            raise InputError("the object mask is empty", src)
        tri = trimap_from_mask(m, band)
    alpha = estimate_alpha(img, tri, solver, coarse_to_fine=coarse_to_fine, **options)
    fg = estimate_foreground(img, alpha)
    write_image(out / "trimap.png", tri)
    write_image(out / "alpha.png", np.round(alpha * 255).astype(np.uint8))
    write_image(out / "foreground.png", rgba(fg, alpha))
    write_image(out / "composite.jpg", composite(fg, alpha, new_bg))
    if not ctx.obj["quiet"]:
        click.echo(f"wrote alpha.png, foreground.png, trimap.png, composite.jpg to {out}")


@click.command("composite")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--alpha", "alpha_file", type=click.Path(path_type=Path, dir_okay=False,
                                                       exists=True), required=True)
@click.option("--background", required=True, help="An image, r,g,b, #rrggbb or blur.")
@click.option("--foreground-estimation/--no-foreground-estimation", default=True,
              show_default=True, help="Estimate foreground colours (no colour bleed).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
def composite_cmd(image, alpha_file, background, foreground_estimation, out) -> None:
    """Put IMAGE's foreground (by ALPHA) onto a new background; writes OUT (jpg/png)."""
    from masklab.errors import InputError
    from masklab.io.images import read_image, write_image
    from masklab.matting import composite, estimate_foreground

    img = read_image(image)
    alpha = read_image(alpha_file, mode="gray") / 255.0
    if alpha.shape != img.shape[:2]:
        raise InputError(f"alpha is {alpha.shape[1]}x{alpha.shape[0]}, image "
                         f"{img.shape[1]}x{img.shape[0]}", alpha_file)
    fg = estimate_foreground(img, alpha) if foreground_estimation else img
    write_image(out, composite(fg, alpha, _colour_or_file(background)))
    click.echo(f"wrote {out}")
