"""AE grouping on hand-made heatmaps and tags: separation by tag, merging, NMS, thresholds,
Hungarian matching, the person cap, sub-pixel shifts and scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.grouping import GroupingConfig, ae_joint_order, group_batch, group_poses
from vidpose.keypoints import COCO17, POSETRACK18

SIZE = 16


def maps(peaks: list[tuple[int, int, int, float, float]], num_joints: int = 3,
         tag_dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps (K, h, w) and tags (K, h, w, D) with one-pixel peaks ``(joint, x, y, value,
    tag)``; the tag fills every dimension of the peak's cell."""
    heatmaps = torch.zeros(num_joints, SIZE, SIZE)
    tags = torch.zeros(num_joints, SIZE, SIZE, tag_dim)
    for joint, x, y, value, tag in peaks:
        heatmaps[joint, y, x] = value
        tags[joint, y, x] = tag
    return heatmaps, tags


def by_first_x(poses):
    return sorted(poses, key=lambda p: p.keypoints[p.keypoints[:, 2] > 0][0, 0])


def test_the_joint_order_is_pose_ae_trains():
    order = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
    assert ae_joint_order(COCO17) == order
    assert ae_joint_order(POSETRACK18) == order


def test_two_persons_with_distinct_tags_are_separated():
    heatmaps, tags = maps([(0, 3, 3, 0.9, 0.0), (0, 10, 3, 0.8, 5.0),
                           (1, 3, 8, 0.7, 0.2), (1, 10, 8, 0.6, 5.3)])
    left, right = by_first_x(group_poses(heatmaps, tags, GroupingConfig()))
    np.testing.assert_allclose(left.keypoints, [[3, 3, 0.9], [3, 8, 0.7], [0, 0, 0]], rtol=1e-6)
    np.testing.assert_allclose(right.keypoints, [[10, 3, 0.8], [10, 8, 0.6], [0, 0, 0]],
                               rtol=1e-6)
    # The score is the mean over all joints, the missing one counting 0.
    assert left.score == pytest.approx((0.9 + 0.7) / 3)
    assert right.score == pytest.approx((0.8 + 0.6) / 3)


def test_joints_with_the_same_tag_form_one_person():
    heatmaps, tags = maps([(0, 3, 3, 0.9, 2.0), (1, 10, 3, 0.8, 2.0), (2, 5, 12, 0.5, 2.0)])
    (pose,) = group_poses(heatmaps, tags, GroupingConfig())
    np.testing.assert_allclose(pose.keypoints[:, :2], [[3, 3], [10, 3], [5, 12]])
    assert pose.score == pytest.approx((0.9 + 0.8 + 0.5) / 3)


def test_nms_keeps_one_of_two_neighbouring_peaks():
    heatmaps, tags = maps([(0, 5, 5, 0.9, 0.0), (0, 6, 5, 0.8, 9.0)])
    (pose,) = group_poses(heatmaps, tags, GroupingConfig())
    assert pose.keypoints[0, 2] == pytest.approx(0.9)
    # Two pixels apart, a 3x3 window keeps both (distinct tags: two persons); 5x5 does not.
    heatmaps, tags = maps([(0, 5, 5, 0.9, 0.0), (0, 7, 5, 0.8, 9.0)])
    assert len(group_poses(heatmaps, tags, GroupingConfig())) == 2
    assert len(group_poses(heatmaps, tags, GroupingConfig(nms_kernel=5))) == 1


def test_peaks_below_the_detection_threshold_are_dropped():
    heatmaps, tags = maps([(0, 3, 3, 0.9, 0.0), (1, 3, 8, 0.15, 0.0), (2, 10, 10, 0.1, 7.0)])
    (pose,) = group_poses(heatmaps, tags, GroupingConfig())
    assert pose.keypoints[1:].tolist() == [[0, 0, 0], [0, 0, 0]]
    (pose,) = group_poses(heatmaps, tags, GroupingConfig(detection_threshold=0.12))
    assert pose.keypoints[1, 2] == pytest.approx(0.15)


def test_the_tag_threshold_splits_and_joins():
    heatmaps, tags = maps([(0, 3, 3, 0.9, 0.0), (1, 3, 8, 0.7, 1.5)])
    assert len(group_poses(heatmaps, tags, GroupingConfig())) == 2
    assert len(group_poses(heatmaps, tags, GroupingConfig(tag_threshold=2.0))) == 1


def test_a_persons_tag_is_the_mean_of_its_joints_tags():
    # Joints 0 and 1 (tags 0 and 0.9) make a person of mean tag 0.45; joint 2's tag 1.4 is
    # 1.4 from the first joint but 0.95 from the mean: it joins.
    heatmaps, tags = maps([(0, 3, 3, 0.9, 0.0), (1, 3, 8, 0.7, 0.9), (2, 3, 12, 0.6, 1.4)])
    (pose,) = group_poses(heatmaps, tags, GroupingConfig())
    assert pose.keypoints[:, 2].tolist() == pytest.approx([0.9, 0.7, 0.6])


def test_hungarian_matching_pairs_each_candidate_with_its_own_person():
    # The stronger joint-1 candidate belongs to the second person, the weaker to the first.
    heatmaps, tags = maps([(0, 2, 2, 0.9, 0.0), (0, 12, 2, 0.8, 3.0),
                           (1, 12, 9, 0.9, 2.9), (1, 2, 9, 0.5, 0.2)])
    left, right = by_first_x(group_poses(heatmaps, tags, GroupingConfig()))
    assert left.keypoints[1].tolist() == pytest.approx([2, 9, 0.5])
    assert right.keypoints[1].tolist() == pytest.approx([12, 9, 0.9])


def test_tag_distance_is_the_root_mean_square_over_tag_dimensions():
    heatmaps, tags = maps([(0, 3, 3, 0.9, 0.0), (1, 3, 8, 0.7, 0.0)], tag_dim=2)
    tags[1, 8, 3] = torch.tensor([1.2, 0.0])  # RMS distance 0.85 < 1: one person
    assert len(group_poses(heatmaps, tags, GroupingConfig())) == 1
    tags[1, 8, 3] = torch.tensor([1.2, 1.2])  # RMS distance 1.2: two persons
    assert len(group_poses(heatmaps, tags, GroupingConfig())) == 2


def test_at_most_max_persons_persons_the_strongest_first():
    heatmaps, tags = maps([(0, 2, 2, 0.5, 0.0), (0, 8, 2, 0.9, 3.0), (0, 13, 2, 0.7, 6.0),
                           (1, 2, 9, 0.6, 9.0)])
    poses = group_poses(heatmaps, tags, GroupingConfig(max_persons=2))
    assert sorted(p.keypoints[0, 2] for p in poses) == pytest.approx([0.7, 0.9])


def test_joints_shift_a_quarter_pixel_towards_the_higher_neighbour():
    heatmaps, tags = maps([(0, 5, 5, 0.9, 0.0)])
    heatmaps[0, 5, 6] = 0.5  # right neighbour higher than the left
    heatmaps[0, 4, 5] = 0.3  # upper neighbour higher than the lower
    (pose,) = group_poses(heatmaps, tags, GroupingConfig())
    assert pose.keypoints[0].tolist() == pytest.approx([5.25, 4.75, 0.9])


def test_taylor_subpixel_finds_two_persons_gaussian_joints_exactly():
    """subpixel="taylor": each candidate of a multi-person map gets DARK's Newton step, which
    is exact on a Gaussian; the quarter shift is off by up to a quarter pixel."""
    centres = [(4.3, 5.6), (11.7, 9.2)]
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32),
                            torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    heatmaps = torch.zeros(1, SIZE, SIZE)
    tags = torch.zeros(1, SIZE, SIZE, 1)
    for n, (x, y) in enumerate(centres):
        heatmaps[0] = torch.maximum(heatmaps[0], torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2))
        tags[0, round(y), round(x)] = 3.0 * n
    found = {sub: sorted(p.keypoints[0, :2].tolist() for p in group_poses(
        heatmaps, tags, GroupingConfig(joint_order=(0,), subpixel=sub)))
        for sub in ("quarter", "taylor")}
    assert np.abs(np.array(found["taylor"]) - np.array(centres)).max() < 0.02
    quarter_error = np.abs(np.array(found["quarter"]) - np.array(centres)).max()
    assert 0.04 < quarter_error <= 0.25


def test_a_batch_is_grouped_image_by_image():
    one = maps([(0, 3, 3, 0.9, 0.0), (0, 10, 3, 0.8, 5.0)])
    two = maps([(2, 7, 7, 0.4, 1.0)])
    heatmaps = torch.stack([one[0], two[0], torch.zeros(3, SIZE, SIZE)])
    tags = torch.stack([one[1], two[1], torch.zeros(3, SIZE, SIZE, 1)])
    grouped = group_batch(heatmaps, tags, GroupingConfig())
    assert [len(poses) for poses in grouped] == [2, 1, 0]
    assert grouped[1][0].keypoints[2].tolist() == pytest.approx([7, 7, 0.4])
    with pytest.raises(ValueError, match="do not fit"):
        group_batch(heatmaps, tags[:, :2], GroupingConfig())
