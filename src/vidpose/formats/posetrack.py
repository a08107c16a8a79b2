"""PoseTrack18 files: one JSON per video, ground truth or poseval predictions.

Layout: ``ROOT/annotations/{split}/<video>.json`` with image ``file_name`` relative to ROOT.
A video's frames are ordered by their position in ``images``; ``is_labeled`` marks the
frames that carry annotations. Predictions use the same layout with, per annotation,
flags 1/0 in ``keypoints``, per-joint confidences in ``scores`` and a person ``score``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import is_not
from pathlib import Path

import numpy as np

from vidpose.errors import InputError
from vidpose.formats.cocostyle import (
    INT64_RANGE,
    JSON_NUMBER_TYPES,
    PERSON_CATEGORY,
    TOP_LEVEL_KEYS,
    VISIBILITY_FLAGS,
    annotation_ids,
    box_of,
    category_record,
    flat_keypoints,
    is_int,
    is_int64,
    is_number,
    read_box,
    read_images,
    read_poses,
    read_schema,
    record_name,
    require_keys,
)
from vidpose.formats.jsonio import dump_json, load_json, reports_deep_nesting
from vidpose.keypoints import POSETRACK18, Schema
from vidpose.pose import Frame, Pose, PoseDataset


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
    from PIL import Image, UnidentifiedImageError  # only here: readers of annotations alone skip it

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
    if not is_int64(track_id):  # tracks are int64 arrays in evaluation and training
        raise InputError(f"track id {track_id} is outside the 64-bit integer range "
                         f"[{INT64_RANGE[0]}, {INT64_RANGE[1]}]", file=file, record=record,
                         field="track_id")
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


@reports_deep_nesting
def read_video(file: Path, image_root: Path, *, check_images: bool = True,
               outside_tolerance: float = 1.0, data: dict | None = None,
               require_ids: bool = True, image_sizes: bool = True) -> tuple[Schema, list[Frame]]:
    """One ``<video>.json``: its keypoint schema and its frames in ``images`` order.

    ``data`` is the file's already parsed JSON, when the caller has it; ``require_ids=False``
    accepts annotations without ``id`` (prediction files); ``image_sizes=False`` leaves
    missing image sizes at 0 instead of reading them from the first image.
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
    if image_sizes:
        _fill_image_size(frames, image_root, name)
    poses = read_poses(data["annotations"], name, frames, schema, category_ids,
                       outside_tolerance=outside_tolerance, require_ids=require_ids)
    for i, (ann, pose) in enumerate(zip(data["annotations"], poses)):
        _read_posetrack_fields(ann, pose, name, record_name("annotation", ann, i))
    return schema, frames

@dataclass
class VideoArrays:
    """One video's images and persons as arrays: what the PoseTrack evaluation reads.

    Persons are in file order, ``frame`` giving the position in ``images`` of each one's
    image; keypoints in the file's order (POSETRACK18 for PoseTrack files). Ignore regions
    are flat: polygon after polygon, ``region_sizes`` vertices each, on image ``region_frame``.
    """

    image_ids: list[int]
    file_names: list[str]
    frame: np.ndarray            # (N,) int64
    keypoints: np.ndarray        # (N, K, 3) x, y and the visibility flag
    scores: np.ndarray           # (N, K) per-joint confidence; NaN for a person without
    scored: np.ndarray           # (N,) bool: the person came with per-joint scores
    track: np.ndarray            # (N,) int64
    head_box: np.ndarray         # (N, 4) x, y, w, h; NaN where there is none
    ann_ids: list                # (N,) annotation ids (None where absent), for messages
    region_vertices: np.ndarray  # (V, 2)
    region_sizes: np.ndarray     # (R,) int64
    region_frame: np.ndarray     # (R,) int64

    @classmethod
    def from_frames(cls, frames: list[Frame], poses: list[list[Pose]] | None = None,
                    num_keypoints: int = POSETRACK18.num_keypoints) -> "VideoArrays":
        """The arrays of Frames as the readers give them; ``poses`` (one list per frame)
        replaces the frames' own persons. A Pose with ``extra["visibility"]`` is a
        prediction whose third keypoint column holds the scores."""
        per_frame = [f.poses for f in frames] if poses is None else poses
        flat = [p for ps in per_frame for p in ps]
        frame = np.repeat(np.arange(len(per_frame)), [len(ps) for ps in per_frame])
        keypoints = (np.stack([p.keypoints for p in flat]).astype(np.float64) if flat
                     else np.zeros((0, num_keypoints, 3)))
        scored = np.array(["visibility" in p.extra for p in flat], bool)
        scores = np.full(keypoints.shape[:2], np.nan)
        if scored.any():
            scores[scored] = keypoints[scored, :, 2]
            keypoints[scored, :, 2] = np.stack([p.extra["visibility"] for p in flat
                                                if "visibility" in p.extra])
        head = np.array([(np.nan,) * 4 if p.head_box is None else p.head_box for p in flat],
                        np.float64).reshape(len(flat), 4)
        polygons = [(i, np.asarray(r, np.float64).reshape(-1, 2))
                    for i, f in enumerate(frames) for r in f.ignore_regions]
        return cls(
            image_ids=[f.image_id for f in frames], file_names=[f.file_name for f in frames],
            frame=frame.astype(np.int64), keypoints=keypoints, scores=scores, scored=scored,
            track=np.array([p.track_id for p in flat], np.int64), head_box=head,
            ann_ids=[p.ann_id for p in flat],
            region_vertices=(np.concatenate([r for _, r in polygons]) if polygons
                             else np.zeros((0, 2))),
            region_sizes=np.array([len(r) for _, r in polygons], np.int64),
            region_frame=np.array([i for i, _ in polygons], np.int64))


class _Irregular(Exception):
    """Something the whole-array checks cannot vouch for: the per-record walk decides."""


def _types(values: list) -> set:
    return set(map(type, values))


def _numbers(values: list) -> np.ndarray:
    """float64 array of JSON numbers (no bools, no numeric strings), all finite."""
    if not _types(values) <= JSON_NUMBER_TYPES:
        raise _Irregular
    array = np.array(values, np.float64)
    if not np.isfinite(array).all():
        raise _Irregular
    return array


def _boxes(values: list) -> np.ndarray:
    """(n, 4) boxes, each a list of four numbers with width and height >= 0 (``read_box``)."""
    if not values:
        return np.zeros((0, 4))
    if _types(values) != {list} or set(map(len, values)) != {4}:
        raise _Irregular
    boxes = _numbers(list(chain.from_iterable(values))).reshape(-1, 4)
    if (boxes[:, 2:] < 0).any():
        raise _Irregular
    return boxes


def _safe_file_names(names: list) -> bool:
    """Non-empty relative paths that stay inside the image root, judged for all names at
    once; False also for some harmless ones ("a/../b"), which ``inside_root`` then judges."""
    if _types(names) != {str} or not all(names):
        return False
    joined = "\n" + "\n".join(names)
    # Not only dots and slashes ("." or "./" would be the root itself).
    return ("\\" not in joined and ".." not in joined and "\n/" not in joined
            and all(map(str.strip, names, repeat("./"))))


def _unique_ints(values: list) -> bool:
    return _types(values) <= {int} and len(set(values)) == len(values)


class _Absent:
    """The value of a column where a record lacks the key."""


ABSENT = _Absent()


def _column(records: list[dict], key: str, default: object = ABSENT) -> list:
    """Each record's value for ``key`` (``default`` where absent), in C: no Python loop."""
    return list(map(dict.get, records, repeat(key), repeat(default)))


def _present(values: list) -> list:
    return list(compress(values, map(is_not, values, repeat(ABSENT))))


def _video_arrays(data: object, name: str) -> tuple[Schema, VideoArrays]:
    """``read_video``'s checks (without images) on whole arrays; ``_Irregular`` where in doubt.

    Errors it raises itself come from the same helpers ``read_video`` calls, after the
    checks ``read_video`` makes before them, so the first error is always the walk's.
    """
    if type(data) is not dict:
        raise _Irregular
    images, anns, categories = (data.get(key) for key in TOP_LEVEL_KEYS)
    if not (type(images) is list and type(anns) is list and type(categories) is list and images):
        raise _Irregular
    schema, category_ids = read_schema(categories, name)
    k = schema.num_keypoints
    if _types(images) != {dict} or (anns and _types(anns) != {dict}):
        raise _Irregular
    try:
        if len(set(_present(_column(images, "vid_id")))) > 1:
            raise _Irregular
        crowd = set(_column(anns, "iscrowd", 0))
    except TypeError:  # an unhashable value: the walk names it
        raise _Irregular from None
    # images: read_images' rules
    image_ids = _column(images, "id")
    file_names = _column(images, "file_name")
    if not _unique_ints(image_ids) or not _safe_file_names(file_names):
        raise _Irregular
    for key in ("width", "height"):
        given = [v for v in _column(images, key, None) if v is not None]
        if not _types(given) <= {int} or min(given, default=1) <= 0:
            raise _Irregular
    if _types(_column(images, "is_labeled", True)) != {bool}:
        raise _Irregular
    xs, ys = _column(images, "ignore_regions_x", []), _column(images, "ignore_regions_y", [])
    if _types(xs) != {list} or _types(ys) != {list} or list(map(len, xs)) != list(map(len, ys)):
        raise _Irregular
    polygons_x, polygons_y = list(chain.from_iterable(xs)), list(chain.from_iterable(ys))
    if polygons_x and (_types(polygons_x) != {list} or _types(polygons_y) != {list}):
        raise _Irregular
    sizes = list(map(len, polygons_x))
    if sizes != list(map(len, polygons_y)):
        raise _Irregular
    vertices = np.stack([_numbers(list(chain.from_iterable(polygons_x))),
                         _numbers(list(chain.from_iterable(polygons_y)))], axis=1)
    # annotations: read_poses' and _read_posetrack_fields' rules
    n = len(anns)
    ann_ids = _column(anns, "id")
    if not _unique_ints(_present(ann_ids)):
        raise _Irregular
    image_of, category_of = _column(anns, "image_id"), _column(anns, "category_id")
    if (not _types(image_of) <= {int} or not _types(category_of) <= {int}
            or not set(category_of) <= category_ids):
        raise _Irregular
    position = dict(zip(image_ids, range(len(image_ids))))
    frame = list(map(position.get, image_of))
    if None in frame:
        raise _Irregular
    keypoints = _column(anns, "keypoints")
    if anns and (_types(keypoints) != {list} or set(map(len, keypoints)) != {3 * k}):
        raise _Irregular
    keypoints = _numbers(list(chain.from_iterable(keypoints))).reshape(n, k, 3)
    if not np.isin(keypoints[..., 2], VISIBILITY_FLAGS).all():
        raise _Irregular
    _boxes(_present(_column(anns, "bbox")))
    areas = _numbers([a for a in _column(anns, "area", None) if a is not None])
    if (areas < 0).any() or not crowd <= {0, 1}:
        raise _Irregular
    if anns and _types(_column(anns, "segmentation", None)) != {type(None)}:
        raise _Irregular  # polygons or RLE: the walk reads them
    tracks = _column(anns, "track_id")
    if not _types(tracks) <= {int}:
        raise _Irregular
    heads = _column(anns, "bbox_head", None)
    has_head = np.fromiter(map(is_not, heads, repeat(None)), bool, n)
    head_box = np.full((n, 4), np.nan)
    head_box[has_head] = _boxes(list(compress(heads, has_head)))
    score_lists = _column(anns, "scores", [])
    if anns and (_types(score_lists) != {list} or not set(map(len, score_lists)) <= {0, k}):
        raise _Irregular
    scored = np.fromiter(map(len, score_lists), np.int64, n) == k
    scores = np.full((n, k), np.nan)
    scores[scored] = _numbers(list(chain.from_iterable(score_lists))).reshape(-1, k)
    _numbers(_present(_column(anns, "score")))
    return schema, VideoArrays(
        image_ids=image_ids, file_names=file_names, frame=np.array(frame, np.int64),
        keypoints=keypoints, scores=scores, scored=scored,
        track=np.array(tracks, np.int64),  # OverflowError beyond int64: the walk names it
        head_box=head_box, ann_ids=[None if i is ABSENT else i for i in ann_ids],
        region_vertices=vertices, region_sizes=np.array(sizes, np.int64),
        region_frame=np.repeat(np.arange(len(images)), list(map(len, xs))))


def read_video_arrays(file: Path, data: object = None) -> tuple[Schema, VideoArrays]:
    """A ``<video>.json`` as arrays, by ``read_video``'s rules for evaluation input: no image
    is looked at (predicted joints may leave the image; sizes are not needed).

    Every check runs on whole arrays at once; only when one fails does ``read_video``'s
    per-record walk run, to name the file, record and field of the first bad value (or to
    read one of the few layouts the array checks leave to it, such as segmentations).
    """
    data = load_json(file) if data is None else data
    try:
        return _video_arrays(data, str(file))
    except (_Irregular, OverflowError):
        pass
    schema, frames = read_video(file, file.parent, check_images=False,
                                outside_tolerance=float("inf"), data=data, require_ids=False,
                                image_sizes=False)
    return schema, VideoArrays.from_frames(frames, num_keypoints=schema.num_keypoints)


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
    folder = path if path.is_dir() else path.parent  # ROOT/annotations/{split}
    root = Path(image_root) if image_root is not None else folder.parent.parent
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
    ids = iter(annotation_ids([pose for frame in frames for pose in frame.poses]))
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
        paths.append(Path(folder) / f"{video}.json")
        write_posetrack_video(paths[-1], frames, video=video, predictions=True)
    return paths
