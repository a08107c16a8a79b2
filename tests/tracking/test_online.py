"""The online top-down pipeline: IoU memory association, per-person memories, track ids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.callbacks.pose_memory_write import MemoryWritePolicy
from vidpose.codec import HeatmapCodec
from vidpose.config import compose
from vidpose.errors import ConfigError
from vidpose.formats.detections import write_detections
from vidpose.keypoints import POSETRACK18
from vidpose.pose import Frame, Pose
from vidpose.targets import render_heatmaps
from vidpose.tracking.boxes import DetectionFileBoxes, DetectorBoxes, GroundTruthBoxes
from vidpose.tracking.online import OnlineTopDown, TrackingConfig, track_video

K = POSETRACK18.num_keypoints


class FakeEstimator:
    """Heatmaps with every joint at the crop centre; F~ filled with the crop's memory length,
    so a test can see what each person read."""

    schema = POSETRACK18
    codec = HeatmapCodec((64, 48), stride=4, sigma=1.5)

    def __init__(self, capacity: int = 3) -> None:
        self.policy = MemoryWritePolicy(capacity=capacity, replacement=False)
        self.reads: list[list[int]] = []
        self.crowded: list[bool] = []

    def estimate(self, crops, memories, crowded):
        n = len(crops)
        centre = torch.tensor([[5.75, 7.75, 1.0]]).repeat(K, 1)  # (input centre) / stride
        heatmaps = render_heatmaps(centre[None], (16, 12), 1.5)[None].repeat(n, 1, 1, 1)
        lengths = [0 if m is None else len(m) for m in memories]
        self.reads.append(lengths)
        self.crowded.append(crowded)
        enhanced = torch.tensor(lengths, dtype=torch.float32)[:, None, None, None].expand(n, 8, 2, 2)
        return heatmaps, enhanced.clone()


def frame_with(boxes: list[list[float]], index: int) -> Frame:
    poses = [Pose(np.zeros((K, 3)), box=np.array(b, dtype=float)) for b in boxes]
    for pose, box in zip(poses, boxes):  # a labelled keypoint so that the box is used
        pose.keypoints[0] = [box[0] + 1, box[1] + 1, 1]
    return Frame(image_id=index, file_name=f"{index}.jpg", width=200, height=120, poses=poses,
                 video="v", frame_index=index)


def run(frames: list[Frame], cfg: TrackingConfig, estimator=None, **kw):
    estimator = estimator or FakeEstimator()
    pipeline = OnlineTopDown(estimator, GroundTruthBoxes(), cfg)
    image = np.zeros((120, 200, 3), np.uint8)
    return list(track_video(pipeline, ((f, image) for f in frames), **kw)), estimator, pipeline


def test_iou_association_keeps_identities_and_reads_each_persons_memory():
    # Two persons drift right by 2 px per frame; a third appears at frame 2 far away.
    frames = [frame_with([[10 + 2 * t, 10, 30, 60], [100 + 2 * t, 20, 30, 60]]
                         + ([[160, 40, 30, 60]] if t >= 2 else []), t) for t in range(5)]
    tracked, estimator, pipeline = run(frames, TrackingConfig(association_iou=0.3))
    ids = [[p.track_id for p in f.poses] for f in tracked]
    assert ids[0] == [0, 1] and all(i[:2] == [0, 1] for i in ids)
    assert all(i[2] == 2 for i in ids[2:])
    # Memory lengths read: grows per person up to the capacity (3); the new person starts empty.
    assert estimator.reads == [[0, 0], [1, 1], [2, 2, 0], [3, 3, 1], [3, 3, 2]]
    # Decoded keypoints land at the crop centre: the box centre in image pixels.
    pose = tracked[0].poses[0]
    np.testing.assert_allclose(pose.keypoints[0, :2], [10 + 15, 10 + 30], atol=1.5)
    assert pose.box.tolist() == [10, 10, 30, 60]


def test_low_iou_starts_a_new_memory_and_gone_persons_are_forgotten():
    # The person jumps (IoU 0 with its last box): new identity, empty memory.
    frames = [frame_with([[10, 10, 30, 60]], 0), frame_with([[12, 10, 30, 60]], 1),
              frame_with([[120, 10, 30, 60]], 2), frame_with([[121, 10, 30, 60]], 3)]
    tracked, estimator, pipeline = run(frames, TrackingConfig(association_iou=0.5))
    assert [f.poses[0].track_id for f in tracked] == [0, 0, 1, 1]
    assert estimator.reads == [[0], [1], [0], [1]]
    # Identity 0 was last seen at frame 2 of 4 with max_age 1: its memory is gone.
    assert set(pipeline.memories) == {1}


def test_threshold_decides_between_continuing_and_a_new_memory():
    # Equal boxes shifted by half their width: IoU = 900 / 2700 = 1/3.
    frames = [frame_with([[0, 0, 30, 60]], 0), frame_with([[15, 0, 30, 60]], 1)]
    low, _, _ = run(frames, TrackingConfig(association_iou=0.3))
    high, _, _ = run(frames, TrackingConfig(association_iou=0.4))
    assert [f.poses[0].track_id for f in low] == [0, 0]
    assert [f.poses[0].track_id for f in high] == [0, 1]


def test_greedy_tracker_baseline_gives_ids_and_the_crowdedness_switch():
    frames = [frame_with([[10 + 2 * t, 10, 30, 60], [100, 20, 30, 60]], t) for t in range(3)]
    tracked, estimator, _ = run(frames, TrackingConfig(tracker="greedy_oks", crowd_threshold=1.5))
    assert [[p.track_id for p in f.poses] for f in tracked] == [[0, 1]] * 3
    assert estimator.crowded == [True] * 3  # 2 boxes per frame > 1.5 (running mean)


def _boxes(count: int, t: int) -> list[list[float]]:
    return [[10 + 30 * i + t, 10, 25, 60] for i in range(count)]


@pytest.mark.parametrize("rule, expected", [("running_mean", [True, True, False, False]),
                                            ("frame", [True, False, False, False])])
def test_the_coda_switch_counts_the_boxes_never_ground_truth_persons(rule, expected):
    # Ground truth: one person per frame. Boxes given (a detector's): 9, 1, 1, 1. The switch
    # (threshold 4) follows the boxes: running mean 9, 5, 3.7, 3 or this frame's count.
    truth = [frame_with([[10, 10, 25, 60]], t) for t in range(4)]
    detected = {t: np.array(_boxes(n, t), dtype=float) for t, n in enumerate([9, 1, 1, 1])}

    class DetectorBoxes:
        def __call__(self, frame, image):
            boxes = detected[frame.frame_index]
            return boxes, np.ones(len(boxes))

    estimator = FakeEstimator()
    pipeline = OnlineTopDown(estimator, DetectorBoxes(),
                             TrackingConfig(crowd_threshold=4.0, crowdedness=rule))
    image = np.zeros((120, 400, 3), np.uint8)
    list(track_video(pipeline, ((f, image) for f in truth)))
    assert estimator.crowded == expected


def test_bad_crowdedness_rule_is_refused():
    with pytest.raises(ConfigError, match="crowdedness"):
        TrackingConfig(crowdedness="ground_truth")


def test_duplicate_boxes_are_suppressed_and_write_once():
    frames = [frame_with([[10, 10, 30, 60], [10.5, 10, 30, 60]], t) for t in range(2)]
    tracked, estimator, pipeline = run(frames, TrackingConfig())
    assert [len(f.poses) for f in tracked] == [1, 1]
    assert sum(len(m.features) for m in pipeline.memories.values()) == 2


def test_bad_tracker_name_is_refused():
    with pytest.raises(ConfigError, match="tracker"):
        TrackingConfig(tracker="hungarian")


def test_detection_file_boxes_threshold_missing_frames_and_a_wrong_file(tmp_path,
                                                                        expect_input_error):
    path = tmp_path / "det.json"
    write_detections(path, {7: [Pose(np.zeros((17, 3)), box=[1, 2, 3, 4], score=0.9),
                                Pose(np.zeros((17, 3)), box=[5, 6, 7, 8], score=0.2)]})
    boxes = DetectionFileBoxes(path, min_score=0.5, frame_ids={7, 8})
    found, scores = boxes(Frame(7, "a.jpg", 10, 10), np.zeros((10, 10, 3), np.uint8))
    assert found.tolist() == [[1, 2, 3, 4]] and scores.tolist() == [0.9]
    # Frame 8: the detector found nobody there, so the results file does not name it.
    found, scores = boxes(Frame(8, "b.jpg", 10, 10), None)
    assert found.shape == (0, 4) and scores.shape == (0,)
    expect_input_error(lambda: DetectionFileBoxes(path, frame_ids={8, 9}), file=str(path),
                       record=None, field="image_id")


def test_unlabelled_frames_with_ground_truth_boxes_are_passed_over():
    # PoseTrack18 val labels every k-th frame: ground-truth boxes exist only there, and the
    # frames between must not make the persons "gone" (max_age 1).
    frames = [frame_with([[10 + 2 * t, 10, 30, 60]], t) for t in range(5)]
    for t in (1, 3):
        frames[t].is_labeled = False
        frames[t].poses = []
    tracked, estimator, pipeline = run(frames, TrackingConfig(max_age=1))
    assert [[p.track_id for p in f.poses] for f in tracked] == [[0], [], [0], [], [0]]
    assert estimator.reads == [[0], [1], [2]]


def test_detector_boxes_pass_the_threshold_to_the_detector():
    class Detector:
        def detect(self, images, score_threshold=None):
            cut = 0.3 if score_threshold is None else score_threshold
            scores = np.array([0.9, 0.25, 0.1])
            keep = scores >= cut
            return [(np.arange(12.0).reshape(3, 4)[keep], scores[keep])]

    frame = Frame(1, "a.jpg", 10, 10)
    assert DetectorBoxes(Detector())(frame, None)[1].tolist() == [0.9]  # the detector's default
    assert DetectorBoxes(Detector(), 0.2)(frame, None)[1].tolist() == [0.9, 0.25]


class WeakJointEstimator(FakeEstimator):
    """FakeEstimator whose joint 0 peaks at 0.3 (the others at 1)."""

    def estimate(self, crops, memories, crowded):
        heatmaps, enhanced = super().estimate(crops, memories, crowded)
        heatmaps[:, 0] *= 0.3
        return heatmaps, enhanced


@pytest.mark.parametrize("threshold, kept", [(0.0, True), (0.5, False)])
def test_joints_below_the_joint_threshold_are_dropped_and_zero_keeps_them(threshold, kept):
    frames = [frame_with([[10, 10, 30, 60]], 0)]
    tracked, _, _ = run(frames, TrackingConfig(joint_threshold=threshold), WeakJointEstimator())
    scores = tracked[0].poses[0].keypoints[:, 2]
    assert (scores[0] > 0) == kept and (scores[1:] > 0.5).all()


def test_memory_experiments_drop_low_confidence_joints_as_lighttrack_does():
    for name in ("memory_t3_simple_baseline_memory", "memory_t3_cpn_memory", "memory_t2_coda"):
        paper = compose(name, ["experiment.scale=paper"]).model.joint_threshold
        compact = compose(name, ["experiment.scale=compact"]).model.joint_threshold
        assert paper == 0.8  # LightTrack's keypoint drop with detector boxes
        assert 0 < compact < paper  # the compact models' scores are lower
