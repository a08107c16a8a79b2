"""Crop geometry, flips and shared clip transforms, checked on pixels as well as labels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.data_modules.config import AugmentConfig
from vidpose.data_modules.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropTransform,
    FrameTransform,
    apply_affine,
    box_to_center_size,
    crop_affine,
    invert_affine,
    letterbox,
    normalize,
)
from vidpose.keypoints import POSETRACK18, flip_keypoints

GEOMETRY_ONLY = dict(color=False, blur=0.0, noise=0.0)


def dot_image(points: np.ndarray, shape=(120, 160), radius: int = 2) -> np.ndarray:
    """Black RGB image with a white square dot at each (x, y)."""
    image = np.zeros(shape + (3,), dtype=np.uint8)
    for x, y in np.round(points).astype(int):
        image[y - radius:y + radius + 1, x - radius:x + radius + 1] = 255
    return image


def centroid(image: np.ndarray) -> np.ndarray:
    weight = image.astype(np.float64).sum(-1)
    yy, xx = np.mgrid[:weight.shape[0], :weight.shape[1]]
    return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()


def test_box_is_fixed_to_the_crop_aspect_and_padded():
    center, size = box_to_center_size(np.array([10, 20, 30, 30]), aspect=0.75, padding=1.25)
    np.testing.assert_allclose(center, [25, 35])
    np.testing.assert_allclose(size, [30 * 1.25, 40 * 1.25])  # h grows to w / 0.75
    _, size = box_to_center_size(np.array([0, 0, 10, 40]), aspect=0.75, padding=1.0)
    np.testing.assert_allclose(size, [30, 40])  # w grows to h * 0.75


def test_crop_affine_maps_box_onto_crop_and_inverse_is_exact():
    affine = crop_affine(np.array([50.0, 40]), np.array([30.0, 40]), (64, 48), rotation=17.0)
    np.testing.assert_allclose(apply_affine(np.array([50.0, 40]), affine), [23.5, 31.5])
    # The box's width spans the crop's 48 pixels.
    assert np.linalg.norm(affine[:, 0]) == pytest.approx(48 / 30)
    points = np.random.default_rng(0).uniform(0, 100, (20, 2))
    back = apply_affine(apply_affine(points, affine), invert_affine(affine))
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_keypoint_maps_into_the_crop_onto_its_pixels_and_back():
    keypoints = np.array([[80.0, 60, 2], [95, 75, 1], [0, 0, 0]])
    image = dot_image(keypoints[:1, :2])
    augment = AugmentConfig(flip=0.0, rotation=40.0, rotation_prob=1.0, scale=0.3, **GEOMETRY_ONLY)
    transform = CropTransform((64, 48), POSETRACK18, 1.25, augment)
    torch.manual_seed(3)
    for _ in range(4):
        sample = transform(image, np.array([60.0, 40, 40, 50]), np.vstack([keypoints, np.zeros((14, 3))]))
        x, y = sample.keypoints[0, :2]
        assert 0 <= x <= 47 and 0 <= y <= 63
        np.testing.assert_allclose(centroid(sample.image), [x, y], atol=0.2)
        back = apply_affine(sample.keypoints[:2, :2], sample.crop_to_image)
        np.testing.assert_allclose(back, keypoints[:2, :2], atol=1e-3)
        np.testing.assert_array_equal(sample.keypoints[2], 0)  # absent stays absent


def test_crop_flip_swaps_left_right_and_mirrors_x(make_person):
    schema = POSETRACK18
    keypoints = make_person((60, 60), 40, schema)
    keypoints[schema.index["left_wrist"], 2] = 1
    image = dot_image(keypoints[keypoints[:, 2] > 0, :2], radius=1)
    center, size = box_to_center_size(np.array([30.0, 10, 60, 100]), 0.75, 1.25)
    plain = crop_affine(center, size, (64, 48))
    flipped = crop_affine(center, size, (64, 48), flip=True)
    transform = CropTransform((64, 48), schema, 1.25, AugmentConfig(flip=1.0, rotation=0.0, scale=0.0,
                                                                     **GEOMETRY_ONLY))
    sample = transform(image, np.array([30.0, 10, 60, 100]), keypoints)
    assert sample.flipped
    np.testing.assert_allclose(sample.image_to_crop, flipped)
    unflipped = apply_affine(keypoints[:, :2], plain)
    expected = flip_keypoints(np.column_stack([unflipped, keypoints[:, 2]]), 48, schema)
    np.testing.assert_allclose(sample.keypoints, expected, atol=1e-9)
    lw, rw = schema.index["left_wrist"], schema.index["right_wrist"]
    assert sample.keypoints[rw, 2] == 1 and sample.keypoints[lw, 2] == 2  # flags travel along
    # The person's left wrist (image right) now sits in the right-wrist slot on the crop's left.
    assert sample.keypoints[rw, 0] < 24 < sample.keypoints[lw, 0]
    np.testing.assert_allclose(apply_affine(sample.keypoints[rw, :2], sample.crop_to_image),
                               keypoints[lw, :2], atol=1e-3)


def test_letterbox_keeps_aspect_and_pixel_centres():
    image = dot_image(np.array([[100.0, 30]]), shape=(120, 160), radius=4)
    boxed, affine = letterbox(image[None], (64, 48))
    assert boxed.shape == (1, 64, 48, 3)
    assert affine[0, 0] == pytest.approx(48 / 160) and affine[1, 1] == pytest.approx(36 / 120)
    assert boxed[0, :14].max() == 0 and boxed[0, 50:].max() == 0  # 14 px bands of padding
    np.testing.assert_allclose(centroid(boxed[0]), apply_affine(np.array([100.0, 30]), affine),
                               atol=0.1)


def test_frame_flip_swaps_slots_and_matches_pixels(make_person):
    schema = POSETRACK18
    keypoints = make_person((80, 60), 60, schema)
    lw, rw = schema.index["left_wrist"], schema.index["right_wrist"]
    image = dot_image(keypoints[[lw], :2], radius=4)
    transform = FrameTransform((96, 128), schema, AugmentConfig(
        flip=1.0, rotation=20.0, scale=0.2, **GEOMETRY_ONLY))
    transform.seed(0)
    sample = transform(image[None], keypoints[None, None])
    assert sample.flipped and np.linalg.det(sample.image_to_input[:, :2]) < 0
    moved = sample.keypoints[0, 0]
    # The dot drawn at the left wrist is now labelled right wrist, and the label is on the dot.
    np.testing.assert_allclose(centroid(sample.images[0]), moved[rw, :2], atol=0.3)
    np.testing.assert_allclose(moved[rw, :2], apply_affine(keypoints[lw, :2], sample.image_to_input))
    assert moved[schema.index["left_ear"]].tolist() == [0, 0, 0]


def test_clip_frames_share_one_transform():
    points = np.array([[40.0, 30], [120, 90], [70, 60]])
    images = np.stack([dot_image(p[None], radius=3) for p in points])
    keypoints = np.zeros((3, 1, 17, 3))
    keypoints[:, 0, 0] = np.column_stack([points, [2, 2, 2]])
    transform = FrameTransform((96, 128), POSETRACK18, AugmentConfig(
        flip=0.5, rotation=30.0, scale=0.25, translate=0.1, color=True, blur=0.0, noise=0.0))
    for seed in range(3):
        transform.seed(seed)
        sample = transform(images, keypoints)
        for t in range(3):
            mask = sample.images[t].max(-1) > 128
            yy, xx = np.nonzero(mask)
            np.testing.assert_allclose([xx.mean(), yy.mean()], sample.keypoints[t, 0, 0, :2], atol=0.6)
        # The same colour jitter too: the three dots have one brightness.
        peaks = [sample.images[t].max() for t in range(3)]
        assert max(peaks) - min(peaks) <= 1
    same = transform(np.repeat(images[:1], 2, 0), np.repeat(keypoints[:1], 2, 0))
    np.testing.assert_array_equal(same.images[0], same.images[1])


def test_normalize_layout_and_values():
    image = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    image[..., 0] = 255
    out = normalize(image)
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float32
    assert out[0, 0, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], rel=1e-6)
    assert out[1, 2, 3, 4].item() == pytest.approx(-IMAGENET_MEAN[2] / IMAGENET_STD[2], rel=1e-6)
