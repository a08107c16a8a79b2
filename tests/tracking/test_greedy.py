"""The greedy tracker: hand-made cases, cues, duplicate removal, and ground-truth poses of
synthetic videos."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidpose.formats.posetrack import read_posetrack, write_posetrack_video
from vidpose.keypoints import POSETRACK18
from vidpose.metrics.posetrack import evaluate_posetrack
from vidpose.pose import Pose
from vidpose.tracking.cues import CUES, Cue, IoUCue, OKSCue, make_cue
from vidpose.tracking.flow import FlowCue
from vidpose.tracking.greedy import GreedyTracker
from vidpose.tracking.reid import ReIDCue
from vidpose.tracking.similarity import box_iou


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
        tracker = GreedyTracker("iou", 0.3, max_age=2)
        tracked = [dataclasses.replace(f, poses=tracker.update(f.poses)) for f in anonymous]
        # Written as predictions, the visibility flags serve as the joints' scores.
        write_posetrack_video(tmp_path / "pred" / f"{video}.json", tracked, video=video,
                              predictions=True)
    result = evaluate_posetrack(tmp_path / "gt", tmp_path / "pred")
    assert result.id_switches == 0 and result.mota[-1] == pytest.approx(100.0)


class FakeCue:
    """A cue that hands the tracker fixed similarity matrices and records what it was shown."""

    def __init__(self, matrices: list[np.ndarray]) -> None:
        self.matrices = list(matrices)
        self.images, self.offered, self.ended = [], [], []

    def begin(self, image):
        self.images.append(image)

    def similarity(self, poses, tracks):
        self.offered.append((len(poses), list(tracks)))
        return self.matrices.pop(0)

    def end(self, tracked):
        self.ended.append([p.track_id for p in tracked])


def test_a_cue_sees_each_frame_and_its_similarities_decide():
    cue = FakeCue([np.array([[0.1, 0.9], [0.8, 0.2], [0.2, 0.25]])])
    tracker = GreedyTracker(cue, threshold=0.3)
    images = [np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)]
    first = tracker.update([_pose(0), _pose(100)], images[0])
    second = tracker.update([_pose(0), _pose(100), _pose(300)], images[1])
    tracker.update([])  # no image: the cue is told so
    assert [p.track_id for p in first] == [0, 1]
    # Pose 0 is most like track 1, pose 1 like track 0; pose 2's best (0.25) is below 0.3.
    assert [p.track_id for p in second] == [1, 0, 2]
    assert cue.images[0] is images[0] and cue.images[1] is images[1] and cue.images[2] is None
    # Similarity is asked only when there are poses and tracks, tracks in dict (id) order.
    assert cue.offered == [(3, [0, 1])]
    assert cue.ended == [[0, 1], [1, 0, 2], []]


def test_a_cue_answering_the_wrong_shape_or_a_non_cue_is_refused():
    tracker = GreedyTracker(FakeCue([np.zeros((2, 2))]), 0.3)
    tracker.update([_pose(0)])
    with pytest.raises(ValueError, match=r"shape \(2, 2\) for 1 poses and 1 tracks"):
        tracker.update([_pose(0)])
    with pytest.raises(ValueError, match="name or a Cue"):
        GreedyTracker(0.5)


@pytest.mark.parametrize("remove, expected", [(True, [0, 1]), (False, [0, 1, 2])])
def test_duplicate_detections_of_a_matched_person_are_dropped(remove, expected):
    tracker = GreedyTracker(make_cue("oks", POSETRACK18.sigmas), 0.3, remove_duplicates=remove)
    tracker.update([_pose(0)])
    # Two near-identical detections of track 0's person and one person far away.
    poses = [_pose(1), _pose(1.5), _pose(300)]
    tracked = tracker.update(poses)
    assert [p.track_id for p in tracked] == expected
    if remove:
        assert tracked[0].keypoints[0, 0] == poses[0].keypoints[0, 0]  # the closer one is kept
        assert tracked[1].keypoints[0, 0] == poses[2].keypoints[0, 0]
    else:  # the duplicate starts a track of its own
        assert tracked[1].keypoints[0, 0] == poses[1].keypoints[0, 0]


def test_the_cue_sees_the_frame_without_its_duplicates():
    cue = FakeCue([np.array([[0.9], [0.7], [0.1]])])
    tracker = GreedyTracker(cue, 0.3, remove_duplicates=True)
    tracker.update([_pose(0)])
    assert [p.track_id for p in tracker.update([_pose(0), _pose(1), _pose(300)])] == [0, 1]
    assert cue.ended == [[0], [0, 1]]


def test_make_cue_builds_the_table_rows_and_names_the_known_ones():
    assert tuple(CUES) == ("oks", "flow", "reid", "correspondence", "iou")
    assert isinstance(make_cue("iou"), IoUCue)
    assert isinstance(make_cue("oks", POSETRACK18.sigmas), OKSCue)
    flow = make_cue("flow", POSETRACK18.sigmas, scale=0.25)
    assert isinstance(flow, FlowCue) and flow.scale == 0.25
    reid = make_cue("reid", bins=(4, 2, 2), momentum=0.5)
    assert isinstance(reid, ReIDCue) and (reid.bins, reid.momentum) == ((4, 2, 2), 0.5)
    assert all(isinstance(c, Cue) for c in (flow, reid, make_cue("iou")))
    with pytest.raises(ValueError, match="'optical' is not one of"):
        make_cue("optical")
    with pytest.raises(ValueError, match="sigmas"):
        make_cue("flow")


def test_string_and_cue_trackers_agree():
    frames = [[_pose(0), _pose(100)], [_pose(103), _pose(4)], [_pose(8), _pose(106), _pose(200)]]
    for name, cue in (("iou", IoUCue()), ("oks", OKSCue(POSETRACK18.sigmas))):
        by_name = GreedyTracker(name, 0.3, sigmas=POSETRACK18.sigmas)
        by_cue = GreedyTracker(cue, 0.3)
        for poses in frames:
            assert [p.track_id for p in by_name.update(poses)] == \
                [p.track_id for p in by_cue.update(poses)]
