"""Drawing poses on images and contact sheets of a data set's ground truth.

Left and right always get their own colour families (the person's own left in blue, own
right in orange/red, the midline in green), so a glance at a sheet tells whether left and
right are swapped anywhere between the renderer, the files and the readers.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from vidpose.errors import InputError
from vidpose.keypoints import Schema
from vidpose.pose import Frame, Pose, PoseDataset

# BGR colours.
LEFT = (255, 140, 20)  # blue
RIGHT = (20, 110, 255)  # orange
CENTER = (60, 210, 60)  # green
IGNORE = (160, 160, 160)
# Track colours for boxes and labels (distinct hues, none of the left/right families).
TRACK_COLORS = ((255, 255, 255), (0, 230, 230), (230, 0, 230), (180, 255, 120), (120, 180, 255),
                (255, 200, 200), (60, 60, 255), (255, 255, 0))


def _side(name: str) -> tuple[int, int, int]:
    if name.startswith("left_"):
        return LEFT
    if name.startswith("right_"):
        return RIGHT
    return CENTER


def _limb_color(schema: Schema, a: int, b: int) -> tuple[int, int, int]:
    """A limb between two left (right) keypoints is left (right); anything else is midline."""
    sides = {_side(schema.names[a]), _side(schema.names[b])}
    return sides.pop() if len(sides) == 1 else CENTER


def track_color(track_id: int) -> tuple[int, int, int]:
    return TRACK_COLORS[track_id % len(TRACK_COLORS)] if track_id >= 0 else TRACK_COLORS[0]


def draw_pose(image: np.ndarray, pose: Pose, schema: Schema, *, color: tuple[int, int, int] | None = None,
              label: str | None = None) -> np.ndarray:
    """A copy of ``image`` with ``pose`` drawn: skeleton, keypoint dots, box and label.

    Limbs and dots use the left/right/midline colours; ``color`` (default white) is for the
    box, the dots' rims and the label. A third keypoint column of exactly 1 (COCO's
    "occluded" flag) draws a ring, any other positive value (visible flag, score) a dot.
    """
    out = image.copy()
    height, width = out.shape[:2]
    thick = max(2, int(round(min(height, width) / 160)))
    rim = color or (255, 255, 255)
    kps = pose.keypoints
    present = kps[:, 2] > 0
    pts = np.round(kps[:, :2]).astype(np.int32)
    for a, b in schema.limbs:
        if present[a] and present[b]:
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), _limb_color(schema, a, b), thick, cv2.LINE_AA)
    for k in np.flatnonzero(present):
        center, fill = tuple(pts[k]), _side(schema.names[k])
        if kps[k, 2] == 1:
            cv2.circle(out, center, thick + 2, fill, max(1, thick - 1), cv2.LINE_AA)
        else:
            cv2.circle(out, center, thick + 1, rim, -1, cv2.LINE_AA)
            cv2.circle(out, center, thick, fill, -1, cv2.LINE_AA)
    anchor = None
    if pose.box is not None:
        x, y, w, h = pose.box
        cv2.rectangle(out, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                      rim, 1, cv2.LINE_AA)
        anchor = (int(round(x)), int(round(y)))
    elif present.any():
        anchor = tuple(int(v) for v in pts[present].min(0))
    if label and anchor is not None:
        _text(out, label, (anchor[0], max(anchor[1] - 2, 10)), rim, scale=0.18 * thick)
    return out


def _text(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int],
          scale: float = 0.4) -> None:
    """Text with a dark backing box, readable on any background."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), base = cv2.getTextSize(text, font, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 1, y), font, scale, color, 1, cv2.LINE_AA)


def _draw_ignore(image: np.ndarray, regions: list[np.ndarray]) -> None:
    if not regions:
        return
    overlay = image.copy()
    polys = [np.round(r).astype(np.int32) for r in regions]
    cv2.fillPoly(overlay, polys, IGNORE)
    cv2.addWeighted(overlay, 0.45, image, 0.55, 0, dst=image)
    cv2.polylines(image, polys, True, IGNORE, 1, cv2.LINE_AA)


def draw_frame(image: np.ndarray, frame: Frame, schema: Schema) -> np.ndarray:
    """Every pose of ``frame`` (crowd regions as grey boxes) and its ignore regions."""
    out = image.copy()
    _draw_ignore(out, frame.ignore_regions)
    for pose in frame.poses:
        if pose.iscrowd:
            if pose.box is not None:
                x, y, w, h = np.round(pose.box).astype(int)
                cv2.rectangle(out, (x, y), (x + w, y + h), IGNORE, 1)
                _text(out, "crowd", (x, max(y - 2, 10)), IGNORE, 0.3)
            continue
        label = f"id {pose.track_id}" if pose.track_id >= 0 else None
        out = draw_pose(out, pose, schema, color=track_color(pose.track_id), label=label)
    return out


def ground_truth_beside_prediction(image: np.ndarray, truth: Frame, predicted: list[Pose],
                                   schema: Schema, *, caption: str | None = None,
                                   min_height: int = 256) -> np.ndarray:
    """A BGR picture of an RGB ``image`` twice: the ground truth of ``truth`` on the left,
    ``predicted`` (each track in its colour, ``id <track>``) on the right, each titled;
    ``caption`` (e.g. the frame's name) under the left title. Images lower than
    ``min_height`` are enlarged first, so that joints, ids and titles stay readable."""
    canvas = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    predicted_frame = replace(truth, poses=predicted, ignore_regions=[])
    if canvas.shape[0] < min_height:
        scale = min_height / canvas.shape[0]
        canvas = cv2.resize(canvas, (round(canvas.shape[1] * scale), min_height),
                            interpolation=cv2.INTER_LINEAR)
        truth, predicted_frame = _scaled(truth, scale), _scaled(predicted_frame, scale)
    left = draw_frame(canvas, truth, schema)
    right = draw_frame(canvas, predicted_frame, schema)
    for panel, title in ((left, f"ground truth ({sum(not p.iscrowd for p in truth.poses)})"),
                         (right, f"prediction ({len(predicted)})")):
        _text(panel, title, (2, 14), (255, 255, 255), 0.45)
    if caption:
        _text(left, caption, (2, 30), (255, 255, 255), 0.35)
    gap = np.full((canvas.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def _scaled(frame: Frame, scale: float) -> Frame:
    """The frame's annotations in an image resized by ``scale`` (pixel centres stay centres)."""
    def pose(p: Pose) -> Pose:
        kps = p.keypoints.copy()
        kps[:, :2] = (kps[:, :2] + 0.5) * scale - 0.5
        return replace(p, keypoints=kps, box=None if p.box is None else p.box * scale)
    return replace(frame, poses=[pose(p) for p in frame.poses],
                   ignore_regions=[(r + 0.5) * scale - 0.5 for r in frame.ignore_regions])


def _pick_video_frames(dataset: PoseDataset, n: int, cols: int) -> list[Frame]:
    """Rows of consecutive labelled frames, one video per row, videos spread over the split."""
    videos = [[f for f in frames if f.is_labeled] for frames in dataset.videos().values()]
    videos = [v for v in videos if v]
    rows = math.ceil(n / cols)
    chosen_videos = [videos[i] for i in np.unique(np.linspace(0, len(videos) - 1, rows).round().astype(int))]
    picked: list[Frame] = []
    for frames in chosen_videos:
        start = max(0, (len(frames) - cols) // 2)
        picked.extend(frames[start:start + cols])
    # Fewer videos than rows: fill up from the remaining labelled frames.
    rest = [f for v in videos for f in v if f not in picked]
    return (picked + rest)[:n]


def _read(root: Path, dataset: str) -> PoseDataset:
    """The val split (else the first one found) of a data set root, through the formats readers."""
    from vidpose.formats import read_coco, read_ochuman, read_posetrack

    annotations = root / "annotations"
    if dataset == "posetrack18":
        splits = sorted(p for p in annotations.glob("*") if p.is_dir()) if annotations.is_dir() else []
        if not splits:
            raise InputError("no annotations/<split>/ folder of <video>.json files", file=str(annotations))
        split = next((p for p in splits if p.name == "val"), splits[0])
        return read_posetrack(split)
    if dataset not in ("coco", "ochuman"):
        raise InputError(f"unknown dataset layout {dataset!r}; expected posetrack18, coco or ochuman",
                         field="dataset")
    files = sorted(annotations.glob("person_keypoints_*.json")) if annotations.is_dir() else []
    if not files:
        raise InputError("no annotations/person_keypoints_<split>.json file", file=str(annotations))
    file = next((f for f in files if "val" in f.stem), files[0])
    split = file.stem.removeprefix("person_keypoints_")
    reader = read_ochuman if dataset == "ochuman" else read_coco
    return reader(file, root / split)


def contact_sheet(root: str | Path, out_png: str | Path, *, n: int = 12,
                  dataset: str = "posetrack18") -> Path:
    """A PNG grid of ``n`` frames of the data set at ``root`` with its ground truth drawn.

    The files are read back through the formats readers, so the sheet shows what training
    and evaluation will see. Video data sets show one video per row (consecutive labelled
    frames: track ids should stay on the same person); a legend says which colour is which.
    """
    if n < 1:
        raise InputError(f"expected at least one frame; got n={n}", field="n")
    root = Path(root)
    data = _read(root, dataset)
    cols = min(n, 4)
    if dataset == "posetrack18":
        frames = _pick_video_frames(data, n, cols)
    else:
        frames = [data.frames[i] for i in np.unique(np.linspace(0, len(data) - 1, n).round().astype(int))]
    if not frames:
        raise InputError("no labelled frame to show", file=str(root))
    tiles = []
    tile_w, tile_h = 320, 240
    for frame in frames:
        path = Path(data.image_root) / frame.file_name
        image = cv2.imread(str(path))
        if image is None:
            raise InputError("image missing or unreadable", file=str(path), record=f"image {frame.image_id}",
                             field="file_name")
        # Fit into the tile keeping the aspect ratio (real data comes in many sizes), then
        # draw at tile resolution so that markers have the same size on every tile.
        scale = min(tile_w / image.shape[1], tile_h / image.shape[0])
        resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        tile = np.zeros((tile_h, tile_w, 3), dtype=np.uint8)
        tile[:resized.shape[0], :resized.shape[1]] = resized
        tile = draw_frame(tile, _scaled(frame, scale), data.schema)
        caption = f"{frame.video} #{frame.frame_index}" if frame.video else frame.file_name
        _text(tile, caption, (2, tile_h - 4), (255, 255, 255), 0.35)
        tiles.append(tile)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    grid = np.concatenate([np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)], 0)
    sheet = np.concatenate([grid, _legend(grid.shape[1], dataset, len(frames))], 0)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), sheet):
        raise OSError(f"could not write {out_png}")
    return out_png


def _legend(width: int, dataset: str, count: int) -> np.ndarray:
    """A strip saying which colour is the person's own left and right."""
    strip = np.full((28, width, 3), 30, dtype=np.uint8)
    x, font = 6, cv2.FONT_HERSHEY_SIMPLEX
    for text, color in [("person's LEFT", LEFT), ("person's RIGHT", RIGHT), ("midline", CENTER),
                        ("ignore region", IGNORE)]:
        cv2.line(strip, (x, 14), (x + 18, 14), color, 3, cv2.LINE_AA)
        cv2.putText(strip, text, (x + 24, 19), font, 0.42, color, 1, cv2.LINE_AA)
        x += 34 + cv2.getTextSize(text, font, 0.42, 1)[0][0]
    note = f"dot = visible, ring = occluded | {dataset}, {count} frames"
    cv2.putText(strip, note, (x, 19), font, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
    return strip
