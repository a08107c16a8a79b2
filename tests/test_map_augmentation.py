"""STM-skeletons' memory map augmentations, and the peak renderers they use."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from vidpose.data_modules.map_augmentation import (
    MapAugmentationConfig,
    check_map_augmentation,
    jitter_keypoints,
    preview_map_augmentation,
    render_memory_maps,
)
from vidpose.errors import ConfigError
from vidpose.keypoints import COCO17
from vidpose.targets import render_gaussian_peaks, render_heatmaps, render_limb_maps, render_segment_peaks

SIZE = (64, 64)
SIGMA, LIMB_SIGMA = 1.5, 1.0
LIMBS = COCO17.limbs


def people(frames: int = 2, persons: int = 2, low: int = 10, high: int = 54, seed: int = 0):
    """(T, persons, 17, 3) keypoints on integer pixels in [low, high), second person's joint 3
    absent. ``one_person`` keeps them far from the border: one peak per map."""
    rng = np.random.default_rng(seed)
    kps = np.zeros((frames, persons, 17, 3))
    kps[..., :2] = rng.integers(low, high, size=(frames, persons, 17, 2))
    kps[..., 2] = 2
    kps[:, 1:, 3] = 0  # an absent keypoint renders nothing, with or without augmentation
    return torch.from_numpy(kps).float()


def one_person(frames: int) -> torch.Tensor:
    return people(frames, 1, 16, 48, seed=1)


def memory(keypoints: torch.Tensor, seed: int = 0, **options) -> tuple[torch.Tensor, torch.Tensor]:
    return render_memory_maps(keypoints, LIMBS, SIZE, SIGMA, LIMB_SIGMA, MapAugmentationConfig(**options),
                              torch.Generator().manual_seed(seed))


def local_maxima(maps: torch.Tensor, floor: float) -> torch.Tensor:
    """Per map (..., h, w), the number of pixels that are a 3x3 maximum above ``floor``."""
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    pooled = torch.nn.functional.max_pool2d(flat, 3, stride=1, padding=1)
    return ((flat == pooled) & (flat > floor)).sum((1, 2, 3)).reshape(maps.shape[:-2])


def second_moments(maps: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) covariance of each map (..., h, w) as a mass about ``centers`` (..., 2)."""
    ys, xs = torch.meshgrid(torch.arange(float(maps.shape[-2])), torch.arange(float(maps.shape[-1])),
                            indexing="ij")
    offsets = torch.stack([xs - centers[..., 0, None, None], ys - centers[..., 1, None, None]], -1)
    weighted = maps[..., None, None] * offsets[..., :, None] * offsets[..., None, :]
    return weighted.sum((-4, -3)) / maps.sum((-2, -1))[..., None, None]


def test_gaussian_peaks_hand_computed_and_isotropic_case():
    centers = torch.tensor([[10.0, 12.0]])
    # Spread 2 along an axis turned by 90 degrees: that axis is y.
    maps = render_gaussian_peaks(centers, torch.tensor([1]), 2, (24, 24), torch.tensor([[2.0, 1.0]]),
                                 torch.tensor([math.pi / 2]), torch.tensor([0.8]))
    assert maps.shape == (2, 24, 24) and maps[0].abs().sum() == 0
    assert maps[1, 12, 10] == pytest.approx(0.8)
    assert maps[1, 14, 10] == pytest.approx(0.8 * math.exp(-0.5), rel=1e-5)  # 2 px along y
    assert maps[1, 12, 11] == pytest.approx(0.8 * math.exp(-0.5), rel=1e-5)  # 1 px along x
    # At 45 degrees the diagonal (1, 1) lies on the first axis: u = sqrt(2), v = 0.
    turned = render_gaussian_peaks(centers, torch.tensor([0]), 1, (24, 24), torch.tensor([[2.0, 1.0]]),
                                   torch.tensor([math.pi / 4]), torch.tensor([1.0]))
    assert turned[0, 13, 11] == pytest.approx(math.exp(-0.5 * 2 / 4), rel=1e-5)
    # Equal spreads, height 1: the clean renderer's peaks.
    kps = people(1)[0]
    present = kps[..., 2] > 0
    p, k = present.nonzero(as_tuple=True)
    n = len(k)
    ours = render_gaussian_peaks(kps[p, k, :2], k, 17, SIZE, torch.full((n, 2), SIGMA),
                                 torch.zeros(n), torch.ones(n))
    torch.testing.assert_close(ours, render_heatmaps(kps, SIZE, SIGMA), atol=1e-6, rtol=0)


def test_segment_peaks_match_limb_maps_and_scale_with_height():
    kps = people(1)[0]
    a, b = kps[:, LIMBS[:, 0]], kps[:, LIMBS[:, 1]]
    p, limb = ((a[..., 2] > 0) & (b[..., 2] > 0)).nonzero(as_tuple=True)
    n = len(limb)
    ours = render_segment_peaks(a[p, limb, :2], b[p, limb, :2], limb, len(LIMBS), SIZE,
                                torch.full((n,), LIMB_SIGMA), torch.ones(n))
    torch.testing.assert_close(ours, render_limb_maps(kps, LIMBS, SIZE, LIMB_SIGMA), atol=1e-6, rtol=0)
    # One horizontal segment, width 2, height 0.5: 0.5 on it, 0.5 exp(-1/2) two rows off.
    seg = render_segment_peaks(torch.tensor([[4.0, 8.0]]), torch.tensor([[12.0, 8.0]]),
                               torch.tensor([0]), 1, (16, 16), torch.tensor([2.0]), torch.tensor([0.5]))
    assert seg[0, 8, 7] == pytest.approx(0.5) and seg[0, 10, 7] == pytest.approx(0.5 * math.exp(-0.5))


def test_all_options_off_gives_exactly_the_clean_maps():
    kps = people(3)
    heatmaps, limb_maps = memory(kps)
    assert torch.equal(heatmaps, render_heatmaps(kps, SIZE, SIGMA))
    assert torch.equal(limb_maps, render_limb_maps(kps, LIMBS, SIZE, LIMB_SIGMA))
    assert heatmaps.shape == (3, 17, *SIZE) and limb_maps.shape == (3, len(LIMBS), *SIZE)


def test_jitter_moves_each_peak_by_about_the_std_and_limbs_follow():
    kps = one_person(frames=24)
    std = 2.0
    heatmaps, limb_maps = memory(kps, jitter=std)
    # A whole Gaussian's centroid is its centre: the displacement of every keypoint.
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    mass = heatmaps.sum((-2, -1))
    centroid = torch.stack([(heatmaps * xs).sum((-2, -1)) / mass, (heatmaps * ys).sum((-2, -1)) / mass], -1)
    shift = centroid - kps[:, 0, :, :2]
    rms = shift.pow(2).mean(dim=(0, 1)).sqrt()
    assert torch.all((rms > 0.8 * std) & (rms < 1.2 * std)), rms
    assert shift.mean(dim=(0, 1)).abs().max() < 0.3  # unbiased
    assert torch.allclose(heatmaps.amax((-2, -1)), torch.ones(()), atol=0.2)  # shape kept
    # The limbs are drawn between the very same moved keypoints.
    moved = jitter_keypoints(kps, std, torch.Generator().manual_seed(0))
    torch.testing.assert_close(limb_maps, render_limb_maps(moved, LIMBS, SIZE, LIMB_SIGMA))
    torch.testing.assert_close(heatmaps, render_heatmaps(moved, SIZE, SIGMA))


def test_baits_add_about_the_expected_number_of_peaks_away_from_keypoints():
    empty = torch.zeros((16, 0, 17, 3))
    heatmaps, limb_maps = memory(empty, baits=1.5)
    # Poisson(1.5) peaks per map at random places; a few merge with a neighbour.
    per_map = local_maxima(heatmaps, 0.5).float().mean().item()
    assert 1.2 < per_map < 1.7, per_map
    assert (limb_maps.amax((-2, -1)) > 0.99).float().mean() > 0.6  # most limb maps got a bait
    assert memory(empty)[0].abs().sum() == 0
    # With persons: the real peaks stay where they were, baits appear where nothing was.
    kps = people(4)
    clean = render_heatmaps(kps, SIZE, SIGMA)
    clean_limbs = render_limb_maps(kps, LIMBS, SIZE, LIMB_SIGMA)
    heatmaps, limb_maps = memory(kps, baits=1.0)
    assert torch.all(heatmaps >= clean - 1e-5) and torch.all(limb_maps >= clean_limbs - 1e-5)
    assert ((heatmaps > 0.5) & (clean < 1e-3)).any() and ((limb_maps > 0.5) & (clean_limbs < 1e-3)).any()


def test_dull_clouds_scale_each_whole_peak_by_a_factor_in_0_1():
    kps = one_person(frames=8)
    clean = render_heatmaps(kps, SIZE, SIGMA)
    clean_limbs = render_limb_maps(kps, LIMBS, SIZE, LIMB_SIGMA)
    heatmaps, limb_maps = memory(kps, dull_clouds=True)
    for noisy, ref in ((heatmaps, clean), (limb_maps, clean_limbs)):
        factor = noisy.amax((-2, -1)) / ref.amax((-2, -1))
        assert torch.all((factor >= 0) & (factor <= 1))
        assert factor.std() > 0.15 and 0.35 < factor.mean() < 0.65  # U[0, 1], one per peak
        # One peak per map: the whole peak is the clean one times its factor.
        torch.testing.assert_close(noisy, ref * factor[..., None, None], atol=1e-5, rtol=1e-4)


def test_rand_changes_peak_shape_but_keeps_the_maximum_at_the_keypoint():
    kps = one_person(frames=6)
    clean = render_heatmaps(kps, SIZE, SIGMA)
    heatmaps, limb_maps = memory(kps, rand=0.5)
    flat = heatmaps.flatten(-2).argmax(-1)
    at = torch.stack([flat % 64, flat // 64], -1).float()
    torch.testing.assert_close(at, kps[:, 0, :, :2])
    torch.testing.assert_close(heatmaps.amax((-2, -1)), torch.ones(6, 17))
    assert (heatmaps - clean).abs().amax((-2, -1)).min() > 0.01  # every peak reshaped
    # Anisotropic: the two principal spreads of a peak differ, and peaks differ in size.
    spreads = torch.linalg.eigvalsh(second_moments(heatmaps, kps[:, 0, :, :2])).sqrt()
    ratio = spreads[..., 1] / spreads[..., 0]
    assert (ratio > 1.1).float().mean() > 0.5 and ratio.max() < math.exp(1.0) + 0.05
    assert spreads.min() > SIGMA * math.exp(-0.5) - 0.05
    assert spreads.max() < SIGMA * math.exp(0.5) + 0.05
    # Limbs: still 1 on the segment, but each with its own width.
    clean_limbs = render_limb_maps(kps, LIMBS, SIZE, LIMB_SIGMA)
    torch.testing.assert_close(limb_maps.amax((-2, -1)), clean_limbs.amax((-2, -1)))
    width = limb_maps.sum((-2, -1)) / clean_limbs.sum((-2, -1))
    assert width.std() > 0.1 and width.min() > math.exp(-0.5) - 0.05


def test_seeded_generator_reproduces_the_maps():
    kps = people(2)
    options = {"jitter": 1.0, "rand": 0.3, "baits": 1.0, "dull_clouds": True}
    first, second = memory(kps, 7, **options), memory(kps, 7, **options)
    other = memory(kps, 8, **options)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[1], other[1])
    # One frame alone takes the same shapes without a time axis.
    single = memory(kps[0], 7, **options)
    assert single[0].shape == (17, *SIZE) and single[1].shape == (len(LIMBS), *SIZE)


def test_negative_strengths_are_refused():
    check_map_augmentation(MapAugmentationConfig(jitter=1.0, rand=0.2, baits=0.5, dull_clouds=True))
    with pytest.raises(ConfigError, match="map_augmentation.baits"):
        check_map_augmentation(MapAugmentationConfig(baits=-1.0))
    assert not MapAugmentationConfig().enabled() and MapAugmentationConfig(dull_clouds=True).enabled()


def test_preview_png_shows_clean_and_augmented_maps(tmp_path):
    path = preview_map_augmentation(people(1)[0], LIMBS, SIZE, SIGMA, LIMB_SIGMA,
                                    MapAugmentationConfig(jitter=1.0, rand=0.3, baits=0.5, dull_clouds=True),
                                    tmp_path / "fig4" / "preview.png")
    assert path.stat().st_size > 0
    image = cv2.imread(str(path))
    # Two rows (keypoints, edges) by two columns (clean, augmented) of 4x-zoomed maps.
    assert image.shape[0] > 2 * 4 * SIZE[0] and image.shape[1] > 2 * 4 * SIZE[1]
    left, right = image[:, :image.shape[1] // 2], image[:, image.shape[1] // 2:]
    assert len(np.unique(left.reshape(-1, 3), axis=0)) > 17  # one colour per type, shaded
    assert not np.array_equal(left[:, :right.shape[1]], right[:, :left.shape[1]])
