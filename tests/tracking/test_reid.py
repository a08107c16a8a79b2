"""The appearance (re-id) cue: descriptors by hand, running averages, persons swapping sides."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidpose.keypoints import POSETRACK18
from vidpose.pose import Pose
from vidpose.tracking.cues import make_cue
from vidpose.tracking.greedy import GreedyTracker
from vidpose.tracking.reid import ReIDCue, appearance_descriptors, histogram_intersection

BINS = (8, 4, 4)  # 128 HSV bins per half
# Pure red is HSV (0, 255, 255): hue bin 0, saturation bin 3, value bin 3 -> 0 * 16 + 3 * 4 + 3.
RED = 15
# Pure blue is HSV (120, 255, 255) in OpenCV's halved hue: hue bin 120 // 22.5 = 5 -> 95.
BLUE = 95


def _two_tone(top=(255, 0, 0), bottom=(0, 0, 255)) -> np.ndarray:
    """A 20 x 20 RGB image: ``top`` on rows 0-9, ``bottom`` on rows 10-19."""
    image = np.zeros((20, 20, 3), np.uint8)
    image[:10], image[10:] = top, bottom
    return image


def _boxed(box) -> Pose:
    return Pose(np.zeros((17, 3)), box=np.array(box, dtype=float))


def test_descriptor_by_hand_with_boxes_clipped_to_the_image():
    hsv = cv2.cvtColor(_two_tone(), cv2.COLOR_RGB2HSV)
    red_over_blue = np.zeros(256)
    red_over_blue[RED], red_over_blue[128 + BLUE] = 0.5, 0.5
    all_red = np.zeros(256)
    all_red[RED], all_red[128 + RED] = 0.5, 0.5
    keypoints = np.zeros((17, 3))
    keypoints[[0, 16]] = [[0, 1, 1], [19, 19, 1]]  # no box: the keypoints' box, rows 1-18
    poses = [_boxed([0, 0, 20, 20]), _boxed([-10, -5, 30, 30]), _boxed([0, 4, 20, 12]),
             _boxed([0, 0, 20, 10]), _boxed([100, 100, 10, 10]), _boxed([5, 5, 0, 8]),
             Pose(keypoints), _boxed([-30, -30, 25, 25])]
    descriptors = appearance_descriptors(hsv, poses, BINS)
    assert descriptors.shape == (8, 256)
    for i in (0, 1, 2, 6):  # halves split at row 10: red above, blue below
        np.testing.assert_allclose(descriptors[i], red_over_blue, err_msg=str(i))
    np.testing.assert_allclose(descriptors[3], all_red)  # rows 0-9 only: red in both halves
    # Outside the image (right/below or left/above), or of zero width: alike to nothing.
    assert not descriptors[[4, 5, 7]].any()
    np.testing.assert_allclose(histogram_intersection(descriptors[[0, 3, 4]], descriptors[[0, 3]]),
                               [[1.0, 0.5], [0.5, 1.0], [0.0, 0.0]])


def test_histogram_intersection_by_hand():
    a = np.array([[0.5, 0.5, 0.0]])
    b = np.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(histogram_intersection(a, b), [[0.5, 1.0, 0.0]])


@pytest.mark.parametrize("momentum", [0.7, 0.0])
def test_a_tracks_descriptor_is_a_running_average(momentum):
    cue = ReIDCue(BINS, momentum=momentum)
    pose = _boxed([0, 0, 20, 20])
    red, blue = _two_tone((255, 0, 0), (255, 0, 0)), _two_tone((0, 0, 255), (0, 0, 255))
    for image in (red, blue):  # the track is seen red, then blue
        cue.begin(image)
        cue.end([Pose(pose.keypoints, box=pose.box, track_id=4)])
    cue.begin(red)
    # The track is momentum red and 1 - momentum blue: a red pose shares the red part.
    np.testing.assert_allclose(cue.similarity([pose], {4: pose}), [[momentum]])


def test_persons_who_swap_sides_keep_their_ids(stage):
    """Two differently dressed persons change places between two frames: appearance follows
    them, while OKS and IoU (position only) swap their ids."""
    red = stage.person((220, 30, 30), (230, 200, 40), height=80, seed=1)
    blue = stage.person((40, 60, 220), (40, 170, 60), height=80, seed=2)
    scene = stage.background(200, 100, seed=3)
    frames = [stage.render(scene, [(red, 10, 10), (blue, 140, 10)]),
              stage.render(scene, [(red, 140, 10), (blue, 10, 10)])]
    ids = {}
    for name in ("reid", "oks", "iou"):
        tracker = GreedyTracker(make_cue(name, POSETRACK18.sigmas), 0.3)
        ids[name] = [[p.track_id for p in tracker.update(poses, image)] for image, poses in frames]
    assert ids["reid"] == [[0, 1], [0, 1]]  # poses listed red first in both frames
    assert ids["oks"] == ids["iou"] == [[0, 1], [1, 0]]


def test_reid_needs_images_and_sane_options():
    with pytest.raises(ValueError, match="needs each frame's image"):
        ReIDCue().begin(None)
    with pytest.raises(ValueError, match="RGB uint8"):
        ReIDCue().begin(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="bins"):
        ReIDCue(bins=(8, 0, 4))
    with pytest.raises(ValueError, match="momentum"):
        ReIDCue(momentum=1.0)
