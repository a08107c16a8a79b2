"""Recall per frame index (Fig. 7): a 3-frame toy, pooling over clips, de-duplication, the plot."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from vidpose.metrics.recall_over_time import RecallOverTime


def _frame(found: int, missed: int):
    """One frame, one joint type: ``found`` keypoints with a peak 2 px away, ``missed`` with
    the nearest peak 15 px away; persons 100 px apart.
    Returns peaks (1, 1, M, 3) and gt (1, P, 1, 3)."""
    persons = found + missed
    gt = torch.zeros(1, max(persons, 1), 1, 3)
    peaks = torch.zeros(1, 1, max(persons, 1), 3)
    for p in range(persons):
        gt[0, p, 0] = torch.tensor([100.0 * p, 50.0, 1.0])
        offset = 2.0 if p < found else 15.0
        peaks[0, 0, p] = torch.tensor([100.0 * p + offset, 50.0, 0.9])
    return peaks, gt


def _update(metric, frames, frame_indices, ids):
    """Update frame by frame (persons differ per frame, so no common padding is needed)."""
    for (peaks, gt), index, sample_id in zip(frames, frame_indices, ids):
        metric.update(peaks, gt, torch.tensor([index]), torch.tensor([sample_id]))


def test_three_frame_clip():
    metric = RecallOverTime(max_frames=4)
    _update(metric, [_frame(2, 0), _frame(1, 1), _frame(0, 0)], [0, 1, 2], [10, 11, 12])
    recall = metric.compute()["recall"]
    assert recall.shape == (4,)
    assert recall[:2].tolist() == [100.0, 50.0]
    assert math.isnan(recall[2]) and math.isnan(recall[3])   # no ground truth there


def test_frames_with_the_same_index_pool_over_clips_and_batches():
    first, second = _frame(1, 3), _frame(2, 0)
    metric = RecallOverTime(max_frames=2)
    # Two clips' frame 1 in one batch (padded to the same number of persons and peaks).
    peaks = torch.zeros(2, 1, 4, 3)
    gt = torch.zeros(2, 4, 1, 3)
    peaks[0], gt[0] = first[0][0], first[1][0]
    peaks[1, :, :2], gt[1, :2] = second[0][0], second[1][0]
    metric.update(peaks, gt, torch.tensor([1, 1]), torch.tensor([0, 1]))
    recall = metric.compute()["recall"]
    assert math.isnan(recall[0])
    assert recall[1] == 50.0   # (1 + 2) found of (4 + 2)


def test_repeated_frames_count_once():
    frames = [_frame(1, 1), _frame(2, 0)]
    metric = RecallOverTime(max_frames=2)
    _update(metric, frames + frames[:1], [0, 0, 0], [3, 4, 3])
    assert metric.compute()["recall"][0] == 75.0   # not (1 + 2 + 1) / 6


def test_bad_frame_indices_are_refused():
    metric = RecallOverTime(max_frames=3)
    peaks, gt = _frame(1, 0)
    with pytest.raises(ValueError, match="frame_index"):
        metric.update(peaks, gt, torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="frame_index"):
        metric.update(peaks, gt, torch.tensor([-1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="frame_index"):
        metric.update(peaks, gt, torch.tensor([1.0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="max_frames"):
        RecallOverTime(max_frames=0)


def test_plot_writes_the_curve_as_png(tmp_path):
    metric = RecallOverTime(max_frames=3)
    _update(metric, [_frame(2, 0), _frame(1, 1), _frame(0, 2)], [0, 1, 2], [0, 1, 2])
    path = metric.plot(tmp_path / "plots" / "recall.png", label="configuration 5")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image.shape == (400, 600, 3)
    # The default line colour (C0, #1f77b4, BGR 180 119 31) is drawn.
    line = np.abs(image.astype(int) - [180, 119, 31]).sum(-1) < 30
    assert line.sum() > 100
