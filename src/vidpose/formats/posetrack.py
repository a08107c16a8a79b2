"""PoseTrack18 files: one JSON per video, ground truth or poseval predictions.

Layout: ``ROOT/annotations/{split}/<video>.json`` with image ``file_name`` relative to ROOT.
A video's frames are ordered by their position in ``images``; ``is_labeled`` marks the
frames that carry annotations. Predictions use the same layout with, per annotation,
flags 1/0 in ``keypoints``, per-joint confidences in ``scores`` and a person ``score``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vidpose.errors import InputError
from vidpose.formats.cocostyle import (
    PERSON_CATEGORY, annotation_ids, box_of, category_record, flat_keypoints, is_int, is_number,
    read_box, read_images, read_poses, read_schema, record_name, require_keys,
)
from vidpose.formats.jsonio import dump_json, load_json
from vidpose.keypoints import POSETRACK18, Schema
from vidpose.pose import Frame, Pose, PoseDataset

TOP_LEVEL_KEYS = ("images", "annotations", "categories")


def _default_image_root(path: Path) -> Path:
    """ROOT for ``ROOT/annotations/{split}/`` (a folder) or a file inside it."""
    folder = path if path.is_dir() else path.parent
    return folder.parent.parent


def _read_ignore_regions(image: dict, file: str, record: str) -> list[np.ndarray]:
    """``ignore_regions_x/y`` (parallel lists of per-polygon coordinates) as (N, 2) polygons."""
    xs, ys = image.get("ignore_regions_x", []), image.get("ignore_regions_y", [])
    if not (isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys)):
        raise InputError("expected ignore_regions_x and ignore_regions_y as two lists of the same "
                         "number of polygons", file=file, record=record, field="ignore_regions_x")
    regions = []
    for x, y in zip(xs, ys):
        if (not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y)
                or not all(map(is_number, x + y))):
            raise InputError("expected each polygon as equally long lists of numbers in "
                             "ignore_regions_x and ignore_regions_y", file=file, record=record,
                             field="ignore_regions_x")
        regions.append(np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1))
    return regions


def _fill_image_size(frames: list[Frame], image_root: Path, file: str) -> None:
    """Real PoseTrack18 images carry no width/height: take them from the video's first image.

    All frames of a video share one size, so one header read serves the video. Without the
    image file the size stays 0 (unknown) and keypoints are not checked against it.
    """
    missing = [f for f in frames if f.width == 0 or f.height == 0]
    if not missing or not (image_root / frames[0].file_name).is_file():
        return
    try:
        with Image.open(image_root / frames[0].file_name) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"cannot read the image size ({err})", file=file,
                         record=f"image {frames[0].image_id}", field="file_name") from None
    for frame in missing:
        frame.width, frame.height = width, height


def _read_posetrack_fields(ann: dict, pose: Pose, file: str, record: str) -> None:
    """``track_id``, ``bbox_head``, per-joint ``scores`` and person ``score`` onto ``pose``."""
    track_id = ann.get("track_id")
    if not is_int(track_id):
        raise InputError(f"expected an integer track id; got {track_id!r}", file=file,
                         record=record, field="track_id")
    pose.track_id = int(track_id)
    if ann.get("bbox_head") is not None:
        pose.head_box = read_box(ann["bbox_head"], file, record, "bbox_head")
    scores = ann.get("scores", [])
    if not isinstance(scores, list) or (scores and (len(scores) != len(pose.keypoints)
                                                    or not all(map(is_number, scores)))):
        raise InputError(f"expected [] or {len(pose.keypoints)} per-joint numbers; got {scores!r}",
                         file=file, record=record, field="scores")
    if scores:  # a prediction: keep the flags aside, the third column becomes the confidence
        pose.extra["visibility"] = pose.keypoints[:, 2].copy()
        pose.keypoints[:, 2] = scores
    if "score" in ann:
        if not is_number(ann["score"]):
            raise InputError(f"expected a number; got {ann['score']!r}", file=file, record=record,
                             field="score")
        pose.score = float(ann["score"])


def read_video(file: Path, image_root: Path, *, check_images: bool = True,
               outside_tolerance: float = 1.0, data: dict | None = None,
               require_ids: bool = True) -> tuple[Schema, list[Frame]]:
    """One ``<video>.json``: its keypoint schema and its frames in ``images`` order.

    ``data`` is the file's already parsed JSON, when the caller has it; ``require_ids=False``
    accepts annotations without ``id`` (prediction files).
    """
    name = str(file)
    data = load_json(file) if data is None else data
    require_keys(data, TOP_LEVEL_KEYS, name)
    if not data["images"]:
        raise InputError("empty video: no images", file=name, field="images")
    schema, category_ids = read_schema(data["categories"], name)
    vid_ids = {str(image["vid_id"]) for image in data["images"]
               if isinstance(image, dict) and "vid_id" in image}
    if len(vid_ids) > 1:
        raise InputError(f"one video file holds one video; found vid_ids {sorted(vid_ids)} "
                         "(read a merged COCO-style file with read_coco)", file=name,
                         field="vid_id")
    frames = read_images(data["images"], name, image_root, check_images=check_images,
                         require_size=False, video=file.stem)
    for i, (image, frame) in enumerate(zip(data["images"], frames)):
        frame.ignore_regions = _read_ignore_regions(image, name, record_name("image", image, i))
    _fill_image_size(frames, image_root, name)
    poses = read_poses(data["annotations"], name, frames, schema, category_ids,
                       outside_tolerance=outside_tolerance, require_ids=require_ids)
    by_id = {frame.image_id: frame for frame in frames}
    for i, (ann, pose) in enumerate(zip(data["annotations"], poses)):
        _read_posetrack_fields(ann, pose, name, record_name("annotation", ann, i))
        by_id[ann["image_id"]].poses.append(pose)
    return schema, frames


def read_posetrack(path: str | os.PathLike, image_root: str | os.PathLike | None = None, *,
                   check_images: bool = True, outside_tolerance: float = 1.0) -> PoseDataset:
    """Read a folder of ``<video>.json`` (sorted by name) or one video file.

    ``image_root`` defaults to the dataset root ROOT of ``ROOT/annotations/{split}/``.
    ``Frame.video`` is the file stem and ``Frame.frame_index`` the position in ``images``.
    Image ids must be unique across the videos read together (results files and
    evaluation key on them); annotation ids, as in any COCO-style file, within a file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", file=str(path))
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise InputError("no <video>.json files in this folder", file=str(path))
    root = Path(image_root) if image_root is not None else _default_image_root(path)
    schema: Schema | None = None
    frames: list[Frame] = []
    image_ids: set[int] = set()
    for file in files:
        video_schema, video_frames = read_video(file, root, check_images=check_images,
                                                outside_tolerance=outside_tolerance)
        if schema is not None and video_schema is not schema:
            raise InputError(f"keypoint order {video_schema.name} differs from the other videos' "
                             f"{schema.name}", file=str(file), field="categories")
        schema = video_schema
        for frame in video_frames:
            if frame.image_id in image_ids:
                raise InputError("image id also used in another video", file=str(file),
                                 record=f"image {frame.image_id}", field="id")
            image_ids.add(frame.image_id)
        frames.extend(video_frames)
    return PoseDataset(frames, schema, str(root), source=str(path))


def _image_record(frame: Frame, video: str, nframes: int) -> dict:
    record = {"id": frame.image_id, "file_name": frame.file_name, "frame_id": frame.image_id,
              "vid_id": video, "nframes": nframes, "is_labeled": bool(frame.is_labeled),
              "ignore_regions_x": [r[:, 0].tolist() for r in frame.ignore_regions],
              "ignore_regions_y": [r[:, 1].tolist() for r in frame.ignore_regions]}
    if frame.width and frame.height:
        record.update(width=frame.width, height=frame.height)
    return record


def _ground_truth_record(pose: Pose, keypoints: np.ndarray) -> dict:
    record = {"keypoints": flat_keypoints(keypoints),
              "num_keypoints": int((keypoints[:, 2] > 0).sum()), "scores": [],
              "iscrowd": bool(pose.iscrowd)}
    if pose.head_box is not None:
        record["bbox_head"] = pose.head_box.tolist()
    return record


def _prediction_record(pose: Pose, keypoints: np.ndarray) -> dict:
    present = keypoints[:, 2] > 0
    flagged = np.column_stack([keypoints[:, :2], np.ones(len(keypoints))])
    return {"keypoints": np.where(present[:, None], flagged, 0.0).ravel().tolist(),
            "scores": np.where(present, keypoints[:, 2], 0.0).tolist(), "score": float(pose.score)}


def write_posetrack_video(path: str | os.PathLike, frames: list[Frame], *, video: str,
                          predictions: bool = False) -> None:
    """Write one video's frames, in the given order, as a PoseTrack18 ``<video>.json``.

    Keypoints must be in POSETRACK18 order; the ears, never annotated there, are written
    0,0,0. Ground truth writes flags; ``predictions=True`` writes poseval's prediction
    format (x, y, 1 for joints with confidence > 0, else 0,0,0; confidences in ``scores``;
    person ``score``) with the same images list as the ground truth. A pose without a box
    gets the tight box around its present keypoints.
    """
    if not frames:
        raise ValueError(f"video {video!r} has no frames; PoseTrack18 files need at least one")
    annotated = POSETRACK18.annotated_mask[:, None]
    poses = [pose for frame in frames for pose in frame.poses]
    ids = iter(annotation_ids(poses))
    annotations = []
    for frame in frames:
        for pose in frame.poses:
            keypoints = np.where(annotated, pose.keypoints, 0.0)
            record = {"id": next(ids), "image_id": frame.image_id, "category_id": PERSON_CATEGORY,
                      "track_id": int(pose.track_id), "bbox": box_of(pose)}
            record.update(_prediction_record(pose, keypoints) if predictions
                          else _ground_truth_record(pose, keypoints))
            annotations.append(record)
    images = [_image_record(frame, video, len(frames)) for frame in frames]
    dump_json(Path(path), {"images": images, "annotations": annotations,
                           "categories": [category_record(POSETRACK18)]})


def write_posetrack_predictions(folder: str | os.PathLike, dataset: PoseDataset) -> list[Path]:
    """Write poseval prediction files, ``folder/<video>.json`` per video; returns their paths."""
    if dataset.schema.name != POSETRACK18.name:
        raise ValueError("PoseTrack18 predictions are written in posetrack18 order; the dataset "
                         f"is {dataset.schema.name} (use keypoints.convert first)")
    paths = []
    for video, frames in dataset.videos().items():
        path = Path(folder) / f"{video}.json"
        write_posetrack_video(path, frames, video=video, predictions=True)
        paths.append(path)
    return paths
