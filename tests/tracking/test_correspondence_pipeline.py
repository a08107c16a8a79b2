"""Correspondence tracking: affinity read-back, Eq. 6, recovery, duplicate removal, merging.

The networks are replaced by fakes whose answers are known: the estimator puts a fixed
joint pattern in every crop, and the correspondence "network" knows the scene's motion
(every person moves VELOCITY px right per frame; a frame's index is written into its
top-left pixel), so propagated joints land exactly where the persons are.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vidpose.data_modules.transforms import IMAGENET_MEAN, IMAGENET_STD
from vidpose.errors import ConfigError
from vidpose.keypoints import POSETRACK18
from vidpose.nn.correspondence import CALIBRATION_LEVELS, AffinityCalibration
from vidpose.pose import Frame, Pose
from vidpose.tracking.affinity import Affinities
from vidpose.tracking.boxes import GroundTruthBoxes
from vidpose.tracking.correspondence import correspondence_similarity
from vidpose.tracking.pipeline import CorrespondencePipeline, PipelineConfig, track_video
from vidpose.tracking.recovery import RecoveryConfig, propagated_boxes

K = POSETRACK18.num_keypoints
H, W = 120, 160
VELOCITY = 6.0
STRIDE = 4
# The fake estimator's joints, crop pixels of a 64x48 crop: a 5-wide grid spanning exactly the
# person box a 24x48 box is cropped from (aspect 0.75, padding 1.25), so that a box around a
# pose's joints gives back the same pose.
PATTERN = np.stack([23.5 + 6.4 * ((np.arange(K) % 5) - 2),
                    31.5 + 51.2 / 3 * ((np.arange(K) // 5) - 1.5)], -1)


class FakeEstimator:
    schema = POSETRACK18
    input_size = (64, 48)

    def locate(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(crops)
        scores = torch.full((n, K), 0.9)
        scores[:, -1] = 0.1  # one weak joint: the joint threshold writes it as 0
        return torch.from_numpy(PATTERN).float()[None].repeat(n, 1, 1), scores


def _frame_number(image: torch.Tensor) -> int:
    value = image[0, 0, 0].item() * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    return int(round(value * 255))


# The fake's maps at a correct match: refined values spread over [0.3, 0.9]; its Siamese
# maps are the refined ones times 5/9 (peak 0.5), and its calibration says so.
_REFINED_QUANTILES = tuple(0.3 + 0.6 * CALIBRATION_LEVELS)
FAKE_CALIBRATION = AffinityCalibration(
    joint_siamese=tuple(v * 5 / 9 for v in _REFINED_QUANTILES), joint_refined=_REFINED_QUANTILES,
    person_siamese=tuple(v * 5 / 9 for v in _REFINED_QUANTILES), person_refined=_REFINED_QUANTILES)


class FakeNet(nn.Module):
    """Propagates joints by the scene's known motion between the two frames."""

    stride = STRIDE
    calibration = FAKE_CALIBRATION

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(images), 1, H // STRIDE, W // STRIDE)

    def propagate(self, image1, image2, keypoints1, refined=True, features1=None, features2=None):
        self.calls += 1
        shift = VELOCITY * (_frame_number(image2) - _frame_number(image1))
        num_p = len(keypoints1)
        maps = torch.zeros(num_p, K, H // STRIDE, W // STRIDE)
        xy = keypoints1[..., :2].clone()
        xy[..., 0] += shift
        cells = torch.floor((xy + 0.5) / STRIDE).long()
        cells[..., 0].clamp_(0, W // STRIDE - 1)
        cells[..., 1].clamp_(0, H // STRIDE - 1)
        for p in range(num_p):
            for j in range(K):
                if keypoints1[p, j, 2] > 0:
                    maps[p, j, cells[p, j, 1], cells[p, j, 0]] = 1.0
        # Peak 0.9 (refined) or 0.5 (Siamese), two thirds of it in the 8 cells around.
        spread = torch.nn.functional.max_pool2d(maps, 3, stride=1, padding=1)
        return (0.9 if refined else 0.5) * torch.maximum(maps, spread * 2 / 3)


def image_for(t: int) -> np.ndarray:
    image = np.full((H, W, 3), 90, np.uint8)
    image[0, 0, 0] = t
    return image


def frame_at(t: int, boxes: list[list[float]]) -> Frame:
    poses = []
    for box in boxes:
        pose = Pose(np.zeros((K, 3)), box=np.array(box, dtype=float))
        pose.keypoints[0] = [box[0] + 1, box[1] + 1, 1]  # labelled, so ground truth uses the box
        poses.append(pose)
    return Frame(image_id=t, file_name=f"{t}.jpg", width=W, height=H, poses=poses, video="v",
                 frame_index=t)


def person_box(x0: float, t: int) -> list[float]:
    return [x0 + VELOCITY * t, 40.0, 24.0, 48.0]


def run(frames: list[Frame], **settings) -> tuple[list[Frame], FakeNet]:
    net = FakeNet()
    cfg = PipelineConfig(**{"track_threshold": 0.5, **settings})
    pipeline = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(), cfg, net, (H, W))
    return list(track_video(pipeline, ((f, image_for(f.frame_index)) for f in frames))), net


def ids(frame: Frame) -> list[int]:
    return sorted(p.track_id for p in frame.poses)


def test_affinities_read_back_peaks_and_values_in_image_pixels():
    maps = np.zeros((1, 2, 3, 4))
    maps[0, 0, 1, 2] = 0.8
    maps[0, 1, 2, 0] = 0.6
    to_image = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]])  # input -> image: x2, half a pixel
    affinities = Affinities(maps, 4.0, to_image)
    points, values = affinities.peaks()
    # cell (2, 1) centre: input ((2.5)*4 - 0.5, (1.5)*4 - 0.5) = (9.5, 5.5) -> image (19.5, 11.5)
    np.testing.assert_allclose(points[0], [[19.5, 11.5], [2 * 1.5 + 0.5, 2 * 9.5 + 0.5]])
    np.testing.assert_allclose(values[0], [0.8, 0.6])
    read = affinities.at(np.array([[[19.5, 11.5], [3.5, 19.5]], [[0.0, 0.0], [3.5, 19.5]]]))
    np.testing.assert_allclose(read, [[[0.8, 0.6], [0.0, 0.6]]])


def test_eq6_averages_affinities_above_the_threshold_over_detected_joints():
    values = np.array([[[0.9, 0.2, 0.5, 0.7]]])  # 1 track, 1 pose, 4 joints
    detected = np.array([[True, True, True, False]])
    # Joints 0 and 2 pass tau = 0.3; joint 3 is not detected; |J_P| = 3.
    np.testing.assert_allclose(correspondence_similarity(values, detected, 0.3), [[(0.9 + 0.5) / 3]])
    assert correspondence_similarity(values, np.zeros((1, 4), bool), 0.3)[0, 0] == 0.0


def test_persons_keep_their_tracks_and_weak_joints_are_written_zero():
    frames = [frame_at(t, [person_box(10, t), person_box(90, t)]) for t in range(4)]
    tracked, _ = run(frames)
    assert all(ids(f) == [0, 1] for f in tracked)
    left = [min(f.poses, key=lambda p: p.box[0]).track_id for f in tracked]
    assert len(set(left)) == 1
    assert all(p.keypoints[-1, 2] == 0.0 and p.keypoints[0, 2] == pytest.approx(0.9)
               for f in tracked for p in f.poses)


def test_recovery_fills_a_missed_detection_and_keeps_the_identity():
    # The detector misses the right-hand person at frame 2.
    frames = [frame_at(t, [person_box(10, t)] + ([] if t == 2 else [person_box(90, t)]))
              for t in range(5)]
    without, _ = run(frames)
    assert len(without[2].poses) == 1
    assert len({p.track_id for f in without for p in f.poses}) == 3  # the right person restarts
    with_recovery, _ = run(frames, recovery=True)
    assert len(with_recovery[2].poses) == 2
    recovered = [p for p in with_recovery[2].poses if p.extra.get("recovered")]
    assert len(recovered) == 1
    # Propagated joints box the person where it truly is; the estimate lands on it.
    joints = recovered[0].keypoints[:-1, :2]
    centre = (joints.min(0) + joints.max(0)) / 2
    assert abs(centre[0] - (90 + VELOCITY * 2 + 12)) < 3 and abs(centre[1] - 64) < 3
    assert len({p.track_id for f in with_recovery for p in f.poses}) == 2


def test_duplicate_detections_are_removed_only_when_asked():
    # Frame 2 has a second, shifted box on the left person (a detector duplicate).
    frames = [frame_at(t, [person_box(10, t), person_box(90, t)]
                       + ([[10 + VELOCITY * 2 + 3, 44.0, 24.0, 48.0]] if t == 2 else []))
              for t in range(4)]
    kept, _ = run(frames, remove_duplicates=False, oks_nms_thr=1.0)
    removed, _ = run(frames, remove_duplicates=True, oks_nms_thr=1.0)
    assert len(kept[2].poses) == 3 and len(removed[2].poses) == 2
    assert ids(removed[2]) == [0, 1]


def test_track_merging_joins_a_broken_track():
    # The right person is missed for two frames: without recovery its track breaks.
    frames = [frame_at(t, [person_box(10, t)] + ([] if t in (2, 3) else [person_box(90, t)]))
              for t in range(6)]
    broken, _ = run(frames)
    assert len({p.track_id for f in broken for p in f.poses}) == 3
    merged, _ = run(frames, merge=True, merge_threshold=0.5, merge_max_gap=5)
    assert len({p.track_id for f in merged for p in f.poses}) == 2
    right = [p.track_id for f in merged for p in f.poses if p.box[0] > 60]
    assert len(set(right)) == 1


def test_tracks_sharing_a_frame_are_never_merged():
    frames = [frame_at(t, [person_box(10, t), person_box(90, t)]) for t in range(3)]
    merged, _ = run(frames, merge=True, merge_threshold=0.0)
    assert all(ids(f) == [0, 1] for f in merged)


def test_refined_or_siamese_maps_are_read_as_configured():
    frames = [frame_at(t, [person_box(10, t)]) for t in range(3)]
    # The fake's Siamese maps peak at 0.5: above an affinity threshold of 0.6 applied as set
    # nothing counts, so without the refinement every frame starts a new track.
    siamese, _ = run(frames, refinement=False, affinity_threshold=0.6, calibrated_thresholds=False)
    refined, _ = run(frames, refinement=True, affinity_threshold=0.6)
    assert len({p.track_id for f in siamese for p in f.poses}) == 3
    assert len({p.track_id for f in refined for p in f.poses}) == 1
    # Mapped onto the Siamese maps' scale, the same thresholds keep the track.
    calibrated, _ = run(frames, refinement=False, affinity_threshold=0.6)
    assert len({p.track_id for f in calibrated for p in f.poses}) == 1


def test_thresholds_on_siamese_maps_are_the_calibrated_ones():
    settings = {"affinity_threshold": 0.6, "track_threshold": 0.5, "recovery": True}
    siamese = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                                     PipelineConfig(refinement=False, **settings), FakeNet(), (H, W))
    # 0.6 and 0.5 pass the refined maps' top 50% and 66.7% of correct matches; the same
    # shares of the Siamese maps' (5/9 of the refined) lie above 5/9 of each.
    assert siamese.thresholds.affinity == pytest.approx(0.6 * 5 / 9)
    assert siamese.thresholds.track == pytest.approx(0.5 * 5 / 9)
    assert siamese.tracker.cue.affinity_threshold == siamese.thresholds.affinity
    assert siamese.tracker.threshold == siamese.thresholds.track
    refined = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                                     PipelineConfig(refinement=True, **settings), FakeNet(), (H, W))
    assert (refined.thresholds.affinity, refined.thresholds.track) == (0.6, 0.5)
    assert refined.tracker.cue.affinity_threshold == 0.6 and refined.tracker.threshold == 0.5
    # Other cues' similarities are not affinities: their track threshold stays as set.
    oks = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                                 PipelineConfig(tracker="oks", refinement=False, **settings),
                                 FakeNet(), (H, W))
    assert oks.thresholds.affinity == pytest.approx(0.6 * 5 / 9) and oks.thresholds.track == 0.5


def test_siamese_maps_without_a_calibration_or_refined_maps_without_a_module_are_refused():
    class Uncalibrated(FakeNet):
        calibration = None

    with pytest.raises(ConfigError, match="calibrated_thresholds=false"):
        CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                               PipelineConfig(refinement=False), Uncalibrated(), (H, W))
    as_set = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                                    PipelineConfig(refinement=False, calibrated_thresholds=False),
                                    Uncalibrated(), (H, W))
    assert as_set.thresholds.affinity == PipelineConfig().affinity_threshold

    class SiameseOnly(FakeNet):
        refinement = None

    with pytest.raises(ConfigError, match="no refinement module"):
        CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(), PipelineConfig(),
                               SiameseOnly(), (H, W))


def test_settings_that_need_correspondences_refuse_to_run_without_them():
    with pytest.raises(ConfigError, match="correspondence"):
        CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(), PipelineConfig(), None)
    with pytest.raises(ConfigError, match="model.tracker"):
        PipelineConfig(tracker="iou_and_luck")
    plain = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                                   PipelineConfig(tracker="oks", recovery=False), None)
    frames = [frame_at(t, [person_box(10, t)]) for t in range(3)]
    out = list(track_video(plain, ((f, image_for(t)) for t, f in enumerate(frames))))
    assert all(ids(f) == [0] for f in out)


def test_recovery_boxes_keep_the_persons_size_when_joints_share_a_cell():
    maps = np.zeros((1, K, 3, 4))
    maps[0, :, 1, 2] = 0.9  # every joint propagated into one cell
    previous = Pose(np.ones((K, 3)), box=np.array([0.0, 0.0, 30.0, 60.0]), track_id=7)

    class Memory:
        def affinities(self, ids):
            return {7: (Affinities(maps, 4.0, np.array([[1.0, 0, 0], [0, 1.0, 0]])), 0)}

    boxes, scores = propagated_boxes(Memory(), [previous], RecoveryConfig())
    # The cell centre (9.5, 5.5) is the box centre; the size is the previous box's.
    np.testing.assert_allclose(boxes, [[9.5 - 15, 5.5 - 30, 30.0, 60.0]])
    np.testing.assert_allclose(scores, [0.9])


def test_trackers_that_read_no_correspondences_never_run_the_network():
    frames = [frame_at(t, [person_box(10, t)]) for t in range(3)]
    net = FakeNet()
    pipeline = CorrespondencePipeline(FakeEstimator(), GroundTruthBoxes(),
                                      PipelineConfig(tracker="oks"), net, (H, W))
    out = list(track_video(pipeline, ((f, image_for(t)) for t, f in enumerate(frames))))
    assert all(ids(f) == [0] for f in out)
    assert pipeline.propagator is None and pipeline.memory is None and net.calls == 0
