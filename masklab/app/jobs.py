"""The app's job runner: background work outside the request threads.

``JobRunner`` threads claim jobs from the database (``Store.claim_job``: one worker per job,
also across app processes sharing a PostgreSQL database), keep a heartbeat while they work,
record progress (done / total; the API adds rate and ETA), stop at a cancel between items,
and record each bad item's one-line error without failing the job. A job whose process died
is claimed again once its heartbeat is stale (at once when it ran on this host: the next
start sees its process is gone) and goes on from its committed progress:

- ``import``: a folder's images (in chunks; names already in the project are skipped) and
  videos; ``import-coco``: a COCO file's images and annotations, image by image (or, with
  ``params.format``, labelme, CVAT, Label Studio, VOC, Cityscapes, YOLO, ... annotations);
- ``export``: the project in a format, written to the exports folder (a rerun after a crash
  starts the file again; nothing half-written is ever served);
- ``prelabel``: proposals for the job's images (``masklab.app.prelabel``); each image's
  proposals and its "done" mark commit together, so no image is labelled twice;
- ``track``: an object through its video;
- ``train``: a model on the project's labelled images (``masklab.app.training``), in a child
  process, resumed from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from masklab.app.store import JobStopped
from masklab.errors import MasklabError

_log = logging.getLogger(__name__)

BAD_ITEM = (MasklabError, OSError, ValueError)  # one item's fault: recorded, then skipped


class JobContext:
    """What a job's work sees: the store, the job, progress and the stop check."""

    def __init__(self, runner: JobRunner, job: dict):
        self.runner, self.job = runner, job
        self.store, self.seg, self.cfg = runner.store, runner.seg, runner.cfg
        self.id, self.worker = job["id"], runner.worker_id
        self.params = job["params"]
        self.stopped = threading.Event()  # set by the heartbeat on cancel / lost claim

    def progress(self, *, add: int = 0, done: int | None = None, total: int | None = None,
                 errors=(), message: str | None = None, s=None) -> None:
        self.store.job_progress(self.id, self.worker, add=add, done=done, total=total,
                                errors=errors, message=message, s=s)

    def check(self) -> None:
        """Raise ``JobStopped`` if the job was cancelled (checked between items)."""
        if self.stopped.is_set():
            raise JobStopped(f"job {self.id} stopped")


class JobRunner:
    """``threads`` workers over the jobs table; ``stale``: seconds without a heartbeat after
    which another worker may take a running job over."""

    def __init__(self, store, seg=None, cfg=None, *, threads: int = 1, stale: float = 30.0,
                 poll: float = 0.5):
        self.store, self.seg, self.cfg = store, seg, cfg
        self.threads, self.stale, self.poll = max(0, int(threads)), float(stale), float(poll)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.current: dict[int, JobContext] = {}

    def start(self) -> None:
        if self._threads or self.threads == 0:
            return
        n = self.store.requeue_jobs(socket.gethostname())  # a stopped server's, here
        if n:
            _log.info("resuming %d job(s) left running by a stopped server", n)
        for k in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"masklab-job-{k}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for ctx in list(self.current.values()):
            ctx.stopped.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                jid = self.store.claim_job(self.worker_id, self.stale)
            except Exception as e:  # the database is away for a moment: try again
                _log.warning("claiming a job failed: %s", e)
                jid = None
            if jid is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            self.run(jid)

    def run(self, jid: int) -> None:
        """Do job ``jid`` (claimed by this runner) to its end, cancel or failure."""
        ctx = JobContext(self, self.store.job(jid))
        self.current[jid] = ctx
        beat = threading.Thread(target=self._heartbeat, args=(ctx,), daemon=True)
        beat.start()
        state, result, message = "done", None, ""
        try:
            result = KINDS[ctx.job["kind"]](ctx)
        except JobStopped:
            state, message = "cancelled", "cancelled"
        except Exception as e:
            _log.exception("job %d (%s) failed", jid, ctx.job["kind"])
            state, message = "failed", str(e).splitlines()[0] if str(e) else type(e).__name__
        finally:
            ctx.stopped.set()
            self.current.pop(jid, None)
        if self._stop.is_set() and state == "cancelled":
            return  # the server is stopping: the job stays running and resumes next start
        self.store.finish_job(jid, self.worker_id, state, result=result, message=message)

    def _heartbeat(self, ctx: JobContext) -> None:
        every = max(0.2, self.stale / 4)
        while not ctx.stopped.wait(every):
            try:
                if not self.store.heartbeat(ctx.id, self.worker_id):
                    ctx.stopped.set()
            except Exception as e:
                _log.warning("heartbeat of job %d failed: %s", ctx.id, e)


# --- the kinds of work ------------------------------------------------------------------------
IMPORT_CHUNK = 256
SETTLE_AFTER = 1000  # images added or changed by a job, after which the tables are analyzed


def run_import(ctx: JobContext) -> dict:
    p, store = ctx.params, ctx.store
    pid = ctx.job["project_id"]
    root, files, videos = store.import_listing(p["folder"], recursive=p.get("recursive", True))
    ctx.progress(done=0, total=len(files) + len(videos),
                 message=f"{len(files)} images, {len(videos)} videos")
    added = 0
    for k in range(0, len(files), IMPORT_CHUNK):
        ctx.check()
        errors: list[str] = []
        added += len(store.add_images(pid, files[k:k + IMPORT_CHUNK], base=root,
                                      errors=errors))
        ctx.progress(add=len(files[k:k + IMPORT_CHUNK]), errors=errors)
    for v in videos:
        ctx.check()
        errors = []
        try:
            added += len(store.import_video(pid, v, name=v.relative_to(root).with_suffix("")
                                            .as_posix(), quiet=True))
        except BAD_ITEM as e:
            errors.append(f"{v.name}: {str(e).splitlines()[0]}")
        ctx.progress(add=1, errors=errors)
    if added >= SETTLE_AFTER:
        store.settle()
    return {"added": added}


def run_import_coco(ctx: JobContext) -> dict:
    p = ctx.params
    out = ctx.store.import_coco(ctx.job["project_id"], p["coco"],
                                images_dir=p.get("images_dir"), user=ctx.job["created_by"],
                                job=ctx, fmt=p.get("format", "coco"))
    if ctx.store.job(ctx.id)["total"] >= SETTLE_AFTER:
        ctx.store.settle()
        ctx.store.settle("annotations")
    return out


def run_export(ctx: JobContext) -> dict:
    from masklab.app.routes.projects import zip_folder

    p, store = ctx.params, ctx.store
    pid = ctx.job["project_id"]
    total = store.project(pid)["images"]
    ctx.progress(done=0, total=total)
    done = [0]
    last = [time.monotonic()]

    def on_item() -> None:  # progress every half second, and the cancel check
        done[0] += 1
        if time.monotonic() - last[0] > 0.5:
            ctx.check()
            ctx.progress(done=done[0])
            last[0] = time.monotonic()

    path = store.export(pid, p.get("format", "coco"), proposals=bool(p.get("proposals")),
                        on_item=on_item)
    if path.is_dir():
        import shutil

        zipped = zip_folder(path)
        shutil.rmtree(path, ignore_errors=True)
        path = zipped
    ctx.progress(done=total)
    return {"file": path.name, "url": f"/api/exports/{path.name}",
            "bytes": Path(path).stat().st_size}


def run_track(ctx: JobContext) -> dict:
    from masklab.video.session import make_video_backend

    p = ctx.params
    ctx.progress(done=0, total=1)
    backend = make_video_backend(ctx.cfg.video_backend if ctx.cfg else "flow")
    out = ctx.store.track(int(p["annotation_id"]), backend,
                          direction=p.get("direction", "forward"),
                          frames=int(p.get("frames", 50)), user=ctx.job["created_by"])
    ctx.progress(done=1)
    return out


def run_prelabel(ctx: JobContext) -> dict:
    from masklab.app.prelabel import run_prelabel_job

    out = run_prelabel_job(ctx)
    if ctx.store.job(ctx.id)["total"] >= SETTLE_AFTER:
        ctx.store.settle()
    return out


def run_train(ctx: JobContext) -> dict:
    from masklab.app.training import run_train_job

    return run_train_job(ctx)


KINDS = {"import": run_import, "import-coco": run_import_coco, "export": run_export,
         "track": run_track, "prelabel": run_prelabel, "train": run_train}
