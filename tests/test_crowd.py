"""Crowdedness per video (persons per labelled frame), the crowd subset and video subsets."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.crowd import crowd_videos, persons_per_frame, video_subset
from vidpose.errors import ConfigError
from vidpose.formats.posetrack import read_posetrack
from vidpose.keypoints import POSETRACK18
from vidpose.pose import Frame, Pose, PoseDataset


def labelled_pose(track_id: int) -> Pose:
    keypoints = np.zeros((17, 3))
    keypoints[0] = (10.0 + track_id, 20.0, 1)
    return Pose(keypoints, track_id=track_id)


def frame(image_id: int, video: str, index: int, persons: int, labelled: bool = True,
          extras: tuple[Pose, ...] = ()) -> Frame:
    poses = [labelled_pose(t) for t in range(persons)] + list(extras)
    return Frame(image_id, f"{video}/{index}.jpg", 64, 48, poses, video=video, frame_index=index,
                 is_labeled=labelled)


@pytest.fixture()
def videos() -> PoseDataset:
    """street: 2, 3, 4 persons (+ a crowd region with keypoints and an unlabelled pose, which do
    not count) and an unlabelled frame; square: 9 and 10; empty: no labelled frame. The
    frames of the videos are interleaved."""
    crowd = Pose(labelled_pose(0).keypoints, iscrowd=True)
    no_keypoints = Pose(np.zeros((17, 3)), box=np.array([1.0, 1, 5, 5]), track_id=-1)
    frames = [
        frame(1, "street", 0, 2, extras=(crowd,)),
        frame(2, "square", 0, 9),
        frame(3, "street", 1, 3, extras=(no_keypoints,)),
        frame(4, "square", 1, 10),
        frame(5, "street", 2, 4),
        frame(6, "street", 3, 7, labelled=False),
        frame(7, "empty", 0, 0, labelled=False),
    ]
    return PoseDataset(frames, POSETRACK18, "/images", source="hand-built")


def test_persons_per_frame_hand_computed(videos):
    assert persons_per_frame(videos) == pytest.approx({"street": 3.0, "square": 9.5, "empty": 0.0})


def test_crowd_videos_are_strictly_above_the_threshold(videos):
    assert crowd_videos(videos, 8.0) == ["square"]  # the paper's crowd subset rule
    assert crowd_videos(videos, 3.0) == ["square"]  # street has exactly 3.0
    assert crowd_videos(videos, 2.9) == ["street", "square"]
    assert crowd_videos(videos, 10.0) == []


def test_video_subset_keeps_only_those_frames_in_order(videos):
    subset = video_subset(videos, crowd_videos(videos, 2.9))
    assert [f.image_id for f in subset.frames] == [1, 2, 3, 4, 5, 6]
    square = video_subset(videos, ["square"])
    assert [f.image_id for f in square.frames] == [2, 4]
    assert square.frames[0] is videos.frames[1]
    assert square.schema is POSETRACK18
    assert (square.image_root, square.source) == ("/images", "hand-built")
    assert persons_per_frame(square) == {"square": 9.5}
    assert len(video_subset(videos, [])) == 0
    with pytest.raises(ConfigError, match=r"\['plaza'\].*hand-built"):
        video_subset(videos, ["square", "plaza"])


def test_tiny_synth_subset_keeps_each_videos_crowdedness(tiny_synth):
    root = tiny_synth / "posetrack18"
    data = read_posetrack(root / "annotations" / "val", root)
    crowdedness = persons_per_frame(data)
    assert list(crowdedness) == list(data.videos()) and len(crowdedness) == 2
    busiest = max(crowdedness.values())
    crowded = crowd_videos(data, busiest - 0.5)
    assert crowded and all(crowdedness[name] > busiest - 0.5 for name in crowded)
    subset = video_subset(data, crowded)
    assert {f.video for f in subset.frames} == set(crowded)
    assert len(subset) == sum(len(data.videos()[name]) for name in crowded)
    assert persons_per_frame(subset) == {name: crowdedness[name] for name in crowded}
