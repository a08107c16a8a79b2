"""OCHuman in its COCO format: COCO keypoints whose every person carries a mask.

OCHuman's point is heavy occlusion between people, told by their masks (RLE or polygons);
a person without one is an error here, where plain COCO would accept it.
"""
from __future__ import annotations

import os

from vidpose.errors import InputError
from vidpose.formats.coco import read_coco
from vidpose.formats.jsonio import reports_deep_nesting
from vidpose.pose import PoseDataset


@reports_deep_nesting
def read_ochuman(ann_file: str | os.PathLike, image_root: str | os.PathLike, *,
                 check_images: bool = True, outside_tolerance: float = 1.0) -> PoseDataset:
    """Read and validate an OCHuman COCO-format file (see ``read_coco``); masks are required.

    RLE sizes written as the string "[h, w]" (as some OCHuman files do) come back as lists.
    """
    dataset = read_coco(ann_file, image_root, check_images=check_images,
                        outside_tolerance=outside_tolerance)
    for frame in dataset.frames:
        for pose in frame.poses:
            if pose.segmentation is None or len(pose.segmentation) == 0:
                raise InputError("person has no mask; OCHuman annotations carry an RLE or "
                                 "polygon segmentation", file=str(ann_file),
                                 record=f"annotation {pose.ann_id}", field="segmentation")
    return dataset
