"""The error hierarchy: every error a user can cause is a one-line ``MasklabError``.

The CLI prints ``str(error)`` on one line of stderr and exits with code 2.
"""

from __future__ import annotations

import os


class MasklabError(Exception):
    """Base class of errors caused by input, configuration or environment."""


class InputError(MasklabError, ValueError):
    """A file or argument is malformed; the message names the file and the fault."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class WeightsError(MasklabError):
    """Model weights cannot be found, fetched, verified or loaded."""


class OfflineError(WeightsError):
    """Weights are missing from the cache and may not (or cannot) be downloaded."""
