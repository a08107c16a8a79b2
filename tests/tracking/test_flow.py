"""The optical-flow cue: pose warping by hand-made and by Farneback flow, and the cue in a tracker."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.keypoints import POSETRACK18
from vidpose.pose import Pose
from vidpose.tracking.cues import make_cue
from vidpose.tracking.flow import FlowCue, dense_flow, gray_frame, warp_pose
from vidpose.tracking.greedy import GreedyTracker

SIGMAS = POSETRACK18.sigmas


def _pose(x0: float, y0: float) -> Pose:
    """17 joints on a diagonal from (x0, y0); joints 3 and 4 (the ears) unlabelled."""
    keypoints = np.zeros((17, 3))
    keypoints[:, 0] = x0 + np.linspace(0, 100, 17)
    keypoints[:, 1] = y0 + np.linspace(0, 70, 17)
    keypoints[:, 2] = 0.9
    keypoints[3:5] = [[5.0, 6.0, 0.0], [7.0, 8.0, 0.0]]
    return Pose(keypoints, box=np.array([x0, y0, 100.0, 70.0]), score=0.8)


def test_warp_samples_the_flow_bilinearly_at_the_resized_joint():
    # At half resolution, flow x = 0.1 * column and y = -2: linear, so bilinear is exact.
    flow = np.zeros((60, 100, 2), np.float32)
    flow[..., 0] = 0.1 * np.arange(100)
    flow[..., 1] = -2.0
    pose = Pose(np.array([[21.0, 30.0, 1.0], [40.0, 50.0, 0.5]]), box=np.array([20, 30, 21, 21]))
    warped = warp_pose(pose, flow, scale=0.5)
    # Joint (21, 30) sits at column (21 + 0.5) * 0.5 - 0.5 = 10.25 of the flow: it moves by
    # 0.1 * 10.25 / 0.5 = 2.05 px in x and -2 / 0.5 = -4 px in y.
    np.testing.assert_allclose(warped.keypoints[0], [23.05, 26.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(warped.keypoints[1], [40.0 + 0.1 * 19.75 / 0.5, 46.0, 0.5], atol=1e-5)
    mean_move = [(2.05 + 0.1 * 19.75 / 0.5) / 2, -4.0]
    np.testing.assert_allclose(warped.box, [20 + mean_move[0], 30 + mean_move[1], 21, 21], atol=1e-5)
    np.testing.assert_array_equal(pose.keypoints[0], [21.0, 30.0, 1.0])  # the input is untouched


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("dx, dy", [(5, -3), (-8, 6)])
def test_a_shifted_texture_moves_the_joints_by_the_shift(stage, scale, dx, dy):
    image = stage.background(300, 220, seed=3)
    shifted = np.roll(image, (dy, dx), axis=(0, 1))
    flow = dense_flow(gray_frame(image, scale), gray_frame(shifted, scale))
    pose = _pose(80, 60)
    warped = warp_pose(pose, flow, scale)
    labelled = pose.keypoints[:, 2] > 0
    error = warped.keypoints[labelled, :2] - (pose.keypoints[labelled, :2] + [dx, dy])
    assert np.abs(error).max() < 1.0, error
    # Unlabelled (zero-score) joints are not moved; scores and person score are kept.
    np.testing.assert_array_equal(warped.keypoints[~labelled], pose.keypoints[~labelled])
    np.testing.assert_array_equal(warped.keypoints[:, 2], pose.keypoints[:, 2])
    assert warped.score == 0.8 and np.abs(warped.box - pose.box - [dx, dy, 0, 0]).max() < 1.0


def test_a_pose_without_labelled_joints_stays_put():
    pose = Pose(np.zeros((17, 3)), box=np.array([1.0, 2.0, 3.0, 4.0]))
    warped = warp_pose(pose, np.full((10, 10, 2), 5.0, np.float32))
    np.testing.assert_array_equal(warped.keypoints, pose.keypoints)
    np.testing.assert_array_equal(warped.box, pose.box)


def test_a_track_missed_for_a_frame_is_carried_on_by_the_flow(stage):
    """A person walking 20 px a frame is not detected in frame 1: the flow carries the track to
    where they are found in frame 2; plain OKS has lost them by then."""
    person = stage.person((220, 30, 30), (40, 60, 200), height=100, seed=7)
    scene = stage.background(400, 256, seed=8)
    frames = [stage.render(scene, [(person, 20 + 20 * t, 60)]) for t in range(3)]
    ids = {}
    for name in ("flow", "oks"):
        tracker = GreedyTracker(make_cue(name, SIGMAS), 0.3, max_age=2)
        ids[name] = [[p.track_id for p in tracker.update(poses if t != 1 else [], image)]
                     for t, (image, poses) in enumerate(frames)]
    assert ids["flow"] == [[0], [], [0]]
    assert ids["oks"] == [[0], [], [1]]


def test_flow_needs_images_of_one_size_and_the_sigmas():
    cue = FlowCue(SIGMAS)
    with pytest.raises(ValueError, match="needs each frame's image"):
        cue.begin(None)
    cue.begin(np.zeros((64, 80, 3), np.uint8))
    with pytest.raises(ValueError, match="frame size changed"):
        cue.begin(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        FlowCue(SIGMAS).begin(np.zeros((64, 80), np.uint8))
    with pytest.raises(ValueError, match="sigmas"):
        FlowCue(None)
    with pytest.raises(ValueError, match="scale"):
        FlowCue(SIGMAS, scale=1.5)
