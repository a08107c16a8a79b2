"""COCO keypoint AP and AR (pycocotools ``COCOeval``, OKS) for COCO and OCHuman ground truth.

The ten standard numbers (AP, AP at OKS 0.50 and 0.75, AP of medium and large persons, and
the same for AR), in percent, computed by pycocotools itself on COCO objects built in
memory, with the OKS sigmas of the ground truth's keypoint schema.

How the pycocotools conventions are met:

* Ground truth goes through our readers (``read_coco``, ``read_ochuman``), so bad records
  are ``InputError``s; labelled keypoints outside the image are kept (they are labels, and
  PoseTrack18 head tops do leave the frame). OCHuman's COCO-format files use the COCO17
  order, which the reader checks by name; the dataset only decides that check and the
  name reported.
* Every keypoint category is evaluated as the one person category (id 1), the id results
  files carry. ``num_keypoints`` is counted from the keypoints, not trusted from the file.
* A person without ``area`` gets its mask's area when it has a segmentation, else its box's;
  without ``bbox`` it gets the tight box around its labelled keypoints.
* pycocotools ignores persons with no labelled keypoint and ``iscrowd`` regions: a
  prediction matched to one is neither a hit nor a false positive. A prediction on an image
  with no person is a false positive. Only the 20 best-scored predictions of an image count.
* Predictions are read from the keypoints and score only (boxes are dropped), so that
  pycocotools takes each prediction's area from its keypoints, as for official results.
* A number is NaN (``None`` in ``as_dict``, ``-`` in the table) when no ground-truth person
  falls in its size range, e.g. APm on a set of large persons only.
* An empty results file is an ``InputError`` (AP would be 0: it is almost always the wrong
  file or a failed run); the Metric given no predictions reports AP = AR = 0, as an
  untrained model may predict nobody.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from vidpose.errors import InputError
from vidpose.formats.coco import coco_dataset, read_coco
from vidpose.formats.cocostyle import (
    PERSON_CATEGORY,
    annotation_ids,
    category_record,
    coco_index,
    read_results_list,
)
from vidpose.formats.jsonio import load_json
from vidpose.formats.ochuman import read_ochuman
from vidpose.formats.results import read_coco_results
from vidpose.keypoints import Schema, get_schema
from vidpose.metrics.samples import SampleMetric
from vidpose.pose import Frame, PoseDataset

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
DATASETS = ("auto", "coco", "ochuman")
DICT_SOURCE = "<ground-truth dict>"  # the 'file' named in errors about an in-memory dict


@dataclass(frozen=True)
class CocoKeypointResult:
    """What ``evaluate_coco`` found: the ten stats in percent (NaN: undefined) and the counts."""

    stats: dict[str, float]
    num_images: int
    num_persons: int  # ground-truth persons that count (labelled, not crowd)
    num_predictions: int
    dataset: str
    schema: str
    ground_truth: str
    predictions: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: undefined stats become ``None`` (JSON has no NaN)."""
        return {**{name: None if math.isnan(value) else value for name, value in self.stats.items()},
                "num_images": self.num_images, "num_persons": self.num_persons,
                "num_predictions": self.num_predictions, "dataset": self.dataset,
                "schema": self.schema, "ground_truth": self.ground_truth,
                "predictions": self.predictions}

def detect_dataset(data: Any, file: str) -> str:
    """'ochuman' when the file says so (its description, or RLE sizes quoted as strings, as
    OCHuman's files write them), else 'coco'. OCHuman's own ``ochuman.json`` is refused."""
    if not isinstance(data, dict):
        return "coco"  # require_keys in the reader names what is wrong
    if "keypoint_names" in data and "annotations" not in data:
        raise InputError("this is OCHuman's own ochuman.json layout; evaluate against its "
                         "COCO-format file (ochuman_coco_format_*.json)", file=file,
                         field="keypoint_names")
    info = data.get("info")
    if isinstance(info, dict) and "ochuman" in str(info.get("description", "")).lower():
        return "ochuman"
    annotations = data.get("annotations")
    quoted = isinstance(annotations, list) and any(
        isinstance(ann, dict) and isinstance(ann.get("segmentation"), dict)
        and isinstance(ann["segmentation"].get("size"), str) for ann in annotations)
    return "ochuman" if quoted else "coco"


def read_ground_truth(path: str | os.PathLike, dataset: str = "auto") -> tuple[PoseDataset, str]:
    """Read a COCO or OCHuman keypoints file (no images needed) and say which it is."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    if dataset == "auto":
        dataset = detect_dataset(load_json(path), str(path))
    reader = read_ochuman if dataset == "ochuman" else read_coco
    truth = reader(path, Path(path).parent, check_images=False, outside_tolerance=math.inf)
    return truth, dataset


def _require_persons(truth: PoseDataset) -> int:
    """The number of persons pycocotools scores (the rest are ignore regions); none at all
    makes AP undefined, an error."""
    num = sum(pose.num_visible > 0 and not pose.iscrowd for frame in truth.frames for pose in frame.poses)
    if num == 0:
        raise InputError("no person with a labelled keypoint (crowd regions aside): COCO "
                         "keypoint AP is undefined", file=truth.source, field="annotations")
    return num


def _mask_area(segmentation: Any, frame: Frame) -> float | None:
    """Area in pixels of COCO polygons or RLE; None when there is no usable mask."""
    if isinstance(segmentation, list):
        # pycocotools reads a 4-number list as a box: polygons need 3 points.
        polygons = [polygon for polygon in segmentation if len(polygon) >= 6]
        if not polygons:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, frame.height, frame.width))
    elif isinstance(segmentation, dict) and isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, frame.height, frame.width)
    elif isinstance(segmentation, dict):
        rle = segmentation
    else:
        return None
    return float(mask_utils.area(rle))


def ground_truth_dict(truth: PoseDataset) -> dict[str, Any]:
    """The COCO keypoints dict pycocotools evaluates, every field it reads filled in."""
    ids = iter(annotation_ids([pose for frame in truth.frames for pose in frame.poses]))
    annotations = []
    for frame in truth.frames:
        for pose in frame.poses:
            box = pose.box if pose.box is not None else pose.keypoint_box()
            area = pose.area if pose.area is not None else _mask_area(pose.segmentation, frame)
            annotations.append({
                "id": next(ids), "image_id": frame.image_id, "category_id": PERSON_CATEGORY,
                "keypoints": pose.keypoints.ravel().tolist(), "num_keypoints": pose.num_visible,
                "bbox": box.tolist(), "area": float(box[2] * box[3]) if area is None else area,
                "iscrowd": int(pose.iscrowd)})
    images = [{"id": f.image_id, "width": f.width, "height": f.height, "file_name": f.file_name}
              for f in truth.frames]
    return {"images": images, "annotations": annotations,
            "categories": [category_record(truth.schema)]}

def read_predictions(path: str | os.PathLike, image_ids: set[int]) -> list[dict[str, Any]]:
    """The results file as the records ``COCO.loadRes`` takes: image_id, category_id,
    keypoints, score (in the file's order within each image)."""
    per_image = read_coco_results(path)
    unknown = set(per_image) - image_ids
    if unknown:
        # Read again only to name the first offending record.
        file, records = read_results_list(path)
        index = next(i for i, det in enumerate(records) if det["image_id"] in unknown)
        count = sum(len(per_image[image_id]) for image_id in unknown)
        raise InputError(f"image_id {records[index]['image_id']} names no image of the ground "
                         f"truth ({count} result(s) on {len(unknown)} unknown image id(s): is "
                         "this the right ground-truth file?)", file=file,
                         record=f"results[{index}]", field="image_id")
    predictions = [{"image_id": image_id, "category_id": PERSON_CATEGORY,
                    "keypoints": pose.keypoints.ravel().tolist(), "score": pose.score}
                   for image_id, poses in per_image.items() for pose in poses]
    if not predictions:
        raise InputError("the results list is empty: no predictions to evaluate (every AP and "
                         "AR would be 0)", file=str(path))
    return predictions

def cocoeval_stats(ground_truth: dict[str, Any], results: list[dict[str, Any]], iou_type: str,
                   sigmas: np.ndarray | None = None) -> np.ndarray:
    """``COCOeval(iouType=iou_type)`` run silently (``sigmas``: the OKS sigmas of keypoints):
    its ``stats``, -1 where undefined."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_index(ground_truth)
        # loadRes cannot take an empty list; an empty index scores AP = AR = 0
        dt = gt.loadRes(results) if results else coco_index({**ground_truth, "annotations": []})
        evaluator = COCOeval(gt, dt, iouType=iou_type)
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def coco_keypoint_stats(ground_truth: dict[str, Any], predictions: list[dict[str, Any]],
                        sigmas: np.ndarray) -> dict[str, float]:
    """The ten keypoint stats in percent, NaN where pycocotools says -1 (no ground-truth
    person in that size range)."""
    stats = cocoeval_stats(ground_truth, predictions, "keypoints", sigmas)
    return {name: math.nan if value < 0 else 100.0 * float(value)
            for name, value in zip(STAT_NAMES, stats, strict=True)}


def evaluate_coco(gt: str | os.PathLike, pred: str | os.PathLike, *,
                  dataset: str = "auto") -> CocoKeypointResult:
    """COCO keypoint AP/AR of a results file against a COCO or OCHuman keypoints file.

    ``dataset``: 'auto' (from the file's content), 'coco' or 'ochuman' (masks required).
    Predictions are in the ground truth's keypoint order (17 slots).
    """
    truth, name = read_ground_truth(gt, dataset)
    num_persons = _require_persons(truth)
    predictions = read_predictions(pred, {frame.image_id for frame in truth.frames})
    stats = coco_keypoint_stats(ground_truth_dict(truth), predictions, truth.schema.sigmas)
    return CocoKeypointResult(stats, num_images=len(truth.frames), num_persons=num_persons,
                              num_predictions=len(predictions), dataset=name,
                              schema=truth.schema.name, ground_truth=str(gt),
                              predictions=str(pred))


def format_coco_table(result: CocoKeypointResult) -> str:
    """A small aligned table: AP and AR over all persons, at OKS .50 and .75, by size."""
    columns = ("all", "OKS.50", "OKS.75", "medium", "large")
    width = 8

    def cells(values: list[float]) -> str:
        return "".join(("-" if math.isnan(v) else f"{v:.1f}").rjust(width) for v in values)

    stats = [result.stats[name] for name in STAT_NAMES]
    lines = [
        f"COCO keypoint AP (pycocotools, OKS): {result.dataset} ground truth, "
        f"{result.schema} keypoints",
        f"ground truth  {result.ground_truth}: {result.num_images} images, "
        f"{result.num_persons} persons",
        f"predictions   {result.predictions}: {result.num_predictions} poses",
        "",
        "  " + "".join(c.rjust(width) for c in columns),
        "AP" + cells(stats[:5]),
        "AR" + cells(stats[5:]),
    ]
    if any(math.isnan(v) for v in stats):
        lines.append("-: no ground-truth person of that size")
    return "\n".join(lines)

class CocoKeypointAP(SampleMetric):
    """COCO keypoint AP/AR of predicted persons against fixed ground truth, DDP-synced.

    ``ids`` identify predictions: the repeats with which DistributedSampler pads a rank's
    last batch carry the same ids and count once, and predictions are evaluated in id
    order, so pycocotools' score ties break the same way on any number of processes.
    """

    def __init__(self, ground_truth: str | os.PathLike | dict | PoseDataset,
                 schema: Schema | str | None = None, *, dataset: str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(ground_truth, PoseDataset):
            truth = ground_truth
        elif isinstance(ground_truth, dict):
            truth = coco_dataset(ground_truth, DICT_SOURCE, "", check_images=False,
                                 outside_tolerance=math.inf)
        else:
            truth, _ = read_ground_truth(ground_truth, dataset)
        _require_persons(truth)
        schema = get_schema(schema) if isinstance(schema, str) else schema
        if schema is not None and schema is not truth.schema:
            raise InputError(f"ground-truth keypoints are in {truth.schema.name} order but the "
                             f"predictions are in {schema.name} order", file=truth.source,
                             field="categories")
        self.schema = truth.schema
        self.ground_truth = ground_truth_dict(truth)
        self.register_buffer("gt_image_ids", torch.tensor(
            sorted(frame.image_id for frame in truth.frames), dtype=torch.int64),
            persistent=False)
        for name in ("image_ids", "keypoints", "scores"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, image_ids: Tensor, keypoints: Tensor, scores: Tensor, ids: Tensor) -> None:
        """image_ids (B,) int, keypoints (B, K, 3) x, y, score in image pixels, person
        scores (B,), ids (B,) int64: one row per predicted person."""
        batch, k = len(ids), self.schema.num_keypoints
        if keypoints.shape != (batch, k, 3) or image_ids.shape != (batch,) \
                or scores.shape != (batch,) or ids.shape != (batch,):
            raise ValueError(f"expected image_ids, scores and ids of shape (B,) and keypoints "
                             f"(B, {k}, 3); got {tuple(image_ids.shape)}, {tuple(scores.shape)}, "
                             f"{tuple(ids.shape)} and {tuple(keypoints.shape)}")
        if ids.dtype != torch.int64:
            raise ValueError(f"ids must be int64, got {ids.dtype}")
        if not (torch.isfinite(keypoints).all() and torch.isfinite(scores).all()):
            raise ValueError("keypoints and scores must be finite")
        image_ids = image_ids.to(torch.int64)
        unknown = ~torch.isin(image_ids, self.gt_image_ids)
        if unknown.any():
            raise ValueError(f"image id {int(image_ids[unknown][0])} is not in the ground truth")
        self.image_ids.append(image_ids)
        self.keypoints.append(keypoints.detach().to(torch.float64))
        self.scores.append(scores.detach().to(torch.float64))
        self.ids.append(ids)

    def compute(self) -> dict[str, float]:
        """The ten stats (``STAT_NAMES``) in percent; NaN where no person has that size."""
        rows = self.first_rows("image_ids", "keypoints", "scores")
        image_ids, keypoints, scores = ((rows[0].tolist(), rows[1].flatten(1).tolist(),
                                         rows[2].tolist()) if rows else ([], [], []))
        predictions = [{"image_id": i, "category_id": PERSON_CATEGORY, "keypoints": kps, "score": s}
                       for i, kps, s in zip(image_ids, keypoints, scores)]
        return coco_keypoint_stats(self.ground_truth, predictions, self.schema.sigmas)
