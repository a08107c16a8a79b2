"""Pixel-wise precision, recall and F1 of confidence maps (the STM-skeletons paper's Tables 1-2).

The paper binarises the predicted maps at 0.5 and computes "classical performance metrics:
precision, recall, and F1-score" against the ground truth; its ground-truth maps are soft
(Gaussian peaks, spread limbs), so they are binarised at the same threshold. A pixel is
positive when its value is strictly above the threshold (as torchmetrics binarises).
Per channel and pooled over all channels (and all pixels of all images):
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R).

Samples (images) are keyed by an int64 id and counted once (``metrics/samples.py``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vidpose.metrics.keypoint_prf import prf_from_counts
from vidpose.metrics.samples import SampleMetric, check_ids

# Rows of the per-sample count tensor (B, 3, C).
TRUE_POSITIVES, PREDICTED_POSITIVES, TARGET_POSITIVES = range(3)


def pixel_counts(preds: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """Per image and channel, int64 (B, 3, C) counts of true, predicted and target positives
    of (B, C, H, W) maps binarised at ``threshold``."""
    predicted, positive = preds > threshold, target > threshold
    return torch.stack([(predicted & positive).sum((-2, -1)), predicted.sum((-2, -1)),
                        positive.sum((-2, -1))], 1)


class PixelPRF(SampleMetric):
    """Pixel precision/recall/F1 of maps binarised at ``threshold``; ``compute`` gives percent:
    ``precision``, ``recall``, ``f1`` (pooled, floats) and ``per_channel_precision``,
    ``per_channel_recall``, ``per_channel_f1`` ((C,) tensors, NaN where a count is empty)."""

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, ids: Tensor) -> None:
        """preds and target (B, C, H, W) maps, ids (B,) int64, one per image."""
        if preds.ndim != 4 or preds.shape != target.shape:
            raise ValueError(f"expected preds and target of one (B, C, H, W) shape, got "
                             f"{tuple(preds.shape)} and {tuple(target.shape)}")
        check_ids(ids, preds.shape[0])
        self.ids.append(ids)
        self.counts.append(pixel_counts(preds, target, self.threshold))

    def compute(self) -> dict[str, Any]:
        """Pooled and per-channel precision, recall and F1 in percent."""
        rows = self.first_rows("counts")
        if rows is None:
            return prf_from_counts(*torch.zeros(4, 0, dtype=torch.int64), per="per_channel")
        counts = rows[0].sum(0)
        true_positives = counts[TRUE_POSITIVES]
        return prf_from_counts(true_positives, counts[PREDICTED_POSITIVES], true_positives,
                               counts[TARGET_POSITIVES], per="per_channel")
