"""Helpers for the format tests: small records and record comparison."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.pose import Frame, Pose


def _pose(seed: int, *, track_id: int = -1, head: bool = False) -> Pose:
    """A ground-truth pose inside a 64x48 image, ears unlabelled, one occluded joint."""
    rng = np.random.default_rng(seed)
    keypoints = np.column_stack([rng.uniform(2, 60, 17).round(2), rng.uniform(2, 44, 17).round(2),
                                 np.full(17, 2.0)])
    keypoints[3:5] = 0  # the ears, absent in PoseTrack18
    keypoints[9, 2] = 1
    box = Pose(keypoints).keypoint_box()
    return Pose(keypoints, box=box, track_id=track_id, area=float(box[2] * box[3]),
                head_box=box[:2].tolist() + [6.0, 5.0] if head else None)


@pytest.fixture()
def make_frames():
    """``make_frames(n, video=None, first_id=100)``: n 64x48 frames, two persons when labelled."""
    def make(n: int, video: str | None = None, first_id: int = 100) -> list[Frame]:
        frames = []
        for i in range(n):
            labelled = video is None or i % 2 == 0  # videos: sparse labelling, as in PoseTrack18
            poses = [_pose(10 * i + j, track_id=j if video else -1, head=video is not None)
                     for j in range(2)] if labelled else []
            name = f"images/val/{video}/{i:06d}.jpg" if video else f"{i:012d}.jpg"
            frames.append(Frame(image_id=first_id + i, file_name=name, width=64, height=48,
                                poses=poses, video=video, frame_index=i if video else 0,
                                is_labeled=labelled))
        return frames
    return make


def _same_value(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture()
def assert_same_frames():
    """``assert_same_frames(got, expected, ignore=(pose fields...))``: field-by-field equality."""
    def check(got: list[Frame], expected: list[Frame], ignore: tuple[str, ...] = ()) -> None:
        assert len(got) == len(expected)
        for f, g in zip(got, expected):
            for name in Frame.__dataclass_fields__:
                if name != "poses":
                    assert _same_value(getattr(f, name), getattr(g, name)), (name, f.image_id)
            assert len(f.poses) == len(g.poses)
            for p, q in zip(f.poses, g.poses):
                for name in (n for n in Pose.__dataclass_fields__ if n not in ignore):
                    assert _same_value(getattr(p, name), getattr(q, name)), (name, getattr(p, name),
                                                                             getattr(q, name))
    return check
