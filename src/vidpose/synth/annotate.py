"""Ground truth read off the renderer: visibility, masks, boxes, RLE, head boxes.

A keypoint inside the image is visible (2) when the pixel under it shows one of its own
body parts (and, for a face point, the face is turned that way); otherwise something is
in front of it, another person, an occluder or the person's own arm, and it is labelled
occluded (1). A keypoint outside the image is absent (0, written as 0, 0, 0). The mask of
a person is the set of pixels that show them, so boxes and areas are those of the visible
person, as in COCO.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_util

from vidpose.pose import Pose
from vidpose.synth.figure import OWNS, Figure
from vidpose.synth.render import Raster

VISIBLE, OCCLUDED, ABSENT = 2, 1, 0


@dataclass
class Labels:
    """The annotated persons of one frame (BODY19 keypoints) and what the detector sees."""

    poses: list[Pose]
    visible_fraction: np.ndarray  # (n,) share of keypoints seen, per annotated pose


def keypoint_visibility(raster: Raster, figure: Figure, person: int) -> np.ndarray:
    """(K,) flags 2 / 1 / 0 for one person's keypoints."""
    height, width = raster.shape_index.shape
    pixel = np.floor(figure.keypoints + 0.5).astype(np.int64)
    inside = ((pixel[:, 0] >= 0) & (pixel[:, 0] < width)
              & (pixel[:, 1] >= 0) & (pixel[:, 1] < height))
    shape = raster.shape_index[np.clip(pixel[:, 1], 0, height - 1), np.clip(pixel[:, 0], 0, width - 1)]
    covered = shape >= 0
    owner = np.where(covered, raster.owner[shape], -1)
    part = np.where(covered, raster.part[shape], -1)
    own_part = (part >= 0) & OWNS[np.arange(len(part)), np.maximum(part, 0)]
    seen = (owner == person) & own_part & figure.self_visible
    return np.where(inside, np.where(seen, VISIBLE, OCCLUDED), ABSENT)


def mask_box(mask: np.ndarray) -> np.ndarray:
    """COCO box (x, y, w, h) of a non-empty mask, in whole pixels as pycocotools computes it."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], dtype=np.float64)


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a (H, W) bool mask, JSON-ready (counts as a string)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def annotate(raster: Raster, figures: list[Figure], track_ids: list[int], *, min_area: int) -> Labels:
    """Poses of the persons that show at least ``min_area`` pixels and one keypoint.

    ``figures[i]`` was drawn with owner ``i``.
    """
    owner_map = raster.owner_map()
    poses, fractions = [], []
    for person, (figure, track_id) in enumerate(zip(figures, track_ids)):
        mask = owner_map == person
        area = int(mask.sum())
        flags = keypoint_visibility(raster, figure, person)
        if area < min_area or not flags.any():
            continue
        xy = np.where(flags[:, None] > 0, figure.keypoints, 0.0)
        poses.append(Pose(np.column_stack([xy, flags]), box=mask_box(mask), track_id=track_id,
                          head_box=np.round(figure.head_box, 2), area=float(area),
                          segmentation=encode_mask(mask)))
        fractions.append(float((flags == VISIBLE).mean()))
    return Labels(poses, np.array(fractions))
