"""Trackers on synthetic videos with crossings: identity switches of the OKS, flow and re-id cues.

Small cv2-drawn videos with known poses (the detections are the ground truth, so every
change of a person's track id is an identity switch):

* two differently dressed persons walk towards each other and cross, the far one partly
  hidden; between the frames where they pass, each takes the other's place, so OKS (position
  only) swaps them, and appearance does not;
* a runner crosses the frame at 24 px a frame (a quarter of their height) while a walker
  strolls below: OKS loses the runner every frame, the flow-warped poses follow them.
"""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.keypoints import POSETRACK18
from vidpose.tracking.cues import make_cue
from vidpose.tracking.greedy import GreedyTracker

FRAMES = 10


def id_switches(track_ids: list[list[int]]) -> list[int]:
    """Per person (the poses' order in every frame): how often their track id changes."""
    ids = np.asarray(track_ids)  # (T, persons)
    return (ids[1:] != ids[:-1]).sum(0).tolist()


def track(frames, cue: str) -> list[list[int]]:
    tracker = GreedyTracker(make_cue(cue, POSETRACK18.sigmas), threshold=0.3, max_age=1)
    return [[p.track_id for p in tracker.update(poses, image)] for image, poses in frames]


@pytest.fixture(scope="module")
def crossing(stage):
    """Red-yellow walks right, blue-green walks left in front of them, 6 px a frame each;
    they are 6 px apart at frame 4 and have changed places at frame 5."""
    red = stage.person((220, 30, 30), (230, 200, 40), height=80, seed=2)
    blue = stage.person((40, 60, 220), (40, 170, 60), height=80, seed=3)
    scene = stage.background(200, 110, seed=0)
    return [stage.render(scene, [(red, 10 + 6 * t, 15), (blue, 64 - 6 * t, 20)])
            for t in range(FRAMES)]


@pytest.fixture(scope="module")
def race(stage):
    """A runner 100 px tall at 24 px a frame above a walker at 3 px a frame."""
    runner = stage.person((200, 40, 200), (60, 60, 60), height=100, seed=4)
    walker = stage.person((40, 170, 60), (230, 200, 40), height=100, seed=5)
    scene = stage.background(480, 256, seed=6)
    return [stage.render(scene, [(runner, 5 + 24 * t, 10), (walker, 300 - 3 * t, 148)])
            for t in range(FRAMES)]


def test_appearance_keeps_identities_where_oks_swaps_them(crossing):
    oks = track(crossing, "oks")
    assert oks[4] == [0, 1] and oks[5:] == [[1, 0]] * 5  # swapped when they pass
    assert id_switches(oks) == [1, 1]
    assert id_switches(track(crossing, "reid")) == [0, 0]


def test_flow_follows_a_fast_person_that_oks_loses(race):
    oks = track(race, "oks")
    assert id_switches(oks) == [FRAMES - 1, 0]  # a new track for the runner every frame
    assert len({ids[0] for ids in oks}) == FRAMES
    assert id_switches(track(race, "flow")) == [0, 0]
