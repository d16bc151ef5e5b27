"""``masklab info``, ``convert``, ``weights``, ``demo``: the general verbs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

FORMATS = ("coco", "labels", "instances", "yolo", "davis", "labelme", "cvat", "cvat-video",
           "labelstudio", "voc", "cityscapes")


@click.command()
def info() -> None:
    """Versions, accelerators, optional backends and the weights cache."""
    from masklab.sysinfo import collect

    for key, value in collect().items():
        click.echo(f"{key:<22} {value}")


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--from", "src_format", type=click.Choice(list(FORMATS)),
              help="Source format (guessed for .json, .xml, DAVIS, YOLO, labelme, VOC and "
              "Cityscapes folders).")
@click.option("--to", "dst_format", type=click.Choice(list(FORMATS)),
              help="Target format (guessed for a .json or .xml target).")
@click.option("--images", "images_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of the images (needed to read YOLO; names images for PNG labels).")
@click.option("--class-names", type=click.Path(path_type=Path, dir_okay=False),
              help="Text file, one class name per line (line i names id i), for label PNGs.")
@click.option("--polygons", is_flag=True, help="Write COCO masks as polygons, not RLE.")
@click.pass_context
def convert(ctx, src, dst, src_format, dst_format, images_dir, class_names, polygons) -> None:
    """Convert annotations: COCO JSON, label PNGs, instance PNGs, YOLO-seg, DAVIS, labelme,
    CVAT for images / video XML, Label Studio JSON, Pascal VOC, Cityscapes."""
    from masklab.io.convert import convert as run

    names = None
    if class_names is not None:
        names = [line.strip() for line in class_names.read_text().splitlines()]
    files = run(src, dst, src_format=src_format, dst_format=dst_format, images_dir=images_dir,
                class_names=names, polygons=polygons)
    if not ctx.obj["quiet"]:
        click.echo(f"wrote {len(files)} files to {dst}")


@click.group()
def weights() -> None:
    """List, locate and verify model weights in the cache."""


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def weights_list(as_json: bool) -> None:
    """Every registered weight source and whether it is cached."""
    from masklab import weights as w

    rows = []
    for s in w.list_sources():
        ok, _ = w.verify(s.name) if s.urls else (w.verify(s.name)[0], "")
        rows.append({"name": s.name, "cached": ok, "source": s.location,
                     "license": s.license, "description": s.description})
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    click.echo(f"{'name':<{width}}  cached  description")
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {'yes' if r['cached'] else 'no ':<6}  "
                   f"{r['description']}")
    click.echo(f"cache: {w.home()}")


@weights.command("path")
@click.argument("name")
@click.option("--download/--no-download", default=False,
              help="Fetch (and verify) the file if it is not cached.")
@click.pass_context
def weights_path(ctx, name: str, download: bool) -> None:
    """Where NAME's file lives (fetched with --download)."""
    from masklab import weights as w

    if download:
        click.echo(w.resolve(name, progress=not ctx.obj["quiet"]))
    else:
        click.echo(w.cached_path(w.get_source(name)))


@weights.command("verify")
@click.argument("names", nargs=-1)
def weights_verify(names: tuple[str, ...]) -> None:
    """Check the sha256 of cached files (all cached ones when no NAME is given)."""
    from masklab import weights as w

    chosen = list(names) or [s.name for s in w.list_sources()
                             if w.cached_path(s).exists() or (s.hf_repo and w.verify(s.name)[0])]
    failed = 0
    for name in chosen:
        ok, msg = w.verify(name)
        failed += not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'} {name}: {msg}")
    if not chosen:
        click.echo("nothing cached to verify")
    if failed:
        sys.exit(1)


@click.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default="demo_out",
              show_default=True, help="Output folder.")
@click.pass_context
def demo(ctx, out: Path) -> None:
    """Run masklab's main jobs on bundled sample images (no download)."""
    from masklab.demo import run_demo

    files = run_demo(out, quiet=ctx.obj["quiet"])
    click.echo(f"masklab demo wrote {len(files)} files to {out}/:")
    for f in files:
        click.echo(f"  {f}")
