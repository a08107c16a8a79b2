"""Keypoint schemas: names, limbs, flip pairs, OKS sigmas and conversions.

This module owns every keypoint index in the suite; nothing else hard-codes one.

* ``COCO17``: the COCO keypoints order.
* ``POSETRACK18``: the same 17 slots, with slots 1-2 holding head_bottom and head_top
  instead of the eyes; the ears (3-4) are never annotated in real PoseTrack18 files.
* ``BODY19``: what the synthetic renderer knows, COCO17 plus head_bottom and head_top, so
  that it can write either dataset exactly.

Keypoint arrays are ``(..., K, 3)`` with columns x, y and a third value that is the COCO
visibility flag (0 absent, 1 occluded but labelled, 2 visible) in annotations and a
confidence score in predictions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_BODY = [
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]

# Limbs as pairs of names; the COCO file 'skeleton' (1-based) is derived from these.
_COCO_LIMBS = [
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
]
_COCO_HEAD_LIMBS = [
    ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"),
    ("left_eye", "left_ear"), ("right_eye", "right_ear"), ("left_ear", "left_shoulder"),
    ("right_ear", "right_shoulder"),
]
_PT18_HEAD_LIMBS = [
    ("nose", "head_bottom"), ("head_bottom", "head_top"),
    ("head_bottom", "left_shoulder"), ("head_bottom", "right_shoulder"),
]

# COCO keypoint OKS sigmas (cocoapi). head_bottom/head_top borrow the ear/eye values.
_SIGMA = {
    "nose": 0.026, "left_eye": 0.025, "right_eye": 0.025, "left_ear": 0.035,
    "right_ear": 0.035, "left_shoulder": 0.079, "right_shoulder": 0.079,
    "left_elbow": 0.072, "right_elbow": 0.072, "left_wrist": 0.062, "right_wrist": 0.062,
    "left_hip": 0.107, "right_hip": 0.107, "left_knee": 0.087, "right_knee": 0.087,
    "left_ankle": 0.089, "right_ankle": 0.089, "head_bottom": 0.035, "head_top": 0.035,
}


def _mirror(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


@dataclass(frozen=True)
class Schema:
    """A keypoint order with its limbs, flip permutation and OKS sigmas."""

    name: str
    names: tuple[str, ...]
    limb_names: tuple[tuple[str, str], ...]
    # Slots that exist in the order but are never annotated (PoseTrack18 ears).
    unannotated: tuple[str, ...] = ()
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {n: i for i, n in enumerate(self.names)})

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def limbs(self) -> np.ndarray:
        """(L, 2) int array of keypoint index pairs."""
        return np.array([[self.index[a], self.index[b]] for a, b in self.limb_names], dtype=np.int64)

    @property
    def coco_skeleton(self) -> list[list[int]]:
        """The 1-based 'skeleton' list written into COCO-style category records."""
        return [[int(a) + 1, int(b) + 1] for a, b in self.limbs]

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation that swaps left and right: ``flipped[:, k] = kps[:, flip_index[k]]``."""
        return np.array([self.index[_mirror(n)] for n in self.names], dtype=np.int64)

    @property
    def sigmas(self) -> np.ndarray:
        return np.array([_SIGMA[n] for n in self.names], dtype=np.float64)

    @property
    def annotated_mask(self) -> np.ndarray:
        """(K,) bool, False for slots the dataset never labels."""
        return np.array([n not in self.unannotated for n in self.names])

    def indices(self, names: list[str] | tuple[str, ...]) -> list[int]:
        return [self.index[n] for n in names]


COCO17 = Schema(
    "coco17",
    ("nose", "left_eye", "right_eye", "left_ear", "right_ear", *_BODY),
    tuple(_COCO_LIMBS + _COCO_HEAD_LIMBS),
)
POSETRACK18 = Schema(
    "posetrack18",
    ("nose", "head_bottom", "head_top", "left_ear", "right_ear", *_BODY),
    tuple(_COCO_LIMBS + _PT18_HEAD_LIMBS),
    unannotated=("left_ear", "right_ear"),
)
BODY19 = Schema(
    "body19",
    (*COCO17.names, "head_bottom", "head_top"),
    tuple(_COCO_LIMBS + _COCO_HEAD_LIMBS + _PT18_HEAD_LIMBS),
)

SCHEMAS: dict[str, Schema] = {s.name: s for s in (COCO17, POSETRACK18, BODY19)}


def get_schema(name: str) -> Schema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint schema {name!r}; known: {sorted(SCHEMAS)}") from None


def schema_from_names(names: list[str]) -> Schema:
    """The schema whose order is exactly ``names`` (as found in a file's category)."""
    for schema in SCHEMAS.values():
        if tuple(names) == schema.names:
            return schema
    raise ValueError(f"keypoint names {names} match no known schema; expected the order of one "
                     f"of {sorted(SCHEMAS)}")


def convert(keypoints: np.ndarray, src: Schema, dst: Schema) -> np.ndarray:
    """Re-order ``(..., K_src, 3)`` keypoints into ``dst``'s order by name.

    Slots that ``src`` lacks, or that ``dst`` never annotates, come out as (0, 0, 0).
    """
    keypoints = np.asarray(keypoints)
    out = np.zeros(keypoints.shape[:-2] + (dst.num_keypoints, 3), dtype=keypoints.dtype)
    for j, name in enumerate(dst.names):
        if name in src.index and name not in dst.unannotated:
            out[..., j, :] = keypoints[..., src.index[name], :]
    return out


def flip_keypoints(keypoints: np.ndarray, width: float, schema: Schema) -> np.ndarray:
    """Mirror ``(..., K, 3)`` keypoints horizontally in an image of ``width`` pixels.

    x -> width - 1 - x (pixel centres) and left/right slots swap. Absent keypoints
    (third value 0) stay (0, 0, 0).
    """
    out = np.asarray(keypoints, dtype=np.float64)[..., schema.flip_index, :].copy()
    present = out[..., 2] > 0
    out[..., 0] = np.where(present, width - 1 - out[..., 0], 0.0)
    out[..., 1] = np.where(present, out[..., 1], 0.0)
    return out
