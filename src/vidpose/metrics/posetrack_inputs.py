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
from vidpose.formats.jsonio import load_json, reports_deep_nesting
from vidpose.formats.posetrack import VideoArrays, read_video, read_video_arrays
from vidpose.formats.posetrack17 import MIN_SCORE, is_annolist, read_annolist
from vidpose.keypoints import POSETRACK18, Schema
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
    """A video's labelled frames, in order, after poseval's clean-up, as arrays over all its
    persons: frame after frame, and in a frame in file order (the order poseval's ties
    follow); ``gt_frame`` / ``pr_frame`` give each person's frame (0 .. num_frames - 1)."""

    name: str
    num_frames: int
    gt_frame: np.ndarray   # (G,) int64, non-decreasing
    gt_xy: np.ndarray      # (G, 15, 2)
    gt_has: np.ndarray     # (G, 15) bool: the joint is annotated
    gt_track: np.ndarray   # (G,) int64
    head_size: np.ndarray  # (G,) 0.6 x head-box diagonal (PCKh normaliser)
    pr_frame: np.ndarray   # (P,) int64, non-decreasing
    pr_xy: np.ndarray      # (P, 15, 2)
    pr_has: np.ndarray     # (P, 15) bool: the joint is predicted
    pr_score: np.ndarray   # (P, 15)
    pr_track: np.ndarray   # (P,) int64

    @classmethod
    def from_frames(cls, name: str, frames: list[EvalFrame]) -> "EvalVideo":
        def joined(key: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
            parts = [np.asarray(getattr(f, key), dtype).reshape((-1,) + shape) for f in frames]
            return np.concatenate(parts) if parts else np.zeros((0,) + shape, dtype)

        def frame_of(key: str) -> np.ndarray:
            return np.repeat(np.arange(len(frames)), [len(getattr(f, key)) for f in frames])

        return cls(name, len(frames), frame_of("gt_track"), joined("gt_xy", (NUM_JOINTS, 2), float),
                   joined("gt_has", (NUM_JOINTS,), bool), joined("gt_track", (), np.int64),
                   joined("head_size", (), float), frame_of("pr_track"),
                   joined("pr_xy", (NUM_JOINTS, 2), float), joined("pr_has", (NUM_JOINTS,), bool),
                   joined("pr_score", (NUM_JOINTS,), float), joined("pr_track", (), np.int64))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(num_frames + 1,) start of each frame's GT persons and predicted persons."""
        return tuple(np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=self.num_frames))])
                     for frame in (self.gt_frame, self.pr_frame))

    @property
    def frames(self) -> list[EvalFrame]:
        """Frame by frame (views into the arrays), for the loop reference and tests."""
        gt, pr = self.bounds()
        return [EvalFrame(self.gt_xy[g0:g1], self.gt_has[g0:g1], self.gt_track[g0:g1],
                          self.head_size[g0:g1], self.pr_xy[p0:p1], self.pr_has[p0:p1],
                          self.pr_score[p0:p1], self.pr_track[p0:p1])
                for g0, g1, p0, p1 in zip(gt[:-1], gt[1:], pr[:-1], pr[1:])]


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    ends = np.cumsum(counts)
    return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - counts, counts)


def inside_regions(points: np.ndarray, point_group: np.ndarray, vertices: np.ndarray,
                   sizes: np.ndarray, region_group: np.ndarray) -> np.ndarray:
    """(N,) bool: each point strictly inside one of the polygons of its own group (even-odd
    rule; the boundary is outside), for all groups (frames) at once.

    The same answer as shapely's ``Polygon.contains`` that poseval uses, without shapely.
    ``vertices`` holds the polygons one after the other, ``sizes[r]`` vertices for polygon
    r of group ``region_group[r]``. Only the pairs whose point lies in the polygon's
    bounding box are tested edge by edge.
    """
    out = np.zeros(len(points), bool)
    starts = np.cumsum(sizes) - sizes
    real = sizes > 0
    if len(points) == 0 or not real.any():
        return out
    starts, sizes, region_group = starts[real], sizes[real], region_group[real]
    lo = np.minimum.reduceat(vertices, starts)
    hi = np.maximum.reduceat(vertices, starts)
    groups = max(int(point_group.max()), int(region_group.max())) + 1
    # Most points lie outside the box around all their group's polygons: drop them first.
    group_lo, group_hi = np.full((groups, 2), np.inf), np.full((groups, 2), -np.inf)
    np.minimum.at(group_lo, region_group, lo)
    np.maximum.at(group_hi, region_group, hi)
    near = np.flatnonzero(((group_lo[point_group] <= points)
                           & (points <= group_hi[point_group])).all(1))
    points, point_group, original = points[near], point_group[near], near
    # Every (point, polygon of the point's group) pair, then those inside the polygon's box.
    by_group = np.argsort(region_group, kind="stable")
    per_group = np.bincount(region_group, minlength=groups)
    first = np.cumsum(per_group) - per_group
    count = per_group[point_group]
    pair_point = np.repeat(np.arange(len(points)), count)
    pair_region = by_group[first[point_group][pair_point] + ragged_arange(count)]
    p = points[pair_point]
    boxed = ((lo[pair_region] <= p) & (p <= hi[pair_region])).all(1)
    pair_point, pair_region = pair_point[boxed], pair_region[boxed]
    if len(pair_point) == 0:
        return out
    # Each remaining pair against each edge a -> b of its polygon.
    edges = sizes[pair_region]
    pair = np.repeat(np.arange(len(pair_point)), edges)
    local = ragged_arange(edges)
    base = starts[pair_region][pair]
    a = vertices[base + local]
    b = vertices[base + (local + 1) % edges[pair]]
    p = points[pair_point][pair]
    ax, ay, bx, by, px, py = a[:, 0], a[:, 1], b[:, 0], b[:, 1], p[:, 0], p[:, 1]
    # Crossings of a ray to +x with each edge (half-open in y, so vertices count once).
    straddles = np.flatnonzero((ay > py) != (by > py))
    s_ay, s_px, s_py = ay[straddles], px[straddles], py[straddles]
    x_cross = ax[straddles] + (s_py - s_ay) * (bx[straddles] - ax[straddles]) / (by[straddles] - s_ay)
    crossings = np.bincount(pair[straddles], s_px < x_cross, minlength=len(pair_point))
    # On an edge: collinear with it and between its ends.
    collinear = np.flatnonzero((bx - ax) * (py - ay) - (by - ay) * (px - ax) == 0)
    c_ax, c_ay, c_bx, c_by = ax[collinear], ay[collinear], bx[collinear], by[collinear]
    c_px, c_py = px[collinear], py[collinear]
    between = ((np.minimum(c_ax, c_bx) <= c_px) & (c_px <= np.maximum(c_ax, c_bx))
               & (np.minimum(c_ay, c_by) <= c_py) & (c_py <= np.maximum(c_ay, c_by)))
    on_edge = np.bincount(pair[collinear], between, minlength=len(pair_point)) > 0
    out[original[pair_point[(crossings % 2 == 1) & ~on_edge]]] = True
    return out


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: points strictly inside one (M, 2) polygon (see ``inside_regions``)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    polygon = np.asarray(polygon, np.float64).reshape(-1, 2)
    return inside_regions(points, np.zeros(len(points), np.int64), polygon,
                          np.array([len(polygon)]), np.zeros(1, np.int64))


def _joints(video: VideoArrays, persons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 15, 2) positions, (n, 15) presence and (n, 15) scores of the chosen persons."""
    keypoints = video.keypoints[persons][:, POSEVAL_FROM_POSETRACK18]
    xy, flags = keypoints[..., :2], keypoints[..., 2]
    has = ~((xy[..., 0] == 0) & (xy[..., 1] == 0) & (flags == 0))
    scores = np.where(video.scored[persons, None],
                      video.scores[persons][:, POSEVAL_FROM_POSETRACK18], MIN_SCORE)
    return xy, has, scores


def _first_duplicate_frame(video: VideoArrays, persons: np.ndarray) -> int | None:
    """The first frame (position) in which two of the persons share a track id."""
    frame, track = video.frame[persons], video.track[persons]
    order = np.lexsort((track, frame))
    frame, track = frame[order], track[order]
    repeated = (frame[1:] == frame[:-1]) & (track[1:] == track[:-1])
    return int(frame[1:][repeated].min()) if repeated.any() else None


def _check_persons(gt: VideoArrays, pred: VideoArrays, gt_persons: np.ndarray,
                   pred_persons: np.ndarray, gt_file: str, pred_file: str) -> None:
    """Refuse a track id used twice in a frame and a GT person without a head box; of
    several problems the first in frame order is named (GT tracks, then predicted tracks,
    then head boxes within a frame)."""
    problems = []
    for rank, (video, persons, file) in enumerate(((gt, gt_persons, gt_file),
                                                   (pred, pred_persons, pred_file))):
        frame = _first_duplicate_frame(video, persons)
        if frame is not None:
            problems.append((frame, rank, video, persons, file))
    headless = gt_persons[np.isnan(gt.head_box[gt_persons, 0])]
    if len(headless):
        problems.append((int(gt.frame[headless[0]]), 2, gt, headless, gt_file))
    if not problems:
        return
    frame, rank, video, persons, file = min(problems, key=lambda p: p[:2])
    if rank == 2:
        raise InputError("ground truth needs the head box (PCKh normaliser)", file=file,
                         record=f"annotation {video.ann_ids[persons[0]]}", field="bbox_head")
    ids = video.track[persons[video.frame[persons] == frame]].tolist()
    duplicate = next(i for i in ids if ids.count(i) > 1)
    raise InputError(f"track id {duplicate} is used by more than one person in this frame "
                     "(a track is one person)", file=file, record=f"image {gt.image_ids[frame]}",
                     field="track_id")


def eval_arrays(name: str, gt: VideoArrays, pred: VideoArrays, gt_file: str = "ground truth",
                pred_file: str = "predictions") -> EvalVideo:
    """A video's frames paired by position, after poseval's clean-up (the module docstring),
    for all frames at once."""
    num_frames = len(gt.image_ids)
    labelled = np.bincount(gt.frame, minlength=num_frames) > 0
    # Persons in frame order, file order within a frame (the order poseval's ties follow).
    gt_persons = np.argsort(gt.frame, kind="stable")
    pred_persons = np.flatnonzero(labelled[pred.frame])
    pred_persons = pred_persons[np.argsort(pred.frame[pred_persons], kind="stable")]
    _check_persons(gt, pred, gt_persons, pred_persons, gt_file, pred_file)
    gt_xy, gt_has, _ = _joints(gt, gt_persons)
    pr_xy, pr_has, pr_score = _joints(pred, pred_persons)
    gt_frame, pr_frame = gt.frame[gt_persons], pred.frame[pred_persons]
    gt_track, pr_track = gt.track[gt_persons], pred.track[pred_persons]
    head = 0.6 * np.hypot(gt.head_box[gt_persons, 2], gt.head_box[gt_persons, 3])
    if len(gt.region_frame):
        with_regions = np.zeros(num_frames, bool)
        with_regions[gt.region_frame] = True
        regions = (gt.region_vertices, gt.region_sizes, gt.region_frame)
        for xy, has, frame in ((gt_xy, gt_has, gt_frame), (pr_xy, pr_has, pr_frame)):
            # Only present joints in frames with regions can be removed.
            person, joint = np.nonzero(has & with_regions[frame][:, None])
            inside = inside_regions(xy[person, joint], frame[person], *regions)
            has[person[inside], joint[inside]] = False
        keep_gt = gt_has.any(1) | ~with_regions[gt_frame]
        keep_pr = pr_has.any(1) | ~with_regions[pr_frame]
        gt_xy, gt_has, gt_track, head, gt_frame = (a[keep_gt] for a in (gt_xy, gt_has, gt_track, head,
                                                                         gt_frame))
        pr_xy, pr_has, pr_score, pr_track, pr_frame = (a[keep_pr] for a in (pr_xy, pr_has, pr_score,
                                                                             pr_track, pr_frame))
    # Labelled frames renumbered 0, 1, ... (frames without GT persons are gone).
    renumber = np.cumsum(labelled) - 1
    return EvalVideo(name, int(labelled.sum()), renumber[gt_frame], gt_xy, gt_has, gt_track, head,
                     renumber[pr_frame], pr_xy, pr_has, pr_score, pr_track)


def eval_video(name: str, gt_frames: list[Frame], pred_frames: list[list[Pose]],
               gt_file: str = "ground truth", pred_file: str = "predictions") -> EvalVideo:
    """``eval_arrays`` for GT Frames and the predicted Poses at each frame's position."""
    return eval_arrays(name, VideoArrays.from_frames(gt_frames),
                       VideoArrays.from_frames(gt_frames, pred_frames), gt_file, pred_file)


@reports_deep_nesting
def read_eval_file(path: Path) -> list[Frame]:
    """A PoseTrack18 ``<video>.json`` or a 2017 ``annolist`` file as Frames (POSETRACK18
    order), by the per-record walk. Nothing is checked against images: evaluation needs
    only the annotations, and predicted joints may leave the image.
    """
    data = load_json(path)
    if is_annolist(data):
        return read_annolist(data, str(path))
    schema, frames = read_video(path, path.parent, check_images=False,
                                outside_tolerance=float("inf"), data=data, require_ids=False,
                                image_sizes=False)
    _require_posetrack18(schema, path)
    return frames


def _require_posetrack18(schema: Schema, path: Path) -> None:
    if schema is not POSETRACK18:
        raise InputError(f"PoseTrack evaluation needs the posetrack18 keypoints in 'categories'; "
                         f"this file has {schema.name}", file=str(path), field="categories")


@reports_deep_nesting
def read_eval_arrays(path: Path) -> VideoArrays:
    """``read_eval_file`` as arrays: PoseTrack18 files are checked on whole arrays
    (``read_video_arrays``), 2017 files by the walk."""
    data = load_json(path)
    if is_annolist(data):
        return VideoArrays.from_frames(read_annolist(data, str(path)))
    schema, video = read_video_arrays(path, data)
    _require_posetrack18(schema, path)
    return video


def _check_alignment(gt: VideoArrays, pred: VideoArrays, gt_path: Path, pred_path: Path) -> None:
    """Prediction frames must be the GT frames, in the same order (poseval pairs by position):
    the same image id or the same image file name at every position."""
    if len(pred.image_ids) != len(gt.image_ids):
        raise InputError(f"{len(pred.image_ids)} prediction frames but the ground truth {gt_path} "
                         f"has {len(gt.image_ids)}: write one entry in 'images' per GT image, in "
                         "GT order, even for frames without predictions", file=str(pred_path),
                         field="images")
    if pred.image_ids == gt.image_ids:
        return
    for position, (g_id, p_id) in enumerate(zip(gt.image_ids, pred.image_ids)):
        g_name, p_name = gt.file_names[position], pred.file_names[position]
        if g_id != p_id and Path(g_name).name != Path(p_name).name:
            raise InputError(f"frame {position} is image {p_id} ({p_name!r}) but the "
                             f"ground truth's frame {position} is image {g_id} "
                             f"({g_name!r}); list the images in GT order", file=str(pred_path),
                             record=f"image {p_id}", field="images")


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
        gt_video, pred_video = read_eval_arrays(gt_file), read_eval_arrays(pred_file)
        _check_alignment(gt_video, pred_video, gt_file, pred_file)
        unscored = int((~pred_video.scored).sum())
        if unscored:
            warnings.warn(f"{pred_file}: {unscored} predicted persons have no per-joint 'scores'; as "
                          f"poseval does, their joints are scored {MIN_SCORE:g} (ranked below every "
                          "scored joint in AP; MOTA does not use scores)", stacklevel=2)
        videos.append(eval_arrays(gt_file.stem, gt_video, pred_video, str(gt_file), str(pred_file)))
    return videos
