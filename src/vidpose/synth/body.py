"""The 2D-projected articulated body: proportions, joint angles, forward kinematics, projection.

A person is a small 3D stick skeleton in its own body frame (X = the person's own left,
Y = up, Z = forward, metres, origin on the ground under the pelvis). Joint angles drive
forward kinematics; a rotation about the vertical axis (the facing yaw) followed by a
scaled orthographic projection puts it in the image. Keeping the third dimension is what
makes left and right come out right for every facing direction and gives each body part a
depth for the renderer's occlusion order.

Facing yaw convention (camera coordinates: x right, depth into the scene): yaw 0 faces the
camera, so the person's own left appears on the image right (as in COCO, "left" is always
the person's own left); yaw pi shows the back; yaw +pi/2 faces the image right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.keypoints import BODY19

# Points the body model produces: the BODY19 keypoints first (same order), then the extra
# points the renderer needs to draw the figure.
POINT_NAMES: tuple[str, ...] = (*BODY19.names, "head_center", "neck_base", "pelvis",
                                "left_hand", "right_hand", "left_toe", "right_toe")
P = {name: i for i, name in enumerate(POINT_NAMES)}
NUM_KEYPOINTS = BODY19.num_keypoints
# 0 = the person's left, 1 = right; +1 / -1 is the side's sign along the body's X axis.
SIDES = (("left", 1.0), ("right", -1.0))


@dataclass(frozen=True)
class Proportions:
    """Segment lengths and limb radii of one person, in metres."""

    height: float
    head_radius: float
    torso: float
    shoulder_half: float
    hip_half: float
    chest_depth: float
    upper_arm: float
    forearm: float
    hand: float
    thigh: float
    shin: float
    foot: float
    ankle_height: float
    # Radii (half thickness) used to draw the limbs as tapered capsules.
    arm_radius: float
    leg_radius: float
    neck_radius: float


def sample_proportions(rng: np.random.Generator, height: float | None = None) -> Proportions:
    """Adult-like proportions (fractions of height) with per-person variation and build."""
    h = float(height if height is not None else np.clip(rng.normal(1.72, 0.09), 1.5, 1.95))
    jitter = rng.normal(1.0, 0.05, size=8).clip(0.88, 1.12)
    build = float(np.clip(rng.normal(1.0, 0.1), 0.8, 1.3))  # slim .. broad
    return Proportions(
        height=h,
        head_radius=0.062 * h * jitter[0],
        torso=0.30 * h * jitter[1],
        shoulder_half=0.118 * h * build,
        hip_half=0.062 * h * build,
        chest_depth=0.06 * h * build,
        upper_arm=0.175 * h * jitter[2],
        forearm=0.15 * h * jitter[3],
        hand=0.055 * h,
        thigh=0.245 * h * jitter[4],
        shin=0.245 * h * jitter[5],
        foot=0.11 * h * jitter[6],
        ankle_height=0.04 * h,
        arm_radius=0.030 * h * build * jitter[7],
        leg_radius=0.045 * h * build,
        neck_radius=0.032 * h * build,
    )


@dataclass
class JointAngles:
    """One posture, radians. Per-limb arrays are indexed (left, right).

    Flexion rotates a segment forward in the sagittal plane, abduction outwards in the
    frontal plane; knee flexion bends the shin backwards, elbow flexion the forearm forwards
    and elbow lift the forearm further outwards (a wave).
    """

    hip_flex: np.ndarray
    knee_flex: np.ndarray
    hip_abd: np.ndarray
    shoulder_flex: np.ndarray
    shoulder_abd: np.ndarray
    elbow_flex: np.ndarray
    elbow_lift: np.ndarray
    torso_lean: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0


def _direction(flex: np.ndarray, abd: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Unit vectors (N, 3) of segments hanging down, flexed forwards and abducted sideways."""
    return np.stack([side * np.sin(abd), -np.cos(abd) * np.cos(flex), np.cos(abd) * np.sin(flex)], -1)


def forward_kinematics(props: Proportions, angles: JointAngles) -> np.ndarray:
    """All ``POINT_NAMES`` in the body frame, (N, 3) metres, lowest foot point on the ground."""
    pts = np.zeros((len(POINT_NAMES), 3))
    side = np.array([s for _, s in SIDES])

    hips = np.stack([side * props.hip_half, np.zeros(2), np.zeros(2)], -1)
    thigh_dir = _direction(angles.hip_flex, angles.hip_abd, side)
    knees = hips + props.thigh * thigh_dir
    shin_dir = _direction(angles.hip_flex - angles.knee_flex, angles.hip_abd, side)
    ankles = knees + props.shin * shin_dir
    # The foot stays roughly level, pointing forwards; it tips with the shin during a swing.
    toe_dir = np.stack([np.zeros(2), -0.25 + 0.3 * np.sin(angles.hip_flex - angles.knee_flex),
                        np.ones(2)], -1)
    toes = ankles + props.foot * toe_dir / np.linalg.norm(toe_dir, axis=-1, keepdims=True)

    lean = angles.torso_lean
    spine = np.array([0.0, np.cos(lean), np.sin(lean)])
    neck_base = props.torso * spine
    shoulders = neck_base + np.stack([side * props.shoulder_half, np.zeros(2), np.zeros(2)], -1)
    upper_dir = _direction(angles.shoulder_flex + lean, angles.shoulder_abd, side)
    elbows = shoulders + props.upper_arm * upper_dir
    fore_dir = _direction(angles.shoulder_flex + lean + angles.elbow_flex,
                          angles.shoulder_abd + angles.elbow_lift, side)
    wrists = elbows + props.forearm * fore_dir
    hands = wrists + props.hand * fore_dir

    r = props.head_radius
    head_bottom = neck_base + 0.35 * r * spine
    head_center = head_bottom + 0.95 * r * spine
    head_top = head_center + 0.92 * r * spine
    # Face points on the head sphere, tipped forwards with the spine plus the head's own nod
    # (pitch > 0 looks down), then turned by the head's yaw.
    cy, sy = np.cos(angles.head_yaw), np.sin(angles.head_yaw)
    cp, sp = np.cos(angles.head_pitch + lean), np.sin(angles.head_pitch + lean)
    face = np.array([[0.0, -0.15, 0.95],                      # nose
                     [0.36, 0.18, 0.84], [-0.36, 0.18, 0.84],  # left, right eye
                     [0.96, 0.05, -0.1], [-0.96, 0.05, -0.1]])  # left, right ear
    pitched = face.copy()
    pitched[:, 1] = face[:, 1] * cp - face[:, 2] * sp
    pitched[:, 2] = face[:, 1] * sp + face[:, 2] * cp
    turned = pitched.copy()
    turned[:, 0] = pitched[:, 0] * cy + pitched[:, 2] * sy
    turned[:, 2] = -pitched[:, 0] * sy + pitched[:, 2] * cy
    face_pts = head_center + r * turned

    for name, point in zip(("nose", "left_eye", "right_eye", "left_ear", "right_ear"), face_pts):
        pts[P[name]] = point
    for joint, pair in (("shoulder", shoulders), ("elbow", elbows), ("wrist", wrists), ("hip", hips),
                        ("knee", knees), ("ankle", ankles), ("hand", hands), ("toe", toes)):
        for (side, _), point in zip(SIDES, pair):
            pts[P[f"{side}_{joint}"]] = point
    for name, point in (("head_bottom", head_bottom), ("head_top", head_top),
                        ("head_center", head_center), ("neck_base", neck_base)):
        pts[P[name]] = point
    pts[P["pelvis"]] = 0.0
    # Stand on the ground: the lowest of the ankles (minus the ankle height) and toes.
    ground = min(ankles[:, 1].min() - props.ankle_height, toes[:, 1].min())
    pts[:, 1] -= ground
    return pts


def rotate_yaw(points: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body-frame points -> (camera x, up, depth) after turning the body by ``yaw``.

    yaw 0: the body's forward axis points at the camera (depth decreases forwards) and its
    left axis along camera +x, so a person facing the camera shows their left on the right.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    x = c * points[..., 0] + s * points[..., 2]
    depth = s * points[..., 0] - c * points[..., 2]
    return x, points[..., 1], depth


def project(points: np.ndarray, yaw: float, foot_uv: np.ndarray, scale: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (N, 2) and depth offsets (N,) in metres, of body-frame points.

    ``foot_uv`` is where the body origin (the ground under the pelvis) lands in the image,
    ``scale`` the pixels per metre at the person's distance.
    """
    x, y, depth = rotate_yaw(points, yaw)
    uv = np.stack([foot_uv[0] + scale * x, foot_uv[1] - scale * y], -1)
    return uv, depth
