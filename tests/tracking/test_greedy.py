"""The greedy IoU/OKS tracker: hand-made cases and ground-truth poses of synthetic videos."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidpose.formats.posetrack import read_posetrack, write_posetrack_video
from vidpose.keypoints import POSETRACK18
from vidpose.metrics.posetrack import evaluate_posetrack
from vidpose.pose import Pose
from vidpose.tracking.greedy import GreedyTracker, box_iou, greedy_pairs, track_frames


def _pose(x: float, y: float = 50.0) -> Pose:
    keypoints = np.zeros((17, 3))
    keypoints[:, 0] = x + np.linspace(0, 20, 17)
    keypoints[:, 1] = y + np.linspace(0, 60, 17)
    keypoints[:, 2] = 2
    return Pose(keypoints, box=np.array([x, y, 20.0, 60.0]))


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    assert np.allclose(box_iou(a, b), [[50 / 150, 0.0, 1.0]])


def test_greedy_pairs_take_the_most_similar_first():
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert greedy_pairs(similarity, 0.3) == [(0, 0)]  # row 1's only free column is below 0.3
    assert greedy_pairs(similarity, 0.05) == [(0, 0), (1, 1)]


@pytest.mark.parametrize("similarity", ["iou", "oks"])
def test_slow_persons_keep_their_ids_and_newcomers_get_new_ones(similarity):
    tracker = GreedyTracker(similarity, 0.3, sigmas=POSETRACK18.sigmas)
    first = tracker.update([_pose(0), _pose(100)])
    second = tracker.update([_pose(102), _pose(2), _pose(300)])
    assert [p.track_id for p in first] == [0, 1]
    assert [p.track_id for p in second] == [1, 0, 2]


def test_a_track_survives_a_gap_shorter_than_max_age():
    for max_age, expected in ((1, 1), (3, 0)):
        tracker = GreedyTracker("iou", 0.3, max_age=max_age)
        tracker.update([_pose(0)])
        tracker.update([])
        tracker.update([])
        assert tracker.update([_pose(1)])[0].track_id == expected


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="similarity"):
        GreedyTracker("flow")
    with pytest.raises(ValueError, match="sigmas"):
        GreedyTracker("oks")


def test_ground_truth_poses_without_ids_are_tracked_without_switches(tiny_synth, tmp_path):
    gt = read_posetrack(tiny_synth / "posetrack18" / "annotations" / "val", check_images=False)
    for video, frames in gt.videos().items():
        write_posetrack_video(tmp_path / "gt" / f"{video}.json", frames, video=video)
        anonymous = [dataclasses.replace(f, poses=[dataclasses.replace(p, track_id=-1) for p in f.poses])
                     for f in frames]
        tracked = track_frames(anonymous, GreedyTracker("iou", 0.3, max_age=2))
        # Written as predictions, the visibility flags serve as the joints' scores.
        write_posetrack_video(tmp_path / "pred" / f"{video}.json", tracked, video=video,
                              predictions=True)
    result = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred")
    assert result.id_switches == 0 and result.mota[-1] == pytest.approx(100.0)
