"""The body model and its motion: kinematics, facing, left/right convention, gaits."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vidpose.keypoints import BODY19
from vidpose.synth.body import JointAngles, P, forward_kinematics, project, sample_proportions
from vidpose.synth.motion import facing, position, posture, sample_motion

K = BODY19.index


def neutral_angles() -> JointAngles:
    """Upright, arms hanging slightly away from the body."""
    zero = np.zeros(2)
    return JointAngles(zero, zero, np.full(2, 0.04), zero, np.full(2, 0.12), np.full(2, 0.15), zero)


@pytest.fixture()
def props():
    return sample_proportions(np.random.default_rng(0), height=1.7)


def test_standing_person_is_upright_and_on_the_ground(props):
    pts = forward_kinematics(props, neutral_angles())
    feet = np.concatenate([pts[[P["left_ankle"], P["right_ankle"]], 1] - props.ankle_height,
                           pts[[P["left_toe"], P["right_toe"]], 1]])
    assert feet.min() == pytest.approx(0.0)
    # Head above shoulders above hips above knees above ankles.
    ys = [pts[P[n], 1] for n in ("head_top", "nose", "left_shoulder", "left_hip", "left_knee", "left_ankle")]
    assert ys == sorted(ys, reverse=True)
    # Standing height about the person's height (head top is just under the crown).
    assert pts[P["head_top"], 1] == pytest.approx(props.height, rel=0.08)


@pytest.mark.parametrize("yaw, left_is_right_in_image", [(0.0, True), (np.pi, False)])
def test_left_is_the_persons_own_left(props, yaw, left_is_right_in_image):
    """COCO convention: facing the camera, the person's left shows on the image right."""
    uv, _ = project(forward_kinematics(props, neutral_angles()), yaw, np.array([100.0, 200.0]), 50.0)
    for joint in ("shoulder", "hip", "knee", "eye", "ear"):
        left, right = uv[K[f"left_{joint}"], 0], uv[K[f"right_{joint}"], 0]
        assert (left > right) == left_is_right_in_image, joint


def test_profile_facing_image_right_has_nose_ahead_and_right_side_near(props):
    pts = forward_kinematics(props, neutral_angles())
    uv, depth = project(pts, np.pi / 2, np.array([100.0, 200.0]), 50.0)
    assert uv[K["nose"], 0] > uv[P["head_center"], 0] + 2  # the face points to the image right
    # Facing image right with the camera on the viewer's side: the right side is nearer.
    assert depth[K["right_shoulder"]] < depth[K["left_shoulder"]]


def test_project_scales_and_flips_y(props):
    pts = forward_kinematics(props, neutral_angles())
    uv, _ = project(pts, 0.0, np.array([10.0, 300.0]), 100.0)
    assert uv[P["pelvis"], 0] == pytest.approx(10.0)
    assert uv[P["pelvis"], 1] == pytest.approx(300.0 - 100.0 * pts[P["pelvis"], 1])


def test_walking_legs_swing_in_anti_phase_with_matching_arms(props):
    rng = np.random.default_rng(1)
    motion = sample_motion(rng, "walk", (0.0, 5.0), np.pi / 2, 1.0, props.height)
    t = np.linspace(0, 2 / motion.cadence, 40)
    hips = np.array([posture(motion, s).hip_flex for s in t])
    shoulders = np.array([posture(motion, s).shoulder_flex for s in t])
    knees = np.array([posture(motion, s).knee_flex for s in t])
    # Left and right thighs mirror each other around the same mean.
    assert np.corrcoef(hips[:, 0], hips[:, 1])[0, 1] < -0.99
    # Each arm swings against the leg on its side.
    assert np.corrcoef(hips[:, 0], shoulders[:, 0])[0, 1] < -0.99
    assert (knees >= 0).all() and knees.max() > 0.5  # knees bend in the swing, never backwards
    # The swing is periodic with the cadence.
    period = posture(motion, 1 / motion.cadence).hip_flex
    np.testing.assert_allclose(period, posture(motion, 0.0).hip_flex, atol=1e-9)


def test_travellers_move_where_they_face(props):
    motion = sample_motion(np.random.default_rng(2), "run", (1.0, 5.0), np.pi / 2, 1.0, props.height)
    assert facing(motion) == pytest.approx(np.pi / 2)
    x1, z1 = position(motion, 1.0)
    assert x1 - 1.0 > 2.0 and z1 == pytest.approx(5.0)  # runs ~3.4 m/s to the image right
    toward = sample_motion(np.random.default_rng(2), "walk", (0.0, 5.0), 0.0, 1.0, props.height)
    assert position(toward, 1.0)[1] < 5.0  # facing the camera: comes nearer


def test_speed_knob_scales_speed_and_cadence(props):
    slow = sample_motion(np.random.default_rng(3), "walk", (0, 5), np.pi / 2, 1.0, props.height)
    fast = sample_motion(np.random.default_rng(3), "walk", (0, 5), np.pi / 2, 2.0, props.height)
    assert fast.velocity[0] == pytest.approx(2 * slow.velocity[0])
    assert fast.cadence == pytest.approx(2 * slow.cadence)


def test_waving_arm_goes_above_the_shoulder(props):
    rng = np.random.default_rng(0)
    motion = sample_motion(rng, "gesture", (0, 5), 0.0, 1.0, props.height)
    motion = replace(motion, gesture="wave", gesture_side=0)
    pts = forward_kinematics(props, posture(motion, 0.3))
    assert pts[P["left_wrist"], 1] > pts[P["left_shoulder"], 1]
    assert pts[P["right_wrist"], 1] < pts[P["right_shoulder"], 1]  # the other arm hangs


def test_head_pitch_nods_the_face_down(props):
    level = forward_kinematics(props, neutral_angles())
    nodding = neutral_angles()
    nodding.head_pitch = 0.5
    down = forward_kinematics(props, nodding)
    assert down[K["nose"], 1] < level[K["nose"], 1] - 0.02
    np.testing.assert_allclose(down[K["head_top"]], level[K["head_top"]])
