"""One progress-bar helper for all long work; ``quiet=True`` (the CLI's ``--quiet``) hides it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str = "", total: int | None = None,
             quiet: bool | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr.

    ``quiet=None`` follows ``MASKLAB_QUIET``; bars are also hidden when stderr is not a
    terminal and ``MASKLAB_PROGRESS`` is not set (keeps CI logs clean).
    """
    from tqdm import tqdm

    if quiet is None:
        quiet = os.environ.get("MASKLAB_QUIET", "") not in ("", "0")
    forced = os.environ.get("MASKLAB_PROGRESS", "") not in ("", "0")
    disable = quiet or not (forced or sys.stderr.isatty())
    yield from tqdm(items, desc=desc, total=total, disable=disable, unit=unit, leave=False)
