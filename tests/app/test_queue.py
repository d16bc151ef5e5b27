"""The "least confident first" queue made diverse (masklab.app.queue): analytic cases."""

import numpy as np

from masklab.app.queue import diverse_order, kmeans, pool_layout, priorities


def test_round_robin_over_look_alikes():
    # six near-duplicates the model doubts a lot, four others it doubts less: uncertainty
    # alone would label all six first; the queue alternates between the two kinds
    rng = np.random.default_rng(0)
    f = np.r_[np.tile([1.0, 0, 0], (6, 1)), np.tile([0, 1.0, 0], (4, 1))]
    f += rng.normal(0, 0.01, f.shape)
    u = np.r_[[0.9, 0.89, 0.88, 0.87, 0.86, 0.85], [0.5, 0.4, 0.3, 0.2]]
    order = diverse_order(u, f, clusters=2)
    assert order.tolist() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 5]
    p = priorities(u, order)
    assert (np.diff(p[order]) < 0).all()  # strict along the order
    assert (p <= u).all() and p[0] == u[0]
    # one cluster: plain uncertainty order
    assert diverse_order(u, f, clusters=1).tolist() == list(np.argsort(-u, kind="stable"))
    assert diverse_order([], np.zeros((0, 3))).tolist() == []


def test_kmeans_separates_and_layout_pools():
    x = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 10]
    lab = kmeans(x, 2)
    assert len(set(lab[:5])) == 1 and len(set(lab[5:])) == 1 and lab[0] != lab[5]
    # class 0 on the left half, class 1 on the right: 2 x 2 cells
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, :, :2] = 1
    maps[1, :, 2:] = 1
    v = pool_layout(maps, grid=2).reshape(2, 2, 2)
    assert np.allclose(v[0], [[0.5, 0], [0.5, 0]]) and np.allclose(v[1], [[0, 0.5], [0, 0.5]])
