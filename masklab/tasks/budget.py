"""How far a training run is, in steps or in time: what its learning-rate schedule follows.

A run given a time budget (``time_budget``: the app's "minutes") and a large epoch count used
to anneal over the epochs it would never reach, so its learning rate stayed at the top until
the deadline cut it off. ``RunClock`` makes the schedule follow whichever ends first: the
share of the steps done, or the share of the budget spent. Under ``torch.distributed`` every
rank takes rank 0's clock (one all-reduce per step), so all of them use the same learning
rate and stop after the same step.
"""

from __future__ import annotations

import time

from masklab import distributed


class RunClock:
    """``fraction(step)``: the larger of ``step / total_steps`` and the share of
    ``time_budget`` seconds spent since :meth:`start` (this run's; a resumed run starts its
    budget again). ``tick()`` once per optimiser step refreshes the time share (the same on
    every rank); ``out_of_time`` is then true once the budget is spent."""

    def __init__(self, total_steps: int, time_budget: float | None = None, dist=None):
        self.total = max(1, int(total_steps))
        self.budget = None if time_budget is None else max(1e-9, float(time_budget))
        self.dist = dist
        self.spent = 0.0  # share of the budget, as of the last tick
        self.t0 = time.monotonic()

    def start(self) -> None:
        self.t0, self.spent = time.monotonic(), 0.0

    def tick(self) -> None:
        if self.budget is None:
            return
        share = (time.monotonic() - self.t0) / self.budget
        if self.dist is not None and self.dist.active:  # rank 0's clock everywhere
            share = float(distributed.all_sum(self.dist, [share if self.dist.main else 0.0])[0])
        self.spent = share

    @property
    def out_of_time(self) -> bool:
        return self.budget is not None and self.spent >= 1.0

    def fraction(self, step: int) -> float:
        return min(1.0, max(step / self.total, self.spent))
