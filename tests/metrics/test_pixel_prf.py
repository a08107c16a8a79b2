"""Pixel P/R/F1 of maps binarised at 0.5: known overlaps, threshold, channels, de-duplication."""
from __future__ import annotations

import math

import pytest
import torch

from vidpose.metrics.pixel_prf import PixelPRF, pixel_counts


def _maps(shape, *on):
    """A zero (C, H, W) map with value 1 at the given (c, y, x) pixels."""
    maps = torch.zeros(shape)
    for c, y, x in on:
        maps[c, y, x] = 1.0
    return maps


def test_known_overlap_per_channel_and_pooled():
    # Channel 0: 3 predicted, 2 target, 1 shared -> P 1/3, R 1/2.
    # Channel 1: 1 predicted, 4 target, 1 shared -> P 1, R 1/4.
    preds = _maps((2, 4, 4), (0, 0, 0), (0, 0, 1), (0, 3, 3), (1, 2, 2))
    target = _maps((2, 4, 4), (0, 0, 0), (0, 1, 1), (1, 2, 2), (1, 2, 3), (1, 3, 2), (1, 3, 3))
    metric = PixelPRF()
    metric.update(preds[None], target[None], torch.tensor([0]))
    result = metric.compute()
    assert result["per_channel_precision"].tolist() == pytest.approx([100 / 3, 100.0])
    assert result["per_channel_recall"].tolist() == pytest.approx([50.0, 25.0])
    assert result["per_channel_f1"].tolist() == pytest.approx([40.0, 40.0])
    # Pooled: TP 2, predicted 4, target 6.
    assert result["precision"] == 50.0
    assert result["recall"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(40.0)


def test_both_maps_are_binarised_strictly_above_the_threshold():
    preds = torch.tensor([[[[0.5, 0.51, 0.9, 0.2]]]])
    target = torch.tensor([[[[0.6, 0.7, 0.5, 0.8]]]])   # soft target: 0.5 is background
    assert pixel_counts(preds, target)[0, :, 0].tolist() == [1, 2, 3]
    assert pixel_counts(preds, target, threshold=0.3)[0, :, 0].tolist() == [3, 3, 4]
    metric = PixelPRF(threshold=0.3)
    metric.update(preds, target, torch.tensor([0]))
    result = metric.compute()
    assert result["precision"] == 100.0 and result["recall"] == 75.0


def test_empty_channels_are_nan_and_disjoint_maps_zero():
    preds = _maps((2, 3, 3), (0, 0, 0))
    target = _maps((2, 3, 3), (0, 2, 2))
    metric = PixelPRF()
    metric.update(preds[None], target[None], torch.tensor([0]))
    result = metric.compute()
    assert result["per_channel_precision"][0] == 0.0 and result["per_channel_f1"][0] == 0.0
    assert math.isnan(result["per_channel_precision"][1])
    assert math.isnan(result["per_channel_recall"][1])
    assert result["f1"] == 0.0


def test_target_as_prediction_gives_100():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, 5, 16, 16, generator=generator)
    metric = PixelPRF()
    metric.update(target, target, torch.arange(3))
    result = metric.compute()
    assert (result["precision"], result["recall"], result["f1"]) == (100.0, 100.0, 100.0)


def test_repeated_ids_count_once():
    preds = torch.stack([_maps((1, 2, 2), (0, 0, 0)), _maps((1, 2, 2), (0, 1, 1))])
    target = torch.stack([_maps((1, 2, 2), (0, 0, 0)), _maps((1, 2, 2), (0, 0, 0))])
    single = PixelPRF()
    single.update(preds, target, torch.tensor([4, 5]))
    assert single.compute()["precision"] == 50.0
    padded = PixelPRF()
    padded.update(preds[[0, 1, 1]], target[[0, 1, 1]], torch.tensor([4, 5, 5]))
    assert padded.compute()["precision"] == 50.0


def test_bad_shapes_and_ids_are_refused():
    metric = PixelPRF()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metric.update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metric.update(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="ids"):
        metric.update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.tensor([0]))
