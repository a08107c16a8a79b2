"""What the PoseTrack evaluation compares: per labelled frame, GT and predicted joints as arrays.

poseval (Andriluka et al., the official PoseTrack evaluation) works on 15 joints in its own
order: PoseTrack18's ``head_bottom`` is its ``neck`` and the ears are dropped. This module
reads a ground-truth folder and a prediction folder (PoseTrack18 ``<video>.json`` files or
the 2017 ``annolist`` files), pairs them video by video and frame by frame, and applies
poseval's clean-up rules, so that the matching and the metrics see only arrays:

* a joint written as x = y = 0 with flag 0 does not exist (GT and predictions alike);
* a predicted joint without a score gets poseval's MIN_SCORE (-9999), with a warning;
* frames are paired by position; GT frames without any person are dropped together with
  the prediction frames at the same positions;
* joints strictly inside a frame's ignore region are removed on both sides, and a person
  left without joints there is removed.

Everything poseval would crash on or silently misread is an ``InputError`` naming the file,
record and field instead.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpose.errors import InputError
from vidpose.formats.jsonio import load_json
from vidpose.formats.posetrack import read_video
from vidpose.formats.posetrack17 import is_annolist, read_annolist
from vidpose.keypoints import POSETRACK18
from vidpose.pose import Frame, Pose

# poseval's joint order; "neck" is PoseTrack18's head_bottom.
POSEVAL_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist", "neck", "nose", "head_top",
)
# POSETRACK18 slot of each poseval joint.
POSEVAL_FROM_POSETRACK18 = np.array(
    POSETRACK18.indices(["head_bottom" if name == "neck" else name for name in POSEVAL_JOINTS]))
NUM_JOINTS = len(POSEVAL_JOINTS)
# poseval's score for a predicted joint that comes without one: below every real score.
MIN_SCORE = -9999.0


@dataclass
class EvalFrame:
    """One labelled frame in poseval's joint order: G ground-truth and P predicted persons."""

    gt_xy: np.ndarray      # (G, 15, 2)
    gt_has: np.ndarray     # (G, 15) bool: the joint is annotated
    gt_track: np.ndarray   # (G,) int64
    head_size: np.ndarray  # (G,) 0.6 x head-box diagonal (PCKh normaliser)
    pr_xy: np.ndarray      # (P, 15, 2)
    pr_has: np.ndarray     # (P, 15) bool: the joint is predicted
    pr_score: np.ndarray   # (P, 15)
    pr_track: np.ndarray   # (P,) int64


@dataclass
class EvalVideo:
    """A video's labelled frames, in order, after poseval's clean-up."""

    name: str
    frames: list[EvalFrame]


def _joints(poses: list[Pose], *, prediction: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 15, 2) positions, (N, 15) presence and (N, 15) scores of PoseTrack18 Poses.

    A prediction read with per-joint ``scores`` keeps its flags in ``extra["visibility"]``
    and its scores in the third column; one without scores has only flags there.
    """
    if not poses:
        return np.zeros((0, NUM_JOINTS, 2)), np.zeros((0, NUM_JOINTS), bool), np.zeros((0, NUM_JOINTS))
    keypoints = np.stack([p.keypoints for p in poses])[:, POSEVAL_FROM_POSETRACK18]
    flags = keypoints[..., 2]
    scores = np.full(flags.shape, MIN_SCORE)
    if prediction:
        with_scores = np.array(["visibility" in p.extra for p in poses])
        if with_scores.any():
            flags = flags.copy()
            scored = np.stack([p.extra["visibility"] for p, s in zip(poses, with_scores) if s])
            flags[with_scores] = scored[:, POSEVAL_FROM_POSETRACK18]
            scores[with_scores] = keypoints[with_scores, :, 2]
    xy = keypoints[..., :2]
    has = ~((xy[..., 0] == 0) & (xy[..., 1] == 0) & (flags == 0))
    return xy, has, scores


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: points strictly inside the polygon (even-odd rule; the boundary is outside).

    The same answer as shapely's ``Polygon.contains`` that poseval uses, without shapely.
    """
    if len(points) == 0:
        return np.zeros(0, bool)
    a = polygon[None, :, :]
    b = np.roll(polygon, -1, axis=0)[None, :, :]
    p = points[:, None, :]
    # Crossings of a ray to +x with each edge (half-open in y, so vertices count once).
    straddles = (a[..., 1] > p[..., 1]) != (b[..., 1] > p[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[..., 0] + (p[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1])
    inside = (straddles & (p[..., 0] < x_cross)).sum(1) % 2 == 1
    # On an edge: collinear with it and between its ends.
    cross = (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])
    between = ((np.minimum(a[..., 0], b[..., 0]) <= p[..., 0]) & (p[..., 0] <= np.maximum(a[..., 0], b[..., 0]))
               & (np.minimum(a[..., 1], b[..., 1]) <= p[..., 1]) & (p[..., 1] <= np.maximum(a[..., 1], b[..., 1])))
    on_edge = ((cross == 0) & between).any(1)
    return inside & ~on_edge


def _drop_ignored(xy: np.ndarray, has: np.ndarray, regions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Joints inside an ignore region removed; returns the new presence and the persons kept."""
    flat = xy.reshape(-1, 2)
    ignored = np.zeros(len(flat), bool)
    for polygon in regions:
        ignored |= inside_polygon(flat, polygon)
    has = has & ~ignored.reshape(has.shape)
    return has, has.any(1)


def _check_tracks(poses: list[Pose], file: str, frame: Frame) -> None:
    ids = [p.track_id for p in poses]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"track id {duplicate} is used by more than one person in this frame "
                         "(a track is one person)", file=file, record=f"image {frame.image_id}",
                         field="track_id")


def _head_sizes(poses: list[Pose], file: str) -> np.ndarray:
    for pose in poses:
        if pose.head_box is None:
            raise InputError("ground truth needs the head box (PCKh normaliser)", file=file,
                             record=f"annotation {pose.ann_id}", field="bbox_head")
    if not poses:
        return np.zeros(0)
    boxes = np.stack([p.head_box for p in poses])
    return 0.6 * np.hypot(boxes[:, 2], boxes[:, 3])


def eval_frame(gt: Frame, pred_poses: list[Pose], gt_file: str = "ground truth",
               pred_file: str = "predictions") -> EvalFrame:
    """One GT frame and the predicted persons at its position, in poseval's terms."""
    _check_tracks(gt.poses, gt_file, gt)
    _check_tracks(pred_poses, pred_file, gt)
    gt_xy, gt_has, _ = _joints(gt.poses, prediction=False)
    pr_xy, pr_has, pr_score = _joints(pred_poses, prediction=True)
    head = _head_sizes(gt.poses, gt_file)
    gt_track = np.array([p.track_id for p in gt.poses], np.int64)
    pr_track = np.array([p.track_id for p in pred_poses], np.int64)
    if gt.ignore_regions:
        gt_has, keep_gt = _drop_ignored(gt_xy, gt_has, gt.ignore_regions)
        pr_has, keep_pr = _drop_ignored(pr_xy, pr_has, gt.ignore_regions)
        gt_xy, gt_has, gt_track, head = gt_xy[keep_gt], gt_has[keep_gt], gt_track[keep_gt], head[keep_gt]
        pr_xy, pr_has, pr_score, pr_track = (pr_xy[keep_pr], pr_has[keep_pr], pr_score[keep_pr],
                                             pr_track[keep_pr])
    return EvalFrame(gt_xy, gt_has, gt_track, head, pr_xy, pr_has, pr_score, pr_track)


def eval_video(name: str, gt_frames: list[Frame], pred_frames: list[list[Pose]],
               gt_file: str = "ground truth", pred_file: str = "predictions") -> EvalVideo:
    """A video's frames paired by position; GT frames without persons dropped (poseval)."""
    frames = [eval_frame(gt, pred, gt_file, pred_file)
              for gt, pred in zip(gt_frames, pred_frames) if gt.poses]
    return EvalVideo(name, frames)


def read_eval_file(path: Path) -> list[Frame]:
    """A PoseTrack18 ``<video>.json`` or a 2017 ``annolist`` file as Frames (POSETRACK18 order).

    Nothing is checked against images: evaluation needs only the annotations, and predicted
    joints may leave the image.
    """
    data = load_json(path)
    if is_annolist(data):
        return read_annolist(data, str(path))
    schema, frames = read_video(path, path.parent, check_images=False,
                                outside_tolerance=float("inf"), data=data, require_ids=False)
    if schema is not POSETRACK18:
        raise InputError(f"PoseTrack evaluation needs the posetrack18 keypoints in 'categories'; "
                         f"this file has {schema.name}", file=str(path), field="categories")
    return frames


def _check_alignment(gt: list[Frame], pred: list[Frame], gt_path: Path, pred_path: Path) -> None:
    """Prediction frames must be the GT frames, in the same order (poseval pairs by position)."""
    if len(pred) != len(gt):
        raise InputError(f"{len(pred)} prediction frames but the ground truth {gt_path} has "
                         f"{len(gt)}: write one entry in 'images' per GT image, in GT order, "
                         "even for frames without predictions", file=str(pred_path), field="images")
    for position, (g, p) in enumerate(zip(gt, pred)):
        same_id = g.image_id == p.image_id
        same_name = Path(g.file_name).name == Path(p.file_name).name
        if not (same_id or same_name):
            raise InputError(f"frame {position} is image {p.image_id} ({p.file_name!r}) but the "
                             f"ground truth's frame {position} is image {g.image_id} "
                             f"({g.file_name!r}); list the images in GT order", file=str(pred_path),
                             record=f"image {p.image_id}", field="images")


def _warn_missing_scores(frames: list[Frame], path: Path) -> None:
    unscored = sum(1 for f in frames for p in f.poses if "visibility" not in p.extra)
    if unscored:
        warnings.warn(f"{path}: {unscored} predicted persons have no per-joint 'scores'; as poseval "
                      f"does, their joints are scored {MIN_SCORE:g} (ranked below every scored joint "
                      "in AP; MOTA does not use scores)", stacklevel=2)


VIDEO_ORDERS = ("sorted", "directory")


def video_order_key(video: str) -> str:
    """Name order of videos: their ``<video>.json`` file names sorted as strings.

    The file evaluator and the training-time metric both use it, so they pool joints in
    the same order (poseval's conformance figures were made reading the files this way).
    """
    return f"{video}.json"


def json_files(folder: Path, role: str, order: str = "sorted") -> list[Path]:
    """The ``*.json`` files of a folder (or the one file given), in name or directory order."""
    if not folder.exists():
        raise InputError(f"no such {role} folder or file", file=str(folder))
    if order not in VIDEO_ORDERS:
        raise ValueError(f"video order {order!r} is not one of {VIDEO_ORDERS}")
    if not folder.is_dir():
        return [folder]
    files = [Path(entry.path) for entry in os.scandir(folder)
             if entry.name.endswith(".json") and entry.is_file()]
    if order == "sorted":
        files.sort(key=lambda f: f.name)
    if not files:
        raise InputError(f"no <video>.json files in this {role} folder", file=str(folder))
    return files


def load_videos(gt: str | Path, pred: str | Path, *, order: str = "sorted") -> list[EvalVideo]:
    """Pair ``gt/<video>.json`` with ``pred/<video>.json`` as EvalVideos.

    AP ranks all joints of all videos by score, and where scores are equal the order in
    which the videos were read decides (up to 0.26 AP points on the conformance case with
    two score levels). ``order="sorted"`` (the default) reads the GT videos in file-name
    order, the same on every machine. ``"directory"`` takes them in the order this
    machine's file system lists them, as poseval's ``glob`` does: it reproduces poseval run
    unchanged on the machine at hand, and differs between machines. ``gt`` and ``pred``
    may also be two single files. A GT video missing from the predictions is an error
    listing every missing one; extra prediction files are ignored with a warning.
    """
    gt, pred = Path(gt), Path(pred)
    gt_files = json_files(gt, "ground-truth", order)
    if not pred.exists():
        raise InputError("no such prediction folder or file", file=str(pred))
    if gt.is_dir():
        pred_files = [pred / f.name for f in gt_files]
        missing = [f.name for f in pred_files if not f.is_file()]
        if missing:
            raise InputError(f"{len(missing)} of {len(gt_files)} ground-truth videos have no "
                             f"prediction file: {', '.join(missing[:10])}"
                             f"{' ...' if len(missing) > 10 else ''} (write one per video, with "
                             "empty 'annotations' where nothing was predicted)", file=str(pred))
        extra = sorted({f.name for f in json_files(pred, "prediction")} - {f.name for f in gt_files})
        if extra:
            warnings.warn(f"{pred}: {len(extra)} prediction files have no ground truth and are not "
                          f"evaluated: {', '.join(extra[:5])}", stacklevel=2)
    else:
        pred_files = [pred]
        if not pred.is_file():
            raise InputError("no such prediction file", file=str(pred))
    videos = []
    for gt_file, pred_file in zip(gt_files, pred_files):
        gt_frames = read_eval_file(gt_file)
        pred_frames = read_eval_file(pred_file)
        _check_alignment(gt_frames, pred_frames, gt_file, pred_file)
        _warn_missing_scores(pred_frames, pred_file)
        videos.append(eval_video(gt_file.stem, gt_frames, [f.poses for f in pred_frames],
                                 str(gt_file), str(pred_file)))
    return videos
