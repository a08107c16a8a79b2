"""Target maps against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.targets import render_heatmaps, render_limb_maps, render_person_mask

SIGMA = 2.0


def kps(*points):
    """(P=1, K, 3) from (x, y, v) triples."""
    return torch.tensor([list(points)], dtype=torch.float32)


def test_heatmap_peak_and_falloff():
    maps = render_heatmaps(kps((10, 6, 2)), (16, 20), SIGMA)
    assert maps.shape == (1, 16, 20) and maps.dtype == torch.float32
    assert maps[0, 6, 10] == pytest.approx(1.0)
    one_px = math.exp(-1 / (2 * SIGMA ** 2))
    for y, x in ((6, 11), (6, 9), (5, 10), (7, 10)):
        assert maps[0, y, x] == pytest.approx(one_px, abs=1e-6)
    assert maps[0, 7, 11] == pytest.approx(math.exp(-2 / (2 * SIGMA ** 2)), abs=1e-6)
    assert maps.max() == maps[0, 6, 10]


def test_heatmap_subpixel_matches_formula():
    x, y = 4.3, 7.6
    maps = render_heatmaps(kps((x, y, 1)), (12, 9), 1.5)[0].numpy()
    yy, xx = np.mgrid[:12, :9]
    expected = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(maps, expected, atol=1e-6)


def test_absent_keypoints_render_nothing():
    maps = render_heatmaps(kps((5, 5, 0), (3, 3, 2)), (10, 10), SIGMA)
    assert maps[0].abs().max() == 0
    assert maps[1, 3, 3] == pytest.approx(1.0)


def test_max_over_persons_and_per_person():
    two = torch.tensor([[[4.0, 4, 2]], [[6.0, 4, 2]]])
    merged = render_heatmaps(two, (8, 12), SIGMA)
    single = [render_heatmaps(two[p:p + 1], (8, 12), SIGMA) for p in range(2)]
    torch.testing.assert_close(merged, torch.maximum(*single))
    # Between the two peaks each person alone gives exp(-1/8); max keeps it, a sum would not.
    assert merged[0, 4, 5] == pytest.approx(math.exp(-1 / (2 * SIGMA ** 2)), abs=1e-6)
    per_person = render_heatmaps(two, (8, 12), SIGMA, per_person=True)
    assert per_person.shape == (2, 1, 8, 12)
    torch.testing.assert_close(per_person[1], single[1])


def test_batched_leading_dims_and_no_person():
    batch = torch.rand(3, 2, 5, 3) * torch.tensor([10.0, 8.0, 2.0])
    out = render_heatmaps(batch, (8, 10), SIGMA)
    assert out.shape == (3, 5, 8, 10)
    for b in range(3):
        torch.testing.assert_close(out[b], render_heatmaps(batch[b], (8, 10), SIGMA))
    empty = render_heatmaps(torch.zeros(0, 5, 3), (8, 10), SIGMA)
    assert empty.shape == (5, 8, 10) and empty.abs().max() == 0


LIMBS = torch.tensor([[0, 1]])


def test_limb_map_is_one_on_the_segment_and_gaussian_off_it():
    person = kps((2, 5, 2), (12, 5, 1))
    maps = render_limb_maps(person, LIMBS, (11, 16), SIGMA)
    assert maps.shape == (1, 11, 16)
    torch.testing.assert_close(maps[0, 5, 2:13], torch.ones(11))  # ends included
    # Perpendicular distance 3 from the middle, and distance 2 beyond an end (round cap).
    assert maps[0, 8, 7] == pytest.approx(math.exp(-9 / (2 * SIGMA ** 2)), abs=1e-6)
    assert maps[0, 5, 14] == pytest.approx(math.exp(-4 / (2 * SIGMA ** 2)), abs=1e-6)
    # A diagonal pixel past the end: distance to the end point, sqrt(2^2 + 3^2).
    assert maps[0, 8, 14] == pytest.approx(math.exp(-13 / (2 * SIGMA ** 2)), abs=1e-6)


def test_limb_needs_both_ends_and_merges_persons_by_max():
    half = render_limb_maps(kps((2, 5, 2), (12, 5, 0)), LIMBS, (11, 16), SIGMA)
    assert half.abs().max() == 0
    two = torch.tensor([[[2.0, 2, 2], [12, 2, 2]], [[2.0, 8, 2], [2, 8, 2]]])
    merged = render_limb_maps(two, LIMBS, (11, 16), SIGMA)
    apart = render_limb_maps(two, LIMBS, (11, 16), SIGMA, per_person=True)
    assert apart.shape == (2, 1, 11, 16)
    torch.testing.assert_close(merged, apart.amax(0))
    assert merged[0, 8, 2] == pytest.approx(1.0)  # a zero-length limb is its point


def test_person_mask_is_skeleton_within_width():
    person = kps((2, 2, 2), (8, 2, 2), (5, 9, 0))
    mask = render_person_mask(person, torch.tensor([[0, 1], [1, 2]]), (12, 12), 1.5)
    assert mask.shape == (1, 12, 12)
    expected = np.zeros((12, 12), dtype=np.float32)
    yy, xx = np.mgrid[:12, :12]
    # Distance to the segment (2,2)-(8,2) with round caps; the limb to the absent joint is out.
    dx = np.clip(xx, 2, 8) - xx
    expected[(dx ** 2 + (yy - 2) ** 2) <= 1.5 ** 2] = 1
    np.testing.assert_array_equal(mask[0].numpy(), expected)


def test_person_mask_single_keypoint_and_union():
    people = torch.tensor([[[3.0, 3, 2], [0, 0, 0]], [[9.0, 6, 1], [0, 0, 0]]])
    mask = render_person_mask(people, torch.tensor([[0, 1]]), (10, 12), 1.0)
    assert mask[0, 3, 3] == 1 and mask[0, 3, 4] == 1 and mask[0, 3, 5] == 0
    assert mask[0, 6, 9] == 1 and mask[0, 6, 8] == 1 and mask[0, 5, 8] == 0
    assert int(mask.sum()) == 10  # two plus-shaped discs of radius 1
    apart = render_person_mask(people, torch.tensor([[0, 1]]), (10, 12), 1.0, per_person=True)
    assert apart.shape == (2, 1, 10, 12) and int(apart[0].sum()) == 5
    none = render_person_mask(torch.zeros(0, 2, 3), torch.tensor([[0, 1]]), (10, 12), 1.0)
    assert none.shape == (1, 10, 12) and none.sum() == 0


def test_limb_maps_and_masks_batch_like_single_items():
    gen = torch.Generator().manual_seed(0)
    batch = torch.rand(3, 4, 5, 3, generator=gen) * torch.tensor([12.0, 10.0, 2.0])
    batch[..., 2] = batch[..., 2].round()  # some keypoints absent
    limbs = torch.tensor([[0, 1], [1, 2], [3, 4], [2, 2]])
    maps = render_limb_maps(batch, limbs, (10, 12), SIGMA)
    masks = render_person_mask(batch, limbs, (10, 12), 1.5, per_person=True)
    assert maps.shape == (3, 4, 10, 12) and masks.shape == (3, 4, 1, 10, 12)
    for b in range(3):
        torch.testing.assert_close(maps[b], render_limb_maps(batch[b], limbs, (10, 12), SIGMA))
        for p in range(4):
            torch.testing.assert_close(masks[b, p], render_person_mask(batch[b, p:p + 1], limbs,
                                                                       (10, 12), 1.5))
