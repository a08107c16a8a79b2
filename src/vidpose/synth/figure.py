"""A posed person as drawable shapes: capsule limbs, torso hull, head disc with a face.

Also says which body parts own each keypoint (a keypoint is visible where the pixel under
it shows one of its own parts) and which face points turn away from the camera, so that
annotation can read visibility straight from the renderer's shape-index map.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidpose.keypoints import BODY19
from vidpose.synth.appearance import Appearance, darker, lighter
from vidpose.synth.body import (
    NUM_KEYPOINTS,
    SIDES,
    JointAngles,
    P,
    Proportions,
    forward_kinematics,
    project,
    rotate_yaw,
)
from vidpose.synth.render import Pattern, Shape, circle_polygon, hull_of_circles

PARTS: tuple[str, ...] = (
    "head", "neck", "torso", "pelvis",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm",
    "left_hand", "right_hand", "left_thigh", "right_thigh", "left_shin", "right_shin",
    "left_foot", "right_foot",
)
PART = {name: i for i, name in enumerate(PARTS)}
FACE_POINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
# Body-frame points (N, 3) -> image points (N, 2) and depth offsets (N,) of the posed person.
Projector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _owners(keypoint: str) -> tuple[str, ...]:
    """The body parts a keypoint belongs to: if one of them shows at its pixel, it is seen."""
    if keypoint in FACE_POINTS or keypoint == "head_top":
        return ("head",)
    if keypoint == "head_bottom":
        return ("head", "neck", "torso")
    side, joint = keypoint.split("_", 1)
    return {
        "shoulder": ("torso", f"{side}_upper_arm"),
        "elbow": (f"{side}_upper_arm", f"{side}_forearm"),
        "wrist": (f"{side}_forearm", f"{side}_hand"),
        "hip": ("pelvis", "torso", f"{side}_thigh"),
        "knee": (f"{side}_thigh", f"{side}_shin"),
        "ankle": (f"{side}_shin", f"{side}_foot"),
    }[joint]


# OWNS[k, part]: keypoint k (BODY19 order) is visible when ``part`` of its person covers it.
OWNS = np.zeros((NUM_KEYPOINTS, len(PARTS)), dtype=bool)
for _k, _name in enumerate(BODY19.names):
    OWNS[_k, [PART[p] for p in _owners(_name)]] = True

# A face point is on the camera's side of the head sphere when its depth offset from the
# head centre is below this (in head radii): the rim still shows, so ears seen from the
# front count as visible, the nose seen from behind does not.
_RIM = 0.2
# Layering ties broken inside one person (metres): torso and pelvis sit just behind limbs
# hanging at their sides, decals just in front of what they are painted on.
_BEHIND, _DECAL = 0.012, 0.002


@dataclass
class Figure:
    """A person posed and projected for one frame."""

    keypoints: np.ndarray  # (19, 2) BODY19 image coordinates
    self_visible: np.ndarray  # (19,) False for face points turned away from the camera
    head_box: np.ndarray  # (4,) x, y, w, h around the head disc, head top and head bottom
    shapes: list[Shape]


class _Canvas:
    """Collects one person's shapes: all at the person's distance, owned by them."""

    def __init__(self, depth: float, owner: int, scale: float) -> None:
        self.depth, self.owner, self.scale = depth, owner, scale
        self.shapes: list[Shape] = []

    def add(self, polygon: np.ndarray, color: np.ndarray, sub_depth: float, part: str,
            pattern: Pattern | None = None, outline: float = 0.6) -> None:
        self.shapes.append(Shape(polygon, np.asarray(color, dtype=np.float64), self.depth,
                                 float(sub_depth), self.owner, PART[part], pattern, outline))

    def capsule(self, uv: np.ndarray, dz: np.ndarray, a: str, b: str, radii: tuple[float, float],
                color: np.ndarray, part: str, bias: float = 0.0) -> None:
        """A tapered limb from point ``a`` to ``b`` (radii in metres), layered by its mid depth."""
        self.add(hull_of_circles(uv[[P[a], P[b]]], np.array(radii) * self.scale), color,
                 (dz[P[a]] + dz[P[b]]) / 2 + bias, part)


def _trunk_and_limbs(canvas: _Canvas, props: Proportions, look: Appearance, pts3: np.ndarray,
                     uv: np.ndarray, dz: np.ndarray, project_body: Projector) -> None:
    """Torso hull (shirt), pelvis hull (trousers), neck and the eight limb segments plus feet."""
    cd, h = props.chest_depth, props.height
    front_back = np.array([[0.0, 0.0, cd], [0.0, 0.0, -cd]])
    shoulders = pts3[[P["left_shoulder"], P["right_shoulder"]]] + [0.0, -0.25 * props.arm_radius, 0.0]
    hips = pts3[[P["left_hip"], P["right_hip"]]]
    torso3 = np.concatenate([(shoulders[:, None] + front_back).reshape(-1, 3),
                             (hips[:, None] + 0.85 * front_back).reshape(-1, 3)])
    pelvis3 = np.concatenate([(hips[:, None] + 0.85 * front_back).reshape(-1, 3),
                              hips + [0.0, 0.07 * h, 0.0]])
    torso_uv, torso_dz = project_body(torso3)
    pelvis_uv, pelvis_dz = project_body(pelvis3)
    pattern = None
    if look.pattern != "plain":
        pattern = Pattern(look.pattern, look.shirt_pattern_color,
                          max(2.0, look.pattern_period * h * canvas.scale), look.pattern_angle,
                          (float(uv[P["pelvis"], 0]), float(uv[P["pelvis"], 1])))
    ar, lr = props.arm_radius, props.leg_radius
    canvas.add(hull_of_circles(torso_uv, 0.9 * ar * canvas.scale), look.shirt,
               torso_dz.mean() + _BEHIND, "torso", pattern)
    canvas.add(hull_of_circles(pelvis_uv, 0.8 * lr * canvas.scale), look.trousers,
               pelvis_dz[:4].mean() + _BEHIND, "pelvis")
    canvas.capsule(uv, dz, "neck_base", "head_bottom", (props.neck_radius,) * 2, look.skin, "neck",
                   bias=_BEHIND / 2)
    for side, _ in SIDES:
        shade = lighter if side == "left" else darker
        sleeve, leg = shade(look.shirt), shade(look.trousers)
        canvas.capsule(uv, dz, f"{side}_shoulder", f"{side}_elbow", (ar, 0.85 * ar), sleeve,
                       f"{side}_upper_arm")
        canvas.capsule(uv, dz, f"{side}_elbow", f"{side}_wrist", (0.85 * ar, 0.65 * ar),
                       sleeve if look.long_sleeves else look.skin, f"{side}_forearm")
        canvas.capsule(uv, dz, f"{side}_wrist", f"{side}_hand", (0.6 * ar, 0.7 * ar), look.skin,
                       f"{side}_hand")
        canvas.capsule(uv, dz, f"{side}_hip", f"{side}_knee", (lr, 0.8 * lr), leg, f"{side}_thigh")
        canvas.capsule(uv, dz, f"{side}_knee", f"{side}_ankle", (0.75 * lr, 0.55 * lr),
                       leg if look.long_trousers else look.skin, f"{side}_shin")
        canvas.capsule(uv, dz, f"{side}_ankle", f"{side}_toe", (0.5 * lr, 0.42 * lr), shade(look.shoes),
                       f"{side}_foot")


def _left_right_cues(canvas: _Canvas, props: Proportions, look: Appearance, pts3: np.ndarray,
                     uv: np.ndarray, dz: np.ndarray, project_body: Projector) -> None:
    """A watch on the left wrist; a strap over the left shoulder down to a bag at the right hip."""
    ar = props.arm_radius * canvas.scale
    wrist, elbow = uv[P["left_wrist"]], uv[P["left_elbow"]]
    along = elbow - wrist
    canvas.add(hull_of_circles(np.stack([wrist + 0.05 * along, wrist + 0.2 * along]), 0.8 * ar),
               look.watch_color, dz[P["left_wrist"]] - _DECAL, "left_forearm", outline=0.0)
    if not look.bag:
        return
    bag3 = pts3[P["right_hip"]] + np.array([-0.7 * props.hip_half, -0.02 * props.height, 0.0])
    (bag_uv,), (bag_dz,) = project_body(bag3[None])
    strap_dz = (dz[P["left_shoulder"]] + dz[P["right_hip"]]) / 2 + _BEHIND - _DECAL
    canvas.add(hull_of_circles(np.stack([uv[P["left_shoulder"]], bag_uv]), 0.22 * ar),
               darker(look.bag_color, 0.3), strap_dz, "torso", outline=0.0)
    half = 0.036 * props.height * canvas.scale
    corners = bag_uv + half * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    canvas.add(hull_of_circles(corners, 0.25 * half), look.bag_color, bag_dz - _DECAL, "pelvis")


def _head(canvas: _Canvas, props: Proportions, look: Appearance, angles: JointAngles, yaw: float,
          uv: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Head disc (hair), face, eyes, nose and ears; returns the face points' self-visibility."""
    r_px = props.head_radius * canvas.scale
    center, head_dz = uv[P["head_center"]], dz[P["head_center"]]
    canvas.add(circle_polygon(center, r_px, 24), look.hair, head_dz, "head")
    face_offset = (dz[[P[f] for f in FACE_POINTS]] - head_dz) / props.head_radius
    self_visible = np.ones(NUM_KEYPOINTS, dtype=bool)
    self_visible[[P[f] for f in FACE_POINTS]] = face_offset < _RIM
    # Skin where the face is: a disc shifted towards the facing direction, clipped radially
    # to the head disc; none when the head shows its back.
    forward_x, _, forward_depth = rotate_yaw(np.array([np.sin(angles.head_yaw), 0.0,
                                                       np.cos(angles.head_yaw)]), yaw)
    if forward_depth < 0.2:
        ring = circle_polygon(center + r_px * np.array([0.5 * forward_x, 0.12]), 0.74 * r_px, 24) - center
        dist = np.linalg.norm(ring, axis=1, keepdims=True)
        canvas.add(center + ring * np.minimum(1.0, r_px / np.maximum(dist, 1e-9)), look.skin,
                   head_dz - _DECAL, "head", outline=0.0)
    for name, offset in zip(FACE_POINTS, face_offset):
        if not self_visible[P[name]] or (name.endswith("eye") and forward_depth > 0):
            continue
        if name.endswith("ear"):
            # An ear turned to the camera lies on the head; one at the rim peeks from behind.
            canvas.add(circle_polygon(uv[P[name]], 0.25 * r_px, 10), look.skin,
                       head_dz + (-_DECAL if offset < -0.5 else _DECAL), "head")
        else:
            nose = name == "nose"
            color = darker(look.skin, 0.3) if nose else np.array([35.0, 30.0, 30.0])
            canvas.add(circle_polygon(uv[P[name]], max((0.13 if nose else 0.11) * r_px, 0.6), 8), color,
                       head_dz - 2 * _DECAL, "head", outline=0.0)
    return self_visible


def pose_figure(props: Proportions, look: Appearance, angles: JointAngles, yaw: float,
                foot_uv: np.ndarray, scale: float, depth: float, owner: int) -> Figure:
    """Pose a person and turn it into shapes.

    foot_uv: image position of the ground point under the pelvis; scale: pixels per metre
    at the person's distance ``depth``; owner: the person's index in the frame.
    """
    pts3 = forward_kinematics(props, angles)

    def project_body(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return project(points, yaw, foot_uv, scale)

    uv, dz = project_body(pts3)
    canvas = _Canvas(depth, owner, scale)
    _trunk_and_limbs(canvas, props, look, pts3, uv, dz, project_body)
    _left_right_cues(canvas, props, look, pts3, uv, dz, project_body)
    self_visible = _head(canvas, props, look, angles, yaw, uv, dz)
    head_pts = np.concatenate([circle_polygon(uv[P["head_center"]], props.head_radius * scale, 8),
                               uv[[P["head_top"], P["head_bottom"]]]])
    lo, hi = head_pts.min(0), head_pts.max(0)
    # Keypoints to 1/100 pixel: what the files hold, so visibility is judged on the same values.
    return Figure(np.round(uv[:NUM_KEYPOINTS], 2), self_visible, np.array([*lo, *(hi - lo)]),
                  canvas.shapes)
