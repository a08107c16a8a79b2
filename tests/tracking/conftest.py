"""Helpers for the tracking-cue tests: textured figures of persons pasted on a textured still
background, with their poses known exactly (POSETRACK18 order, ears unannotated)."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vidpose.keypoints import POSETRACK18
from vidpose.pose import Pose

# Joint positions as fractions of the person's height, x from the body's centre line: arms
# hang along the torso and the legs are one block (trousers), so the silhouette is one solid,
# textured blob; separate thin limbs repeat a pattern that dense flow aliases on.
_SKELETON = {
    "head_top": (0.0, 0.0), "nose": (0.0, 0.1), "head_bottom": (0.0, 0.2),
    "left_shoulder": (0.13, 0.25), "right_shoulder": (-0.13, 0.25),
    "left_elbow": (0.16, 0.4), "right_elbow": (-0.16, 0.4),
    "left_wrist": (0.17, 0.55), "right_wrist": (-0.17, 0.55),
    "left_hip": (0.1, 0.55), "right_hip": (-0.1, 0.55),
    "left_knee": (0.1, 0.76), "right_knee": (-0.1, 0.76),
    "left_ankle": (0.11, 0.97), "right_ankle": (-0.11, 0.97),
}


def textured(shape: tuple[int, int], seed: int, blur: float = 1.5) -> np.ndarray:
    """Smoothed noise in [0, 1]: texture that optical flow can lock on to."""
    noise = np.random.default_rng(seed).random(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), blur)
    return (noise - noise.min()) / (noise.max() - noise.min())


@dataclass
class Person:
    """A person sprite: its pixels, silhouette and joints, relative to the sprite's corner."""

    patch: np.ndarray  # (h, w, 3) uint8 RGB
    mask: np.ndarray  # (h, w) bool
    keypoints: np.ndarray  # (K, 3), x, y in the sprite, score (0 for the ears)


def make_person(upper: tuple[int, int, int], lower: tuple[int, int, int], height: int = 80,
                seed: int = 0) -> Person:
    """A figure ``height`` px tall: torso and arms in colour ``upper``, legs in ``lower``, a
    skin-coloured head, all with a coarse brightness texture."""
    width = int(0.5 * height)
    keypoints = np.zeros((POSETRACK18.num_keypoints, 3))
    for name, (x, y) in _SKELETON.items():
        keypoints[POSETRACK18.index[name]] = [width / 2 + x * height, 2 + y * (height - 4), 1.0]
    xy = {name: tuple(int(round(v)) for v in keypoints[POSETRACK18.index[name], :2])
          for name in _SKELETON}
    thick = max(3, height // 12)
    shape = (height, width)
    regions = {colour: np.zeros(shape, np.uint8) for colour in ("upper", "lower", "head")}
    torso = np.array([xy["left_shoulder"], xy["right_shoulder"], xy["right_hip"], xy["left_hip"]])
    legs = np.array([xy["left_hip"], xy["right_hip"], xy["right_ankle"], xy["left_ankle"]])
    cv2.fillPoly(regions["upper"], [torso], 1)
    cv2.fillPoly(regions["lower"], [legs], 1)
    for side in ("left", "right"):
        cv2.line(regions["upper"], xy[f"{side}_shoulder"], xy[f"{side}_elbow"], 1, thick)
        cv2.line(regions["upper"], xy[f"{side}_elbow"], xy[f"{side}_wrist"], 1, thick)
    cv2.circle(regions["head"], xy["nose"], int(0.1 * height), 1, -1)
    shade = 0.25 + 0.75 * textured(shape, seed, blur=2.5)[..., None]
    patch = np.zeros((*shape, 3), np.float32)
    for name, colour in (("lower", lower), ("upper", upper), ("head", (230, 180, 140))):
        patch[regions[name] > 0] = np.asarray(colour, np.float32)
    mask = np.any([r > 0 for r in regions.values()], axis=0)
    return Person((patch * shade).astype(np.uint8), mask, keypoints)


def background(width: int, height: int, seed: int = 1) -> np.ndarray:
    """A still, low-saturation textured background (RGB uint8)."""
    grey = 60 + 120 * textured((height, width), seed, blur=2.0)
    return np.repeat(grey[..., None], 3, -1).astype(np.uint8)


def render(scene: np.ndarray, placed: list[tuple[Person, int, int]]) -> tuple[np.ndarray, list[Pose]]:
    """``scene`` with the persons pasted at integer corners (x, y), later ones in front, and
    their poses (boxes around the silhouettes) in the same order."""
    image = scene.copy()
    poses = []
    for person, x, y in placed:
        h, w = person.mask.shape
        region = image[y:y + h, x:x + w]
        region[person.mask] = person.patch[person.mask]
        rows, cols = np.nonzero(person.mask)
        keypoints = person.keypoints.copy()
        keypoints[:, :2] += np.where(keypoints[:, 2:] > 0, [x, y], 0)
        box = [x + cols.min(), y + rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
        poses.append(Pose(keypoints, box=np.array(box, dtype=float)))
    return image, poses


@pytest.fixture(scope="session")
def stage() -> SimpleNamespace:
    """The figure toolkit: ``stage.person``, ``stage.background``, ``stage.render``."""
    return SimpleNamespace(person=make_person, background=background, render=render)
