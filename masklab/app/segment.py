"""The app's segmentation engine: one backend, per-image state (the SAM image embedding)
held in memory (LRU), cached on disk (safetensors, fp16, keyed by image hash and model), and
computed ahead for the next images by a background worker. Clicks, boxes, scribbles and mask
prompts then run only the prompt encoder and masklab's fast decoder.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from masklab.types import Masks, Prompts
from masklab.types.prompts import Scribble

_log = logging.getLogger(__name__)


def _flatten(x, prefix: str, out: dict) -> None:
    import torch

    if isinstance(x, torch.Tensor):
        out[prefix] = x
    else:
        for k, e in enumerate(x):
            _flatten(e, f"{prefix}.{k}", out)


def _unflatten(tensors: dict, prefix: str):
    if prefix in tensors:
        return tensors[prefix]
    items, k = [], 0
    while any(key == f"{prefix}.{k}" or key.startswith(f"{prefix}.{k}.") for key in tensors):
        items.append(_unflatten(tensors, f"{prefix}.{k}"))
        k += 1
    return items


class Segmenter:
    """``backend``: a masklab interactive backend name (``grabcut``, ``sam``, ...), a SAM
    folder, or ``"auto"``: SAM 2.1 Hiera-T, loaded in the background — downloaded first when
    it is not in the weights cache and the machine is online. Until it is ready the clicks
    go to GrabCut, and ``status()`` says what is happening (for the editor's status line);
    where SAM cannot be had (offline, no transformers) the app stays on GrabCut."""

    def __init__(self, backend: str = "auto", *, device: str = "cpu",
                 cache_dir: str | Path | None = None, memory_items: int = 8,
                 detector: str = "grounding-dino-tiny"):
        self.requested = backend
        self.detector_name = detector
        self._detector = None
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._backend = None
        self.name = None
        self._fallback = None  # GrabCut while SAM loads ("auto")
        self._loader: threading.Thread | None = None
        self._status = {"state": "idle", "message": ""}
        self._states: collections.OrderedDict = collections.OrderedDict()
        self._memory_items = memory_items
        self._lock = threading.Lock()
        # one prompt decode at a time: each uses all cores, and quick requests (saves, reads)
        # are not starved by many concurrent decodes competing for them
        self._decode_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="masklab-embed")
        self.stats = {"embed_seconds": [], "disk_hits": 0, "memory_hits": 0}

    # --- the backend -----------------------------------------------------------------------
    @property
    def backend(self):
        return self._current()[0]

    def _current(self) -> tuple:
        """The backend answering now and its name, read together (with ``auto`` the GrabCut
        fallback gives way to SAM once it has loaded)."""
        with self._lock:
            if self._backend is not None:
                return self._backend, self.name
            if self.requested != "auto":
                from masklab.interactive.session import make_backend

                name = self.requested
                self._backend = make_backend(name, device=self.device)
                self.name = Path(str(name)).name
                self._status = {"state": "ready", "message": f"{self.name} ready"}
                return self._backend, self.name
            self._start_loading()
            if self._fallback is None:
                from masklab.interactive.session import make_backend

                self._fallback = make_backend("grabcut")
            return self._fallback, "grabcut"

    def start(self) -> None:
        """Begin loading the backend now (with ``auto``, SAM in the background)."""
        if self.requested == "auto":
            with self._lock:
                self._start_loading()

    def _start_loading(self) -> None:
        if self._loader is not None:
            return
        self._status = {"state": "loading", "message": "loading SAM 2.1 Hiera-T; clicks use "
                        "GrabCut until it is ready"}
        self._loader = threading.Thread(target=self._load_sam, name="masklab-sam-loader",
                                        daemon=True)
        self._loader.start()

    def _load_sam(self) -> None:
        from masklab.errors import WeightsError

        done = threading.Event()
        watcher = threading.Thread(target=self._watch_download, args=(done,), daemon=True)
        watcher.start()
        try:
            sam = load_default_sam(self.device)
        except (WeightsError, ImportError, OSError) as e:
            _log.warning("SAM weights are not available (%s); the app uses GrabCut", e)
            with self._lock:
                self._status = {"state": "failed", "message": "SAM is not available "
                                f"({str(e).splitlines()[0]}); clicks use GrabCut"}
            return
        finally:
            done.set()
        with self._lock:
            self._backend, self.name = sam, "sam"
            self._status = {"state": "ready", "message": "SAM 2.1 Hiera-T ready"}

    def _watch_download(self, done: threading.Event) -> None:
        """While SAM loads, the bytes in its download folder, as a progress line."""
        folder = default_sam_folder()
        start = _folder_bytes(folder)
        while not done.wait(0.5):
            got = _folder_bytes(folder) - start
            if got > 0:
                with self._lock:
                    if self._status["state"] == "loading":
                        self._status = {"state": "loading", "bytes": got, "message":
                                        f"downloading SAM 2.1 Hiera-T weights: "
                                        f"{got / 1e6:.0f} MB so far; clicks use GrabCut "
                                        "until it is ready"}

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the background load has finished (True: SAM or the named backend)."""
        if self._loader is not None:
            self._loader.join(timeout)
        return self._backend is not None

    def status(self) -> dict:
        """What answers the clicks and what is happening: ``backend``, ``sam``, ``state``
        (idle, loading, ready, failed), a ``message`` for the editor (``bytes`` while
        downloading)."""
        backend, name = self._current()
        with self._lock:
            return {"backend": name, "sam": hasattr(backend, "processor"), **self._status}

    @property
    def current_name(self) -> str:
        """The name of the backend answering now."""
        return self._current()[1]

    @property
    def is_sam(self) -> bool:
        return hasattr(self.backend, "processor")

    def describe(self) -> dict:
        b, name = self._current()
        return {"backend": name, "sam": hasattr(b, "processor"), "device": self.device}

    # --- per-image state ---------------------------------------------------------------------
    @staticmethod
    def model_key(backend, name: str) -> str:
        """A short hash naming the model (its class, configuration and name)."""
        return hashlib.sha256(repr((name, type(backend.model).__name__,
                                    backend.model.config.to_json_string()))
                              .encode()).hexdigest()[:16]

    def _cache_file(self, sha: str, backend, name: str) -> Path | None:
        if self.cache_dir is None or not hasattr(backend, "processor"):
            return None
        return self.cache_dir / self.model_key(backend, name) / f"{sha}.safetensors"

    # --- the browser's decoder ----------------------------------------------------------------
    def browser_decoder(self, multimask: bool = False) -> dict:
        """The ONNX prompt decoder of the model answering now, for the browser: ``{"available",
        "key", "path", **decoder_info}`` — exported from the loaded weights once, cached
        beside the embeddings (``available`` False, with ``reason``, for classical backends,
        SAM-HQ, or without an embedding cache)."""
        from masklab.interactive.sam_onnx import (
            FAMILIES,
            decoder_info,
            export_decoder,
            graph_paths,
        )

        backend, name = self._current()
        family = getattr(backend, "family", None)
        if family not in FAMILIES:
            why = f"{name} runs on the server" if family is None else \
                f"{family} has no browser decoder"
            return {"available": False, "reason": why, "backend": name}
        if self.cache_dir is None:
            return {"available": False, "reason": "no embedding cache", "backend": name}
        model = self.model_key(backend, name)
        path = self.cache_dir / model / f"decoder_{int(bool(multimask))}.onnx"
        with self._key_locks[f"decoder:{model}:{int(bool(multimask))}"]:
            if not path.is_file():
                t = time.perf_counter()
                export_decoder(backend, path, multimask=multimask)
                _log.info("exported the %s prompt decoder for the browser in %.1f s (%s)",
                          family, time.perf_counter() - t, path)
        files = graph_paths(path)
        return {"available": True, "backend": name, "key": f"{model}-{int(bool(multimask))}",
                "model": model, "path": path,
                "bytes": sum(f.stat().st_size for f in files.values() if f.is_file()),
                **decoder_info(backend)}

    def decoder_path(self, key: str) -> Path | None:
        """The exported decoder file named by ``key`` (``<model>-<0|1>``, or with ``.image``
        / ``.mask``: its per-image graph, its graph for mask prompts), if it exists."""
        import re

        m = re.fullmatch(r"([0-9a-f]{16})-([01])(\.image|\.mask)?", key)
        if self.cache_dir is None or m is None:
            return None
        path = self.cache_dir / m.group(1) / f"decoder_{m.group(2)}{m.group(3) or ''}.onnx"
        return path if path.is_file() else None

    def embedding_file(self, sha: str, path) -> tuple[Path, str] | None:
        """The image's embedding as the cache's safetensors file (fp16) and the model key,
        computed first if needed; ``None`` when the backend is not SAM-family."""
        current = self._current()
        backend, name = current
        cache = self._cache_file(sha, backend, name)
        if cache is None:
            return None
        if not cache.is_file():
            self.state(sha, path, current)
        if not cache.is_file():  # computed before the cache existed: write it now
            self._save(cache, self.state(sha, path, current))
        return cache, self.model_key(backend, name)

    def _save(self, path: Path, state: dict) -> None:
        import torch
        from safetensors.torch import save_file

        from masklab.io.atomic import atomic_path

        tensors: dict = {}
        _flatten(state["embeddings"], "emb", tensors)
        tensors = {k: v.to(torch.float16).contiguous().cpu() for k, v in tensors.items()}
        for k in ("original_sizes", "reshaped_input_sizes"):
            if k in state:
                tensors[k] = torch.as_tensor(state[k]).contiguous().cpu()
        meta = {"size": json.dumps(list(state["size"])),
                "input_size": json.dumps(list(state["input_size"]))}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    def _read(self, path: Path) -> dict | None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # a damaged cache file is recomputed
            _log.warning("%s: unreadable embedding cache (%s); recomputing", path, e)
            return None
        emb = {k: (v.float().to(self.device) if k.startswith("emb") else v)
               for k, v in tensors.items()}
        state = {"embeddings": _unflatten(emb, "emb"),
                 "original_sizes": tensors["original_sizes"],
                 "size": tuple(json.loads(meta["size"])),
                 "input_size": tuple(json.loads(meta["input_size"]))}
        if "reshaped_input_sizes" in tensors:
            state["reshaped_input_sizes"] = tensors["reshaped_input_sizes"]
        return state

    def state(self, sha: str, path: str | Path, current: tuple | None = None):
        """The backend's state for an image: memory, then disk, then computed.
        ``current``: the ``(backend, name)`` the state is for (default: the one answering
        now), so that a switch from GrabCut to SAM never mixes their states."""
        backend, name = current or self._current()
        key = (name, sha)
        with self._key_locks[sha]:
            with self._lock:
                if key in self._states:
                    self._states.move_to_end(key)
                    self.stats["memory_hits"] += 1
                    return self._states[key]
            cache = self._cache_file(sha, backend, name)
            state = self._read(cache) if cache is not None and cache.is_file() else None
            if state is not None:
                self.stats["disk_hits"] += 1
            else:
                from masklab.io.images import read_image

                t = time.perf_counter()
                state = backend.set_image(read_image(path))
                self.stats["embed_seconds"].append(time.perf_counter() - t)
                if cache is not None:
                    self._save(cache, state)
                    state = self._read(cache) or state  # fp16 from now on, as after a restart
            with self._lock:
                self._states[key] = state
                while len(self._states) > self._memory_items:
                    self._states.popitem(last=False)
            return state

    def prefetch(self, items) -> None:
        """Compute the states of ``(sha, path)`` items in the background."""
        name = self._current()[1]
        for sha, path in items:
            with self._lock:
                if (name, sha) in self._states:
                    continue
            self._pool.submit(self._quiet_state, sha, path)

    def _quiet_state(self, sha, path) -> None:
        try:
            self.state(sha, path)
        except Exception as e:
            _log.warning("prefetch of %s failed: %s", path, e)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- prompts -----------------------------------------------------------------------------
    def segment(self, sha: str, path, *, points=None, labels=None, box=None,
                mask: np.ndarray | None = None, scribbles=None, multimask: bool = False
                ) -> Masks:
        """Masks for one object's prompts, best first."""
        current = self._current()
        state = self.state(sha, path, current)
        h, w = state["size"] if isinstance(state, dict) and "size" in state else \
            self._size(path)
        pts = np.asarray(points if points else np.zeros((0, 2)), np.float64).reshape(-1, 2)
        lab = np.asarray(labels if labels else np.zeros(0), np.int64).reshape(-1)
        if len(lab) != len(pts):
            raise ValueError("points and labels differ in length")
        scr = [Scribble(np.asarray(s["points"], np.float64), float(s.get("width", 5)),
                        bool(s.get("positive", True))) for s in (scribbles or [])]
        prompts = Prompts(points=pts, point_labels=lab,
                          box=None if box is None else np.asarray(box, np.float64),
                          mask=mask, scribbles=scr)
        if prompts.is_empty():
            raise ValueError("no prompt given")
        prompts, _notes = prompts.fit_to(h, w)
        with self._decode_lock:
            masks, scores, _ = current[0].predict(state, prompts, multimask=multimask)
        return Masks(np.asarray(masks, bool).reshape(-1, h, w),
                     scores=np.asarray(scores, np.float64))

    @staticmethod
    def _size(path) -> tuple[int, int]:
        from masklab.io.images import image_size

        return image_size(path)

    def everything(self, sha: str, path, *, points_per_side: int = 16, limit: int = 50
                   ) -> Masks:
        """Segment-everything proposals (SAM grid, or superpixel regions without SAM)."""
        from masklab.interactive.everything import segment_everything
        from masklab.io.images import read_image

        image = read_image(path)
        backend = self.backend
        if hasattr(backend, "processor"):
            out = segment_everything(image, backend, points_per_side=points_per_side,
                                     quiet=True)
        else:
            out = segment_everything(image, "felzenszwalb", min_region_area=image.shape[0]
                                     * image.shape[1] // 2000)
        return out[:limit]

    # --- text prompts --------------------------------------------------------------------------
    @property
    def detector(self):
        with self._lock:
            if self._detector is None:
                from masklab.grounding.detectors import load_detector

                self._detector = load_detector(self.detector_name, device=self.device)
            return self._detector

    def text(self, sha: str, path, classes: list[str], *, threshold: float | None = None,
             limit: int = 100):
        """Text prompts → boxes (the detector) → masks: a text → mask detector's own (SAM 3),
        else SAM on the cached embedding (all boxes batched), else GrabCut in each box.
        ``(Detections, masks (N, H, W), scores)``, best detection first; class names as
        given."""
        from masklab.grounding.detectors import check_classes
        from masklab.grounding.label import LabelSettings, grabcut_box, postprocess
        from masklab.io.images import read_image

        classes = check_classes(classes)
        image = read_image(path)
        det = self.detector
        if threshold is not None:  # the detector's own threshold, for this call
            attr = "box_threshold" if hasattr(det, "box_threshold") else "threshold"
            old = getattr(det, attr)
            setattr(det, attr, float(threshold))
            try:
                found = det.detect(image, classes)
            finally:
                setattr(det, attr, old)
        else:
            found = det.detect(image, classes)
        found = postprocess(found, LabelSettings(classes, self.detector_name,
                                                 self._current()[1]))
        found = found.select(np.arange(min(limit, len(found))))
        h, w = image.shape[:2]
        if not len(found):
            return found, np.zeros((0, h, w), bool), np.zeros(0)
        if found.masks is not None:  # SAM 3: instance masks with the boxes
            return found, np.asarray(found.masks, bool), np.asarray(found.scores, float)
        current = self._current()
        if hasattr(current[0], "processor") and hasattr(current[0], "predict_boxes"):
            masks, scores = current[0].predict_boxes(self.state(sha, path, current),
                                                     found.boxes)
        else:
            masks = np.stack([grabcut_box(image, b) for b in found.boxes])
            scores = np.ones(len(found))
        return found, np.asarray(masks, bool), np.asarray(scores, float)


def default_sam_folder() -> Path:
    """Where the default SAM's weights download to (the hub cache of ``masklab.weights``)."""
    from masklab.interactive.session import SAM_BACKENDS
    from masklab.weights import cached_path, get_source

    return cached_path(get_source(SAM_BACKENDS["sam"]))


def load_default_sam(device: str):
    """SAM 2.1 Hiera-T (``make_backend("sam")``), downloaded first when not cached."""
    from masklab.interactive.session import make_backend

    return make_backend("sam", device=device)


def _folder_bytes(folder: Path) -> int:
    try:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    except OSError:  # a file renamed while we looked: count it next time
        return 0
