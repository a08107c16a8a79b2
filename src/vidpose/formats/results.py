"""COCO keypoint results files: ``[{image_id, category_id, keypoints, score}]``.

What COCO evaluation (``COCO.loadRes``) reads: per person a flat x, y, confidence list
and a person score. Boxes are written too when a pose has one.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidpose.errors import InputError
from vidpose.formats.cocostyle import (
    PERSON_CATEGORY,
    is_number,
    read_box,
    read_result_record,
    read_results_list,
)
from vidpose.formats.jsonio import dump_json, reports_deep_nesting
from vidpose.keypoints import COCO17
from vidpose.pose import Frame, Pose

NUM_VALUES = 3 * COCO17.num_keypoints  # COCO17 and POSETRACK18 both have 17 slots


def write_coco_results(path: str | os.PathLike, frames: list[Frame]) -> None:
    """Write every pose of ``frames`` (keypoints x, y, confidence; person score)."""
    records = []
    for frame in frames:
        for pose in frame.poses:
            record = {"image_id": frame.image_id, "category_id": PERSON_CATEGORY,
                      "keypoints": pose.keypoints.ravel().tolist(), "score": float(pose.score)}
            if pose.box is not None:
                record["bbox"] = pose.box.tolist()
            records.append(record)
    dump_json(Path(path), records)


@reports_deep_nesting
def read_coco_results(path: str | os.PathLike) -> dict[int, list[Pose]]:
    """Predicted poses per image id, in file order; third keypoint column = confidence."""
    file, data = read_results_list(path)
    out: dict[int, list[Pose]] = {}
    for index, det in enumerate(data):
        image_id, score = read_result_record(det, index, file)
        record = f"results[{index}]"
        flat = det.get("keypoints")
        if not isinstance(flat, list) or len(flat) != NUM_VALUES or not all(map(is_number, flat)):
            got = f"a list of {len(flat)}" if isinstance(flat, list) else repr(flat)
            raise InputError(f"expected a list of {NUM_VALUES} finite numbers (x, y, confidence "
                             f"for each of {COCO17.num_keypoints} keypoints); got {got}", file=file,
                             record=record, field="keypoints")
        box = read_box(det["bbox"], file, record, "bbox") if "bbox" in det else None
        out.setdefault(image_id, []).append(
            Pose(np.asarray(flat, dtype=np.float64), box=box, score=score))
    return out
