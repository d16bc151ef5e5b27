"""Evaluation plots saved as PNG: PR curves, a confusion-matrix heat map, per-class bars."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from masklab.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def pr_curves(recall_thresholds: np.ndarray, precision: np.ndarray, names: Sequence[str],
              path: str | os.PathLike, title: str = "precision-recall (IoU 0.5)",
              max_curves: int = 20) -> Path:
    """One curve per class; ``precision`` is ``(K, R)`` with -1 where undefined."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    valid = [k for k in range(len(names)) if (precision[k] > -1).any()]
    order = sorted(valid, key=lambda k: -precision[k][precision[k] > -1].mean())
    for k in order[:max_curves]:
        p = np.where(precision[k] > -1, precision[k], np.nan)
        ax.plot(recall_thresholds, p, label=f"{names[k]} ({np.nanmean(p):.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    if order:
        ax.legend(fontsize=6, loc="lower left", ncol=2)
    return _save(fig, Path(path))


def confusion_heatmap(cm: np.ndarray, names: Sequence[str], path: str | os.PathLike,
                      normalize: bool = True) -> Path:
    """Rows ground truth, columns prediction; row-normalised by default."""
    plt = _plt()
    m = cm.astype(np.float64)
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * n + 2), max(4, 0.35 * n + 1.5)))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set(xlabel="prediction", ylabel="ground truth")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, Path(path))


def per_class_bars(values: dict[str, float], path: str | os.PathLike, label: str) -> Path:
    """Horizontal bars of a per-class figure (NaN classes left out)."""
    plt = _plt()
    items = [(k, v) for k, v in values.items() if v is not None and v == v]
    fig, ax = plt.subplots(figsize=(6, max(2, 0.25 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
    ax.invert_yaxis()
    ax.set(xlabel=label, xlim=(0, 1))
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, Path(path))
