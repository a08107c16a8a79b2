"""Ground truth from the renderer: visibility flags, masks, boxes, RLE, ignore regions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pycocotools import mask as mask_util

from vidpose.keypoints import BODY19
from vidpose.synth.annotate import encode_mask, mask_box
from vidpose.synth.scene import Occluder, SceneConfig, sample_scene
from vidpose.synth.shoot import film

K = BODY19.index


def flags_of(shot, track=0):
    pose = next(p for p in shot.labels.poses if p.track_id == track)
    return pose, {name: int(pose.keypoints[K[name], 2]) for name in BODY19.names}


def test_unoccluded_person_facing_the_camera_is_all_visible(person_in_view, shoot):
    shot = shoot(person_in_view(yaw=0.0))
    pose, flags = flags_of(shot)
    assert all(v == 2 for v in flags.values()), flags
    # Known camera: 32 px per metre at 4 m, feet on row 32 + 1.6 * 32 = 83.2.
    assert pose.keypoints[K["left_ankle"], 1] == pytest.approx(83.2 - 0.04 * 1.7 * 32, abs=1.5)
    assert pose.keypoints[K["left_shoulder"], 0] > pose.keypoints[K["right_shoulder"], 0]


def test_keypoint_behind_an_occluder_is_flagged_occluded(person_in_view, shoot):
    pole = Occluder("pole", x=0.0, z=3.0, width=0.06, height=3.6, color=np.array([90.0, 90, 90]),
                    striped=False)
    free = shoot(person_in_view(yaw=0.0))
    shot = shoot(person_in_view(yaw=0.0, occluders=(pole,)))
    pose, flags = flags_of(shot)
    # The pole hides the midline (nose, head top) but not the shoulders or hips.
    assert flags["nose"] == 1 and flags["head_top"] == 1
    for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_wrist"):
        assert flags[name] == 2, name
    # The occluded keypoint keeps its true position; the mask loses the pole's pixels.
    free_pose = free.labels.poses[0]
    np.testing.assert_allclose(pose.keypoints[:, :2], free_pose.keypoints[:, :2])
    assert pose.area < free_pose.area


def test_keypoint_outside_the_image_is_absent_with_zero_coordinates(person_in_view, shoot):
    # 1.2 m away the feet stand on row 32 + 1.6 * 128 / 1.2 = 203, below the 128 px image.
    shot = shoot(person_in_view(yaw=0.0, z=1.2))
    pose, flags = flags_of(shot)
    for name in ("left_ankle", "right_ankle", "left_knee", "right_knee"):
        assert flags[name] == 0
        np.testing.assert_array_equal(pose.keypoints[K[name]], [0.0, 0.0, 0.0])
    assert flags["left_shoulder"] == 2 and flags["nose"] == 2


@pytest.mark.parametrize("yaw, hidden, seen", [
    (np.pi, ("nose", "left_eye", "right_eye"), ("left_ear", "right_ear", "head_top")),
    (np.pi / 2, ("left_eye", "left_ear"), ("nose", "right_eye", "right_ear")),
    (-np.pi / 2, ("right_eye", "right_ear"), ("nose", "left_eye", "left_ear")),
])
def test_face_points_turned_away_are_occluded_by_the_head(person_in_view, shoot, yaw, hidden, seen):
    _, flags = flags_of(shoot(person_in_view(yaw=yaw)))
    assert all(flags[n] == 1 for n in hidden), flags
    assert all(flags[n] == 2 for n in seen), flags


def test_person_in_front_occludes_the_one_behind(person_in_view, shoot, stand):
    scene = person_in_view(yaw=0.0, z=5.0, more=(stand(0.25, 3.5, 0.0),))
    shot = shoot(scene)
    behind, flags = flags_of(shot, track=0)
    front, front_flags = flags_of(shot, track=1)
    front_mask = mask_util.decode(front.segmentation).astype(bool)
    pixel = np.floor(behind.keypoints[:, :2] + 0.5).astype(int)
    under_front = front_mask[pixel[:, 1], pixel[:, 0]] & (behind.keypoints[:, 2] > 0)
    assert under_front.sum() >= 3  # the set-up really overlaps them
    assert (behind.keypoints[under_front, 2] == 1).all()
    assert all(v == 2 for v in front_flags.values())


def test_masks_boxes_and_rle_agree_in_a_busy_scene():
    cfg = SceneConfig(width=160, height=128, persons=(4, 6), overlap=0.6, occluders=(2, 3))
    checked = 0
    for seed in range(3):
        scene = sample_scene(np.random.default_rng(seed), cfg, 3, (seed,))
        for shot in film(scene):
            cover = np.zeros((128, 160), dtype=int)
            for pose in shot.labels.poses:
                mask = mask_util.decode(pose.segmentation).astype(bool)
                cover += mask
                assert pose.area == mask.sum() == mask_util.area(pose.segmentation)
                np.testing.assert_array_equal(pose.box, mask_util.toBbox(pose.segmentation))
                visible = pose.keypoints[:, 2] == 2
                xy = pose.keypoints[visible, :2]
                px = np.floor(xy + 0.5).astype(int)
                assert mask[px[:, 1], px[:, 0]].all()  # a visible keypoint shows its own person
                x, y, w, h = pose.box
                # Pixel i spans [i - 0.5, i + 0.5]; COCO boxes start at the first pixel's index.
                assert ((xy[:, 0] >= x - 0.5) & (xy[:, 0] <= x + w) & (xy[:, 1] >= y - 0.5)
                        & (xy[:, 1] <= y + h)).all()
                head = pose.head_box
                x, y, v = pose.keypoints[K["head_top"]]
                assert v == 0 or (head[0] <= x <= head[0] + head[2] and head[1] <= y <= head[1] + head[3])
                checked += 1
            assert cover.max() <= 1  # each pixel shows at most one person
    assert checked > 20


def test_rle_and_box_of_a_hand_made_mask():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:8] = True
    rle = encode_mask(mask)
    assert rle["size"] == [10, 12] and isinstance(rle["counts"], str)
    assert mask_util.area(rle) == 15
    np.testing.assert_array_equal(mask_util.decode(rle).astype(bool), mask)
    np.testing.assert_array_equal(mask_box(mask), [3, 2, 5, 3])


def test_far_crowd_becomes_an_ignore_region_and_stays_unannotated():
    cfg = SceneConfig(width=160, height=128, persons=(1, 1), crowd=1.0, pan=0.0, shake=0.0,
                      occluders=(0, 0))
    scene = sample_scene(np.random.default_rng(4), cfg, 2, (4,))
    assert scene.crowd is not None and len(scene.crowd.actors) >= 6
    shots = list(film(scene))
    for shot in shots:
        assert len(shot.labels.poses) <= 1  # only the one actor, never a crowd member
        (region,) = shot.ignore_regions
        assert len(region) >= 3
        assert (region >= 0).all() and (region[:, 0] <= 159).all() and (region[:, 1] <= 127).all()
    # Without a crowd there is no region.
    assert list(film(replace(scene, crowd=None)))[0].ignore_regions == []
