"""A Python client over the app's REST API (the same routes the browser uses).

    from masklab.app.client import Client
    c = Client("http://127.0.0.1:8000")                  # Client(url, user=..., password=...)
    p = c.create_project("cars", ["car", "person"])
    c.import_folder(p["id"], "images/")
    img = c.images(p["id"])[0]
    masks = c.segment(img["id"], points=[[120, 80]], labels=[1])   # -> Masks
    c.add_annotation(img["id"], masks[0], class_id=1, source="sam")
    c.export(p["id"], "coco", "cars.json")

Errors are ``AppError`` with the server's one-line message and HTTP status; a 409 (the image
changed since it was read) is ``StaleVersionError``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab.errors import MasklabError
from masklab.types import Masks


class AppError(MasklabError):
    def __init__(self, status: int, detail: str):
        self.status = status
        super().__init__(f"HTTP {status}: {detail}")


class StaleVersionError(AppError):
    pass


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", *, user: str | None = None,
                 password: str | None = None, timeout: float = 60.0):
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        if user is not None:
            r = self._call("POST", "/api/login", json={"name": user, "password": password},
                           csrf=False)
            self.http.headers["X-CSRF-Token"] = r["csrf"]
        else:
            s = self._call("GET", "/api/session")
            if s.get("csrf"):
                self.http.headers["X-CSRF-Token"] = s["csrf"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method: str, url: str, *, csrf: bool = True, raw: bool = False, **kw):
        r = self.http.request(method, url, **kw)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            cls = StaleVersionError if r.status_code == 409 else AppError
            raise cls(r.status_code, str(detail))
        return r if raw else r.json()

    # --- projects and images -------------------------------------------------------------
    def info(self) -> dict:
        return self._call("GET", "/api/info")

    def projects(self) -> list[dict]:
        return self._call("GET", "/api/projects")

    def create_project(self, name: str, classes) -> dict:
        return self._call("POST", "/api/projects", json={"name": name,
                                                         "classes": list(classes)})

    def import_folder(self, project_id: int, folder: str | os.PathLike, *,
                      recursive: bool = True) -> dict:
        return self._call("POST", f"/api/projects/{project_id}/import",
                          json={"folder": str(folder), "recursive": recursive})

    def upload(self, project_id: int, paths) -> dict:
        files = [("files", (Path(p).name, Path(p).read_bytes())) for p in paths]
        return self._call("POST", f"/api/projects/{project_id}/upload", files=files)

    def import_coco(self, project_id: int, coco: str | os.PathLike,
                    images_dir: str | os.PathLike | None = None) -> dict:
        return self._call("POST", f"/api/projects/{project_id}/import-coco",
                          json={"coco": str(coco),
                                "images_dir": None if images_dir is None else str(images_dir)})

    def images(self, project_id: int, **filters) -> list[dict]:
        """Every image of the project (video frames too) matching ``filters`` (``status``,
        ``assignee``, ``annotated``, ``proposals``, ``q``, ``sort``), page by page."""
        out: list[dict] = []
        params = {"frames": "all", "limit": 500, **filters}
        while True:
            page = self._call("GET", f"/api/projects/{project_id}/images",
                              params={**params, "offset": len(out)})
            out += page["items"]
            if len(out) >= page["total"] or not page["items"]:
                return out

    def image_page(self, project_id: int, *, offset: int = 0, limit: int = 100,
                   **filters) -> dict:
        """One page of the list as the project page shows it: ``{items, total, frames}``."""
        return self._call("GET", f"/api/projects/{project_id}/images",
                          params={"offset": offset, "limit": limit, **filters})

    def set_status(self, image_id: int, status: str, comment: str = "") -> dict:
        return self._call("PUT", f"/api/images/{image_id}/status",
                          json={"status": status, "comment": comment})

    # --- annotations -----------------------------------------------------------------------
    def annotations(self, image_id: int) -> Masks:
        """The image's objects as ``Masks`` (labels = class ids, track ids = annotation ids)."""
        data = self._call("GET", f"/api/images/{image_id}/annotations")
        img, anns = data["image"], data["annotations"]
        size = (img["height"], img["width"])
        if not anns:
            return Masks(np.zeros((0, *size), bool))
        m = Masks.from_rle([a["mask"] for a in anns], size=size)
        m.labels = np.array([a["class_id"] for a in anns])
        m.track_ids = np.array([a["id"] for a in anns])
        m.scores = np.array([1.0 if a["score"] is None else a["score"] for a in anns])
        return m

    def add_annotation(self, image_id: int, mask, *, class_id: int, source: str = "hand",
                       score: float | None = None, version: int | None = None) -> dict:
        """``mask``: an (H, W) bool array, a one-mask ``Masks`` or a COCO RLE dict."""
        return self._call("POST", f"/api/images/{image_id}/annotations", json={
            "class_id": class_id, "mask": _rle(mask), "source": source, "score": score,
            "version": version})

    def update_annotation(self, annotation_id: int, *, version: int | None = None,
                          mask=None, **fields) -> dict:
        body = {k: v for k, v in fields.items() if v is not None}
        if mask is not None:
            body["mask"] = _rle(mask)
        body["version"] = version
        return self._call("PATCH", f"/api/annotations/{annotation_id}", json=body)

    def delete_annotation(self, annotation_id: int, *, version: int | None = None) -> dict:
        q = "" if version is None else f"?version={version}"
        return self._call("DELETE", f"/api/annotations/{annotation_id}{q}")

    def undo(self, image_id: int) -> dict:
        return self._call("POST", f"/api/images/{image_id}/undo", json={})

    def redo(self, image_id: int) -> dict:
        return self._call("POST", f"/api/images/{image_id}/redo", json={})

    # --- prompts -----------------------------------------------------------------------------
    def segment(self, image_id: int, *, points=None, labels=None, box=None, mask=None,
                multimask: bool = False) -> Masks:
        body = {"points": [] if points is None else np.asarray(points, float).tolist(),
                "labels": [] if labels is None else [int(v) for v in labels],
                "box": None if box is None else [float(v) for v in box],
                "multimask": multimask}
        if mask is not None:
            body["mask"] = _rle(mask)
        out = self._call("POST", f"/api/images/{image_id}/segment", json=body)["masks"]
        m = Masks.from_rle([o["mask"] for o in out])
        m.scores = np.array([o["score"] for o in out])
        return m

    # --- export ------------------------------------------------------------------------------
    def export(self, project_id: int, fmt: str = "coco", dest: str | os.PathLike | None = None
               ) -> Path:
        """Export on the server and download the file (COCO JSON, or a zip of a folder)."""
        from masklab.io.atomic import atomic_path

        r = self._call("POST", f"/api/projects/{project_id}/export", json={"format": fmt})
        dest = Path(dest or r["file"])
        data = self._call("GET", r["url"], raw=True).content
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
        return dest


def _rle(mask) -> dict:
    from masklab import rle

    if isinstance(mask, dict):
        return mask
    if isinstance(mask, Masks):
        if len(mask) != 1:
            raise ValueError(f"expected one mask, got {len(mask)}")
        return mask.to_rle()[0]
    return rle.encode(np.asarray(mask, bool))[0]
