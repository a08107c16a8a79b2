"""Read, validate and write COCO, PoseTrack18, OCHuman, detection and results files."""
from vidpose.formats.coco import read_coco, write_coco
from vidpose.formats.detections import read_detections, write_detections
from vidpose.formats.jsonio import dump_json, load_json
from vidpose.formats.ochuman import read_ochuman
from vidpose.formats.posetrack import (
    read_posetrack,
    write_posetrack_predictions,
    write_posetrack_video,
)
from vidpose.formats.results import read_coco_results, write_coco_results

__all__ = [
    "dump_json", "load_json", "read_coco", "read_coco_results", "read_detections", "read_ochuman",
    "read_posetrack", "write_coco", "write_coco_results", "write_detections",
    "write_posetrack_predictions", "write_posetrack_video",
]
