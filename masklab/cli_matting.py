"""``masklab matte`` and ``masklab composite``: thin wrappers over ``masklab.matting``."""

from __future__ import annotations

from pathlib import Path

import click


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
@click.option("--point", "points", multiple=True,
              help="X,Y on the object: a GrabCut selection becomes the mask (repeatable).")
@click.option("--band", type=int, help="Unknown band half-width in pixels (default: 3% of "
              "sqrt(object area)).")
@click.option("--solver", type=click.Choice(["cf", "knn"]), default="cf", show_default=True,
              help="cf: closed-form (Levin et al.); knn: KNN matting (Chen et al.).")
@click.option("--background", "new_background", default="blur", show_default=True,
              help="For composite.jpg: an image, r,g,b, #rrggbb or blur.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.pass_context
def matte_cmd(ctx, image, trimap, mask, points, band, solver, new_background, out) -> None:
    """Alpha matte of IMAGE: alpha.png, foreground.png (RGBA), trimap.png, composite.jpg."""
    import numpy as np

    from masklab.errors import InputError
    from masklab.io.images import read_image, write_image
    from masklab.matting import composite, matte, rgba, trimap_from_mask

    img = read_image(image)
    given = sum(x is not None and x != () for x in (trimap, mask, points or None))
    if given != 1:
        raise click.UsageError("give exactly one of --trimap, --mask, --point")
    if trimap is not None:
        tri = read_image(trimap, mode="gray")
    else:
        if mask is not None:
            m = read_image(mask, mode="gray") > 127
            src = mask
        else:
            from masklab.interactive import Session

            pts = [[float(v) for v in p.split(",")[:2]] for p in points]
            m = Session(img, "grabcut").predict(points=pts).to_dense()[0]
            src = image
        if not m.any():
            raise InputError("the object mask is empty", src)
        tri = trimap_from_mask(m, band)
    if tri.shape != img.shape[:2]:
        raise InputError(f"trimap is {tri.shape[1]}x{tri.shape[0]}, image "
                         f"{img.shape[1]}x{img.shape[0]}", trimap)
    alpha, fg = matte(img, tri, solver)
    write_image(out / "trimap.png", tri)
    write_image(out / "alpha.png", np.round(alpha * 255).astype(np.uint8))
    write_image(out / "foreground.png", rgba(fg, alpha))
    write_image(out / "composite.jpg", composite(fg, alpha, _colour_or_file(new_background)))
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
