"""``masklab app``: start the annotation web app on a data folder."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from masklab.cli.options import device_option


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("app")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("masklab_data"), show_default=True,
              help="Data folder: the SQLite database, uploads, exports, embedding cache.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Any address but loopback needs accounts (--add-user first).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--db", "db_url", help="Database URL (default: sqlite in the data folder; "
              "postgresql://user:pw@host/db for teams).")
@click.option("--backend", default="auto", show_default=True,
              help="auto: SAM 2.1 Hiera-T, loaded in the background when the server "
              "starts; its weights (~160 MB) are downloaded on first use when not cached "
              "and the machine is online (MASKLAB_OFFLINE=1 forbids it). Until SAM is ready, "
              "or where it cannot be had, clicks use GrabCut and the editor says so. Or "
              "grabcut, graphcut, sam (waits for SAM), another SAM-family name, a SAM folder.")
@click.option("--detector", default="grounding-dino-tiny", show_default=True,
              help="Text prompts: grounding-dino-tiny/base, mm-grounding-dino-tiny/"
              "base/large, llmdet-tiny/base/large, omdet-turbo, sam3, owlv2-base/large, "
              "owlvit-base or a folder.")
@click.option("--video-backend", default="flow", show_default=True,
              help="Tracking through videos: flow (no weights), sam, sam2.1-*, edgetam or a "
              "SAM 2 / EdgeTAM folder.")
@device_option("cpu")
@click.option("--root", "roots", multiple=True, type=click.Path(path_type=Path,
              file_okay=False, exists=True),
              help="A server folder images may be imported from (repeatable; default: the "
              "data folder).")
@click.option("--auth", is_flag=True, help="Require accounts even on 127.0.0.1.")
@click.option("--sample", is_flag=True, help="Create the bundled sample project when the "
              "data folder has none.")
@click.option("--add-user", help="Add an account and exit (password from "
              "MASKLAB_APP_PASSWORD or a prompt).")
@click.option("--role", type=click.Choice(["admin", "annotator", "reviewer"]),
              default="annotator", show_default=True, help="With --add-user.")
@click.option("--max-upload-mb", type=int, default=64, show_default=True)
@click.option("--export", "export_project", help="Export this project (name or id) and exit.")
@click.option("--format", "export_format", default="coco", show_default=True,
              help="With --export: coco, coco-polygons, yolo, labels, instances, davis, "
              "alpha.")
@click.option("--out", "export_out", type=click.Path(path_type=Path),
              help="With --export: the file or folder to write (default: DATA/exports/...).")
@click.option("--jobs", "job_threads", type=click.IntRange(0, 64), default=1,
              show_default=True, help="Background job workers in this process (imports, "
              "exports, pre-labelling, tracking); 0: this process runs none (others sharing "
              "the PostgreSQL database do).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where pre-labelling jobs run their images: in the job "
              "worker, or on a Ray cluster (masklab.scale).")
@click.option("--address", help="With --engine ray: the cluster (default: a local one).")
@click.option("--ray-workers", type=click.IntRange(1, 4096), default=2, show_default=True,
              help="With --engine ray: model workers.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              help="The embedding cache (default: DATA/cache/embeddings); point the app "
              "processes of one database at one shared folder.")
@click.pass_context
def app_cmd(ctx, data_dir, host, port, db_url, backend, detector, video_backend, device, roots,
            auth, sample, add_user, role, max_upload_mb, export_project, export_format,
            export_out, job_threads, engine, address, ray_workers, cache_dir):
    """Start the annotation app (FastAPI + Uvicorn) and print its URL."""
    from masklab.app import auth as _auth
    from masklab.app.server import AppConfig, create_app
    from masklab.errors import InputError

    needs_auth = auth or not _loopback(host)
    cfg = AppConfig(data_dir, db_url=db_url, backend=backend, device=device,
                    detector=detector, video_backend=video_backend,
                    roots=list(roots) or None, auth=needs_auth,
                    max_upload_bytes=max_upload_mb << 20, job_threads=job_threads,
                    engine=engine, address=address, ray_workers=ray_workers,
                    cache_dir=cache_dir)
    app = create_app(config=cfg)
    store = app.state.store
    if add_user:
        password = os.environ.get("MASKLAB_APP_PASSWORD") or click.prompt(
            f"password for {add_user}", hide_input=True, confirmation_prompt=True)
        u = _auth.add_user(store, add_user, password, role)
        click.echo(f"added {u['role']} {u['name']!r}")
        return
    if export_project:
        ids = {str(p["id"]): p["id"] for p in store.projects()}
        ids.update({p["name"]: p["id"] for p in store.projects()})
        if export_project not in ids:
            raise InputError(f"no project {export_project!r} in {cfg.data_dir}")
        out = store.export(ids[export_project], export_format, export_out,
                           quiet=ctx.obj.get("quiet", False) or None)
        click.echo(f"wrote {out}")
        return
    if needs_auth and not any(u["role"] == "admin" for u in _auth.users(store)):
        raise InputError(f"{host} is not loopback, so the app needs accounts: add an admin "
                         "first (masklab app --add-user NAME --role admin)")
    if sample:
        from masklab.app.sample import make_sample

        p = make_sample(store)
        if p:
            click.echo(f"sample project {p['name']!r}: {p['images']} images")
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    click.echo(f"masklab app on http://{shown}:{port}/  (data: {cfg.data_dir}; "
               f"{'accounts required' if needs_auth else 'local, no accounts'}; Ctrl+C stops)",
               err=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
