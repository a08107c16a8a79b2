"""Person detection files in COCO results format: ``[{image_id, category_id, bbox, score}]``.

Top-down methods crop around these boxes; each detection becomes a ``Pose`` with a box
and a score and no keypoints yet (all zero, 17 x 3).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidpose.errors import InputError
from vidpose.formats.cocostyle import (
    PERSON_CATEGORY,
    read_box,
    read_result_record,
    read_results_list,
)
from vidpose.formats.jsonio import dump_json, reports_deep_nesting
from vidpose.keypoints import COCO17
from vidpose.pose import Pose


@reports_deep_nesting
def read_detections(path: str | os.PathLike, *,
                    image_ids: set[int] | None = None) -> dict[int, list[Pose]]:
    """Detections per image id, in file order.

    With ``image_ids`` an unknown image id is an error, and every given id has an entry
    (an empty list when the detector found nobody there).
    """
    file, data = read_results_list(path)
    out: dict[int, list[Pose]] = {i: [] for i in sorted(image_ids or ())}
    for index, det in enumerate(data):
        image_id, score = read_result_record(det, index, file, image_ids)
        if "bbox" not in det:
            raise InputError("detection has no box; expected [x, y, w, h]", file=file,
                             record=f"results[{index}]", field="bbox")
        box = read_box(det["bbox"], file, f"results[{index}]", "bbox")
        out.setdefault(image_id, []).append(
            Pose(np.zeros((COCO17.num_keypoints, 3)), box=box, score=score))
    return out


def write_detections(path: str | os.PathLike, detections: dict[int, list[Pose]]) -> None:
    """Write boxes and scores as COCO results, images in id order, detections in list order."""
    records = []
    for image_id in sorted(detections):
        for pose in detections[image_id]:
            if pose.box is None:
                raise ValueError(f"a detection of image {image_id} has no box")
            records.append({"image_id": int(image_id), "category_id": PERSON_CATEGORY,
                            "bbox": pose.box.tolist(), "score": float(pose.score)})
    dump_json(Path(path), records)
