"""Tiny datasets in the real on-disk layouts, written with the formats writers.

Images are small noise-free drawings: a grey gradient with one bright square dot per
labelled keypoint, so tests can find a keypoint in the pixels as well as in the labels.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from vidpose.formats.coco import write_coco
from vidpose.formats.detections import write_detections
from vidpose.formats.posetrack import write_posetrack_video
from vidpose.keypoints import COCO17, POSETRACK18, Schema
from vidpose.pose import Frame, Pose, PoseDataset

HEIGHT, WIDTH = 96, 128


def stick_person(center: tuple[float, float], scale: float, schema: Schema) -> np.ndarray:
    """(K, 3) keypoints of an upright person (visibility 2), unannotated slots zero."""
    offsets = {  # person's left is the image's right for a person facing the camera
        "nose": (0, -0.9), "head_bottom": (0, -0.7), "head_top": (0, -1.1),
        "left_eye": (0.1, -0.95), "right_eye": (-0.1, -0.95),
        "left_ear": (0.2, -0.9), "right_ear": (-0.2, -0.9),
        "left_shoulder": (0.3, -0.6), "right_shoulder": (-0.3, -0.6),
        "left_elbow": (0.4, -0.25), "right_elbow": (-0.4, -0.25),
        "left_wrist": (0.45, 0.1), "right_wrist": (-0.45, 0.1),
        "left_hip": (0.2, 0.1), "right_hip": (-0.2, 0.1),
        "left_knee": (0.22, 0.5), "right_knee": (-0.22, 0.5),
        "left_ankle": (0.24, 0.9), "right_ankle": (-0.24, 0.9),
    }
    kps = np.zeros((schema.num_keypoints, 3))
    for k, name in enumerate(schema.names):
        if schema.annotated_mask[k]:
            dx, dy = offsets[name]
            kps[k] = (center[0] + dx * scale, center[1] + dy * scale, 2)
    return kps


def draw(poses: list[Pose], shade: int = 0) -> np.ndarray:
    """An RGB image: a gradient plus a 3x3 white dot on every present keypoint."""
    xs = np.linspace(40, 90, WIDTH)[None, :]
    ys = np.linspace(0, 40, HEIGHT)[:, None]
    grey = (xs + ys + shade).astype(np.uint8)
    image = np.repeat(grey[:, :, None], 3, axis=2)
    for pose in poses:
        for x, y, v in pose.keypoints:
            if v > 0:
                xi, yi = int(round(x)), int(round(y))
                image[max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2] = 255
    return image


def write_image(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG bytes under the layout's .jpg name: cv2 decodes by content, and no JPEG loss.
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())


def person(center: tuple[float, float], scale: float, track_id: int, schema: Schema,
           drop: tuple[int, ...] = ()) -> Pose:
    kps = stick_person(center, scale, schema)
    kps[list(drop)] = 0
    present = kps[kps[:, 2] > 0, :2]
    lo, hi = present.min(0), present.max(0)
    box = np.array([lo[0] - 4, lo[1] - 4, hi[0] - lo[0] + 8, hi[1] - lo[1] + 8])
    head = None
    if "head_top" in schema.index:
        top, bottom = kps[schema.index["head_top"]], kps[schema.index["head_bottom"]]
        head = np.array([top[0] - 6, top[1], 12, bottom[1] - top[1]])
    return Pose(kps, box=box, track_id=track_id, head_box=head)


def posetrack_video(split: str, video: str, first_id: int, labelled: list[bool],
                    drift: float) -> list[Frame]:
    """A video of ``len(labelled)`` frames with two persons walking apart."""
    frames = []
    for t, is_labeled in enumerate(labelled):
        poses = [person((40 - drift * t, 50), 36, 1, POSETRACK18),
                 person((88 + drift * t, 48), 30, 2, POSETRACK18, drop=(9, 10))]
        if t == 2:  # a third person appears in one frame only
            poses.append(person((64, 40), 20, 7, POSETRACK18))
        frames.append(Frame(first_id + t, f"images/{split}/{video}/{t:06d}.jpg", WIDTH, HEIGHT,
                            poses if is_labeled else [], video=video, frame_index=t,
                            is_labeled=is_labeled))
    return frames


@pytest.fixture(scope="session")
def posetrack_root(tmp_path_factory) -> Path:
    """posetrack18 layout: train (2 videos, one sparsely labelled), val (1 video) and
    detections for val."""
    root = tmp_path_factory.mktemp("pt18") / "posetrack18"
    videos = {
        "train": [("vid_a", [True] * 6, 1.0), ("vid_b", [False, True, True, True, False, False], 2.0)],
        "val": [("vid_c", [True, False, True, False, True], 1.5)],
    }
    first_id = 1000
    for split, specs in videos.items():
        for video, labelled, drift in specs:
            frames = posetrack_video(split, video, first_id, labelled, drift)
            first_id += 100
            full = posetrack_video(split, video, 0, [True] * len(labelled), drift)
            for frame, drawn in zip(frames, full):
                write_image(root / frame.file_name, draw(drawn.poses, shade=frame.frame_index))
            write_posetrack_video(root / "annotations" / split / f"{video}.json", frames, video=video)
    val = posetrack_video("val", "vid_c", 1200, [True, False, True, False, True], 1.5)
    write_detections(root / "detections" / "val.json", {
        val[0].image_id: [Pose(np.zeros((17, 3)), box=np.array([20.0, 10, 40, 70]), score=0.9),
                          Pose(np.zeros((17, 3)), box=np.array([70.0, 12, 36, 60]), score=0.4)],
        val[2].image_id: [Pose(np.zeros((17, 3)), box=np.array([18.0, 8, 44, 74]), score=0.8)],
    })
    return root


def _polygon(pose: Pose) -> list[list[float]]:
    x, y, w, h = pose.box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _rle(pose: Pose) -> dict:
    x, y, w, h = (int(round(v)) for v in pose.box)
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8, order="F")
    mask[y:y + h, x:x + w] = 1
    rle = mask_utils.encode(mask)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory) -> Path:
    """coco layout, splits train and val: polygon, RLE and missing segmentations."""
    root = tmp_path_factory.mktemp("coco") / "coco"
    for split, count in (("train", 3), ("val", 2)):
        frames = []
        for i in range(count):
            poses = [person((30 + 2 * i, 50), 30, -1, COCO17), person((100, 50), 26, -1, COCO17),
                     person((64, 62), 14, -1, COCO17)]
            poses[0].segmentation = _polygon(poses[0])
            poses[1].segmentation = _rle(poses[1])
            frame = Frame(i + 1, f"{i:012d}.jpg", WIDTH, HEIGHT, poses)
            write_image(root / split / frame.file_name, draw(poses))
            frames.append(frame)
        write_coco(root / "annotations" / f"person_keypoints_{split}.json",
                   PoseDataset(frames, COCO17, str(root / split)))
    return root


@pytest.fixture()
def make_person():
    """``stick_person(center, scale, schema)`` for tests that draw their own images."""
    return stick_person


@pytest.fixture()
def data_config():
    """``base_config(root, dataset, **overrides)``: a data section as a plain dict."""
    return base_config


@pytest.fixture()
def data_module():
    """``data_module(cls, root, dataset, stage, **overrides)``: ``cls`` on ``base_config``, set up."""
    def make(cls, root: Path, dataset: str = "posetrack18", stage: str = "fit", **overrides):
        module = cls(base_config(root, dataset, **overrides))
        module.setup(stage)
        return module
    return make


def base_config(root: Path, dataset: str = "posetrack18", **overrides) -> dict:
    """A data section for the tiny sets: small input, no workers, deterministic by default."""
    cfg = {"dataset": dataset, "root": str(root), "synth_preset": None, "input_size": [64, 48],
           "heatmap_stride": 4, "sigma": 1.5, "batch_size": 4, "num_workers": 0,
           "augment": {"flip": 0.0, "rotation": 0.0, "scale": 0.0, "color": False, "blur": 0.0,
                       "noise": 0.0}}
    for key, value in overrides.items():
        if key == "augment":
            cfg["augment"].update(value)
        else:
            cfg[key] = value
    return cfg
