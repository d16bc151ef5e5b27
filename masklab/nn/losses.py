"""Per-pixel losses for semantic segmentation; every one honours an ignore index."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = 255,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels (optionally class-weighted)."""
    return F.cross_entropy(logits, target.long(), weight=weight, ignore_index=ignore_index)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = 255,
              eps: float = 1.0) -> torch.Tensor:
    """1 − mean soft Dice over the classes present in the batch (Milletari et al. 2016)."""
    k = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    prob = logits.softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, k - 1).long(), k).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = 255,
               gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 − p_t)^γ``."""
    ce = F.cross_entropy(logits, target.long(), ignore_index=ignore_index, reduction="none")
    valid = target != ignore_index
    pt = torch.exp(-ce)
    loss = (1 - pt) ** gamma * ce
    return loss[valid].mean() if valid.any() else loss.sum() * 0


def median_frequency_weights(counts, ignore_zero: bool = True) -> torch.Tensor:
    """Class weights ``median(freq) / freq`` (Eigen & Fergus 2015), as SegNet used them."""
    c = torch.as_tensor(counts, dtype=torch.float64)
    freq = c / c.sum()
    med = freq[freq > 0].median() if ignore_zero else freq.median()
    w = torch.where(freq > 0, med / freq, torch.zeros_like(freq))
    return w.float()
