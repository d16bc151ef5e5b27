"""Options several verbs share."""

from __future__ import annotations

import click


def check_device(name: str) -> str:
    """``name`` if torch can run on it here (``auto``: ``cuda`` when there is a GPU, else
    ``cpu``), else ``click.BadParameter`` naming what is missing — not a traceback from deep
    inside a model's ``.to(device)``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise click.BadParameter(f"{name!r} is not a device (cpu, cuda, cuda:N, mps, "
                                 "auto)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise click.BadParameter(f"{name!r}: no CUDA device here (torch "
                                     f"{torch.__version__}, CUDA build "
                                     f"{torch.version.cuda or 'none'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise click.BadParameter(f"{name!r}: this machine has "
                                     f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise click.BadParameter(f"{name!r}: no Apple MPS device here")
    elif dev.type != "cpu":
        raise click.BadParameter(f"{name!r}: masklab runs on cpu, cuda or mps")
    return name


def device_option(default: str = "cpu", help: str | None = None):
    """``--device``, checked before any work starts."""
    return click.option("--device", default=default, show_default=True, help=help,
                        callback=lambda ctx, param, value: check_device(value))
