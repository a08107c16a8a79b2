"""Keypoint recall as a function of the frame index within a clip (the STM-skeletons Fig. 7).

STM-skeletons memorises the ground truth of the first frames and predicts the rest from
memory, so recall falling with the frame index shows how well long-term tracking holds.
A ground-truth keypoint is found when its closest predicted peak of the same joint type lies
within ``threshold_px`` (the rule of :mod:`vidpose.metrics.keypoint_prf`); recall at frame t
pools the labelled keypoints of every clip's frame t.

Samples (frames) are keyed by an int64 id and counted once (``metrics/samples.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from vidpose.metrics.keypoint_prf import (
    GT_MATCHED,
    GT_TOTAL,
    check_keypoint_inputs,
    keypoint_match_counts,
    ratio_percent,
)
from vidpose.metrics.samples import SampleMetric, check_ids


class RecallOverTime(SampleMetric):
    """Recall (percent) per frame index 0 .. ``max_frames`` - 1; ``compute`` gives
    ``{"recall": (max_frames,) tensor}``, NaN at frame indices without ground truth
    (torchmetrics squeezes a one-element result, so ``max_frames=1`` gives a 0-d tensor)."""

    def __init__(self, max_frames: int, threshold_px: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_frames < 1:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        self.max_frames = int(max_frames)
        self.threshold_px = float(threshold_px)
        # Per frame: frame index, found and labelled ground-truth keypoints.
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(self, peaks: Tensor, gt: Tensor, frame_index: Tensor, ids: Tensor) -> None:
        """peaks (B, J, M, 3) x, y, score (0 = padding); gt (B, P, J, 3) x, y, visibility;
        frame_index (B,) position of each frame in its clip; ids (B,) int64, one per frame."""
        check_keypoint_inputs(peaks, gt)
        batch = gt.shape[0]
        check_ids(ids, batch)
        if frame_index.shape != (batch,) or frame_index.is_floating_point() \
                or ((frame_index < 0) | (frame_index >= self.max_frames)).any():
            raise ValueError(f"frame_index must be ({batch},) integers in [0, {self.max_frames}), "
                             f"got {frame_index.dtype} {frame_index.tolist()}")
        counts = keypoint_match_counts(peaks, gt, self.threshold_px).sum(-1)  # (B, 4)
        self.ids.append(ids)
        self.rows.append(torch.stack([frame_index.to(counts), counts[:, GT_MATCHED],
                                      counts[:, GT_TOTAL]], 1))

    def compute(self) -> dict[str, Tensor]:
        """{"recall": (max_frames,) float tensor in percent, NaN where a frame has no GT}."""
        found, labelled = torch.zeros(2, self.max_frames, dtype=torch.int64)
        rows = self.first_rows("rows")
        if rows:
            rows = rows[0].cpu()
            found.index_add_(0, rows[:, 0], rows[:, 1])
            labelled.index_add_(0, rows[:, 0], rows[:, 2])
        return {"recall": ratio_percent(found, labelled).float()}

    def plot(self, path: str | Path, label: str | None = None) -> Path:
        """Write the recall curve (percent vs frame index) as a PNG at ``path``; returns it."""
        recall = self.compute()["recall"].reshape(-1).numpy()
        figure = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.plot(range(self.max_frames), recall, marker="o", markersize=3, label=label,
                  clip_on=False)  # points at 0 % and 100 % stay whole
        axes.set(xlabel="frame index", ylabel="recall (%)", ylim=(0, 100))
        axes.grid(alpha=0.3)
        if label is not None:
            axes.legend()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
        return path
