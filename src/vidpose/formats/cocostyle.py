"""The COCO-style records that COCO, OCHuman and PoseTrack18 files share: parse, validate, build.

Readers call these in order: ``require_keys`` -> ``read_schema`` -> ``read_images`` ->
``read_poses`` (results files: ``read_results_list`` -> ``read_result_record``);
every check raises an ``InputError`` naming the file, the record (image or
annotation id, or its index when the id itself is bad) and the field. Writers call
``category_record``, ``annotation_ids``, ``box_of``, ``segmentation_record`` and
``flat_keypoints``.
"""
from __future__ import annotations

import ast
import contextlib
import io
import math
import os
import posixpath
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.errors import InputError
from vidpose.formats.jsonio import load_json
from vidpose.keypoints import COCO17, POSETRACK18, Schema, schema_from_names
from vidpose.pose import Frame, Pose

PERSON_CATEGORY = 1
TOP_LEVEL_KEYS = ("images", "annotations", "categories")
VISIBILITY_FLAGS = (0, 1, 2)
FILE_SCHEMAS = (COCO17, POSETRACK18)


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


INT64_RANGE = (-2 ** 63, 2 ** 63 - 1)


def is_int64(value: Any) -> bool:
    """An integer that fits the int64 arrays ids end up in."""
    return is_int(value) and INT64_RANGE[0] <= value <= INT64_RANGE[1]


def is_number(value: Any) -> bool:
    return _is_number_type(value) and math.isfinite(value)


def record_name(kind: str, record: dict, index: int) -> str:
    """'annotation 17' when the record has a usable id, else 'annotations[3]'."""
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{kind} {rid}" if is_int(rid) or isinstance(rid, str) else f"{kind}s[{index}]"


def _unique_id(item: Any, kind: str, record: str, seen: set[int], file: str) -> int:
    """The integer ``id`` of an image or annotation object, refused when repeated."""
    if not isinstance(item, dict):
        raise InputError(f"expected an object; got {type(item).__name__}", file=file,
                         record=record)
    item_id = item.get("id")
    if not is_int(item_id):
        raise InputError(f"expected an integer id; got {item_id!r}", file=file, record=record,
                         field="id")
    if item_id in seen:
        raise InputError(f"duplicate {kind} id", file=file, record=record, field="id")
    seen.add(item_id)
    return item_id


def read_box(value: Any, file: str, record: str, field: str) -> np.ndarray:
    """An x, y, w, h box of four finite numbers with non-negative width and height."""
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not all(map(is_number, value)):
        raise InputError(f"expected [x, y, w, h], four finite numbers; got {value!r}",
                         file=file, record=record, field=field)
    box = np.asarray(value, dtype=np.float64)
    if box[2] < 0 or box[3] < 0:
        raise InputError(f"box width and height must be >= 0; got w={box[2]:g}, h={box[3]:g}",
                         file=file, record=record, field=field)
    return box


def require_keys(data: Any, keys: tuple[str, ...], file: str) -> None:
    """The file must be a JSON object holding each of ``keys`` as a list."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object with keys {list(keys)}; "
                         f"got a {type(data).__name__}", file=file)
    for key in keys:
        if key not in data:
            raise InputError(f"missing top-level key; expected keys {list(keys)}", file=file,
                             field=key)
        if not isinstance(data[key], list):
            raise InputError(f"expected a list; got a {type(data[key]).__name__}", file=file,
                             field=key)


def read_schema(categories: list, file: str) -> tuple[Schema, set[int]]:
    """The schema named by the categories' ``keypoints`` lists, and those categories' ids."""
    schema: Schema | None = None
    ids: set[int] = set()
    for i, category in enumerate(categories):
        record = record_name("category", category, i)
        if not isinstance(category, dict) or not is_int(category.get("id")):
            raise InputError("expected an object with an integer 'id'", file=file, record=record,
                             field="id")
        if "keypoints" not in category:
            continue
        names = category["keypoints"]
        try:
            found = schema_from_names(names if isinstance(names, list) else [names])
        except ValueError:
            found = None
        if found not in FILE_SCHEMAS:
            expected = "; ".join(f"{s.name}: {list(s.names)}" for s in FILE_SCHEMAS)
            raise InputError(f"unknown keypoint names {names!r}; expected one of {expected}",
                             file=file, record=record, field="keypoints")
        if schema is not None and found is not schema:
            raise InputError(f"keypoint order {found.name} differs from an earlier category's "
                             f"{schema.name}", file=file, record=record, field="keypoints")
        schema = found
        ids.add(int(category["id"]))
    if schema is None:
        raise InputError("no category has a 'keypoints' name list", file=file, field="categories")
    return schema, ids


def inside_root(file_name: str) -> str | None:
    """``file_name`` normalised, or None when it is absolute or climbs out of the image root."""
    normal = posixpath.normpath(file_name.replace("\\", "/"))
    if normal.startswith("/") or normal == ".." or normal.startswith("../") or normal == ".":
        return None
    return normal


def read_images(images: list, file: str, image_root: str | Path, *, check_images: bool,
                require_size: bool, video: str | None = None) -> list[Frame]:
    """Frames (no poses yet) for the ``images`` list, in file order.

    ``require_size=False`` lets width/height be absent (real PoseTrack18): they are then 0,
    meaning unknown, until the caller fills them in.
    """
    root = Path(image_root)
    frames: list[Frame] = []
    seen: set[int] = set()
    for i, image in enumerate(images):
        record = record_name("image", image, i)
        image_id = _unique_id(image, "image", record, seen, file)
        file_name = image.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise InputError(f"expected a relative image path; got {file_name!r}", file=file,
                             record=record, field="file_name")
        if inside_root(file_name) is None:
            raise InputError(f"path {file_name!r} leaves the image root {str(root)!r}; refused",
                             file=file, record=record, field="file_name")
        if check_images and not (root / file_name).is_file():
            raise InputError(f"image file not found: {root / file_name} (pass check_images=False "
                             "to read annotations without images)", file=file, record=record,
                             field="file_name")
        size = []
        for key in ("width", "height"):
            value = image.get(key)
            if value is None and not require_size:
                value = 0
            elif not is_int(value) or value <= 0:
                raise InputError(f"expected a positive integer; got {value!r}", file=file,
                                 record=record, field=key)
            size.append(int(value))
        is_labeled = image.get("is_labeled", True)
        if not isinstance(is_labeled, bool):
            raise InputError(f"expected true or false; got {is_labeled!r}", file=file,
                             record=record, field="is_labeled")
        frames.append(Frame(image_id=int(image_id), file_name=file_name, width=size[0],
                            height=size[1], video=video, frame_index=i if video else 0,
                            is_labeled=is_labeled))
    return frames


def _read_segmentation(value: Any, frame: Frame, file: str, record: str) -> Any:
    """Polygons or an RLE dict; an RLE ``size`` written as the string "[h, w]" becomes a list."""
    if isinstance(value, list):
        for polygon in value:
            if (not isinstance(polygon, list) or len(polygon) % 2
                    or not all(map(is_number, polygon))):
                raise InputError("expected polygons: lists of an even count of numbers",
                                 file=file, record=record, field="segmentation")
        return value
    if not isinstance(value, dict) or "counts" not in value or "size" not in value:
        raise InputError("expected polygons or an RLE object with 'counts' and 'size'",
                         file=file, record=record, field="segmentation")
    size = value["size"]
    if isinstance(size, str):  # OCHuman's COCO-format files quote the size
        try:
            size = ast.literal_eval(size)
        except (ValueError, SyntaxError):
            size = None
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(map(is_int, size)):
        raise InputError(f"expected RLE size [height, width]; got {value['size']!r}", file=file,
                         record=record, field="segmentation.size")
    if frame.width and list(size) != [frame.height, frame.width]:
        raise InputError(f"RLE size {list(size)} differs from the image's [height, width] "
                         f"[{frame.height}, {frame.width}]", file=file, record=record,
                         field="segmentation.size")
    counts = value["counts"]
    if not (isinstance(counts, str) or (isinstance(counts, list) and all(map(is_int, counts)))):
        raise InputError("expected RLE counts as a string or a list of integers", file=file,
                         record=record, field="segmentation.counts")
    return {"size": [int(size[0]), int(size[1])], "counts": counts}


JSON_NUMBER_TYPES = {int, float}


def _is_number_type(value: Any) -> bool:
    """A number (finite or not: ``_check_keypoints`` names non-finite ones), never a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _stack_keypoints(annotations: list[dict], records: list[str], file: str) -> np.ndarray:
    """(N, 3K) float array of the (already length-checked) keypoint lists.

    Numeric strings and booleans are refused, not converted (numpy would read "12.5" and
    true as numbers): one type check over all values, a walk only to name the first bad one.
    """
    flat = list(chain.from_iterable(ann["keypoints"] for ann in annotations))
    if not set(map(type, flat)) <= JSON_NUMBER_TYPES:
        for ann, record in zip(annotations, records):
            bad = [v for v in ann["keypoints"] if not _is_number_type(v)]
            if bad:
                raise InputError(f"expected numbers; found {bad[0]!r}", file=file, record=record,
                                 field="keypoints")
    return np.asarray(flat, dtype=np.float64).reshape(len(annotations), -1)


def _check_keypoints(keypoints: np.ndarray, frames: list[Frame], records: list[str],
                     is_label: list[bool], schema: Schema, file: str,
                     outside_tolerance: float) -> None:
    """Vectorised checks of (N, K, 3) keypoints: flags in {0,1,2}, labelled ones in the image.

    Rows with ``is_label`` False are predictions: their joints may leave the image.
    """
    bad = ~(np.isfinite(keypoints).all(axis=2) & np.isin(keypoints[..., 2], VISIBILITY_FLAGS))
    if bad.any():
        n, k = np.argwhere(bad)[0]
        raise InputError(f"keypoint {schema.names[k]!r} is {keypoints[n, k].tolist()}; expected "
                         f"finite x, y and a visibility flag in {{0, 1, 2}}", file=file,
                         record=records[n], field="keypoints")
    width = np.array([f.width for f in frames], dtype=np.float64)[:, None]
    height = np.array([f.height for f in frames], dtype=np.float64)[:, None]
    x, y = keypoints[..., 0], keypoints[..., 1]
    outside = ((x < -outside_tolerance) | (x > width + outside_tolerance)
               | (y < -outside_tolerance) | (y > height + outside_tolerance))
    # width 0: image size unknown
    outside &= (keypoints[..., 2] > 0) & (width > 0) & np.asarray(is_label)[:, None]
    if outside.any():
        n, k = np.argwhere(outside)[0]
        frame = frames[n]
        raise InputError(f"labelled keypoint {schema.names[k]!r} at ({x[n, k]:g}, {y[n, k]:g}) "
                         f"lies outside the {frame.width}x{frame.height} image "
                         f"{frame.file_name!r} by more than outside_tolerance="
                         f"{outside_tolerance:g} px", file=file, record=records[n],
                         field="keypoints")


def read_poses(annotations: list, file: str, frames: list[Frame], schema: Schema,
               category_ids: set[int], *, outside_tolerance: float = 1.0,
               require_ids: bool = True) -> list[Pose]:
    """Validated ground-truth Poses, aligned with ``annotations``, each appended to its frame.

    ``require_ids=False`` accepts annotations without ``id`` (prediction files, which poseval
    reads without them); their Poses get ``ann_id`` None. Reads ``id``, ``image_id``,
    ``category_id``, ``keypoints``, and when present ``bbox``, ``area``, ``iscrowd`` and
    ``segmentation``; format readers add their own fields. An
    annotation with per-joint ``scores`` is a prediction (PoseTrack18 format): its joints
    are not labels and are not held to the image.
    """
    by_id = {f.image_id: f for f in frames}
    num = 3 * schema.num_keypoints
    seen: set[int] = set()
    owners: list[Frame] = []
    records: list[str] = []
    is_label: list[bool] = []
    poses: list[Pose] = []
    for i, ann in enumerate(annotations):
        record = record_name("annotation", ann, i)
        anonymous = not require_ids and isinstance(ann, dict) and "id" not in ann
        ann_id = None if anonymous else _unique_id(ann, "annotation", record, seen, file)
        image_id = ann.get("image_id")
        if not is_int(image_id) or image_id not in by_id:
            raise InputError(f"image_id {image_id!r} names no image in this file", file=file,
                             record=record, field="image_id")
        if not is_int(ann.get("category_id")) or ann["category_id"] not in category_ids:
            raise InputError(f"category_id {ann.get('category_id')!r} is not a keypoint category "
                             f"(expected one of {sorted(category_ids)})", file=file, record=record,
                             field="category_id")
        flat = ann.get("keypoints")
        if not isinstance(flat, list) or len(flat) != num:
            got = f"a list of {len(flat)}" if isinstance(flat, list) else repr(flat)
            raise InputError(f"expected a list of {num} numbers (x, y, v for each of the "
                             f"{schema.num_keypoints} {schema.name} keypoints); got {got}",
                             file=file, record=record, field="keypoints")
        frame = by_id[image_id]
        box = read_box(ann["bbox"], file, record, "bbox") if "bbox" in ann else None
        area = ann.get("area")
        if area is not None and (not is_number(area) or area < 0):
            raise InputError(f"expected a number >= 0; got {area!r}", file=file, record=record,
                             field="area")
        iscrowd = ann.get("iscrowd", 0)
        if iscrowd not in (0, 1):  # also True/False
            raise InputError(f"expected 0 or 1; got {iscrowd!r}", file=file, record=record,
                             field="iscrowd")
        segmentation = ann.get("segmentation")
        if segmentation is not None:
            segmentation = _read_segmentation(segmentation, frame, file, record)
        poses.append(Pose(np.zeros((schema.num_keypoints, 3)), box=box, iscrowd=bool(iscrowd),
                          area=None if area is None else float(area), segmentation=segmentation,
                          ann_id=None if ann_id is None else int(ann_id)))
        frame.poses.append(poses[-1])
        owners.append(frame)
        records.append(record)
        is_label.append(not ann.get("scores"))
    if poses:
        keypoints = _stack_keypoints(annotations, records, file).reshape(len(poses), -1, 3)
        _check_keypoints(keypoints, owners, records, is_label, schema, file, outside_tolerance)
        for pose, kps in zip(poses, keypoints):
            pose.keypoints = kps
    return poses


def coco_index(data: dict) -> Any:
    """A pycocotools ``COCO`` over an already-loaded dict, without its stdout chatter."""
    from pycocotools.coco import COCO  # pycocotools (and the urllib it imports) only here

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def read_results_list(path: str | os.PathLike) -> tuple[str, list]:
    """The file name and its top-level list of result records (COCO results are a bare list)."""
    file = str(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise InputError(f"expected a list of result records; got a {type(data).__name__}",
                         file=file)
    return file, data


def read_result_record(det: object, index: int, file: str,
                       image_ids: set[int] | None = None) -> tuple[int, float]:
    """Checks shared by detection and keypoint results: returns ``(image_id, score)``."""
    record = f"results[{index}]"
    if not isinstance(det, dict):
        raise InputError(f"expected an object; got {type(det).__name__}", file=file, record=record)
    image_id = det.get("image_id")
    if not is_int(image_id):
        raise InputError(f"expected an integer image id; got {image_id!r}", file=file,
                         record=record, field="image_id")
    if image_ids is not None and image_id not in image_ids:
        raise InputError(f"image_id {image_id} names no image of the dataset", file=file,
                         record=record, field="image_id")
    if det.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
        raise InputError(f"expected the person category {PERSON_CATEGORY}; got "
                         f"{det['category_id']!r}", file=file, record=record, field="category_id")
    if "score" not in det:
        raise InputError("result has no score; expected a confidence number", file=file,
                         record=record, field="score")
    if not is_number(det["score"]):
        raise InputError(f"expected a number; got {det['score']!r}", file=file, record=record,
                         field="score")
    return int(image_id), float(det["score"])


def category_record(schema: Schema) -> dict:
    """The person category with ``schema``'s keypoint names and 1-based skeleton."""
    if schema not in FILE_SCHEMAS:
        raise ValueError(f"files are written in {[s.name for s in FILE_SCHEMAS]} order; got "
                         f"{schema.name} (use keypoints.convert first)")
    return {"id": PERSON_CATEGORY, "name": "person", "supercategory": "person",
            "keypoints": list(schema.names), "skeleton": schema.coco_skeleton}


def annotation_ids(poses: list[Pose]) -> list[int]:
    """Unique ids for a file: each pose's ``ann_id``, or a fresh id above all of them where
    it has none or repeats an earlier pose's (videos read from separate files may share ids).
    """
    start = max((p.ann_id for p in poses if p.ann_id is not None), default=0) + 1
    fresh = iter(range(start, start + len(poses)))
    taken: dict[int, None] = {}  # in pose order
    for pose in poses:
        kept = pose.ann_id is not None and pose.ann_id not in taken
        taken[pose.ann_id if kept else next(fresh)] = None
    return list(taken)


def box_of(pose: Pose) -> list[float]:
    """The pose's box, or the tight box around its present keypoints when it has none."""
    return (pose.box if pose.box is not None else pose.keypoint_box()).tolist()


def segmentation_record(segmentation: Any) -> Any:
    """Polygons as they are; RLE with ``counts`` as pycocotools' ``encode`` gives them (bytes)
    written as the ASCII string COCO files hold."""
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), bytes):
        return {**segmentation, "counts": segmentation["counts"].decode("ascii")}
    return segmentation


def flat_keypoints(keypoints: np.ndarray) -> list[float | int]:
    """(K, 3) ground truth as COCO's flat x, y, v list, flags written as integers."""
    flags = keypoints[:, 2]
    if not np.isin(flags, VISIBILITY_FLAGS).all():
        raise ValueError(f"ground-truth visibility flags must be 0, 1 or 2; got {flags.tolist()}")
    return [v for x, y, f in keypoints.tolist() for v in (x, y, int(f))]
