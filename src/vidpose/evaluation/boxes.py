"""The evaluation of a person detector on the box data module's batches (CenterNet):
pycocotools box AP of the split's boxes and a COCO detections file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from vidpose.data_modules.boxes import frame_boxes
from vidpose.errors import InputError
from vidpose.evaluation.split import SplitEvaluator
from vidpose.formats.cocostyle import PERSON_CATEGORY
from vidpose.formats.detections import write_detections
from vidpose.metrics.coco_ap import cocoeval_stats
from vidpose.pose import Pose, PoseDataset

# pycocotools' box statistics logged at validation: index into COCOeval.stats.
BOX_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "AR": 8}  # AR: at 100 detections per image


def ground_truth_boxes(data: PoseDataset, frames: Sequence[int]) -> dict[str, Any]:
    """The COCO box ground truth of ``frames``: person boxes, with crowd persons and
    PoseTrack18 ignore regions (their bounding boxes) as ``iscrowd`` ignore regions."""
    images, annotations = [], []
    for index in frames:
        frame = data.frames[index]
        images.append({"id": frame.image_id, "width": frame.width, "height": frame.height,
                       "file_name": frame.file_name})
        boxes, crowd = frame_boxes(data, index)
        regions = [np.concatenate([r.min(0), r.max(0) - r.min(0)]) for r in frame.ignore_regions
                   if len(r)]
        boxes = np.concatenate([boxes, np.array(regions).reshape(-1, 4)])
        crowd = np.concatenate([crowd, np.ones(len(regions), dtype=bool)])
        for box, is_crowd in zip(boxes.tolist(), crowd.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": frame.image_id,
                                "category_id": PERSON_CATEGORY, "bbox": box,
                                "area": box[2] * box[3], "iscrowd": int(is_crowd)})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": PERSON_CATEGORY, "name": "person"}]}


def box_ap(data: PoseDataset, frames: Sequence[int],
           detections: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """pycocotools box AP/AR (``COCOeval(iouType="bbox")``) in percent of ``detections``
    (image id -> boxes (M, 4) x, y, w, h, scores (M,)) on ``frames`` of ``data``."""
    truth = ground_truth_boxes(data, frames)
    if not any(not ann["iscrowd"] for ann in truth["annotations"]):
        raise InputError("no person box in the evaluated frames: box AP is undefined",
                         file=data.source, field="annotations")
    results = [{"image_id": int(image_id), "category_id": PERSON_CATEGORY, "bbox": box,
                "score": score}
               for image_id, (boxes, scores) in detections.items()
               for box, score in zip(np.asarray(boxes).tolist(), np.asarray(scores).tolist())]
    stats = cocoeval_stats(truth, results, "bbox")
    return {name: 100.0 * float(stats[i]) for name, i in BOX_STATS.items() if stats[i] >= 0}


class BoxEvaluator(SplitEvaluator):
    """Boxes of whole frames: ``add(frame, boxes, scores, valid)`` per batch, ``finish`` per
    split. ``num_keypoints``: the data's schema, whose empty keypoints the detections carry."""

    def __init__(self, num_keypoints: int) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints

    def add(self, frame: Tensor, boxes: np.ndarray, scores: np.ndarray,
            valid: np.ndarray) -> None:
        """A batch's (B, M, 4) x, y, w, h boxes in image pixels, their scores (B, M) and
        which of them are detections (B, M), of the frames ``frame`` (B,)."""
        self.batches.append({"frame": frame.cpu().numpy(), "boxes": boxes, "scores": scores,
                             "valid": valid})

    def finish(self, dataset: PoseDataset, folder: Path | None) -> dict[str, float]:
        """Box AP of the split (none without a box); ``detections.json`` in ``folder``."""
        rows = self.unique_rows(lambda rows: rows["frame"][:, None])
        if not rows:
            return {}
        frames = rows["frame"].tolist()
        detections = {dataset.frames[f].image_id: (boxes[keep], scores[keep].astype(np.float64))
                      for f, boxes, scores, keep in zip(frames, rows["boxes"], rows["scores"],
                                                        rows["valid"])}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            empty = np.zeros((self.num_keypoints, 3))
            write_detections(folder / "detections.json",
                             {image_id: [Pose(empty, box=box, score=float(score))
                                         for box, score in zip(boxes, scores)]
                              for image_id, (boxes, scores) in detections.items()})
        return box_ap(dataset, frames, detections)
