"""Batch verbs on a Ray cluster (``masklab[ray]``): the model lives in an actor pool (Ray
Data ``map_batches`` with a callable class: loaded once per worker, one per GPU with
``gpus_per_worker``), outputs are gathered and merged in input order, so the merged files are
the local run's; evaluation merges the metric accumulators of image shards.

``connect`` checks everything a run needs before any work starts: Ray installed, a positive
worker count, a reachable address.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path

from masklab.errors import InputError, MasklabError


def require_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'masklab[ray]'") from None
    return ray


def connect(address: str | None = None, workers: int | None = None):
    """Ray, initialised: a new local cluster (``address=None`` or ``"none"``), the running
    one (``"auto"``) or ``ray://HOST:PORT`` / ``HOST:PORT``."""
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if address is not None and address.strip().lower() in ("", "none"):
        address = None  # what --address none means: a new local cluster
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address and address != "auto":
        hostport = address.split("://", 1)[-1]
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
                pass
        except (OSError, ValueError) as e:
            raise InputError(f"cannot reach the Ray cluster at {address} ({e})") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=False)
    except ConnectionError as e:
        raise InputError(f"cannot connect to Ray at {address or 'a new local cluster'}: "
                         f"{str(e).splitlines()[0]}") from None
    return ray


def cpus_per_worker(workers: int, gpus_per_worker: float = 0.0) -> int:
    """CPU cores for each model replica: the cluster's cores shared out (a replica on 1 of 2
    workers gets every core, as the in-process run does); 1 beside a GPU."""
    if gpus_per_worker:
        return 1
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1) // max(1, workers)))


def _run_pool(worker_cls, items: list[dict], kwargs: dict, *, workers: int,
              gpus_per_worker: float, batch_size: int, on_row=None) -> list[dict]:
    """``items`` through an actor pool of ``worker_cls`` (constructed once per worker with
    ``kwargs`` and its thread count); the output rows in input order, each exactly once.
    Rows stream back as workers finish them; ``on_row`` sees each on arrival (the manifest
    records it, so a run stopped half-way keeps what is done)."""
    import ray.data

    if not items:
        return []
    # one block per model batch: results stream back (and reach the manifest) batch by
    # batch, and a retried task redoes one batch; no more replicas (model loads) than blocks
    blocks = min(-(-len(items) // batch_size), 20000)
    ds = ray.data.from_items(items, override_num_blocks=max(1, blocks))
    replicas = max(1, min(workers, blocks))
    cpus = cpus_per_worker(replicas, gpus_per_worker)
    mapped = ds.map_batches(worker_cls, fn_constructor_kwargs={**kwargs, "threads": cpus},
                            batch_size=batch_size, concurrency=replicas, num_cpus=cpus,
                            num_gpus=gpus_per_worker or None, batch_format="numpy")
    rows = []
    for row in mapped.iter_rows():
        if on_row is not None:
            on_row(row)
        rows.append(row)
    rows.sort(key=lambda r: int(r["index"]))
    if sorted(int(r["index"]) for r in rows) != sorted(int(it["index"]) for it in items):
        raise RuntimeError("the Ray run lost or repeated images")  # never: Ray retries
    return rows


def _plan(files: list, out_dir, manifest, image_ids: list[int] | None = None, *,
          address: str | None = None, workers: int = 1):
    """Connect, make ``out_dir``, and list the inputs still to do as pool items (``index``,
    absolute ``path``, ``image_id``); with their manifest keys."""
    from masklab.manifest import key

    connect(address, workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = image_ids or list(range(1, len(files) + 1))
    keys = [key(f) for f in files]
    todo = manifest.pending(keys) if manifest is not None else list(range(len(files)))
    return out, keys, [{"index": i, "path": keys[i], "image_id": ids[i]} for i in todo]


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(n)))


# --- evaluation: shards of images, accumulators merged ----------------------------------------
def _get(refs: list) -> list:
    """``ray.get``, with a task's input error surfacing as itself (one line), not wrapped."""
    import ray

    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, (InputError, ValueError, FileNotFoundError)):
            raise cause from None
        raise


def shard_runner(workers: int, address: str | None = None, gpus_per_worker: float = 0.0):
    """A ``runner`` for the metric functions (``masklab.metrics._shards``): the units in
    ``workers`` contiguous shards, each evaluated by a Ray task where the files are (with
    ``gpus_per_worker`` GPUs: the click benchmarks' models); only the accumulators come
    back, merged in shard order."""
    ray = connect(address, workers)

    def run(fn, units: list, *args) -> list:
        n = max(1, min(workers, len(units)))
        bounds = [round(k * len(units) / n) for k in range(n + 1)]
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_worker or None, max_retries=3)(fn)
        parts = _get([task.remote(units[bounds[k]:bounds[k + 1]], *args) for k in range(n)])
        return copy.deepcopy(parts)  # Ray hands back read-only arrays; merging adds in place

    return run


# --- object prediction: an actor pool ---------------------------------------------------------
class _ObjectWorker:
    """Loaded once per Ray worker; ``__call__`` predicts a batch of image files."""

    def __init__(self, spec: dict, options: dict, out: str, overlay: bool, threads: int = 1):
        from masklab.models.objects import load_object_model
        from masklab.models.universal import is_universal, load_universal_model

        _threads(threads)
        device = _worker_device(spec.get("device", "cpu"))
        if is_universal(spec["model"]):
            self.model = load_universal_model(spec["model"], weights=spec.get("weights") or
                                              "default", device=device)
        else:
            self.model = load_object_model(spec["model"], weights=spec.get("weights") or
                                           "default", num_classes=spec.get("num_classes"),
                                           class_names=spec.get("class_names"), device=device)
        self.options, self.out, self.overlay = options, Path(out), overlay
        marker = os.environ.get("MASKLAB_RAY_PID_DIR")  # tests: which processes work
        if marker:
            Path(marker, f"{os.getpid()}").touch()

    def __call__(self, batch: dict) -> dict:
        from masklab import viz
        from masklab.io.images import read_image
        from masklab.tasks.instances import render

        paths = [str(p) for p in batch["path"]]
        imgs = [read_image(p) for p in paths]
        dets = self.model.predict(imgs, **self.options)
        results, images = [], []
        for p, img, det, image_id in zip(paths, imgs, dets, batch["image_id"], strict=True):
            image_id = int(image_id)
            images.append(json.dumps({"id": image_id, "file_name": Path(p).name,
                                      "height": img.shape[0], "width": img.shape[1]}))
            results.append(json.dumps(det.to_coco_results(image_id)))
            if self.overlay:  # one file per image: a retried batch rewrites the same file
                viz.save(self.out / f"{Path(p).stem}_overlay.png", render(img, det))
        meta = json.dumps([self.model.class_names, self.model.num_classes])
        return {"index": batch["index"], "image": images, "results": results,
                "meta": [meta] * len(paths)}


def segment_objects(spec: dict, files: list[Path], out_dir, *, workers: int,
                    address: str | None = None, gpus_per_worker: float = 0.0,
                    batch_size: int = 2, score_threshold: float = 0.5, classes=None,
                    max_detections: int = 100, overlay: bool = True, coco_gt=None,
                    manifest=None) -> list[Path]:
    """``segment_object_files`` on a Ray cluster: the same ``results.json`` and
    ``images.json`` (merged in input order) and overlays; with a manifest, images already
    done are skipped and each finished one is recorded as it arrives."""
    from masklab.manifest import META
    from masklab.tasks.instances import _image_ids, write_object_outputs

    out, keys, items = _plan(files, out_dir, manifest, _image_ids(files, coco_gt),
                             address=address, workers=workers)
    options = {"score_threshold": score_threshold, "classes": classes,
               "max_detections": max_detections}

    def record(row):
        if manifest is not None:
            if META not in manifest.done:
                manifest.record(META, {"classes": json.loads(row["meta"])})
            manifest.record(keys[int(row["index"])], {
                "image": json.loads(row["image"]), "results": json.loads(row["results"])})

    rows = _run_pool(_ObjectWorker, items, {"spec": spec, "options": options,
                                            "out": str(out), "overlay": overlay},
                     workers=workers, gpus_per_worker=gpus_per_worker, batch_size=batch_size,
                     on_row=record)
    if manifest is not None:
        done = manifest.rows(keys)
        images = [r["image"] for r in done]
        results = [x for r in done for x in r["results"]]
        meta = manifest.done[META]["classes"]
    else:
        images = [json.loads(row["image"]) for row in rows]
        results = [x for row in rows for x in json.loads(row["results"])]
        meta = json.loads(rows[0]["meta"]) if rows else None
    class_names, num_classes = meta
    written = [out / f"{Path(f).stem}_overlay.png" for f in files] if overlay else []
    return written + write_object_outputs(out, results, images, class_names, num_classes)


# --- semantic segmentation: an actor pool ----------------------------------------------------
class _SemanticWorker:
    def __init__(self, spec: dict, options: dict, out: str, overlay: bool, threads: int = 1):
        from masklab.models.semantic import load_semantic_model

        _threads(threads)
        self.model = load_semantic_model(spec["model"], weights=spec.get("weights") or
                                         "default", num_classes=spec.get("num_classes"),
                                         device=spec.get("device", "cpu"))
        self.options, self.out, self.overlay = options, Path(out), overlay

    def __call__(self, batch: dict) -> dict:
        from masklab.tasks.semantic import segment_one_file

        rows = []
        for p in batch["path"]:
            _, area_rows = segment_one_file(self.model, Path(str(p)), self.out,
                                            overlay=self.overlay, **self.options)
            rows.append(json.dumps(area_rows))
        return {"index": batch["index"], "areas": rows}


def segment_semantic(spec: dict, files: list[Path], out_dir, *, workers: int,
                     address: str | None = None, gpus_per_worker: float = 0.0,
                     overlay: bool = True, areas_csv: bool = False, manifest=None,
                     **options) -> list[Path]:
    """``segment_files`` on a Ray cluster: the same label PNGs, overlays and ``areas.csv``
    (rows merged in input order); with a manifest, images already done are skipped and each
    finished one is recorded as it arrives."""
    from masklab.tasks.semantic import write_areas_csv

    out, keys, items = _plan(files, out_dir, manifest, address=address, workers=workers)

    def record(row):
        if manifest is not None:
            manifest.record(keys[int(row["index"])], {"areas": json.loads(row["areas"])})

    rows = _run_pool(_SemanticWorker, items, {"spec": spec, "options": options,
                                              "out": str(out), "overlay": overlay},
                     workers=workers, gpus_per_worker=gpus_per_worker, batch_size=1,
                     on_row=record)
    written = [out / f"{Path(f).stem}.png" for f in files]
    if overlay:
        written += [out / f"{Path(f).stem}_overlay.png" for f in files]
    if areas_csv:
        if manifest is not None:
            area_rows = [a for r in manifest.rows(keys) for a in r["areas"]]
        else:
            area_rows = [r for row in rows for r in json.loads(row["areas"])]
        written.append(write_areas_csv(out / "areas.csv", area_rows))
    return written


# --- panoptic segmentation: an actor pool ----------------------------------------------------
class _PanopticWorker:
    def __init__(self, spec: dict, options: dict, out: str, threads: int = 1):
        from masklab.tasks.panoptic import load_panoptic_predictor

        _threads(threads)
        spec = dict(spec)
        if spec.get("device") == "cuda":
            import torch

            spec["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.predictor = load_panoptic_predictor(**spec)
        self.options, self.out = options, Path(out)

    def __call__(self, batch: dict) -> dict:
        from masklab.tasks.panoptic import panoptic_categories, panoptic_one_file

        rows = [json.dumps(panoptic_one_file(self.predictor, Path(str(p)), int(i), self.out,
                                             **self.options))
                for p, i in zip(batch["path"], batch["image_id"], strict=True)]
        cats = json.dumps(panoptic_categories(self.predictor, self.options["categories"]))
        return {"index": batch["index"], "row": rows, "categories": [cats] * len(rows)}


def segment_panoptic(spec: dict, files: list[Path], out_dir, *, workers: int,
                     address: str | None = None, gpus_per_worker: float = 0.0,
                     categories=None, categories_source=None, classes=None, coco_gt=None,
                     overlay: bool = True, manifest=None) -> list[Path]:
    """``segment_panoptic_files`` on a Ray cluster: each worker writes its images' PNGs and
    overlays; ``panoptic.json`` is merged in input order (the in-process file)."""
    from masklab.manifest import META
    from masklab.tasks.instances import _image_ids
    from masklab.tasks.panoptic import write_panoptic_json

    out, keys, items = _plan(files, out_dir, manifest, _image_ids(files, coco_gt),
                             address=address, workers=workers)
    options = {"categories": categories, "categories_source": categories_source,
               "classes": classes, "overlay": overlay}

    def record(row):
        if manifest is not None:
            if META not in manifest.done:
                manifest.record(META, {"categories": json.loads(row["categories"])})
            manifest.record(keys[int(row["index"])], json.loads(row["row"]))

    rows = _run_pool(_PanopticWorker, items, {"spec": spec, "options": options,
                                              "out": str(out)},
                     workers=workers, gpus_per_worker=gpus_per_worker, batch_size=1,
                     on_row=record)
    if manifest is not None:
        done, categories = manifest.rows(keys), manifest.done[META]["categories"]
    else:
        done = [json.loads(r["row"]) for r in rows]
        categories = json.loads(rows[0]["categories"]) if rows else []
    written = [out / "panoptic" / f"{Path(f).stem}.png" for f in files]
    if overlay:
        written += [out / f"{Path(f).stem}_overlay.png" for f in files]
    written.append(write_panoptic_json(out, done, categories))
    return written


# --- any per-file verb: load once per worker, one function per file ---------------------------
def _import(dotted: str):
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


class _FileWorker:
    """``state = load(**spec)`` once per worker; ``one(state, path, image_id, out,
    **options)`` per file, its JSON-able row returned (and its own files written there)."""

    def __init__(self, load: str, spec: dict, one: str, options: dict, out: str,
                 threads: int = 1):
        _threads(threads)
        spec = dict(spec)
        if spec.get("device") == "cuda":
            import torch

            spec["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.state = _import(load)(**spec)
        self.one, self.options, self.out = _import(one), options, Path(out)

    def __call__(self, batch: dict) -> dict:
        rows = [json.dumps(self.one(self.state, Path(str(p)), int(i), self.out,
                                    **self.options))
                for p, i in zip(batch["path"], batch["image_id"], strict=True)]
        return {"index": batch["index"], "row": rows}


def run_files(load: str, spec: dict, one: str, options: dict, files: list, out_dir, *,
              workers: int, address: str | None = None, gpus_per_worker: float = 0.0,
              image_ids: list[int] | None = None, manifest=None,
              batch_size: int = 1) -> list[dict]:
    """A per-file verb on an actor pool of ``_FileWorker``: the rows of every file in input
    order (with a manifest, the files it lists as done are skipped and each finished row is
    recorded as it arrives)."""
    out, keys, items = _plan(files, out_dir, manifest, image_ids, address=address,
                             workers=workers)

    def record(row):
        if manifest is not None:
            manifest.record(keys[int(row["index"])], json.loads(row["row"]))

    rows = _run_pool(_FileWorker, items, {"load": load, "spec": spec, "one": one,
                                          "options": options, "out": str(out)},
                     workers=workers, gpus_per_worker=gpus_per_worker,
                     batch_size=batch_size, on_row=record)
    if manifest is not None:
        return manifest.rows(keys)
    return [json.loads(r["row"]) for r in rows]


def segment_everything_files(files: list, out_dir, backend: str = "slic", *, workers: int,
                             address: str | None = None, gpus_per_worker: float = 0.0,
                             overlay: str | None = "{stem}_overlay.png", manifest=None,
                             **options) -> list[Path]:
    """``masklab.interactive.everything.segment_everything_files`` on a Ray cluster: the same
    ``masks.json`` (merged in input order) and overlays."""
    from masklab.interactive.everything import write_everything_json

    rows = run_files("masklab.interactive.everything.load_everything_backend",
                     {"backend": backend, "device": "cuda" if gpus_per_worker else "cpu"},
                     "masklab.interactive.everything.everything_one_file",
                     {"overlay": overlay, **options}, files, out_dir, workers=workers,
                     address=address, gpus_per_worker=gpus_per_worker, manifest=manifest)
    out = Path(out_dir)
    written = [out / overlay.format(stem=Path(f).stem) for f in files] if overlay else []
    return [*written, write_everything_json(out, rows)]


def track_davis(root, out_dir, *, workers: int, address: str | None = None,
                gpus_per_worker: float = 0.0, backend: str = "flow", device: str = "cpu",
                sequences=None, subset: str | None = None, resolution: str = "480p",
                manifest=None, **options) -> list[dict]:
    """``masklab.video.batch.track_davis`` on a Ray cluster: the sequences shared out over an
    actor pool (a tracker loaded once per worker); each worker writes its sequences' frames."""
    from masklab.video.batch import davis_jobs

    jobs = davis_jobs(root, sequences=sequences, subset=subset, resolution=resolution)
    return run_files("masklab.video.batch.load_video_backend",
                     {"backend": backend, "device": "cuda" if gpus_per_worker else device},
                     "masklab.video.batch.track_sequence", options, [f for f, _ in jobs],
                     out_dir, workers=workers, address=address,
                     gpus_per_worker=gpus_per_worker, manifest=manifest)


# --- auto-labelling: an actor pool of detector + segmenter -----------------------------------
class _LabelWorker:
    def __init__(self, settings: dict, boxes_from, device: str, out: str, overlays: bool,
                 threads: int = 1):
        from masklab.grounding.label import Labeller, LabelSettings

        _threads(threads)
        self.labeller = Labeller(LabelSettings(**settings), device=_worker_device(device),
                                 boxes_from=boxes_from)
        self.out, self.overlays = Path(out), overlays

    def __call__(self, batch: dict) -> dict:
        records = [json.dumps(self.labeller(Path(str(p)), str(n), int(i), self.out,
                                            self.overlays, prompts=json.loads(str(t))))
                   for p, n, i, t in zip(batch["path"], batch["name"], batch["image_id"],
                                         batch["prompts"], strict=True)]
        return {"index": batch["index"], "record": records}


class _ProposalWorker:
    """The annotation app's pre-labelling on a Ray worker: ``masklab.app.prelabel.Proposer``
    (the same code as in the app) over image files; each row: the image's proposals as RLE."""

    def __init__(self, params: dict, project: dict, backend: str, device: str,
                 threads: int = 1):
        from masklab.app.prelabel import Proposer
        from masklab.app.segment import Segmenter

        _threads(threads)
        seg = Segmenter(backend, device=_worker_device(device)) \
            if params["source"] == "everything" else None
        self.proposer = Proposer(params, project, seg, None)

    def __call__(self, batch: dict) -> dict:
        from masklab import rle
        from masklab.io.images import read_image

        records = []
        for path, name, sha in zip(batch["path"], batch["file_name"], batch["sha256"],
                                   strict=True):
            try:
                got = self.proposer(read_image(str(path)), {
                    "file_name": str(name), "sha256": str(sha), "path": str(path)})
                feats = self.proposer.features  # the queue's layout of the image (model)
                records.append(json.dumps({"proposals": [
                    {"class_id": p["class_id"], "mask": rle.encode(p["mask"])[0],
                     "score": p["score"]} for p in got],
                    "skipped_classes": sorted(self.proposer.skipped_classes),
                    "uncertainty": self.proposer.uncertainty,
                    "features": None if feats is None else [float(v) for v in feats]}))
            except (MasklabError, OSError, ValueError) as e:
                records.append(json.dumps({"error": str(e).splitlines()[0]}))
        return {"index": batch["index"], "record": records}


def propose(items: list[dict], params: dict, project: dict, *, backend: str, device: str,
            workers: int, address: str | None = None, gpus_per_worker: float = 0.0,
            on_record=None) -> None:
    """Pre-labelling proposals for ``items`` (``index``, ``path``, ``file_name``, ``sha256``)
    on a Ray cluster; ``on_record(index, record)`` sees each image's result as it arrives
    (the app commits it with the job's progress)."""
    connect(address, workers)
    _run_pool(_ProposalWorker, items, {"params": params, "project": project,
                                       "backend": backend, "device": device},
              workers=workers, gpus_per_worker=gpus_per_worker, batch_size=1,
              on_row=(lambda r: on_record(int(r["index"]), json.loads(r["record"])))
              if on_record else None)


class _CaptionWorker:
    def __init__(self, captioner: str, device: str, threads: int = 1):
        from masklab.grounding.captions import load_captioner

        _threads(threads)
        self.captioner = captioner
        self.cap = load_captioner(captioner, _worker_device(device))

    def __call__(self, batch: dict) -> dict:
        from masklab.grounding.label import caption_record

        records = [json.dumps(caption_record(self.cap, self.captioner, Path(str(p)), str(n)))
                   for p, n in zip(batch["path"], batch["name"], strict=True)]
        return {"index": batch["index"], "record": records}


class LabelRunner:
    """The ``runner`` of ``masklab.grounding.label.label_images`` on a Ray cluster: captions
    and labels made by actor pools (one captioner, or one detector + segmenter, per worker).
    Connects when made, so every check comes before any work."""

    def __init__(self, workers: int, address: str | None = None, gpus_per_worker: float = 0.0):
        connect(address, workers)
        self.workers, self.gpus_per_worker = workers, gpus_per_worker

    def _device(self, device: str) -> str:
        return "cuda" if self.gpus_per_worker else device

    def caption(self, todo: list, captioner: str, *, device: str = "cpu",
                on_record=None) -> list[dict]:
        """``--classes auto``: the images ``todo`` (``(path, name)``) captioned;
        ``on_record`` sees each ``captions.jsonl`` record as it arrives; the records in
        input order."""
        items = [{"index": k, "path": str(Path(p).resolve()), "name": n}
                 for k, (p, n) in enumerate(todo)]
        return self._pool(_CaptionWorker, items, {
            "captioner": captioner, "device": self._device(device)}, on_record)

    def label(self, todo: list, out, settings, *, boxes_from=None, device: str = "cpu",
              overlays: bool = True, on_record=None, prompts_of=None) -> list[dict]:
        """The images ``todo`` (``(path, name, image id)``) of a ``masklab label`` run
        labelled; each worker writes its images' parts and overlays, ``on_record`` sees every
        progress record as it arrives; the records in input order. ``prompts_of``: each
        image's prompts (``--classes auto``)."""
        from dataclasses import asdict

        items = [{"index": k, "path": str(Path(p).resolve()), "name": n, "image_id": i,
                  "prompts": json.dumps(None if prompts_of is None else prompts_of[n])}
                 for k, (p, n, i) in enumerate(todo)]
        return self._pool(_LabelWorker, items, {
            "settings": asdict(settings), "boxes_from": str(boxes_from) if boxes_from else None,
            "device": self._device(device), "out": str(Path(out).resolve()),
            "overlays": overlays}, on_record)

    def _pool(self, worker_cls, items: list[dict], kwargs: dict, on_record) -> list[dict]:
        rows = _run_pool(worker_cls, items, kwargs, workers=self.workers,
                         gpus_per_worker=self.gpus_per_worker, batch_size=1,
                         on_row=(lambda r: on_record(json.loads(r["record"]))) if on_record
                         else None)
        return [json.loads(r["record"]) for r in rows]


def _worker_device(device: str) -> str:
    """A worker asked for ``cuda`` runs on the CPU when its node has no GPU."""
    if device == "cuda":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
