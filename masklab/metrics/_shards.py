"""Evaluation over units (images, sequences) split into shards: every metric family's
accumulator merges, so a shard is evaluated where its files are (a Ray task with
``--engine ray``) and only the accumulators travel.

``runner(fn, units, *args) -> [accumulator, ...]`` runs ``fn(units_shard, *args)`` per shard;
the default runs one shard here. Accumulators are merged in shard order, so the result is
the one-shard result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def local_runner(fn: Callable, units: Sequence, *args) -> list:
    return [fn(list(units), *args)]


def merged(fn: Callable, units: Sequence, *args, runner: Callable | None = None):
    """``fn`` over ``units`` through ``runner``; the accumulators merged, then computed."""
    parts = (runner or local_runner)(fn, list(units), *args)
    acc = parts[0]
    for p in parts[1:]:
        acc.merge(p)
    return acc.compute()
