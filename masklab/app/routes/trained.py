"""Models trained on a project (the ``train`` job): versions, their curves, download, ONNX;
the project's queue order."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import FileResponse

from masklab.app.routes import Ctx
from masklab.app.schemas import Id
from masklab.app.store import NotFound


def register(app: FastAPI, ctx: Ctx) -> None:
    store, admin = ctx.store, ctx.admin
    r = APIRouter()

    @r.get("/api/projects/{project_id}/models")
    def project_models(project_id: Id):
        """The project's trained models, newest version first (metrics, classes, how many
        images each was trained and validated on)."""
        return store.models(project_id)

    @r.get("/api/models/{model_id}")
    def trained_model(model_id: Id, ids: bool = False):
        """One version; ``ids=true``: with the ids of the images it saw."""
        return store.model(model_id, ids=ids)

    def _zip(model_id: int) -> Path:
        from masklab.app.routes.projects import zip_folder

        m = store.model(model_id)
        folder = Path(m["path"])
        if not folder.is_dir():
            raise NotFound(f"the weights of model {model_id} are gone ({folder})")
        dest = folder.with_name(f"{folder.name}-v{m['version']}.zip")
        if not dest.is_file():
            tmp = zip_folder(folder)  # folder.zip, written atomically
            tmp.replace(dest)
        return dest

    @r.get("/api/models/{model_id}/download")
    def download_model(model_id: Id):
        """The checkpoint folder as a zip (``model.safetensors`` + ``config.json``): unzip
        and use with ``masklab segment semantic --model FOLDER``."""
        m = store.model(model_id)
        return FileResponse(_zip(model_id), media_type="application/zip",
                            filename=f"project{m['project_id']}-model-v{m['version']}.zip")

    @r.get("/api/models/{model_id}/onnx")
    def model_onnx(model_id: Id):
        """The model as ONNX (exported once, kept beside its weights): input ``image``
        (1, 3, H, W) float pixel values 0..255, output ``logits`` (1, K, H, W)."""
        from masklab.export import export_semantic_onnx
        from masklab.models.semantic import load_semantic_model

        m = store.model(model_id)
        folder = Path(m["path"])
        dest = folder / "model.onnx"
        if not dest.is_file():
            export_semantic_onnx(load_semantic_model(str(folder)), dest)
        return FileResponse(dest, media_type="application/octet-stream",
                            filename=f"project{m['project_id']}-model-v{m['version']}.onnx")

    @r.get("/api/jobs/{job_id}/events")
    def job_events(job_id: Id, after: int = Query(0, ge=0)):
        """A training job's events from the ``after``-th on: ``{"event": "step", "step",
        "total_steps", "epoch", "loss"}`` and ``{"event": "epoch", "loss", "val_mIoU",
        ...}`` (the live plot)."""
        from masklab.app.training import read_events, run_dir

        j = store.job(job_id)
        if j["kind"] != "train":
            return {"events": [], "next": after}
        ev = read_events(run_dir(store.data_dir, job_id), after)
        return {"events": ev, "next": after + len(ev)}

    @r.put("/api/projects/{project_id}/settings")
    def project_settings(project_id: Id, body: dict, _p=Depends(admin)):
        """``{"order": "name" | "uncertain"}``: the queue the project's list and the
        editor's next / previous follow by default (``uncertain``: least confident first,
        as the latest pre-labelling model scored the images)."""
        return store.set_settings(project_id, body)

    app.include_router(r)
