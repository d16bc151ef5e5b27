"""Atomic writes: write to a temporary file in the target folder, then rename.

A reader never sees a half-written file and a failed write leaves the old file untouched.
The file put in place has the mode a plain ``open(path, "w")`` gives: the old file's mode
when it replaces one, else ``0o666`` less the umask (``mkstemp``'s private 0600 would make
every dataset and result unreadable to anyone else).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publish(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    if not any(m in mode for m in "wx"):
        raise ValueError("atomic_open is for writing")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON atomically and return the path."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, allow_nan=False)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically and return the path."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename the finished temporary file ``tmp`` onto ``path`` with the mode ``open`` would
    have given ``path``."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp, mode)
    os.replace(tmp, path)


_UMASK: int | None = None


def _umask() -> int:
    """The process's umask, read once (every write asks: re-reading /proc per file was a
    quarter of the time of writing 10,000 small PNGs). A program that changes its umask
    while running calls ``_clear_umask()``."""
    global _UMASK
    if _UMASK is None:
        _UMASK = _read_umask()
    return _UMASK


def _clear_umask() -> None:
    global _UMASK
    _UMASK = None


def _read_umask() -> int:
    try:  # Linux: read it without changing it (os.umask has no getter)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder beside ``path`` to write many files into with plain writes;
    if the block succeeds they take their places in ``path`` (the folder renamed into place
    when ``path`` does not exist yet, else each file renamed over its namesake, keeping the
    replaced file's mode); if it fails, nothing of it stays. One rename instead of a
    temporary file per file: a reader still never sees a half-written file."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(stage, 0o777 & ~_umask())
        yield stage
        if not path.exists():
            os.rename(stage, path)
            return
        for f in sorted(stage.rglob("*")):
            target = path / f.relative_to(stage)
            if f.is_dir():
                target.mkdir(exist_ok=True)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f, os.stat(target).st_mode & 0o7777)
            os.replace(f, target)
        shutil.rmtree(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
