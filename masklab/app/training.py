"""Training a model on a project's annotations: the ``train`` job.

The job takes the project's labelled images (by status, default done and approved, and the
list filter it was started with), holds a fixed, seeded part of them out for validation
(``held_out``: an image's side depends only on the seed and its id, so it never moves to
training when more images are labelled), paints their annotations into label PNGs (z order,
classes 1..K in the project's order, 0 where nothing is drawn — or the ignore index with
``unlabelled="ignore"``) — or, for instance models, COCO files of the two parts — and runs
the toolkit's own trainer (``tasks.semantic.train_semantic``,
``tasks.instances_train.train_instances``: no second training loop) in a child process: its
threads are the job's (``threads``; the default leaves one core to the server), it never
holds the server's interpreter, a cancel stops it at once, and it resumes from its last
epoch's checkpoint when the job is claimed again after a restart. Each step and epoch (loss,
validation mIoU or mask AP) is appended to ``events.jsonl`` in the run folder (``GET
/api/jobs/{id}/events``: the app's live plot). The best checkpoint becomes the project's
next model version (``Store.add_model``: weights, classes, metrics, the image ids it saw),
usable from the CLI (``masklab segment semantic --model PATH``), in pre-labelling (``source:
model``, ``model_id``), and exported to ONNX.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from masklab.errors import InputError

TASKS = ("semantic", "instances")
DEFAULT_MODEL = {"semantic": "unet", "instances": "maskrcnn_resnet50_fpn_v2"}
DEFAULT_STATUSES = ("done", "approved")
MIN_TRAIN, MIN_VAL = 2, 1
IGNORE = 255


def default_threads() -> int:
    """One core left to the server (at least one thread)."""
    return max(1, (os.cpu_count() or 2) - 1)


def check_params(params: dict, project: dict) -> dict:
    """The job's parameters, checked before it is queued."""
    from masklab.models import get_info

    p = dict(params)
    task = p.get("task", "semantic")
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}")
    p["task"] = task
    model = str(p.get("model") or DEFAULT_MODEL[task])
    try:
        info = get_info(model)
    except Exception:
        raise InputError(f"no model {model!r} in the registry") from None
    if info.task != task:
        raise InputError(f"{model} is a {info.task} model, not a {task} one")
    p["model"] = model
    statuses = p.get("statuses") or list(DEFAULT_STATUSES)
    if isinstance(statuses, str):
        statuses = [s.strip() for s in statuses.split(",") if s.strip()]
    from masklab.app import db

    bad = [s for s in statuses if s not in db.STATUSES]
    if bad:
        raise InputError(f"status must be one of {', '.join(db.STATUSES)}, not {bad[0]!r}")
    p["statuses"] = list(statuses)

    def number(key, kind, default, lo, hi):
        v = p.get(key, default)
        if v is None or v == "":
            return None if default is None else kind(default)
        try:
            v = kind(v)
        except (TypeError, ValueError):
            raise InputError(f"{key} must be a number, not {p.get(key)!r}") from None
        if not lo <= v <= hi:
            raise InputError(f"{key} must be between {lo} and {hi}")
        return v

    p["epochs"] = number("epochs", int, 20, 1, 10_000)
    p["minutes"] = number("minutes", float, None, 0.05, 7 * 24 * 60)
    p["val_percent"] = number("val_percent", float, 20, 1, 50)
    p["seed"] = number("seed", int, 0, 0, 2**31 - 1)
    p["threads"] = number("threads", int, default_threads(), 1, 512)
    p["crop"] = number("crop", int, 256, 32, 4096)
    p["batch_size"] = number("batch_size", int, 4 if task == "semantic" else 2, 1, 256)
    p["lr"] = number("lr", float, 1e-3 if task == "semantic" else 1e-4, 1e-6, 1.0)
    p["pretrained"] = bool(p.get("pretrained", task == "instances"))  # COCO weights
    if p.get("from_version") not in (None, ""):  # go on from a version of this project
        p["from_version"] = int(p["from_version"])
    else:
        p.pop("from_version", None)
    mc = p.get("model_config") or {}
    if not isinstance(mc, dict) or not all(isinstance(v, (int, float, str, bool))
                                           for v in mc.values()):
        raise InputError("model_config must be an object of numbers, strings and flags "
                         '(e.g. {"depth": 3, "width": 16} for unet)')
    p["model_config"] = mc
    from masklab.sysinfo import PRECISIONS

    prec = p.get("precision") or "auto"
    if prec not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {prec!r}")
    p["precision"] = prec
    unl = p.get("unlabelled", "background")
    if unl not in ("background", "ignore"):
        raise InputError("unlabelled must be background or ignore")
    p["unlabelled"] = unl
    if not project["classes"]:
        raise InputError("the project has no classes to learn")
    return p


def check_base(params: dict, project: dict, store) -> None:
    """A ``from_version`` fits the run: this project's, same task, architecture, its
    configuration and the project's classes (else one line, before anything is queued)."""
    if not params.get("from_version"):
        return
    from masklab.io.coco import read_json

    m = store.model(params["from_version"])
    if m["project_id"] != project["id"]:
        raise InputError(f"model {m['id']} was trained on another project")
    if m["task"] != params["task"] or m["arch"] != params["model"]:
        raise InputError(f"version {m['version']} is a {m['task']} {m['arch']}; this run "
                         f"trains a {params['task']} {params['model']}")
    if params["task"] == "semantic":
        cfg = read_json(Path(m["path"]) / "config.json")
        if (cfg.get("model_config") or {}) != (params.get("model_config") or {}):
            raise InputError(f"version {m['version']} has model_config "
                             f"{cfg.get('model_config') or {}}, this run "
                             f"{params.get('model_config') or {}}")
    names = [c["name"] for c in project["classes"]]
    if m["classes"][1:] != names:
        raise InputError(f"version {m['version']} knows the classes {m['classes'][1:]}, the "
                         f"project now {names}")


def held_out(image_id: int, seed: int, val_percent: float) -> bool:
    """Whether an image is in the validation part: fixed by (seed, image id) alone."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{image_id}".encode()).digest()[:8], "big")
    return (h % 10_000) < val_percent * 100


def split(ids: list[int], seed: int, val_percent: float) -> tuple[list[int], list[int]]:
    """``(train, val)`` image ids (``held_out``); too few for either: ``InputError``."""
    val = [i for i in ids if held_out(i, seed, val_percent)]
    train = [i for i in ids if not held_out(i, seed, val_percent)]
    if len(train) < MIN_TRAIN or len(val) < MIN_VAL:
        raise InputError(f"{len(ids)} labelled image(s): {len(train)} to train on and "
                         f"{len(val)} held out for validation; a training needs at least "
                         f"{MIN_TRAIN} and {MIN_VAL} (label more images, or raise "
                         f"val_percent)")
    return train, val


def labelled_ids(store, project_id: int, statuses, flt) -> list[int]:
    """The images a training uses: under the list filter ``flt``, with one of ``statuses``."""
    from dataclasses import replace

    ids: list[int] = []
    for status in statuses:
        ids += store.image_ids(project_id, replace(flt, status=status, frames="all"))
    return sorted(set(ids))


def prepare(store, project: dict, train: list[int], val: list[int], folder: Path,
            unlabelled: str = "background") -> dict:
    """Write the dataset (``folder/{train,val}/{images,labels}``: links to the images, label
    PNGs) and return ``{"classes", "pixels", "warnings"}``."""
    from masklab.io.images import write_label_png

    classes = [c for c in project["classes"]]
    lut = {c["id"]: k + 1 for k, c in enumerate(classes)}
    pixels = np.zeros(len(classes) + 1, np.int64)
    sizes = set()
    for part, ids in (("train", train), ("val", val)):
        (folder / part / "images").mkdir(parents=True, exist_ok=True)
        (folder / part / "labels").mkdir(parents=True, exist_ok=True)
        ms = store.mask_set(project["id"], with_images=ids)
        for item in ms.items:
            image_id = int(item.image_id) if getattr(item, "image_id", None) is not None \
                else None
            src = Path(store.image_path(image_id)) if image_id is not None else None
            h, w = item.masks.size
            sizes.add((h, w))
            labels = np.full((h, w), 0 if unlabelled == "background" else IGNORE, np.uint8)
            dense = item.masks.to_dense()
            for m, c in zip(dense, item.masks.labels, strict=True):  # z order: later on top
                labels[m] = lut.get(int(c), 0)
            stem = f"{image_id:08d}"
            link = folder / part / "images" / (stem + src.suffix.lower())
            if not link.exists():
                try:
                    link.symlink_to(src)
                except OSError:
                    import shutil

                    shutil.copyfile(src, link)
            write_label_png(folder / part / "labels" / (stem + ".png"), labels, palette=False)
            if part == "train":
                pixels += np.bincount(labels[labels != IGNORE].ravel(),
                                      minlength=len(pixels))[:len(pixels)]
    warnings = [f"class {c['name']!r} has no pixels in the {len(train)} training images: "
                "the model cannot learn it" for k, c in enumerate(classes) if pixels[k + 1] == 0]
    if len(sizes) > 1:
        warnings.append(f"images of {len(sizes)} sizes: trained on random "
                        "crops, validated at full size")
    return {"classes": ["background"] + [c["name"] for c in classes],
            "class_ids": [c["id"] for c in classes], "pixels": pixels.tolist(),
            "warnings": warnings}


def prepare_instances(store, project: dict, train: list[int], val: list[int],
                      folder: Path) -> dict:
    """Write ``folder/{train,val}.json`` (COCO, the project's classes as categories) and
    ``folder/images/`` (links named as the images' file names); ``{"classes", "objects",
    "warnings"}``."""
    from masklab.io.convert import write_coco

    images = folder / "images"
    counts = {c["id"]: 0 for c in project["classes"]}
    sizes = set()
    for part, ids in (("train", train), ("val", val)):
        for i in ids:
            img = store.image(i)
            link = images / img["file_name"]
            link.parent.mkdir(parents=True, exist_ok=True)
            sizes.add((img["height"], img["width"]))
            if not link.exists():
                try:
                    link.symlink_to(store.image_path(i))
                except OSError:
                    import shutil

                    shutil.copyfile(store.image_path(i), link)
        ms = store.mask_set(project["id"], with_images=ids)
        if part == "train":
            items = list(ms.items)
            for item in items:
                for c in item.masks.labels:
                    counts[int(c)] = counts.get(int(c), 0) + 1
            ms.items = items
        write_coco(ms, folder / f"{part}.json")
    names = {c["id"]: c["name"] for c in project["classes"]}
    warnings = [f"class {names[c]!r} has no objects in the {len(train)} training images: "
                "the model cannot learn it" for c, n in counts.items() if n == 0]
    if len(sizes) > 1:
        warnings.append(f"images of {len(sizes)} sizes: resized by the model as it does")
    return {"classes": ["__background__"] + [c["name"] for c in project["classes"]],
            "class_ids": [c["id"] for c in project["classes"]],
            "objects": [counts[c["id"]] for c in project["classes"]], "warnings": warnings}


def run_dir(data_dir: Path, job_id: int) -> Path:
    return Path(data_dir) / "training" / f"job-{int(job_id)}"


def read_events(folder: Path, after: int = 0) -> list[dict]:
    """The run's events (steps and epochs) from the ``after``-th on."""
    f = Path(folder) / "events.jsonl"
    if not f.is_file():
        return []
    out = []
    with open(f) as fh:
        for k, line in enumerate(fh):
            if k < after:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:  # a line being written
                break
    return out


def run_train_job(ctx) -> dict:
    """The ``train`` job: dataset (once), the trainer in a child process (resumed from its
    checkpoint on a later run), progress from its events, the model version at the end."""
    from masklab.app.store import JobStopped
    from masklab.io.atomic import write_json

    store, p = ctx.store, ctx.params
    project = store.project(ctx.job["project_id"], counts=False)
    folder = run_dir(store.data_dir, ctx.id)
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / "dataset.json"
    if ready.is_file():
        data = json.loads(ready.read_text())
    else:
        train, val = split(store.job_image_ids(ctx.id), p["seed"], p["val_percent"])
        ctx.progress(done=0, total=1, message=f"preparing {len(train)} + {len(val)} images")
        if p["task"] == "semantic":
            data = prepare(store, project, train, val, folder / "dataset", p["unlabelled"])
        else:
            data = prepare_instances(store, project, train, val, folder / "dataset")
        data.update(train=train, val=val)
        write_json(ready, data)
    common = {"out": str(folder / "run"), "model": p["model"],
              "model_config": p.get("model_config") or {}, "epochs": p["epochs"],
              "batch_size": min(p["batch_size"], len(data["train"])), "lr": p["lr"],
              "seed": p["seed"], "workers": 0, "resume": True, "quiet": True,
              "device": getattr(ctx.cfg, "device", "cpu") if ctx.cfg is not None else "cpu",
              "time_budget": None if p.get("minutes") is None else 60 * p["minutes"]}
    init = None
    if p.get("from_version"):  # checked again: the project's classes may have changed
        check_base(p, project, store)
        init = store.model(p["from_version"])["path"]
    if p["task"] == "semantic":
        cfg = {**common, "data": str(folder / "dataset"), "layout": "folder",
               "init_from": init,
               "num_classes": len(data["classes"]), "class_names": data["classes"],
               "ignore_index": IGNORE, "crop": [p["crop"], p["crop"]], "tensorboard": False,
               "cpu_precision": p.get("precision", "auto")}
    else:
        d = folder / "dataset"
        cfg = {**common, "data": str(d / "train.json"), "images": str(d / "images"),
               "val_data": str(d / "val.json"), "classes": data["classes"][1:],
               "pretrained": p["pretrained"], "optimizer": "adamw",
               "warmup_steps": min(100, 5 * len(data["train"]))}
    write_json(folder / "train.json", {"task": p["task"], "config": cfg,
                                       "threads": p["threads"]})
    msg = "; ".join(data["warnings"])
    ctx.progress(message=msg or f"training on {len(data['train'])} images")
    events_seen = len(read_events(folder))
    log = open(folder / "train.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "masklab.app.training", str(folder)],
                            stdout=log, stderr=subprocess.STDOUT, env=_child_env(p["threads"]),
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            if ctx.stopped.is_set():
                raise JobStopped(f"job {ctx.id} stopped")
            new = read_events(folder, events_seen)
            events_seen += len(new)
            steps = [e for e in new if e.get("event") == "step"]
            epochs = [e for e in new if e.get("event") == "epoch"]
            if steps or epochs:
                last = (steps or epochs)[-1]
                text = f"epoch {last['epoch']}: loss {last['loss']:.3f}"
                if epochs and epochs[-1].get("val") is not None:
                    text += f", validation {metric_name(p['task'])} {epochs[-1]['val']:.3f}"
                ctx.progress(done=int(last.get("step", 0)),
                             total=int(steps[-1]["total_steps"]) if steps else None,
                             message=text + (f" ({msg})" if msg else ""))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    if proc.returncode != 0:
        tail = (folder / "train.log").read_text(errors="replace").strip().splitlines()
        why = next((line for line in reversed(tail) if line.strip()), "no output")
        raise InputError(f"training failed: {why[:300]}")
    result = json.loads((folder / "result.json").read_text())
    metrics = {"score_name": metric_name(p["task"]), "score": result["best"],
               "best_epoch": result["best_epoch"], "epochs": len(result["history"]),
               "images_per_second": result["images_per_second"]}
    if p["task"] == "semantic":
        metrics.update(val_mIoU=result["best"], per_class_IoU=result.get("per_class_iou"))
    else:
        metrics.update(val_AP=result["best"], val_AP50=result.get("best_AP50"))
    m = store.add_model(project["id"], task=p["task"], arch=p["model"],
                        path=str(folder / "run" / "best"), classes=data["classes"],
                        metrics=metrics, image_ids={"train": data["train"], "val": data["val"]},
                        job_id=ctx.id, user=ctx.job["created_by"])
    return {"model_id": m["id"], "version": m["version"], "score": result["best"],
            "score_name": metric_name(p["task"]), "warnings": data["warnings"]}


def metric_name(task: str) -> str:
    return "mIoU" if task == "semantic" else "mask AP"


def _child_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(int(threads))
    env["MASKLAB_TRAIN_THREADS"] = str(int(threads))
    return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the server process dies (even by kill -9)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.nice(5)  # the server's requests first


def _child(folder: Path) -> int:
    """The child process: the task's trainer (``train_semantic`` / ``train_instances``)
    with the job's configuration, events appended to ``events.jsonl`` (each epoch's
    validation figure also as ``val``), the result to ``result.json``."""
    import torch

    from masklab.io.atomic import write_json

    spec = json.loads((folder / "train.json").read_text())
    torch.set_num_threads(int(spec["threads"]))
    torch.set_num_interop_threads(1)
    cfg = dict(spec["config"])
    task = spec.get("task", "semantic")
    parent = os.getppid()
    events = open(folder / "events.jsonl", "a")
    events.write(json.dumps({"event": "start", "threads": torch.get_num_threads(),
                             "pid": os.getpid(), "time": time.time()}) + "\n")
    events.flush()

    def callback(event: dict) -> None:
        if os.getppid() != parent:  # the server is gone: stop (the job resumes later)
            raise SystemExit(3)
        if event.get("event") == "epoch":
            event = {**event, "val": event.get("val_mIoU", event.get("AP"))}
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in event.items()}
        events.write(json.dumps({**clean, "time": time.time()}) + "\n")
        events.flush()

    def clean(rows):
        return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                for row in rows]

    if task == "semantic":
        from masklab.tasks.semantic import TrainConfig, train_semantic

        cfg["crop"] = tuple(cfg["crop"])
        r = train_semantic(TrainConfig(**cfg), callback=callback)
        per_class = None
        if r.best_result is not None and getattr(r.best_result, "iou", None) is not None:
            per_class = [None if v != v else float(v) for v in np.asarray(r.best_result.iou)]
        result = {"best": float(r.best_miou), "best_epoch": int(r.best_epoch),
                  "history": clean(r.history), "images_per_second": float(r.images_per_second),
                  "per_class_iou": per_class}
    else:
        from masklab.tasks.instances_train import InstanceTrainConfig, train_instances

        r = train_instances(InstanceTrainConfig(**cfg), callback=callback)
        best = [h for h in r["history"] if h["epoch"] == r["best_epoch"]]
        result = {"best": max(0.0, float(r["best_ap"])), "best_epoch": int(r["best_epoch"]),
                  "history": clean(r["history"]),
                  "images_per_second": float(r["images_per_second"]),
                  "best_AP50": best[0]["AP50"] if best else None}
    events.close()
    write_json(folder / "result.json", result)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_child(Path(sys.argv[1])))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
