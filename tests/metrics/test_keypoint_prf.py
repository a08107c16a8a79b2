"""Keypoint P/R/F1 with the 10 px closest-peak rule: hand-computed cases, peaks from maps,
a loop reference, de-duplication, bad input and the PoseTrack18 fixture."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.formats.posetrack import read_posetrack
from vidpose.metrics.keypoint_prf import KeypointPRF, keypoint_match_counts, peaks_from_maps
from vidpose.targets import render_heatmaps


def _gt(*points_per_joint):
    """One image: gt (1, P, J, 3), person p's joint j at points_per_joint[j][p] (None: absent)."""
    persons = max(len(points) for points in points_per_joint)
    gt = torch.zeros(1, persons, len(points_per_joint), 3, dtype=torch.float64)
    for j, points in enumerate(points_per_joint):
        for p, point in enumerate(points):
            if point is not None:
                gt[0, p, j] = torch.tensor([*point, 2.0])
    return gt


def _peaks(*points_per_joint, slots: int = 4):
    """One image: peaks (1, J, slots, 3), score 1 for the given points, padding 0."""
    peaks = torch.zeros(1, len(points_per_joint), slots, 3, dtype=torch.float64)
    for j, points in enumerate(points_per_joint):
        for m, point in enumerate(points):
            peaks[0, j, m] = torch.tensor([*point, 1.0])
    return peaks


def _compute(peaks, gt, num_joints=2, **kwargs):
    metric = KeypointPRF(num_joints, **kwargs)
    metric.update(peaks, gt, torch.arange(gt.shape[0]))
    return metric.compute()


@pytest.mark.parametrize("offset, true", [((9.9, 0.0), True), ((10.1, 0.0), False),
                                          ((0.0, -10.0), True),    # the radius itself counts
                                          ((6.0, 8.0), True),      # Euclidean: 3-4-5 x 2
                                          ((7.2, 7.2), False)])    # 10.18 px, though 7.2 per axis
def test_one_person_one_joint_within_ten_pixels(offset, true):
    gt = _gt([(50.0, 40.0)], [])
    peaks = _peaks([(50.0 + offset[0], 40.0 + offset[1])], [])
    result = _compute(peaks, gt)
    expected = 100.0 if true else 0.0
    assert (result["precision"], result["recall"], result["f1"]) == (expected, expected, expected)
    assert result["per_joint_recall"][0] == expected
    # Joint 1 has neither ground truth nor peaks: undefined, not 0.
    assert math.isnan(result["per_joint_precision"][1])
    assert math.isnan(result["per_joint_recall"][1])


def test_two_peaks_near_one_keypoint_give_one_true_and_one_false_positive():
    gt = _gt([(10.0, 10.0)], [])
    peaks = _peaks([(13.0, 10.0), (10.0, 15.0)], [])   # 3 px (closest) and 5 px
    result = _compute(peaks, gt)
    assert result["precision"] == 50.0
    assert result["recall"] == 100.0
    assert result["f1"] == pytest.approx(2 * 50 * 100 / 150)


def test_a_missing_prediction_is_a_false_negative():
    gt = _gt([(10.0, 10.0), (80.0, 10.0)], [])
    peaks = _peaks([(11.0, 10.0)], [])
    result = _compute(peaks, gt)
    assert result["precision"] == 100.0
    assert result["recall"] == 50.0
    assert result["f1"] == pytest.approx(200 / 3)


def test_no_peaks_at_all_gives_zero_recall_and_f1():
    result = _compute(torch.zeros(1, 2, 0, 3), _gt([(10.0, 10.0)], []))
    assert result["recall"] == 0.0 and result["f1"] == 0.0
    assert math.isnan(result["precision"])


def test_two_keypoints_sharing_their_closest_peak_make_it_true_once():
    gt = _gt([(0.0, 0.0), (4.0, 0.0)], [])
    peaks = _peaks([(2.0, 0.0), (30.0, 0.0)], [])
    counts = keypoint_match_counts(peaks, gt)
    assert counts[0, :, 0].tolist() == [2, 2, 1, 2]   # GT found, GT, true peaks, peaks
    result = _compute(peaks, gt)
    assert (result["recall"], result["precision"]) == (100.0, 50.0)


def test_only_the_closest_peak_is_the_match():
    # The closest peak is 12 px away, another at 9 px belongs to another joint type.
    gt = _gt([(0.0, 0.0)], [(100.0, 100.0)])
    peaks = _peaks([(12.0, 0.0)], [(9.0, 0.0), (100.0, 100.0)])
    result = _compute(peaks, gt)
    assert result["per_joint_recall"].tolist() == [0.0, 100.0]
    assert result["per_joint_precision"].tolist() == [0.0, 50.0]
    assert result["recall"] == 50.0 and result["precision"] == pytest.approx(100 / 3)


def test_pooled_and_per_joint_counts_over_a_batch():
    gt = torch.cat([_gt([(0.0, 0.0), (50.0, 0.0)], [(0.0, 50.0), None]),
                    _gt([(20.0, 20.0), None], [(70.0, 70.0), (90.0, 90.0)])])
    peaks = torch.cat([_peaks([(1.0, 0.0)], [(0.0, 52.0), (40.0, 40.0)]),
                       _peaks([(20.0, 35.0), (21.0, 21.0)], [(71.0, 71.0), (89.0, 91.0)])])
    result = _compute(peaks, gt)
    # Joint 0: GT 3, found 2 (image 0 person 0, image 1); peaks 3, true 2.
    # Joint 1: GT 3, found 3; peaks 4, true 3.
    assert result["per_joint_recall"].tolist() == pytest.approx([200 / 3, 100.0])
    assert result["per_joint_precision"].tolist() == pytest.approx([200 / 3, 75.0])
    assert result["recall"] == pytest.approx(500 / 6)
    assert result["precision"] == pytest.approx(500 / 7)
    p, r = 500 / 7, 500 / 6
    assert result["f1"] == pytest.approx(2 * p * r / (p + r))


def test_unannotated_joints_are_left_out():
    gt = _gt([(0.0, 0.0)], [])
    peaks = _peaks([(0.0, 0.0)], [(5.0, 5.0), (9.0, 9.0)])   # peaks on a never-labelled joint
    assert _compute(peaks, gt)["precision"] == pytest.approx(100 / 3)
    result = _compute(peaks, gt, annotated_mask=[True, False])
    assert result["precision"] == 100.0 and result["recall"] == 100.0
    assert math.isnan(result["per_joint_precision"][1])


def _reference_counts(peaks: np.ndarray, gt: np.ndarray, radius: float) -> np.ndarray:
    """The rule written out with loops, one image and joint at a time."""
    batch, joints = peaks.shape[:2]
    counts = np.zeros((batch, 4, joints), dtype=np.int64)
    for b in range(batch):
        for j in range(joints):
            points = peaks[b, j][peaks[b, j, :, 2] > 0, :2]
            truths = gt[b, :, j][gt[b, :, j, 2] > 0, :2]
            true_peaks = set()
            for truth in truths:
                if len(points):
                    d = np.linalg.norm(points - truth, axis=1)
                    if d.min() <= radius:
                        counts[b, 0, j] += 1
                        true_peaks.add(int(d.argmin()))
            counts[b, 1:, j] = len(truths), len(true_peaks), len(points)
    return counts


def test_vectorised_counts_equal_the_loop_reference():
    generator = torch.Generator().manual_seed(3)
    gt = torch.rand(3, 5, 4, 3, generator=generator, dtype=torch.float64) * 40
    gt[..., 2] = (torch.rand(3, 5, 4, generator=generator) > 0.3).double()
    peaks = torch.rand(3, 4, 6, 3, generator=generator, dtype=torch.float64) * 40
    peaks[..., 2] = (torch.rand(3, 4, 6, generator=generator) > 0.4).double()
    counts = keypoint_match_counts(peaks, gt, 8.0)
    expected = _reference_counts(peaks.numpy(), gt.numpy(), 8.0)
    assert counts.tolist() == expected.tolist()
    assert expected[:, 0].sum() > 0 and (expected[:, 0] < expected[:, 1]).any()
    assert (expected[:, 2] < expected[:, 3]).any()


def test_ground_truth_as_peaks_gives_100():
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(4, 6, 17, 3, generator=generator, dtype=torch.float64) * 200
    gt[..., 2] = (torch.rand(4, 6, 17, generator=generator) > 0.2).double() * 2
    peaks = gt.transpose(1, 2).clone()   # every labelled keypoint becomes a peak of its joint
    result = _compute(peaks, gt, num_joints=17)
    assert (result["precision"], result["recall"], result["f1"]) == (100.0, 100.0, 100.0)


def test_peaks_from_rendered_maps_find_every_person():
    gt = _gt([(10.0, 12.0), (40.0, 30.0), (25.0, 5.0)], [(33.0, 20.0), None, None])
    maps = render_heatmaps(gt[0], (48, 64), sigma=2.0)   # (J, h, w), persons merged by max
    # The first person's joint 0 weaker than the others'.
    weak_first = 0.8 * render_heatmaps(gt[0, :1], (48, 64), sigma=2.0)[0]
    maps[0] = torch.maximum(render_heatmaps(gt[0, 1:], (48, 64), sigma=2.0)[0], weak_first)
    maps = maps.unsqueeze(0)
    peaks = peaks_from_maps(maps, threshold=0.3, max_peaks=5)
    assert peaks.shape == (1, 2, 5, 3)
    # Strongest first, then padding (0, 0, 0).
    assert peaks[0, 0, :, 2].tolist() == pytest.approx([1.0, 1.0, 0.8, 0.0, 0.0])
    found = sorted(map(tuple, peaks[0, 0, :3, :2].tolist()))
    assert found == [(10.0, 12.0), (25.0, 5.0), (40.0, 30.0)]
    assert peaks[0, 1, 0].tolist() == pytest.approx([33.0, 20.0, 1.0])
    assert peaks[0, 1, 1:].abs().sum() == 0
    result = _compute(peaks, gt)
    assert (result["precision"], result["recall"]) == (100.0, 100.0)


def test_peaks_from_maps_threshold_stride_and_max_peaks():
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, 1, 1], maps[0, 0, 6, 6], maps[0, 0, 1, 6] = 0.9, 0.5, 0.7   # 0.5 is not above 0.5
    peaks = peaks_from_maps(maps, threshold=0.5, max_peaks=3, stride=4.0)
    expected = torch.tensor([[4.0, 4.0, 0.9], [24.0, 4.0, 0.7], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(peaks[0, 0], expected)
    strongest = peaks_from_maps(maps, threshold=0.1, max_peaks=1)
    torch.testing.assert_close(strongest[0, 0], torch.tensor([[1.0, 1.0, 0.9]]))
    with pytest.raises(ValueError, match=">= 0"):
        peaks_from_maps(maps, threshold=-0.1)


def test_repeated_ids_count_once_and_merged_states_equal_one_metric():
    gt = torch.cat([_gt([(0.0, 0.0)], [(5.0, 5.0)]), _gt([(0.0, 0.0)], [(5.0, 5.0)])])
    peaks = torch.cat([_peaks([(0.0, 0.0)], [(5.0, 5.0)]), _peaks([(50.0, 0.0)], [(5.0, 5.0)])])
    single = KeypointPRF(2)
    single.update(peaks, gt, torch.tensor([7, 8]))
    expected = single.compute()
    assert expected["recall"] == 75.0
    # Rank 0 sees image 7, rank 1 sees image 8 and image 7 again (sampler padding).
    ranks = [KeypointPRF(2), KeypointPRF(2)]
    ranks[0].update(peaks[:1], gt[:1], torch.tensor([7]))
    ranks[1].update(peaks[[1, 0]], gt[[1, 0]], torch.tensor([8, 7]))
    ranks[0].merge_state(ranks[1])
    merged = ranks[0].compute()
    assert merged["recall"] == expected["recall"] and merged["precision"] == expected["precision"]
    assert torch.equal(merged["per_joint_f1"], expected["per_joint_f1"])


def test_nothing_updated_gives_nan():
    metric = KeypointPRF(3)
    with pytest.warns(UserWarning, match="before the ``update``"):
        result = metric.compute()
    assert math.isnan(result["f1"]) and result["per_joint_recall"].isnan().all()


def test_bad_input_is_refused():
    metric = KeypointPRF(2)
    gt, peaks = _gt([(0.0, 0.0)], []), _peaks([], [])
    with pytest.raises(ValueError, match=r"peaks \(B, 2, M, 3\)"):
        metric.update(peaks[:, :1], gt, torch.tensor([0]))
    with pytest.raises(ValueError, match="int64"):
        metric.update(peaks, gt, torch.tensor([0], dtype=torch.int32))
    bad = gt.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        metric.update(peaks, bad, torch.tensor([0]))
    with pytest.raises(ValueError, match="annotated_mask"):
        KeypointPRF(2, annotated_mask=[True])


def test_posetrack18_ground_truth_as_peaks_gives_100_and_shifted_peaks_0(fixtures):
    root = fixtures / "posetrack18"
    dataset = read_posetrack(root / "annotations" / "val", root, outside_tolerance=30)
    frames = [f for f in dataset.frames if f.is_labeled and f.poses]
    persons = max(len(f.poses) for f in frames)
    joints = dataset.schema.num_keypoints
    gt = torch.zeros(len(frames), persons, joints, 3, dtype=torch.float64)
    for i, frame in enumerate(frames):
        gt[i, :len(frame.poses)] = torch.from_numpy(np.stack([p.keypoints for p in frame.poses]))
    peaks = gt.transpose(1, 2).clone()
    ids = torch.tensor([f.image_id for f in frames])
    metric = KeypointPRF(joints, annotated_mask=dataset.schema.annotated_mask)
    metric.update(peaks, gt, ids)
    assert metric.compute()["f1"] == 100.0
    peaks[..., 0] += 10.5
    metric.reset()
    metric.update(peaks, gt, ids)
    assert metric.compute()["recall"] == 0.0
