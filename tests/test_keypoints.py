"""Keypoint schemas: orders, flips, limbs, conversions."""
from __future__ import annotations

import numpy as np
import pytest

from vidpose.keypoints import (
    BODY19,
    COCO17,
    POSETRACK18,
    convert,
    flip_keypoints,
    get_schema,
    schema_from_names,
)


def test_orders_match_the_datasets():
    assert COCO17.names[1:3] == ("left_eye", "right_eye")
    assert POSETRACK18.names[1:3] == ("head_bottom", "head_top")
    assert COCO17.names[5:] == POSETRACK18.names[5:]
    assert BODY19.num_keypoints == 19


def test_coco_skeleton_is_the_file_skeleton():
    # The 'skeleton' list written in real COCO and PoseTrack18 category records.
    coco_file = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7],
                 [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5],
                 [4, 6], [5, 7]]
    assert COCO17.coco_skeleton == coco_file


def test_flip_index_swaps_left_and_right_only():
    idx = COCO17.flip_index
    assert COCO17.names[idx[COCO17.index["left_wrist"]]] == "right_wrist"
    assert idx[COCO17.index["nose"]] == COCO17.index["nose"]
    assert sorted(idx) == list(range(17))
    assert (idx[idx] == np.arange(17)).all()


def test_flip_keypoints_mirrors_and_swaps():
    kps = np.zeros((17, 3))
    kps[COCO17.index["left_wrist"]] = [10, 20, 2]
    out = flip_keypoints(kps, width=100, schema=COCO17)
    assert out[COCO17.index["right_wrist"]].tolist() == [89, 20, 2]
    assert out[COCO17.index["left_wrist"]].tolist() == [0, 0, 0]


def test_convert_between_schemas_by_name():
    body = np.arange(19 * 3, dtype=float).reshape(19, 3)
    pt = convert(body, BODY19, POSETRACK18)
    assert pt[POSETRACK18.index["head_top"]].tolist() == body[BODY19.index["head_top"]].tolist()
    assert pt[POSETRACK18.index["left_ear"]].tolist() == [0, 0, 0]  # never annotated
    coco = convert(pt, POSETRACK18, COCO17)
    assert coco[COCO17.index["left_eye"]].tolist() == [0, 0, 0]  # PoseTrack18 has no eyes
    assert coco[COCO17.index["left_knee"]].tolist() == body[BODY19.index["left_knee"]].tolist()


def test_schema_lookup_errors():
    assert schema_from_names(list(POSETRACK18.names)) is POSETRACK18
    with pytest.raises(ValueError, match="match no known schema"):
        schema_from_names(["nose", "tail"])
    with pytest.raises(ValueError, match="unknown keypoint schema"):
        get_schema("mpii")
