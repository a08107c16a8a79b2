"""PoseTrack 2017 ``annolist`` files (one per video), read into Frames in POSETRACK18 order.

The 2017 format lists, per frame, ``annorect`` persons with ``track_id``, the head rectangle
``x1, y1, x2, y2`` and ``annopoints[0].point``: joints with poseval's joint ``id`` (0-14:
right ankle ... head top, 12 = neck = PoseTrack18's head_bottom), ``x``, ``y`` and
optionally ``score``; every value is wrapped in a one-element list. A listed joint exists
whatever its coordinates, so it gets flag 1. Predicted joints keep their scores in the third
column with the flags in ``extra["visibility"]``, as the PoseTrack18 reader stores them; a
predicted joint listed without a score gets poseval's ``MIN_SCORE``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vidpose.errors import InputError
from vidpose.formats.cocostyle import is_int, is_int64, is_number
from vidpose.keypoints import POSETRACK18
from vidpose.pose import Frame, Pose

# POSETRACK18 slot of each 2017 joint id.
SLOT_OF_ID = np.array(POSETRACK18.indices((
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist", "head_bottom", "nose", "head_top")))
MIN_SCORE = -9999.0  # poseval's score for a joint without one: below every real score


def is_annolist(data: Any) -> bool:
    return isinstance(data, dict) and "annolist" in data


def _one(value: Any, file: str, record: str, field: str, check=is_number) -> Any:
    """The single value of a 2017-style one-element list."""
    if not (isinstance(value, list) and len(value) == 1 and check(value[0])):
        raise InputError(f"expected a one-element list holding a number; got {value!r}",
                         file=file, record=record, field=field)
    return value[0]


def _read_points(rect: dict, file: str, record: str) -> tuple[np.ndarray, bool, np.ndarray]:
    """(17, 3) keypoints with flags, whether any score was given, and (17,) scores."""
    keypoints = np.zeros((POSETRACK18.num_keypoints, 3))
    scores = np.full(POSETRACK18.num_keypoints, MIN_SCORE)
    annopoints = rect.get("annopoints") or []
    if not annopoints:
        return keypoints, False, scores
    if not (isinstance(annopoints, list) and isinstance(annopoints[0], dict)
            and isinstance(annopoints[0].get("point", []), list)):
        raise InputError("expected [{'point': [...]}]", file=file, record=record, field="annopoints")
    scored = False
    for i, point in enumerate(annopoints[0].get("point", [])):
        where = f"{record} point {i}"
        if not isinstance(point, dict):
            raise InputError("expected an object with id, x, y", file=file, record=where)
        joint = _one(point.get("id"), file, where, "id", is_int)
        if not 0 <= joint < len(SLOT_OF_ID):
            raise InputError(f"joint id {joint} is not one of poseval's 0-14", file=file,
                             record=where, field="id")
        slot = SLOT_OF_ID[joint]
        if keypoints[slot, 2]:
            raise InputError(f"joint id {joint} listed twice", file=file, record=where, field="id")
        keypoints[slot] = (_one(point.get("x"), file, where, "x"),
                           _one(point.get("y"), file, where, "y"), 1.0)
        if "score" in point:
            scores[slot] = _one(point["score"], file, where, "score")
            scored = True
    return keypoints, scored, scores


def _read_rect(rect: Any, file: str, record: str) -> Pose:
    if not isinstance(rect, dict):
        raise InputError("expected an object", file=file, record=record)
    if "track_id" not in rect:
        raise InputError("every person needs a track id", file=file, record=record, field="track_id")
    track_id = _one(rect["track_id"], file, record, "track_id", is_int)
    if not is_int64(track_id):  # tracks are int64 arrays in evaluation
        raise InputError(f"track id {track_id} is outside the 64-bit integer range", file=file,
                         record=record, field="track_id")
    keypoints, scored, scores = _read_points(rect, file, record)
    head_box = None
    if all(k in rect for k in ("x1", "y1", "x2", "y2")):
        x1, y1, x2, y2 = (_one(rect[k], file, record, k) for k in ("x1", "y1", "x2", "y2"))
        head_box = np.array([x1, y1, x2 - x1, y2 - y1])
    pose = Pose(keypoints, track_id=int(track_id), head_box=head_box)
    if scored:
        pose.extra["visibility"] = keypoints[:, 2].copy()
        pose.keypoints[:, 2] = scores
    return pose


def _read_ignore_regions(entry: dict, file: str, record: str) -> list[np.ndarray]:
    regions = []
    for r, region in enumerate(entry.get("ignore_regions") or []):
        where = f"{record} ignore region {r}"
        points = region.get("point") if isinstance(region, dict) else None
        if not isinstance(points, list):
            raise InputError("expected {'point': [{'x': [..], 'y': [..]}, ...]}", file=file,
                             record=where, field="ignore_regions")
        regions.append(np.array([[_one(p.get("x") if isinstance(p, dict) else None, file, where, "x"),
                                  _one(p.get("y") if isinstance(p, dict) else None, file, where, "y")]
                                 for p in points], dtype=np.float64).reshape(-1, 2))
    return regions


def read_annolist(data: dict, file: str) -> list[Frame]:
    """The frames of one 2017 video file, in ``annolist`` order."""
    annolist = data["annolist"]
    if not isinstance(annolist, list) or not annolist:
        raise InputError("expected a non-empty list of frames", file=file, field="annolist")
    frames = []
    for index, entry in enumerate(annolist):
        record = f"annolist[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("annorect", []), list):
            raise InputError("expected an object with an 'annorect' list", file=file, record=record,
                             field="annorect")
        image = entry.get("image") or [{}]
        name = image[0].get("name", "") if isinstance(image[0], dict) else ""
        poses = [_read_rect(rect, file, f"{record} annorect {r}")
                 for r, rect in enumerate(entry.get("annorect", []))]
        for r, pose in enumerate(poses):
            pose.ann_id = index * 1000 + r
        frames.append(Frame(image_id=index, file_name=str(name), width=0, height=0, poses=poses,
                            frame_index=index, ignore_regions=_read_ignore_regions(entry, file, record)))
    return frames
