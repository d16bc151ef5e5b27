"""A run's learning rate follows its time budget when that ends before its epochs."""

import pytest

from masklab.data.synthetic import write_shapes_dataset
from masklab.tasks import budget
from masklab.tasks.budget import RunClock
from masklab.tasks.semantic import TrainConfig, train_semantic


def test_clock_takes_the_larger_share_of_steps_and_time(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(budget.time, "monotonic", lambda: now[0])
    c = RunClock(total_steps=1000, time_budget=60.0)
    c.start()
    assert c.fraction(10) == pytest.approx(0.01) and not c.out_of_time
    now[0] += 30.0
    c.tick()
    assert c.fraction(10) == pytest.approx(0.5)  # half the budget spent: half-way
    assert c.fraction(800) == pytest.approx(0.8)  # the steps are further on
    now[0] += 31.0
    c.tick()
    assert c.out_of_time and c.fraction(10) == 1.0
    steps_only = RunClock(total_steps=4)
    now[0] += 1e6
    steps_only.tick()
    assert steps_only.fraction(1) == 0.25 and not steps_only.out_of_time


def test_a_time_budgeted_run_anneals_its_learning_rate(tmp_path):
    data = write_shapes_dataset(tmp_path / "shapes", 24, 4, size=48, seed=3)
    r = train_semantic(TrainConfig(
        data=str(data), out=str(tmp_path / "run"), model="unet",
        model_config={"depth": 2, "width": 4}, num_classes=4, epochs=100_000, batch_size=8,
        crop=None, scale=(1.0, 1.0), lr=1e-2, workers=0, quiet=True, tensorboard=False,
        time_budget=3.0))
    lrs = [h["lr"] for h in r.history]
    assert len(lrs) >= 2, r.history  # the budget, not the epochs, ended it
    # poly over the budget: the rate falls epoch after epoch and ends near zero
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * 1e-2, lrs
