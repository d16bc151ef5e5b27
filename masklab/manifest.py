"""The progress manifest of a batch run: ``OUT/manifest.jsonl``.

Line 1 holds the run's settings (model, weights, options: whatever changes the outputs);
every following line one finished input (its key, the absolute path, and what the merged
outputs need from it), appended and synced to disk once its own files are written. A run
started again with the same settings skips the inputs already there, whichever engine ran
them (in-process or Ray), and the merged files (``results.json``, ``areas.csv``) are rebuilt
from the manifest in input order: identical to an uninterrupted run's. A run with other
settings refuses to mix its outputs into the folder and says which setting differs. A last
line cut short by a crash is dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from masklab.errors import InputError

NAME = "manifest.jsonl"
META = "__run__"  # the key of a row about the whole run (e.g. the categories written)


def file_stamp(path: str | os.PathLike | None) -> list | None:
    """A weights file or folder as settings see it: path, size and modification time."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return [str(path)]
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    return [str(p.resolve()), sum(q.stat().st_size for q in files),
            max((q.stat().st_mtime_ns for q in files), default=0)]


class RunManifest:
    def __init__(self, out_dir: str | os.PathLike, settings: dict):
        self.path = Path(out_dir) / NAME
        self.settings = json.loads(json.dumps(settings))  # as it reads back
        self.done: dict[str, dict] = {}
        if self.path.is_file():
            self._load()
        else:
            from masklab.io.atomic import write_text

            write_text(self.path, json.dumps({"masklab_manifest": 1,
                                              "settings": self.settings}) + "\n")

    def _load(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a crash cut the last line: drop it
            raw = raw[:raw.rfind(b"\n") + 1]
            with open(self.path, "r+b") as f:
                f.truncate(len(raw))
        lines = raw.decode("utf-8").splitlines()
        try:
            head = json.loads(lines[0]) if lines else {}
            rows = [json.loads(line) for line in lines[1:] if line.strip()]
        except json.JSONDecodeError as e:
            raise InputError(f"not a masklab manifest ({e.msg})", self.path) from None
        if head.get("masklab_manifest") != 1:
            raise InputError("not a masklab manifest", self.path)
        old = head.get("settings", {})
        if old != self.settings:
            key = next(k for k in sorted({*old, *self.settings})
                       if old.get(k) != self.settings.get(k))
            raise InputError(f"the folder holds a run with other settings ({key}: "
                             f"{old.get(key)!r}, now {self.settings.get(key)!r}); use another "
                             "--out, or delete the folder to start again", self.path)
        self.done = {r["key"]: r for r in rows}

    def pending(self, keys: list[str]) -> list[int]:
        """Positions of the keys not finished yet."""
        return [i for i, k in enumerate(keys) if k not in self.done]

    def record(self, key: str, payload: dict) -> None:
        """One finished input, on disk before this returns."""
        row = {"key": key, **payload}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[key] = row

    def rows(self, keys: list[str]) -> list[dict]:
        """The finished rows of ``keys``, in that order (every key must be done)."""
        missing = [k for k in keys if k not in self.done]
        if missing:
            raise RuntimeError(f"{len(missing)} inputs were not processed (first {missing[0]})")
        return [self.done[k] for k in keys]


def run_pending(keys: list[str], work, manifest: RunManifest | None = None, *,
                desc: str = "", quiet: bool | None = None, unit: str = "it") -> list[dict]:
    """``work(i)`` for every input not done yet (every one without a manifest), each row
    recorded as it comes; the rows of all inputs, in input order."""
    from masklab.progress import progress

    todo = manifest.pending(keys) if manifest is not None else list(range(len(keys)))
    rows = []
    for i in progress(todo, desc=desc, quiet=quiet, unit=unit):
        row = work(i)
        if manifest is not None:
            manifest.record(keys[i], row)
        else:
            rows.append(row)
    return manifest.rows(keys) if manifest is not None else rows


def key(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())
