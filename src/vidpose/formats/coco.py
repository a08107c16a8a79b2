"""COCO keypoints files (``person_keypoints_*.json``): read into and write from ``PoseDataset``."""
from __future__ import annotations

import os
from pathlib import Path

from vidpose.formats.cocostyle import (
    PERSON_CATEGORY,
    TOP_LEVEL_KEYS,
    annotation_ids,
    box_of,
    category_record,
    flat_keypoints,
    read_images,
    read_poses,
    read_schema,
    require_keys,
    segmentation_record,
)
from vidpose.formats.jsonio import dump_json, load_json, reports_deep_nesting
from vidpose.pose import PoseDataset


@reports_deep_nesting
def read_coco(ann_file: str | os.PathLike, image_root: str | os.PathLike, *,
              check_images: bool = True, outside_tolerance: float = 1.0) -> PoseDataset:
    """Read and validate a COCO keypoints file; frames keep the file's image order.

    The keypoint order comes from the category's names (COCO17, or POSETRACK18 for a
    merged PoseTrack18 file). Poses are ground truth: third keypoint column = visibility.
    ``check_images`` makes a missing image file an error; ``outside_tolerance`` is how
    many pixels a labelled keypoint may lie outside its image.
    """
    return coco_dataset(load_json(ann_file), str(ann_file), image_root, check_images=check_images,
                        outside_tolerance=outside_tolerance)


def coco_dataset(data: object, file: str, image_root: str | os.PathLike, *,
                 check_images: bool = True, outside_tolerance: float = 1.0) -> PoseDataset:
    """``read_coco`` of an already parsed file (or an in-memory dict: ``file`` names it in
    errors); each image's poses in file order, as pycocotools' index has them."""
    require_keys(data, TOP_LEVEL_KEYS, file)
    schema, category_ids = read_schema(data["categories"], file)
    frames = read_images(data["images"], file, image_root, check_images=check_images,
                         require_size=True)
    read_poses(data["annotations"], file, frames, schema, category_ids,
               outside_tolerance=outside_tolerance)
    return PoseDataset(frames, schema, str(image_root), source=file)


def write_coco(path: str | os.PathLike, dataset: PoseDataset, *, description: str = "") -> None:
    """Write ``dataset`` as a COCO keypoints file in its schema's order (COCO17 or POSETRACK18).

    A pose without a box gets the tight box around its present keypoints and, without an
    area, that box's area (COCO evaluation needs both); ``segmentation`` is written only
    when the pose has one.
    """
    category = category_record(dataset.schema)
    unsized = [f.image_id for f in dataset.frames if f.width <= 0 or f.height <= 0]
    if unsized:
        raise ValueError(f"frames {unsized[:5]} have no image size; COCO files need width and "
                         "height (read PoseTrack18 with its images to get them)")
    ids = iter(annotation_ids([pose for frame in dataset.frames for pose in frame.poses]))
    annotations = []
    for frame in dataset.frames:
        for pose in frame.poses:
            box = box_of(pose)
            ann = {"id": next(ids), "image_id": frame.image_id, "category_id": PERSON_CATEGORY,
                   "keypoints": flat_keypoints(pose.keypoints), "num_keypoints": pose.num_visible,
                   "bbox": box, "area": pose.area if pose.area is not None else box[2] * box[3],
                   "iscrowd": int(pose.iscrowd)}
            if pose.segmentation is not None:
                ann["segmentation"] = segmentation_record(pose.segmentation)
            annotations.append(ann)
    images = [{"id": f.image_id, "file_name": f.file_name, "width": f.width, "height": f.height}
              for f in dataset.frames]
    dump_json(Path(path), {"info": {"description": description}, "images": images,
                           "annotations": annotations, "categories": [category]})
