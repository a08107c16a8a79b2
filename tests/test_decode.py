"""decode: peaks and sub-pixel refinement, flip merging, crop-to-image, OKS and OKS-NMS."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.decode import (
    crop_to_image,
    decode_heatmaps,
    flip_back,
    heatmap_peaks,
    heatmap_to_crop,
    oks,
    oks_nms,
)
from vidpose.keypoints import POSETRACK18
from vidpose.pose import Pose
from vidpose.targets import render_heatmaps


def gaussian_maps(centres: torch.Tensor, size: tuple[int, int], sigma: float = 2.0) -> torch.Tensor:
    """(B, K, h, w) Gaussians at (B, K, 2) x, y centres, drawn by the suite's one renderer."""
    present = torch.ones(centres.shape[:-1] + (1,), dtype=centres.dtype)
    return render_heatmaps(torch.cat([centres, present], -1)[:, None], size, sigma)


CENTRES = torch.tensor([[[10.3, 7.6], [5.5001, 12.0], [20.9, 3.2], [8.0, 8.0], [14.26, 9.74]]],
                       dtype=torch.float64)


def test_peaks_are_the_integer_argmax():
    maps = torch.zeros(1, 2, 6, 5)
    maps[0, 0, 4, 1] = 0.7
    maps[0, 1, 0, 3] = 0.2
    coords, scores = heatmap_peaks(maps)
    assert coords.tolist() == [[[1.0, 4.0], [3.0, 0.0]]]
    assert scores[0].tolist() == pytest.approx([0.7, 0.2])


def test_quarter_refinement_recovers_a_gaussian_within_a_quarter_pixel():
    maps = gaussian_maps(CENTRES, (16, 24))
    coords, scores = decode_heatmaps(maps, "quarter")
    error = (coords - CENTRES).abs()
    assert error.max() <= 0.25 + 1e-9
    # Hand-checked cases: 10.3 -> 10 + 0.25; 8.0 stays (equal neighbours); 20.9 -> 21 - 0.25.
    assert coords[0, 0, 0] == 10.25 and coords[0, 3].tolist() == [8.0, 8.0]
    assert coords[0, 2, 0] == 20.75
    assert scores.min() > 0.9


def test_taylor_refinement_is_exact_for_a_gaussian():
    maps = gaussian_maps(CENTRES, (16, 24))
    coords, _ = decode_heatmaps(maps, "taylor")
    assert (coords - CENTRES).abs().max() < 1e-6


def test_refinement_leaves_border_peaks_alone():
    maps = gaussian_maps(torch.tensor([[[0.2, 5.0], [11.0, 15.3]]], dtype=torch.float64), (16, 12))
    for refine in ("quarter", "taylor"):
        coords, _ = decode_heatmaps(maps, refine)
        assert coords[0, 0, 0] == 0.0  # x at the left edge
        assert coords[0, 1, 0] == 11.0 and coords[0, 1, 1] == 15.0  # right and bottom edges
    with pytest.raises(ValueError, match="quarter"):
        decode_heatmaps(maps, "dark")


def test_flip_back_restores_a_mirrored_map():
    flip_index = POSETRACK18.flip_index
    maps = torch.rand(2, 17, 8, 6)
    mirrored = maps.flip(-1)[:, flip_index]
    assert torch.equal(flip_back(mirrored, flip_index, shift=False), maps)
    shifted = flip_back(mirrored, flip_index, shift=True)
    assert torch.equal(shifted[..., 1:], maps[..., :-1])
    assert torch.equal(shifted[..., 0], maps[..., 0])


def test_flip_back_shift_aligns_the_mirrored_crop():
    # A joint at crop x = 41.0 in a 96-px-wide crop, heatmaps at stride 4 (x -> x / 4).
    stride, width, x, y = 4, 96, 41.0, 30.0
    left = POSETRACK18.index["left_wrist"]
    right = POSETRACK18.index["right_wrist"]
    centres = torch.full((1, 17, 2), -100.0, dtype=torch.float64)
    centres[0, right] = torch.tensor([(width - 1 - x) / stride, y / stride])  # mirrored crop
    mirrored_maps = gaussian_maps(centres, (32, width // stride))
    for shift, expected_error in ((False, -(1 - 1 / stride)), (True, 1 / stride)):
        maps = flip_back(mirrored_maps, POSETRACK18.flip_index, shift=shift)
        coords, _ = decode_heatmaps(maps, "taylor")
        found = heatmap_to_crop(coords, stride)[0, left]
        assert found[0].item() == pytest.approx(x + stride * expected_error, abs=1e-4)
        assert found[1].item() == pytest.approx(y, abs=1e-4)


def test_crop_to_image_applies_each_samples_affine():
    coords = torch.tensor([[[0.0, 0.0], [10.0, 5.0]], [[1.0, 2.0], [3.0, 4.0]]])
    angle = math.pi / 2
    affine = torch.tensor([
        [[2.0, 0.0, 100.0], [0.0, 2.0, 50.0]],  # scale 2, then translate
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]],
    ], dtype=torch.float64)
    image = crop_to_image(coords, affine)
    assert image.dtype == torch.float64
    expected = torch.tensor([[[100.0, 50.0], [120.0, 60.0]], [[-2.0, 1.0], [-4.0, 3.0]]],
                            dtype=torch.float64)
    assert torch.allclose(image, expected, atol=1e-12)


def test_oks_against_hand_computed_values():
    sigmas = np.array([0.1, 0.2])
    a = np.array([[[0.0, 0.0, 2.0], [10.0, 0.0, 0.0]],   # only joint 0 labelled
                  [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])   # nothing labelled
    b = np.array([[[3.0, 4.0, 1.0], [100.0, 100.0, 1.0]],
                  [[0.0, 0.0, 1.0], [50.0, 0.0, 1.0]]])
    similarity = oks(a, b, np.array([100.0, 100.0]), sigmas)
    assert similarity.shape == (2, 2)
    # d^2 = 25, (2 sigma)^2 = 0.04, e = 25 / (2 * 0.04 * 100) = 3.125
    assert similarity[0, 0] == pytest.approx(math.exp(-3.125))
    assert similarity[0, 1] == pytest.approx(1.0)
    assert similarity[1].tolist() == [0.0, 0.0]
    # All joints counted: joint 1 of a vs b[1] is 40 px away at sigma 0.2.
    both = oks(a[:1], b[1:], 100.0, sigmas, labelled=np.ones((1, 2), dtype=bool))
    assert both[0, 0] == pytest.approx(0.5 * (1.0 + math.exp(-1600 / 8)))


def _pose(offset: float, score: float) -> Pose:
    keypoints = np.column_stack([np.linspace(0, 80, 17) + offset, np.linspace(0, 160, 17),
                                 np.ones(17)])
    return Pose(keypoints, box=np.array([offset, 0.0, 80.0, 160.0]), score=score)


def test_oks_nms_drops_near_duplicates_of_better_poses():
    poses = [_pose(0.0, 0.5), _pose(1.0, 0.9), _pose(300.0, 0.7), _pose(301.0, 0.2)]
    assert oks_nms(poses, 0.9) == [1, 2]
    assert oks_nms(poses, 1.01) == [1, 2, 0, 3]  # nothing is that similar
    assert oks_nms([], 0.9) == []
    with pytest.raises(ValueError, match="sigmas"):
        oks_nms(poses, 0.9, sigmas=np.ones(5))
